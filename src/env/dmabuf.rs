//! `DmaBuf`: an owned buffer of DMA memory that knows its IOVA.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;

use super::global::require;
use super::heap::{align_up, GRANULE};
use super::region::Region;
use super::state::Env;
use super::EnvError;

/// `DmaBuf::iova` of a buffer whose IOVA is not one run.
const SCATTERED: u64 = u64::MAX;

/// A buffer of DMA memory (spdk_dma_malloc): pinned, in a region mapped into
/// every DMA mapper, with O(1) vaddr -> IOVA translation.
///
/// Memory returns to the heap on drop. The contents of a buffer from
/// [`DmaBuf::alloc`] are whatever the memory last held; use
/// [`DmaBuf::alloc_zeroed`] for zeroes.
pub struct DmaBuf {
    ptr: NonNull<u8>,
    len: usize,
    /// Offset of byte 0 in the region.
    off: usize,
    /// IOVA of byte 0 when the whole buffer is one IOVA-contiguous run (the
    /// common case: every buffer in VA mode, and any buffer within one
    /// hugepage in PA mode), else [`SCATTERED`]: the I/O path then builds a
    /// data pointer without a table lookup.
    iova: u64,
    region: Arc<Region>,
    env: Arc<Env>,
}

// SAFETY: a DmaBuf owns its byte range exclusively (the heap never hands it out twice);
// moving it to another thread moves that ownership, and the heap is behind a mutex.
unsafe impl Send for DmaBuf {}
// SAFETY: &DmaBuf only gives &[u8] and addresses; mutation needs &mut.
unsafe impl Sync for DmaBuf {}

impl DmaBuf {
    /// Allocates `len` bytes aligned to `align` (a power of two up to the
    /// hugepage size, 2 MiB in `no_huge` mode), growing the heap if needed.
    /// An aligned buffer no larger than its alignment never crosses a hugepage,
    /// so it is IOVA-contiguous in every mode.
    pub fn alloc(len: usize, align: usize) -> Result<Self, EnvError> {
        let env = require()?;
        let (region, off, _) = env.alloc(len, align)?;
        // SAFETY: off < region.len(), so the pointer stays inside the region's mapping.
        let ptr = unsafe { NonNull::new_unchecked(region.base().as_ptr().add(off)) };
        let iova = if region.contiguous_len(off) >= len {
            region.iova_at(off)
        } else {
            SCATTERED
        };
        Ok(Self {
            ptr,
            len,
            off,
            iova,
            region,
            env,
        })
    }

    /// Like [`DmaBuf::alloc`], with every byte zero.
    pub fn alloc_zeroed(len: usize, align: usize) -> Result<Self, EnvError> {
        let mut b = Self::alloc(len, align)?;
        b.fill(0);
        Ok(b)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: zero-length buffers are refused.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Address of byte 0.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Mutable address of byte 0.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// IOVA of byte 0.
    #[inline]
    pub fn iova(&self) -> u64 {
        if self.iova != SCATTERED {
            return self.iova;
        }
        self.region.iova_at(self.off)
    }

    /// IOVA of byte `off`, in O(1).
    ///
    /// # Panics
    /// If `off >= len()`, like slice indexing.
    #[inline(always)]
    pub fn iova_at(&self, off: usize) -> u64 {
        if off >= self.len {
            out_of_buffer("iova_at", off, self.len);
        }
        if self.iova != SCATTERED {
            return self.iova + off as u64;
        }
        self.region.iova_at(self.off + off)
    }

    /// Bytes from `off` to the end of the buffer or of its IOVA-contiguous
    /// run, whichever comes first (in VA mode: the rest of the buffer).
    ///
    /// # Panics
    /// If `off >= len()`.
    #[inline(always)]
    pub fn contiguous_len(&self, off: usize) -> usize {
        if off >= self.len {
            out_of_buffer("contiguous_len", off, self.len);
        }
        if self.iova != SCATTERED {
            return self.len - off;
        }
        self.region
            .contiguous_len(self.off + off)
            .min(self.len - off)
    }

    /// The IOVA-contiguous extents `(iova, len)` of bytes `off..off+len`, in
    /// order, for building PRP lists and SGLs.
    ///
    /// # Panics
    /// If the range is not inside the buffer.
    pub fn extents(&self, off: usize, len: usize) -> Extents<'_> {
        assert!(
            off.checked_add(len).is_some_and(|e| e <= self.len),
            "DmaBuf::extents({off}, {len}) out of a {}-byte buffer",
            self.len
        );
        Extents {
            buf: self,
            off,
            end: off + len,
        }
    }
}

/// The panic of an offset past the end (like slice indexing), out of line.
#[cold]
#[inline(never)]
#[track_caller]
fn out_of_buffer(what: &str, off: usize, len: usize) -> ! {
    panic!("DmaBuf::{what}({off}) out of a {len}-byte buffer")
}

/// Iterator over the IOVA-contiguous pieces of a range of a [`DmaBuf`].
pub struct Extents<'a> {
    buf: &'a DmaBuf,
    off: usize,
    end: usize,
}

impl Iterator for Extents<'_> {
    type Item = (u64, usize);

    fn next(&mut self) -> Option<(u64, usize)> {
        if self.off >= self.end {
            return None;
        }
        let n = self.buf.contiguous_len(self.off).min(self.end - self.off);
        let item = (self.buf.iova_at(self.off), n);
        self.off += n;
        Some(item)
    }
}

impl Deref for DmaBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: ptr..ptr+len is inside a live, initialized mapping (mmap zero-fills)
        // owned by this buffer alone; the Arc<Region> keeps it mapped.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for DmaBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref, and &mut self makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for DmaBuf {
    fn drop(&mut self) {
        // What the heap reserved: the length rounded up, as `Env::alloc` does.
        let alen = align_up(self.len, GRANULE);
        self.env.free(&self.region, self.off, alen);
    }
}

impl std::fmt::Debug for DmaBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmaBuf")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("iova", &format_args!("{:#x}", self.iova()))
            .finish()
    }
}
