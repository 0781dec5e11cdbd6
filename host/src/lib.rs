//! dpdkhost: stands up a libvirt lab of DPDK VMs, injects the guest agent through
//! cloud-init, and drives it over gRPC. The binary (`main.rs`) only parses and
//! dispatches; everything else lives here, one module per concern.

#![deny(unsafe_code)]

pub mod accel;
pub mod assets;
pub mod bring_up;
pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod context;
pub mod drive;
pub mod dut;
pub mod guest;
pub mod image;
pub mod keys;
pub mod lab;
pub mod lock;
pub mod plan;
pub mod provision;
pub mod results;
pub mod search;
pub mod seed;
pub mod shell;
pub mod ssh;
pub mod ssh_config;
pub mod state;
pub mod survey;
#[allow(unsafe_code)]
pub mod sys;
pub mod testpmd;
pub mod ui;
pub mod units;
