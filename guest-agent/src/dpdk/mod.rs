//! The safe layer over DPDK: the only place in the agent where `unsafe` is allowed
//! (the crate root denies it everywhere else). Ownership is in the types: [`eal::Eal`]
//! initialised once and passed as a token, [`mempool::Mempool`] outliving its mbufs,
//! [`mbuf::Mbuf`] and [`mbuf::MbufBatch`] freeing themselves, [`port::Port`] stopping
//! and closing itself on drop. Every `unsafe` block says why it is sound.

pub mod eal;
pub mod mbuf;
pub mod mempool;
pub mod port;
