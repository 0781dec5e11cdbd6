//! Raw FFI bindings to DPDK 22.11, generated at build time from the installed headers.
//!
//! DPDK's static inline functions (`rte_eth_rx_burst`, `rte_pktmbuf_alloc`, ...) are
//! reachable through C wrappers bindgen generates; the thread-local `rte_errno` and a
//! few function-like macros are reachable through the `dpdk_sys_*` shim in `csrc/`.
//! All of DPDK (EAL, mempool, mbuf, ethdev and a curated set of drivers) is linked
//! statically into the final binary.
#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals)]
#![allow(clippy::all, clippy::pedantic, clippy::nursery, clippy::restriction)]
#![allow(missing_docs)]
#![allow(unsafe_op_in_unsafe_fn)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// The DPDK version these bindings were generated from (`pkg-config --modversion`).
pub const DPDK_VERSION: &str = env!("DPDK_SYS_DPDK_VERSION");
