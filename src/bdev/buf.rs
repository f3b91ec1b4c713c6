//! Owned I/O buffers: an I/O takes its buffers and hands them back in its
//! completion (the owned-buffer pattern), so memory a device is still
//! writing into can never be freed or reused by mistake.

use crate::env::DmaBuf;
use std::ops::{Deref, DerefMut};

/// One data buffer for bdev I/O: ordinary heap memory (any bdev except
/// nvme) or DMA memory (every bdev, required by nvme).
///
/// An `IoBuf` may be a window (`offset..offset+len`) into its storage, so an
/// aligned buffer can be carved out of a larger allocation.
pub struct IoBuf {
    store: Store,
    off: u32,
    len: u32,
}

// The DMA buffer is boxed so an IoBuf stays small (three words): I/O
// moves it by value several times per request (held inline, the null bdev
// measured 20 % slower). The nvme bdev lends the DMA memory to the device
// by address ([`IoBuf::dma_window`]): the buffer never leaves its request.
enum Store {
    Heap(Box<[u8]>),
    Dma(Box<DmaBuf>),
}

impl Store {
    #[inline]
    fn bytes(&self) -> &[u8] {
        match self {
            Store::Heap(b) => b,
            Store::Dma(d) => &d[..],
        }
    }
    #[inline]
    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Store::Heap(b) => b,
            Store::Dma(d) => &mut d[..],
        }
    }
}

impl IoBuf {
    /// A zeroed heap buffer of `len` bytes aligned to 4096 bytes (fit for O_DIRECT).
    pub fn new(len: usize) -> Self {
        Self::aligned(len, 4096)
    }

    /// A zeroed heap buffer of `len` bytes whose first byte is aligned to
    /// `align` (a power of two).
    ///
    /// # Panics
    /// If `len` is 4 GiB or more (one I/O buffer is smaller than that).
    pub fn aligned(len: usize, align: usize) -> Self {
        let align = align.max(1).next_power_of_two();
        let store = vec![0u8; len + align - 1].into_boxed_slice();
        let off = store.as_ptr().align_offset(align).min(align - 1);
        let len = u32::try_from(len).expect("I/O buffers are smaller than 4 GiB");
        Self {
            store: Store::Heap(store),
            off: off as u32,
            len,
        }
    }

    /// Wraps an existing vector (no copy unless it has spare capacity;
    /// alignment is whatever the vector has).
    ///
    /// # Panics
    /// If the vector holds 4 GiB or more.
    pub fn from_vec(v: Vec<u8>) -> Self {
        let len = u32::try_from(v.len()).expect("I/O buffers are smaller than 4 GiB");
        Self {
            store: Store::Heap(v.into_boxed_slice()),
            off: 0,
            len,
        }
    }

    /// A zeroed buffer of `len` bytes in DMA memory (the env must be
    /// initialized): what the nvme bdev moves without a copy.
    pub fn dma(len: usize, align: usize) -> super::Result<Self> {
        let d = DmaBuf::alloc_zeroed(len.max(1), align.max(1)).map_err(|e| {
            super::BdevError::InvalidParam(format!("DMA buffer of {len} bytes: {e}"))
        })?;
        Ok(Self::from_dma(d, 0, len))
    }

    /// Wraps bytes `off..off+len` of a DMA buffer.
    ///
    /// # Panics
    /// If the window is outside the buffer or 4 GiB or larger.
    pub fn from_dma(d: DmaBuf, off: usize, len: usize) -> Self {
        assert!(
            off + len <= d.len(),
            "IoBuf window {off}+{len} outside a {}-byte DmaBuf",
            d.len()
        );
        let (off, len) = (
            u32::try_from(off).expect("offset below 4 GiB"),
            u32::try_from(len).expect("I/O buffers are smaller than 4 GiB"),
        );
        Self {
            store: Store::Dma(Box::new(d)),
            off,
            len,
        }
    }

    /// True when the bytes live in DMA memory.
    pub fn is_dma(&self) -> bool {
        matches!(self.store, Store::Dma(_))
    }

    /// The DMA buffer and the window into it, or the buffer itself back
    /// when it is heap memory.
    pub fn into_dma(self) -> Result<(DmaBuf, std::ops::Range<usize>), IoBuf> {
        let r = self.off as usize..(self.off + self.len) as usize;
        match self.store {
            Store::Dma(d) => Ok((*d, r)),
            store => Err(IoBuf {
                store,
                off: self.off,
                len: self.len,
            }),
        }
    }

    /// The DMA buffer this window lies in and the window's start in it;
    /// `None` for heap memory.
    #[inline]
    pub fn dma_window(&self) -> Option<(&DmaBuf, usize)> {
        match &self.store {
            Store::Dma(d) => Some((d, self.off as usize)),
            Store::Heap(_) => None,
        }
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Address of the first byte (for alignment checks and kernel I/O).
    pub fn addr(&self) -> usize {
        self.as_ptr() as usize
    }

    /// True when the first byte and the length are multiples of `align`.
    pub fn is_aligned(&self, align: usize) -> bool {
        align == 0 || (self.addr() % align == 0 && self.len() % align == 0)
    }
}

impl Deref for IoBuf {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        &self.store.bytes()[self.off as usize..(self.off + self.len) as usize]
    }
}

impl DerefMut for IoBuf {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.store.bytes_mut()[self.off as usize..(self.off + self.len) as usize]
    }
}

impl std::fmt::Debug for IoBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoBuf")
            .field("addr", &self.addr())
            .field("len", &self.len)
            .finish()
    }
}

