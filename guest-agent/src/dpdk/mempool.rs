//! Packet buffer pools (`rte_pktmbuf_pool_create`), freed on Drop.

use std::ffi::CString;
use std::ptr::NonNull;

use dpdk_sys as sys;

use crate::eal::{Eal, RteError};
use crate::mbuf::{Mbuf, MbufBatch};

/// Per-lcore cache of mbufs; DPDK requires it to be at most a fraction of the pool.
const DEFAULT_CACHE_SIZE: u32 = 256;

/// Why a pool could not be created or could not hand out buffers.
#[derive(Debug, thiserror::Error)]
pub enum MempoolError {
    /// The name cannot be passed to C.
    #[error("mempool name {0:?} contains a NUL byte")]
    NameHasNul(String),
    /// `rte_pktmbuf_pool_create` failed (often: not enough EAL memory, see `-m`).
    #[error("creating mempool {name:?} with {mbufs} mbufs failed")]
    Create {
        /// Pool name.
        name: String,
        /// Number of mbufs asked for.
        mbufs: u32,
        /// What DPDK reported.
        #[source]
        cause: RteError,
    },
    /// Every mbuf of the pool is in use.
    #[error("mempool {name:?} has no free mbuf")]
    Exhausted {
        /// Pool name.
        name: String,
    },
    /// A packet longer than the pool's buffers.
    #[error("a {len}-byte packet does not fit mempool {name:?} (room for {room} bytes)")]
    PacketTooLong {
        /// Pool name.
        name: String,
        /// Bytes asked for.
        len: usize,
        /// Data room after the headroom.
        room: usize,
    },
}

/// An mbuf pool. It must outlive every mbuf taken from it: ports keep it in an `Arc`,
/// and if mbufs are still out when it is dropped, it is leaked rather than freed.
#[derive(Debug)]
pub struct Mempool {
    ptr: NonNull<sys::rte_mempool>,
    name: String,
    size: u32,
    /// Bytes a single-segment packet can hold after the default headroom.
    packet_room: usize,
}

// SAFETY: an rte_mempool is designed for concurrent use from many threads (its ring
// is multi-producer/multi-consumer); the handle is only a pointer to it.
unsafe impl Send for Mempool {}
// SAFETY: as above; every operation through &Mempool is thread-safe in DPDK.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `mbufs` packet buffers with the default data room (2048 bytes
    /// plus headroom), on any NUMA socket.
    pub fn create(_eal: &Eal, name: &str, mbufs: u32) -> Result<Mempool, MempoolError> {
        let c_name = CString::new(name).map_err(|_| MempoolError::NameHasNul(name.to_owned()))?;
        // DPDK requires cache_size <= mbufs / 1.5 (CONFIG_RTE_MEMPOOL_CACHE_MAX_SIZE).
        let cache = DEFAULT_CACHE_SIZE.min(mbufs * 2 / 3);
        // SAFETY: EAL is initialised (witnessed by the &Eal); the name is a valid C
        // string copied by DPDK.
        let raw = unsafe {
            sys::rte_pktmbuf_pool_create(
                c_name.as_ptr(),
                mbufs,
                cache,
                0,
                sys::dpdk_sys_mbuf_default_buf_size(),
                sys::SOCKET_ID_ANY,
            )
        };
        let ptr = NonNull::new(raw).ok_or_else(|| MempoolError::Create {
            name: name.to_owned(),
            mbufs,
            cause: RteError::last(),
        })?;
        // SAFETY: these shims return compile-time constants.
        let (buf_size, headroom) = unsafe {
            (
                sys::dpdk_sys_mbuf_default_buf_size(),
                sys::dpdk_sys_pktmbuf_headroom(),
            )
        };
        Ok(Mempool {
            ptr,
            name: name.to_owned(),
            size: mbufs,
            packet_room: usize::from(buf_size.saturating_sub(headroom)),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of mbufs the pool was created with.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Mbufs currently free (including per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: ptr is a live pool.
        unsafe { sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Mbufs currently handed out (in rings, in flight or held by us).
    pub fn in_use(&self) -> u32 {
        // SAFETY: ptr is a live pool.
        unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    /// One empty mbuf.
    pub fn alloc(&self) -> Result<Mbuf, MempoolError> {
        // SAFETY: ptr is a live pool of packet mbufs.
        let raw = unsafe { sys::rte_pktmbuf_alloc(self.ptr.as_ptr()) };
        NonNull::new(raw)
            // SAFETY: a fresh mbuf from rte_pktmbuf_alloc is owned by nobody else.
            .map(|ptr| unsafe { Mbuf::from_raw(ptr) })
            .ok_or_else(|| MempoolError::Exhausted {
                name: self.name.clone(),
            })
    }

    /// Appends `count` empty mbufs to `batch`, all or none (fails when the pool or the
    /// batch's free space is short).
    pub fn alloc_into(&self, batch: &mut MbufBatch, count: usize) -> Result<(), MempoolError> {
        let exhausted = || MempoolError::Exhausted {
            name: self.name.clone(),
        };
        let spare = batch.spare_slots();
        if count > spare.len() {
            return Err(exhausted());
        }
        let n = u32::try_from(count).map_err(|_| exhausted())?;
        // SAFETY: spare points to at least `count` writable pointer slots; on success
        // DPDK fills exactly `count` of them with fresh mbufs we then own.
        let ret = unsafe { sys::rte_pktmbuf_alloc_bulk(self.ptr.as_ptr(), spare.as_mut_ptr(), n) };
        if ret != 0 {
            return Err(exhausted());
        }
        // SAFETY: the first `count` spare slots now hold valid, owned mbufs.
        unsafe { batch.commit_spare(count) };
        Ok(())
    }

    /// Appends `count` mbufs to `batch`, each a single-segment packet of `len` bytes
    /// whose contents the caller writes; all or none. Cheaper per mbuf than
    /// [`alloc_into`](Self::alloc_into) followed by setting the length: it leaves
    /// offload and VLAN fields alone, which a packet without offload flags never reads.
    pub fn alloc_packets_into(
        &self,
        batch: &mut MbufBatch,
        count: usize,
        len: usize,
    ) -> Result<(), MempoolError> {
        let exhausted = || MempoolError::Exhausted {
            name: self.name.clone(),
        };
        let too_long = || MempoolError::PacketTooLong {
            name: self.name.clone(),
            len,
            room: self.packet_room,
        };
        if len > self.packet_room {
            return Err(too_long());
        }
        let len16 = u16::try_from(len).map_err(|_| too_long())?;
        let spare = batch.spare_slots();
        if count > spare.len() {
            return Err(exhausted());
        }
        let n = u32::try_from(count).map_err(|_| exhausted())?;
        // SAFETY: spare points to at least `count` writable pointer slots; on success
        // the shim fills exactly `count` of them with mbufs we then own, each sized
        // `len`, which fits their data room (checked above).
        let ret = unsafe {
            sys::dpdk_sys_pktmbuf_alloc_bulk_sized(self.ptr.as_ptr(), spare.as_mut_ptr(), n, len16)
        };
        if ret != 0 {
            return Err(exhausted());
        }
        // SAFETY: the first `count` spare slots now hold valid, owned mbufs.
        unsafe { batch.commit_spare(count) };
        Ok(())
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.ptr.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        let in_use = self.in_use();
        if in_use > 0 {
            // Freeing would leave those mbufs pointing into freed memory.
            tracing::warn!(pool = %self.name, in_use, "mempool still has mbufs out; leaking it");
            return;
        }
        // SAFETY: no mbuf of this pool is out, and nothing else holds the pointer.
        unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) };
    }
}
