//! `SharedDmaBuf`: DMA memory that several threads (and devices) read and
//! write at once, by copies — the memory behind a RAM disk.

use std::ptr::NonNull;

use super::{DmaBuf, EnvError};

/// DMA memory shared by every thread that holds a reference to it
/// (`&SharedDmaBuf`, typically through an `Arc`), reached only by copying
/// bytes in and out: [`read_at`](Self::read_at), [`write_at`](Self::write_at),
/// [`fill_zero`](Self::fill_zero), [`compare_at`](Self::compare_at). No lock
/// and no allocation: each call is one bounds check and one copy. On
/// x86-64, writes of 2 KiB or more to a 64-byte aligned offset bypass the
/// cache (non-temporal stores, as a device's DMA write would: no read of
/// the old line first); shorter writes and all reads are a plain `memcpy`.
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
        #[cfg(target_arch = "x86_64")]
        if src.len() >= STREAM_MIN && (self.ptr.as_ptr() as usize + off) % 64 == 0 {
            // SAFETY: as below; the destination is 64-byte aligned (checked),
            // as stream_copy requires.
            unsafe { stream_copy(self.ptr.as_ptr().add(off), src) };
            return Ok(());
        }
        // SAFETY: bounds checked above; `src` cannot overlap the shared bytes
        // (see read_at). The pointer comes from the DmaBuf's writable mapping.
        // Racing accesses to the same bytes leave them unspecified, per the
        // type's contract; disjoint ranges are untouched by other copies.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(off), src.len())
        };
        Ok(())
    }

    /// Asks the CPU to start loading the cache lines of bytes
    /// `off..off+len` (clipped to the buffer) into its second-level cache,
    /// without waiting for them: a hint for a copy that follows later, so
    /// several copies' misses to memory overlap. Reads nothing and changes
    /// nothing; a range outside the buffer is ignored.
    ///
    /// Into L2, not L1: asking for a whole 4 KiB block into L1 measured no
    /// faster than no hint at all (the first-level cache's few miss
    /// buffers fill up), into L2 about 1.6 times faster over a batch of
    /// random 4 KiB copies out of memory much larger than the cache.
    #[inline]
    pub fn prefetch(&self, off: usize, len: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
            if off >= self.len || len == 0 {
                return;
            }
            let end = off + len.min(self.len - off);
            let first = self.ptr.as_ptr().wrapping_add(off);
            // From the start of the line holding `off`, four lines a turn
            // (a turn may ask for up to three lines past the end: harmless).
            let mut line = first.wrapping_sub(first as usize % 64);
            let stop = self.ptr.as_ptr().wrapping_add(end);
            while line < stop {
                // SAFETY: PREFETCH is a hint: it never faults, whatever the
                // address, and changes no memory or register. SSE is part
                // of x86-64.
                #[allow(unused_unsafe)]
                unsafe {
                    _mm_prefetch::<_MM_HINT_T1>(line.cast_const().cast::<i8>());
                    _mm_prefetch::<_MM_HINT_T1>(line.wrapping_add(64).cast_const().cast::<i8>());
                    _mm_prefetch::<_MM_HINT_T1>(line.wrapping_add(128).cast_const().cast::<i8>());
                    _mm_prefetch::<_MM_HINT_T1>(line.wrapping_add(192).cast_const().cast::<i8>());
                }
                line = line.wrapping_add(256);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (off, len);
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

/// Writes this long or longer bypass the cache (see [`stream_copy`]).
/// Reads are a plain `memcpy` at every length; a caller with a batch of
/// reads to copy asks for the next ones' lines first ([`SharedDmaBuf::prefetch`]).
#[cfg(target_arch = "x86_64")]
const STREAM_MIN: usize = 2048;

/// Copies `src` to `dst` with non-temporal stores: whole cache lines go to
/// memory without first being read into the cache, as a device's DMA write
/// would, which halves the memory traffic of a write to cold memory (a RAM
/// disk much larger than the cache). The tail under 64 bytes is copied
/// normally; an sfence orders the streamed stores before later stores
/// (such as a completion that publishes the write).
///
/// # Safety
/// `dst..dst+src.len()` must be writable, 64-byte aligned at `dst`, and
/// not overlap `src`.
#[cfg(target_arch = "x86_64")]
unsafe fn stream_copy(dst: *mut u8, src: &[u8]) {
    use core::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
    let lines = src.len() / 64;
    let s = src.as_ptr();
    for i in 0..lines {
        // SAFETY: line i lies inside `src` (i < len / 64) and inside the
        // destination, which is 64-byte aligned, so every 16-byte store is
        // aligned as _mm_stream_si128 requires; SSE2 is part of x86-64.
        unsafe {
            let (from, to) = (s.add(i * 64), dst.add(i * 64));
            let a = _mm_loadu_si128(from.cast::<__m128i>());
            let b = _mm_loadu_si128(from.add(16).cast::<__m128i>());
            let c = _mm_loadu_si128(from.add(32).cast::<__m128i>());
            let d = _mm_loadu_si128(from.add(48).cast::<__m128i>());
            _mm_stream_si128(to.cast::<__m128i>(), a);
            _mm_stream_si128(to.add(16).cast::<__m128i>(), b);
            _mm_stream_si128(to.add(32).cast::<__m128i>(), c);
            _mm_stream_si128(to.add(48).cast::<__m128i>(), d);
        }
    }
    let done = lines * 64;
    // SAFETY: the tail lies inside both ranges, which do not overlap;
    // SFENCE has no memory operands.
    unsafe {
        std::ptr::copy_nonoverlapping(s.add(done), dst.add(done), src.len() - done);
        _mm_sfence();
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
