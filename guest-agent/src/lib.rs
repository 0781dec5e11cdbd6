//! dpdk-agent: the guest side of dpdkhost. A thin safe layer over DPDK (EAL,
//! mempools, mbufs, ports), the packet formats test traffic uses, the workloads that
//! move it (reflector, ping-pong, bench) and the selftest.
//!
//! Unsafe code lives only in the safe layer (`dpdk/`: `eal`, `mempool`, `mbuf`, `port`)
//! and in `dpdk-sys`: the crate root denies it, and only `dpdk` is allowed it.

#![deny(unsafe_code)]

pub mod bind;
pub mod connections;
pub mod control;
pub mod cpu;
pub mod datapath;
pub mod devlock;
#[allow(unsafe_code)]
pub mod dpdk;
pub mod handover;
pub mod packet;
pub mod selftest;
pub mod serve;
pub mod service;
pub mod telemetry;
pub mod tls;
pub mod workload;

// The safe layer at the paths the rest of the agent (and its tests) name it by.
pub use dpdk::{eal, mbuf, mempool, port};
