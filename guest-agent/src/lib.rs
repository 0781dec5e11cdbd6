//! dpdk-agent: the guest side of dpdkhost. A thin safe layer over DPDK (EAL,
//! mempools, mbufs, ports), the packet formats test traffic uses, the workloads that
//! move it (reflector, ping-pong, bench) and the selftest.
//!
//! Unsafe code lives only in the safe layer (`eal`, `mempool`, `mbuf`, `port`) and
//! in `dpdk-sys`; packets, workloads and selftest are safe Rust.

pub mod bind;
pub mod connections;
pub mod control;
pub mod cpu;
pub mod datapath;
pub mod devlock;
pub mod eal;
pub mod handover;
pub mod mbuf;
pub mod mempool;
pub mod packet;
pub mod port;
pub mod selftest;
pub mod serve;
pub mod service;
pub mod tls;
pub mod workload;
