//! `SharedDmaBuf`: DMA memory that several threads (and devices) read and
//! write at once, by copies — the memory behind a RAM disk.

use std::ptr::NonNull;

use super::{DmaBuf, EnvError};

/// DMA memory shared by every thread that holds a reference to it
/// (`&SharedDmaBuf`, typically through an `Arc`), reached only by copying
/// bytes in and out: [`read_at`](Self::read_at), [`write_at`](Self::write_at),
/// [`fill_zero`](Self::fill_zero), [`compare_at`](Self::compare_at). No lock
/// and no allocation: each call is one bounds check and one `memcpy`.
///
/// This is how SPDK's malloc bdev treats its buffer, and how a device treats
/// memory it reaches by DMA. It knows its IOVA ([`iova_at`](Self::iova_at)),
/// so the same memory may be handed to a device.
///
/// # Concurrency contract
/// Accesses to *disjoint* byte ranges from any number of threads are
/// independent and exact. Accesses that *overlap* in time and space (two
/// writes, or a read and a write, of the same bytes from two threads with
/// nothing ordering them) leave the bytes involved unspecified: a read may
/// see any mix of old and new bytes, and after two racing writes each byte
/// holds one of the values written — exactly what a disk or a DMA engine
/// promises for commands in flight together. Order such accesses yourself
/// (complete one I/O before submitting the other) when the result matters.
/// Accesses ordered by a happens-before edge (a message, a channel, a join)
/// see each other's bytes.
///
/// Out-of-range offsets are an [`EnvError::OutOfBounds`], never a panic.
pub struct SharedDmaBuf {
    ptr: NonNull<u8>,
    len: usize,
    /// Owns the memory (returned to the heap on drop) and its IOVA table.
    /// Never dereferenced as a slice: no Rust reference into the shared
    /// bytes ever exists.
    buf: DmaBuf,
}

// SAFETY: the memory is owned by `buf` (DmaBuf is Send) and only reached by the
// raw copies below, whose contract is documented on the type.
unsafe impl Send for SharedDmaBuf {}
// SAFETY: &SharedDmaBuf only offers bounds-checked raw copies between the shared
// bytes and memory the caller owns; no reference into the shared bytes is ever
// made, so concurrent callers cannot break aliasing rules (see the type's contract).
unsafe impl Sync for SharedDmaBuf {}

impl SharedDmaBuf {
    /// Allocates `len` bytes of zeroed DMA memory aligned to `align`
    /// (see [`DmaBuf::alloc`]).
    pub fn alloc_zeroed(len: usize, align: usize) -> Result<Self, EnvError> {
        DmaBuf::alloc_zeroed(len, align).map(Self::from)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: zero-length buffers are refused.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Address of byte 0 (for diagnostics and device descriptors; the bytes
    /// are only read and written through this type's methods).
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// IOVA of byte `off`, in O(1).
    ///
    /// # Panics
    /// If `off >= len()`, like [`DmaBuf::iova_at`].
    pub fn iova_at(&self, off: usize) -> u64 {
        self.buf.iova_at(off)
    }

    /// Bytes from `off` that are IOVA-contiguous (see [`DmaBuf::contiguous_len`]).
    ///
    /// # Panics
    /// If `off >= len()`.
    pub fn contiguous_len(&self, off: usize) -> usize {
        self.buf.contiguous_len(off)
    }

    #[inline]
    fn check(&self, off: usize, len: usize) -> Result<(), EnvError> {
        match off.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(EnvError::OutOfBounds {
                off,
                len,
                size: self.len,
            }),
        }
    }

    /// Copies `dst.len()` bytes starting at byte `off` into `dst`.
    #[inline]
    pub fn read_at(&self, off: usize, dst: &mut [u8]) -> Result<(), EnvError> {
        self.check(off, dst.len())?;
        // SAFETY: off..off+dst.len() lies inside the live allocation owned by
        // `buf` (checked above). `dst` cannot overlap it: this type never hands
        // out a reference into its bytes, and it took the DmaBuf by value, so
        // no slice of it outlives the conversion. Concurrent writers to the
        // same bytes make the copied bytes unspecified (every bit pattern is a
        // valid u8), as documented on the type; no reference to the shared
        // bytes is created.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(off), dst.as_mut_ptr(), dst.len())
        };
        Ok(())
    }

    /// Copies `src` to the bytes starting at `off`.
    #[inline]
    pub fn write_at(&self, off: usize, src: &[u8]) -> Result<(), EnvError> {
        self.check(off, src.len())?;
        // SAFETY: bounds checked above; `src` cannot overlap the shared bytes
        // (see read_at). The pointer comes from the DmaBuf's writable mapping.
        // Racing accesses to the same bytes leave them unspecified, per the
        // type's contract; disjoint ranges are untouched by other copies.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(off), src.len())
        };
        Ok(())
    }

    /// Sets `len` bytes starting at `off` to zero.
    pub fn fill_zero(&self, off: usize, len: usize) -> Result<(), EnvError> {
        self.check(off, len)?;
        // SAFETY: bounds checked above; a raw store of zeroes into the writable
        // mapping, with the same racing contract as write_at.
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(off), 0, len) };
        Ok(())
    }

    /// Whether the bytes starting at `off` equal `other` (copied out in
    /// small pieces on the stack, so it allocates nothing).
    pub fn compare_at(&self, off: usize, other: &[u8]) -> Result<bool, EnvError> {
        self.check(off, other.len())?;
        let mut tmp = [0u8; 512];
        for (i, want) in other.chunks(tmp.len()).enumerate() {
            let piece = &mut tmp[..want.len()];
            self.read_at(off + i * 512, piece)?;
            if piece != want {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl From<DmaBuf> for SharedDmaBuf {
    /// Shares a buffer; its contents are kept. Taking it by value ends every
    /// borrow of its bytes.
    fn from(mut buf: DmaBuf) -> Self {
        let len = buf.len();
        let ptr = NonNull::new(buf.as_mut_ptr()).expect("a DmaBuf's address is never null");
        Self { ptr, len, buf }
    }
}

impl std::fmt::Debug for SharedDmaBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedDmaBuf")
            .field("buf", &self.buf)
            .finish()
    }
}
