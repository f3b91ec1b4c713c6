//! `DmaPool`: fixed-size DMA elements for per-I/O objects (PRP lists,
//! command buffers), taken and returned without locks or syscalls.
//!
//! One [`DmaBuf`] holds every element. Elements are laid out so that none
//! crosses a page boundary unless it is larger than a page, so each element
//! no larger than a hugepage is IOVA-contiguous in every mode.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use super::global::require;
use super::heap::{align_up, GRANULE};
use super::{DmaBuf, EnvError};

struct PoolInner {
    buf: DmaBuf,
    elem_size: usize,
    stride: usize,
    per_page: usize,
    page: usize,
    count: usize,
    free: ArrayQueue<u32>,
}

impl PoolInner {
    fn offset(&self, i: usize) -> usize {
        (i / self.per_page) * self.page + (i % self.per_page) * self.stride
    }
}

/// A pool of `count` DMA elements of `elem_size` bytes each (spdk_mempool over DMA memory).
#[derive(Clone)]
pub struct DmaPool {
    inner: Arc<PoolInner>,
}

impl DmaPool {
    /// Makes a pool of `count` elements of `elem_size` bytes, each aligned to `align`.
    pub fn new(count: usize, elem_size: usize, align: usize) -> Result<Self, EnvError> {
        let env = require()?;
        if count == 0 || count > u32::MAX as usize || elem_size == 0 {
            return Err(EnvError::InvalidSize {
                len: count.saturating_mul(elem_size),
                max: super::state::MAX_ALLOC,
            });
        }
        if !align.is_power_of_two() || align > env.page {
            return Err(EnvError::InvalidAlignment {
                align,
                max: env.page,
            });
        }
        let page = env.page;
        let stride = align_up(elem_size, align.max(GRANULE));
        let per_page = if stride <= page { page / stride } else { 1 };
        let page_step = if stride <= page { page } else { stride };
        let last = count - 1;
        let total = (last / per_page) * page_step + (last % per_page + 1) * stride;
        let buf_align = if total <= page {
            total.next_power_of_two().max(align.max(GRANULE))
        } else {
            page
        };
        let buf = DmaBuf::alloc(total, buf_align)?;
        let free = ArrayQueue::new(count);
        for i in 0..count {
            let _ = free.push(i as u32);
        }
        Ok(Self {
            inner: Arc::new(PoolInner {
                buf,
                elem_size,
                stride,
                per_page,
                page: page_step,
                count,
                free,
            }),
        })
    }

    /// Takes a free element; an exhausted pool is an error, never a wait.
    pub fn get(&self) -> Result<DmaPoolBuf, EnvError> {
        let index = self.inner.free.pop().ok_or(EnvError::PoolExhausted {
            count: self.inner.count,
            elem_size: self.inner.elem_size,
        })?;
        let off = self.inner.offset(index as usize);
        // SAFETY: offset(i) + elem_size <= buf.len() for every i < count, by the layout in new().
        let ptr = unsafe { NonNull::new_unchecked(self.inner.buf.as_ptr().add(off).cast_mut()) };
        Ok(DmaPoolBuf {
            pool: self.inner.clone(),
            index,
            off,
            ptr,
        })
    }

    /// Elements currently free.
    pub fn available(&self) -> usize {
        self.inner.free.len()
    }

    /// Elements in the pool.
    pub fn count(&self) -> usize {
        self.inner.count
    }

    /// Size of each element.
    pub fn elem_size(&self) -> usize {
        self.inner.elem_size
    }
}

/// One element taken from a [`DmaPool`]; it returns to the pool on drop.
pub struct DmaPoolBuf {
    pool: Arc<PoolInner>,
    index: u32,
    off: usize,
    ptr: NonNull<u8>,
}

// SAFETY: an element is owned by exactly one DmaPoolBuf (its index left the free queue),
// so moving it between threads moves exclusive access.
unsafe impl Send for DmaPoolBuf {}
// SAFETY: &DmaPoolBuf only gives &[u8].
unsafe impl Sync for DmaPoolBuf {}

impl DmaPoolBuf {
    /// The element's index in its pool.
    pub fn index(&self) -> usize {
        self.index as usize
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.pool.elem_size
    }

    /// Never true: elements have a size.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Address of byte 0.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// IOVA of byte 0.
    pub fn iova(&self) -> u64 {
        self.pool.buf.iova_at(self.off)
    }

    /// IOVA of byte `off`.
    ///
    /// # Panics
    /// If `off >= len()`.
    pub fn iova_at(&self, off: usize) -> u64 {
        assert!(off < self.len(), "DmaPoolBuf::iova_at({off}) out of range");
        self.pool.buf.iova_at(self.off + off)
    }
}

impl Deref for DmaPoolBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the element's bytes lie inside the pool's DmaBuf, which the Arc keeps
        // alive, and no other DmaPoolBuf has this index.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.pool.elem_size) }
    }
}

impl DerefMut for DmaPoolBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref; &mut self makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.pool.elem_size) }
    }
}

impl Drop for DmaPoolBuf {
    fn drop(&mut self) {
        // Cannot fail: the queue holds `count` slots and this index is not in it.
        let _ = self.pool.free.push(self.index);
    }
}
