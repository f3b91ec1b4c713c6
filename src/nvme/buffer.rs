//! Owned I/O buffers: an I/O takes its [`DmaBuf`] (or a byte range of it) and
//! the completion hands it back, so safe code can never free or touch memory
//! the device is still reading or writing.

use super::NvmeError;
use crate::env::DmaBuf;
use std::ops::Range;

/// A byte range of an owned DMA buffer: the unit of data an I/O command moves.
#[derive(Debug)]
pub struct DmaSlice {
    buf: Owned,
    range: Range<usize>,
}

/// The buffer, held by value or in the caller's box (a layer that keeps its
/// buffers boxed hands the box through and gets it back: no allocation).
#[derive(Debug)]
enum Owned {
    Inline(DmaBuf),
    Boxed(Box<DmaBuf>),
}

impl Owned {
    #[inline]
    fn get(&self) -> &DmaBuf {
        match self {
            Owned::Inline(b) => b,
            Owned::Boxed(b) => b,
        }
    }
    #[inline]
    fn get_mut(&mut self) -> &mut DmaBuf {
        match self {
            Owned::Inline(b) => b,
            Owned::Boxed(b) => b,
        }
    }
}

/// Checks that a byte range lies within a buffer of `len` bytes.
#[inline]
pub(crate) fn check_window(range: &Range<usize>, len: usize) -> Result<(), NvmeError> {
    if range.start > range.end || range.end > len {
        return Err(window_error(range, len));
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn window_error(range: &Range<usize>, len: usize) -> NvmeError {
    NvmeError::InvalidArgument(format!(
        "range {range:?} is outside a DMA buffer of {len} bytes"
    ))
}

impl DmaSlice {
    /// The bytes `range` of `buf`; errors when the range is outside the buffer
    /// (the buffer is returned in the error).
    pub fn new(buf: DmaBuf, range: Range<usize>) -> Result<Self, (NvmeError, DmaBuf)> {
        if let Err(e) = check_window(&range, buf.len()) {
            return Err((e, buf));
        }
        Ok(DmaSlice {
            buf: Owned::Inline(buf),
            range,
        })
    }
    /// As [`DmaSlice::new`] for a boxed buffer, which the slice keeps boxed
    /// ([`DmaSlice::into_boxed`] gives the same box back).
    pub fn from_boxed(
        buf: Box<DmaBuf>,
        range: Range<usize>,
    ) -> Result<Self, (NvmeError, Box<DmaBuf>)> {
        if let Err(e) = check_window(&range, buf.len()) {
            return Err((e, buf));
        }
        Ok(DmaSlice {
            buf: Owned::Boxed(buf),
            range,
        })
    }
    /// Length of the range in bytes.
    pub fn len(&self) -> usize {
        self.range.end - self.range.start
    }
    /// True when the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The range within the buffer.
    pub fn range(&self) -> Range<usize> {
        self.range.clone()
    }
    /// The bytes of the range.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf.get()[self.range.clone()]
    }
    /// The bytes of the range, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let r = self.range.clone();
        &mut self.buf.get_mut()[r]
    }
    /// Gives the whole buffer back.
    pub fn into_inner(self) -> DmaBuf {
        match self.buf {
            Owned::Inline(b) => b,
            Owned::Boxed(b) => *b,
        }
    }
    /// Gives the whole buffer back in a box (the caller's own box when the
    /// slice was made by [`DmaSlice::from_boxed`]).
    pub fn into_boxed(self) -> Box<DmaBuf> {
        match self.buf {
            Owned::Inline(b) => Box::new(b),
            Owned::Boxed(b) => b,
        }
    }
    /// The buffer this range belongs to.
    pub fn buf(&self) -> &DmaBuf {
        self.buf.get()
    }
    /// IOVA of byte `off` of the range and the number of IOVA-contiguous bytes from there.
    #[inline(always)]
    pub(crate) fn iova_extent(&self, off: usize) -> (u64, usize) {
        let at = self.range.start + off;
        let b = self.buf.get();
        let run = b.contiguous_len(at).min(self.range.end - at);
        (b.iova_at(at), run)
    }
}

impl From<DmaBuf> for DmaSlice {
    fn from(buf: DmaBuf) -> Self {
        let len = buf.len();
        DmaSlice {
            buf: Owned::Inline(buf),
            range: 0..len,
        }
    }
}

/// The data buffer(s) of one I/O, handed back in its completion.
#[derive(Debug, Default)]
pub enum IoBuf {
    /// No data (flush, write zeroes, deallocate).
    #[default]
    None,
    /// One range.
    Single(DmaSlice),
    /// Several ranges, transferred in order (readv/writev).
    Vectored(Vec<DmaSlice>),
}

impl IoBuf {
    /// Total bytes over all ranges.
    pub fn len(&self) -> usize {
        match self {
            IoBuf::None => 0,
            IoBuf::Single(s) => s.len(),
            IoBuf::Vectored(v) => v.iter().map(DmaSlice::len).sum(),
        }
    }
    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The single range, if this is one.
    pub fn into_single(self) -> Option<DmaSlice> {
        match self {
            IoBuf::Single(s) => Some(s),
            _ => None,
        }
    }
    /// The whole buffer of a single range, if this is one.
    #[inline]
    pub fn into_dma_buf(self) -> Option<DmaBuf> {
        // One match down to the buffer: through `into_single` and
        // `into_inner` each step copied the value once more.
        match self {
            IoBuf::Single(DmaSlice {
                buf: Owned::Inline(b),
                ..
            }) => Some(b),
            IoBuf::Single(DmaSlice {
                buf: Owned::Boxed(b),
                ..
            }) => Some(*b),
            _ => None,
        }
    }
    /// The ranges of a vectored buffer (a single range becomes a one-element vector).
    pub fn into_vec(self) -> Vec<DmaSlice> {
        match self {
            IoBuf::None => Vec::new(),
            IoBuf::Single(s) => vec![s],
            IoBuf::Vectored(v) => v,
        }
    }
    pub(crate) fn segments(&self) -> &[DmaSlice] {
        match self {
            IoBuf::None => &[],
            IoBuf::Single(s) => std::slice::from_ref(s),
            IoBuf::Vectored(v) => v,
        }
    }
}

impl From<DmaBuf> for IoBuf {
    fn from(b: DmaBuf) -> Self {
        IoBuf::Single(b.into())
    }
}

impl From<DmaSlice> for IoBuf {
    fn from(s: DmaSlice) -> Self {
        IoBuf::Single(s)
    }
}

impl From<Vec<DmaSlice>> for IoBuf {
    fn from(v: Vec<DmaSlice>) -> Self {
        IoBuf::Vectored(v)
    }
}

/// The result of one I/O, given to its completion callback.
#[derive(Debug)]
pub struct IoCompletion {
    /// Success, or why the command failed (an NVMe status decoded by name,
    /// or [`NvmeError::AbortedByReset`]).
    pub result: Result<(), NvmeError>,
    /// Completion queue entry Dword 0 (command specific).
    pub cdw0: u32,
    /// The buffer the I/O took, handed back.
    pub buf: IoBuf,
}

/// A rejected submission: why, and the buffer handed back untouched.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct SubmitError {
    /// Why the I/O was not submitted ([`NvmeError::QueueFull`] is retryable).
    pub error: NvmeError,
    /// The buffer, returned.
    pub buf: IoBuf,
}

// A rejected submission hands the buffer back by value (boxing it would
// allocate on the retryable QueueFull path): keep it below clippy's
// large-error threshold so callers need no allow.
const _: () = assert!(std::mem::size_of::<SubmitError>() <= 128);