/// Stores `v` in `slot`. The old value is dropped out of line, and only
/// when `empty` says it holds something: on the I/O path slots are almost
/// always empty, and a plain assignment would run the type's drop glue (a
/// call and a match) every time.
#[inline(always)]
pub(crate) fn put_into<T>(slot: &mut T, v: T, empty: fn(&T) -> bool) {
    // Tested in place, before the store: the old value is read (and kept
    // for its drop) only on the cold path.
    if empty(slot) {
        std::mem::forget(std::mem::replace(slot, v));
    } else {
        drop_cold(std::mem::replace(slot, v));
    }
}

#[cold]
#[inline(never)]
fn drop_cold<T>(t: T) {
    drop(t)
}

/// The data of one I/O: nothing (flush, unmap, write_zeroes, reset), one
/// buffer (read, write, compare), a vector of buffers (readv, writev) or the
/// two halves of a compare-and-write.
#[derive(Debug, Default)]
pub enum IoData {
    /// No data.
    #[default]
    None,
    /// One contiguous buffer.
    Buf(IoBuf),
    /// A scatter-gather list, used in order.
    Vec(Vec<IoBuf>),
    /// Compare-and-write: `[compare, write]` — the data compared against
    /// the media, then the data written when it matches. Boxed to keep
    /// every other I/O's data small.
    CompareWrite(Box<[IoBuf; 2]>),
}

impl IoData {
    /// Stores `v` in `self` without drop glue when `self` is empty
    /// (see [`put_into`]).
    #[inline(always)]
    pub(crate) fn put(&mut self, v: IoData) {
        put_into(self, v, |d| matches!(d, IoData::None));
    }

    /// Total bytes the data moves (for compare-and-write: the compare half).
    #[inline]
    pub fn len(&self) -> u64 {
        match self {
            IoData::None => 0,
            IoData::Buf(b) => b.len() as u64,
            IoData::Vec(v) => v.iter().map(|b| b.len() as u64).sum(),
            IoData::CompareWrite(b) => b[0].len() as u64,
        }
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The single buffer, if this is `Buf`.
    #[inline]
    pub fn into_buf(self) -> Option<IoBuf> {
        match self {
            IoData::Buf(b) => Some(b),
            _ => None,
        }
    }

    /// Every buffer, in order (for compare-and-write: compare then write).
    pub fn into_bufs(self) -> Vec<IoBuf> {
        match self {
            IoData::None => Vec::new(),
            IoData::Buf(b) => vec![b],
            IoData::Vec(v) => v,
            IoData::CompareWrite(b) => {
                let [compare, write] = *b;
                vec![compare, write]
            }
        }
    }

    /// Calls `f` on each piece of the byte range `off..off+len` of the
    /// (first-half) data, in order, as mutable slices.
    pub fn for_each_mut(&mut self, off: usize, len: usize, mut f: impl FnMut(&mut [u8])) {
        match self {
            IoData::None => {}
            IoData::Buf(b) => f(&mut b[off..off + len]),
            IoData::CompareWrite(b) => f(&mut b[0][off..off + len]),
            IoData::Vec(v) => walk(v.iter_mut().map(|b| &mut b[..]), off, len, f),
        }
    }

    /// Read-only twin of [`IoData::for_each_mut`].
    pub fn for_each(&self, off: usize, len: usize, mut f: impl FnMut(&[u8])) {
        match self {
            IoData::None => {}
            IoData::Buf(b) => f(&b[off..off + len]),
            IoData::CompareWrite(b) => f(&b[0][off..off + len]),
            IoData::Vec(v) => {
                let mut skip = off;
                let mut left = len;
                for b in v.iter() {
                    if left == 0 {
                        break;
                    }
                    if skip >= b.len() {
                        skip -= b.len();
                        continue;
                    }
                    let n = (b.len() - skip).min(left);
                    f(&b[skip..skip + n]);
                    skip = 0;
                    left -= n;
                }
            }
        }
    }

    /// The write half of a compare-and-write.
    pub fn write_half(&self) -> Option<&IoBuf> {
        match self {
            IoData::CompareWrite(b) => Some(&b[1]),
            _ => None,
        }
    }
}

fn walk<'a>(
    bufs: impl Iterator<Item = &'a mut [u8]>,
    off: usize,
    len: usize,
    mut f: impl FnMut(&mut [u8]),
) {
    let mut skip = off;
    let mut left = len;
    for b in bufs {
        if left == 0 {
            break;
        }
        if skip >= b.len() {
            skip -= b.len();
            continue;
        }
        let n = (b.len() - skip).min(left);
        f(&mut b[skip..skip + n]);
        skip = 0;
        left -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffer_starts_on_its_alignment() {
        let b = IoBuf::aligned(4096, 4096);
        assert_eq!(b.addr() % 4096, 0);
        assert_eq!(b.len(), 4096);
        assert!(b.iter().all(|&x| x == 0));
    }

    #[test]
    fn io_data_stays_small_for_the_hot_path() {
        assert!(
            std::mem::size_of::<IoData>() <= 72,
            "{}",
            std::mem::size_of::<IoData>()
        );
    }

    #[test]
    fn vectored_walk_visits_exactly_the_requested_range() {
        let mut d = IoData::Vec(vec![
            IoBuf::from_vec(vec![1; 3]),
            IoBuf::from_vec(vec![2; 5]),
        ]);
        let mut seen = Vec::new();
        d.for_each_mut(2, 4, |s| seen.push(s.to_vec()));
        assert_eq!(seen, vec![vec![1], vec![2, 2, 2]]);
        assert_eq!(d.len(), 8);
    }
}
