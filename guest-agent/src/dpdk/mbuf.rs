//! Packet buffers that free themselves, and a fixed-size batch of them for bursts.

use std::ptr::NonNull;

use dpdk_sys as sys;

/// Most packets one burst moves; a batch holds this many without allocating.
pub const MAX_BURST: usize = 64;

/// Why an mbuf could not take the requested length.
#[derive(Debug, thiserror::Error)]
pub enum MbufError {
    /// The requested length does not fit in the buffer's tailroom.
    #[error("mbuf cannot hold {requested} bytes (room for {room})")]
    NoRoom {
        /// Bytes asked for.
        requested: usize,
        /// Bytes available after the headroom.
        room: usize,
    },
}

/// One packet buffer, owned: dropping it returns it to its pool.
///
/// Only single-segment mbufs are built or accepted (no scatter-gather is configured),
/// so the packet data is one contiguous slice.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf {
    ptr: NonNull<sys::rte_mbuf>,
}

// SAFETY: an Mbuf is exclusively owned; the pool it returns to is thread-safe.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `ptr` must be a valid packet mbuf that nobody else owns or frees, and its pool
    /// must outlive the returned value.
    pub(crate) unsafe fn from_raw(ptr: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf { ptr }
    }

    /// Gives up ownership (the caller now frees or transmits it).
    pub(crate) fn into_raw(self) -> *mut sys::rte_mbuf {
        let ptr = self.ptr.as_ptr();
        std::mem::forget(self);
        ptr
    }

    fn raw(&self) -> &sys::rte_mbuf {
        // SAFETY: ptr is a valid mbuf we own for as long as self lives.
        unsafe { self.ptr.as_ref() }
    }

    /// Packet length (bytes of frame, without FCS).
    pub fn len(&self) -> usize {
        self.raw().data_len.into()
    }

    /// Whether the packet is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of segments (1 for everything this crate builds).
    pub fn segments(&self) -> u16 {
        self.raw().nb_segs
    }

    /// Where the packet starts: `rte_pktmbuf_mtod`, computed here rather than through
    /// the C shim so that it inlines into the per-packet loops.
    fn data_start(&self) -> *mut u8 {
        let raw = self.raw();
        raw.buf_addr
            .cast::<u8>()
            .wrapping_add(usize::from(raw.data_off))
    }

    /// The packet bytes of the first (only) segment.
    pub fn data(&self) -> &[u8] {
        // SAFETY: buf_addr + data_off points at data_len initialised bytes inside the
        // buffer, which live as long as self; no &mut to them exists while &self is
        // borrowed.
        unsafe { std::slice::from_raw_parts(self.data_start(), self.len()) }
    }

    /// The packet bytes, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in data(); &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.data_start(), self.len()) }
    }

    /// Bytes the packet can grow to from its current start.
    pub fn capacity(&self) -> usize {
        let raw = self.raw();
        usize::from(raw.buf_len).saturating_sub(usize::from(raw.data_off))
    }

    /// Sets the packet to `len` bytes (one segment) and returns them for writing.
    /// Bytes beyond the old length are whatever the buffer held.
    pub fn set_len(&mut self, len: usize) -> Result<&mut [u8], MbufError> {
        let room = self.capacity();
        let no_room = MbufError::NoRoom {
            requested: len,
            room,
        };
        if len > room || self.segments() != 1 {
            return Err(no_room);
        }
        let data_len = u16::try_from(len).map_err(|_| no_room)?;
        // SAFETY: single segment, len fits the buffer; we own the mbuf exclusively.
        unsafe {
            let raw = self.ptr.as_mut();
            raw.data_len = data_len;
            raw.pkt_len = u32::from(data_len);
        }
        Ok(self.data_mut())
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; after this nobody uses the pointer.
        unsafe { sys::rte_pktmbuf_free(self.ptr.as_ptr()) };
    }
}

/// Up to [`MAX_BURST`] owned mbufs in a fixed array: what rx and tx bursts fill and
/// drain without allocating. Dropping the batch frees what it still holds.
pub struct MbufBatch {
    /// Slots `[..len]` hold owned, valid mbufs; the rest are unspecified.
    slots: [*mut sys::rte_mbuf; MAX_BURST],
    len: usize,
}

// SAFETY: the batch exclusively owns the mbufs in its slots (see Mbuf's Send).
unsafe impl Send for MbufBatch {}

impl Default for MbufBatch {
    fn default() -> Self {
        MbufBatch::new()
    }
}

impl std::fmt::Debug for MbufBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MbufBatch").field("len", &self.len).finish()
    }
}

impl MbufBatch {
    /// An empty batch.
    pub fn new() -> MbufBatch {
        MbufBatch {
            slots: [std::ptr::null_mut(); MAX_BURST],
            len: 0,
        }
    }

    /// Number of mbufs held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether no more mbufs fit.
    pub fn is_full(&self) -> bool {
        self.len == MAX_BURST
    }

    /// Free slots.
    pub fn room(&self) -> usize {
        MAX_BURST - self.len
    }

    /// Adds an mbuf; gives it back when the batch is full.
    pub fn push(&mut self, mbuf: Mbuf) -> Result<(), Mbuf> {
        if self.is_full() {
            return Err(mbuf);
        }
        self.slots[self.len] = mbuf.into_raw();
        self.len += 1;
        Ok(())
    }

    /// The mbufs held, in order.
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, which has the
        // layout of *mut rte_mbuf; slots[..len] are non-null owned mbufs.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The mbufs held, writable.
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in as_slice(); &mut self gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.slots.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Removes and returns every mbuf, in order (keeps the batch's storage). Mbufs
    /// the iterator does not yield are freed when it is dropped.
    pub fn drain(&mut self) -> Drain<'_> {
        let end = std::mem::take(&mut self.len);
        Drain {
            batch: self,
            next: 0,
            end,
        }
    }

    /// Keeps only the mbufs for which `keep` returns true, in order; frees the rest.
    pub fn retain(&mut self, mut keep: impl FnMut(&mut Mbuf) -> bool) {
        let len = std::mem::take(&mut self.len);
        let mut kept = 0;
        for index in 0..len {
            // SAFETY: slots[..len] hold owned mbufs; each is taken exactly once and
            // either stored again below `kept` (<= index) or dropped (freed).
            let mut mbuf = unsafe { Mbuf::from_raw(NonNull::new_unchecked(self.slots[index])) };
            if keep(&mut mbuf) {
                self.slots[kept] = mbuf.into_raw();
                kept += 1;
            }
        }
        self.len = kept;
    }

    /// Frees every mbuf held.
    pub fn clear(&mut self) {
        if self.len == 0 {
            return;
        }
        let count = u32::try_from(self.len).unwrap_or(0);
        // SAFETY: slots[..len] are owned mbufs, freed once; len is reset right after.
        unsafe { sys::dpdk_sys_pktmbuf_free_burst(self.slots.as_mut_ptr(), count) };
        self.len = 0;
    }

    /// Raw free slots for DPDK to fill (rx burst, bulk alloc).
    pub(crate) fn spare_slots(&mut self) -> &mut [*mut sys::rte_mbuf] {
        &mut self.slots[self.len..]
    }

    /// Marks the first `count` spare slots as filled.
    ///
    /// # Safety
    /// Those slots must now hold valid mbufs owned by nobody else.
    pub(crate) unsafe fn commit_spare(&mut self, count: usize) {
        debug_assert!(self.len + count <= MAX_BURST);
        self.len += count;
    }

    /// Raw held mbufs for a tx burst.
    pub(crate) fn held_slots(&mut self) -> &mut [*mut sys::rte_mbuf] {
        &mut self.slots[..self.len]
    }

    /// Forgets the first `count` mbufs (the driver took them) and moves the rest to
    /// the front, keeping their order.
    ///
    /// # Safety
    /// The first `count` mbufs must have been handed to someone who frees them.
    pub(crate) unsafe fn consume_front(&mut self, count: usize) {
        let count = count.min(self.len);
        self.slots.copy_within(count..self.len, 0);
        self.len -= count;
    }
}

/// Iterator returned by [`MbufBatch::drain`].
pub struct Drain<'a> {
    batch: &'a mut MbufBatch,
    /// Slots `[next..end]` still hold owned mbufs not yet yielded.
    next: usize,
    end: usize,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    fn next(&mut self) -> Option<Mbuf> {
        if self.next == self.end {
            return None;
        }
        let raw = self.batch.slots[self.next];
        self.next += 1;
        // SAFETY: slots[next..end] hold owned non-null mbufs; each is yielded once.
        Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(raw)) })
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        let rest = &mut self.batch.slots[self.next..self.end];
        if rest.is_empty() {
            return;
        }
        let count = u32::try_from(rest.len()).unwrap_or(0);
        // SAFETY: the unyielded slots hold owned mbufs; the batch's len is already 0,
        // so they are freed exactly once.
        unsafe { sys::rte_pktmbuf_free_bulk(rest.as_mut_ptr(), count) };
    }
}

impl Drop for MbufBatch {
    fn drop(&mut self) {
        self.clear();
    }
}
