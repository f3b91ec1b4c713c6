//! Physical Region Page (PRP) entries for a byte range of one or more DMA
//! segments, per the NVMe PRP rules: the first entry may start at any dword
//! offset of a page; every later entry starts at a page boundary; every
//! segment but the last ends at a page boundary. Three or more entries go
//! through a PRP list (PRP2 points at it).

use super::buffer::DmaSlice;
use super::NvmeError;
use crate::env::DmaBuf;

/// A run of DMA bytes a data pointer can describe: an owned
/// [`DmaSlice`], or a caller's buffer lent for one command ([`DmaRange`]).
pub(crate) trait Segment {
    /// Bytes in the run.
    fn seg_len(&self) -> usize;
    /// IOVA of byte `off` and the number of IOVA-contiguous bytes from there.
    fn iova_extent(&self, off: usize) -> (u64, usize);
}

impl Segment for DmaSlice {
    #[inline(always)]
    fn seg_len(&self) -> usize {
        self.len()
    }
    #[inline(always)]
    fn iova_extent(&self, off: usize) -> (u64, usize) {
        DmaSlice::iova_extent(self, off)
    }
}

/// Bytes `start..start + len` of a DMA buffer the caller keeps.
pub(crate) struct DmaRange<'a> {
    pub buf: &'a DmaBuf,
    pub start: usize,
    pub len: usize,
}

impl Segment for DmaRange<'_> {
    #[inline]
    fn seg_len(&self) -> usize {
        self.len
    }
    #[inline]
    fn iova_extent(&self, off: usize) -> (u64, usize) {
        let at = self.start + off;
        let run = self.buf.contiguous_len(at).min(self.len - off);
        (self.buf.iova_at(at), run)
    }
}

/// Memory page size the driver programs in CC.MPS (4 KiB).
pub const PAGE_SIZE: usize = 4096;
/// Entries in one PRP list page.
pub const PRP_LIST_ENTRIES: usize = PAGE_SIZE / 8;
/// Most bytes one command can move with a one-page PRP list.
pub const MAX_PRP_TRANSFER: usize = PRP_LIST_ENTRIES * PAGE_SIZE;

/// PRP1 and PRP2 for a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prps {
    /// PRP Entry 1.
    pub prp1: u64,
    /// PRP Entry 2 (second page, PRP list address, or 0).
    pub prp2: u64,
}

/// The data pointer of an I/O command: PRP1/PRP2 or one SGL descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dptr {
    /// First 8 bytes of DPTR (PRP1, or the SGL descriptor's address).
    pub prp1: u64,
    /// Last 8 bytes of DPTR (PRP2, or the SGL descriptor's length and identifier).
    pub prp2: u64,
    /// PSDT for CDW0: 0 for PRPs, 1 for SGLs.
    pub psdt: u8,
}

/// The data pointer of a command without data.
pub(crate) const NO_DPTR: Dptr = Dptr {
    prp1: 0,
    prp2: 0,
    psdt: super::spec::command::PSDT_PRP,
};

/// Data pointer for bytes `start..start+len` of `segs`. With `sgls`
/// (Identify Controller SGLS bits 1:0: 1 = SGLs supported, 2 = supported with
/// dword alignment) and one IOVA-contiguous run, a single SGL Data Block
/// descriptor describes the whole transfer — one translation for the
/// controller instead of one per page and no PRP list to fetch. Otherwise PRPs.
#[inline(always)]
pub(crate) fn build_dptr<S: Segment>(
    segs: &[S],
    start: usize,
    len: usize,
    list: &mut [u8],
    list_iova: u64,
    sgls: u8,
) -> Result<Dptr, NvmeError> {
    // The common I/O: one IOVA-contiguous run, decided here without a call.
    if let Some(iova) = single_run(segs, start, len) {
        if sgls != 0 && len <= u32::MAX as usize && (sgls == 1 || (iova % 4 == 0 && len % 4 == 0)) {
            // SGL Data Block descriptor: address, length, identifier 0h (type 0, subtype 0).
            return Ok(Dptr {
                prp1: iova,
                prp2: len as u64,
                psdt: super::spec::command::PSDT_SGL_MPTR_CONTIG,
            });
        }
        if let Some(p) = contiguous_prps(iova, len, list, list_iova) {
            return Ok(Dptr {
                prp1: p.prp1,
                prp2: p.prp2,
                psdt: super::spec::command::PSDT_PRP,
            });
        }
    }
    build_dptr_slow(segs, start, len, list, list_iova)
}

/// PRPs through the general walk (several runs, or a misaligned one).
#[cold]
#[inline(never)]
fn build_dptr_slow<S: Segment>(
    segs: &[S],
    start: usize,
    len: usize,
    list: &mut [u8],
    list_iova: u64,
) -> Result<Dptr, NvmeError> {
    let p = build(segs, start, len, list, list_iova)?;
    Ok(Dptr {
        prp1: p.prp1,
        prp2: p.prp2,
        psdt: super::spec::command::PSDT_PRP,
    })
}

/// Builds PRPs for bytes `start..start+len` of the concatenation of `segs`.
/// `list` is the request's PRP list page (written only when needed), at IOVA `list_iova`.
pub(crate) fn build<S: Segment>(
    segs: &[S],
    start: usize,
    len: usize,
    list: &mut [u8],
    list_iova: u64,
) -> Result<Prps, NvmeError> {
    // Fast path: one IOVA-contiguous, dword-aligned run (the common I/O).
    if let Some(p) =
        single_run(segs, start, len).and_then(|iova| contiguous_prps(iova, len, list, list_iova))
    {
        return Ok(p);
    }
    let mut entries = 0usize;
    let mut first = 0u64;
    let mut second = 0u64;
    let mut skip = start;
    let mut left = len;
    let mut prev_end_aligned = true;
    let mut push = |e: u64, n: usize, list: &mut [u8]| -> Result<(), NvmeError> {
        match n {
            0 => first = e,
            1 => second = e,
            _ => {
                let i = n - 1; // list[0] holds the second entry once a list is used
                if i >= PRP_LIST_ENTRIES {
                    return Err(NvmeError::BadBuffer(format!(
                        "{len} bytes need more than {PRP_LIST_ENTRIES} PRP list entries"
                    )));
                }
                if i == 1 {
                    list[0..8].copy_from_slice(&second.to_le_bytes());
                }
                list[i * 8..i * 8 + 8].copy_from_slice(&e.to_le_bytes());
            }
        }
        Ok(())
    };
    for (si, seg) in segs.iter().enumerate() {
        if left == 0 {
            break;
        }
        if skip >= seg.seg_len() {
            skip -= seg.seg_len();
            continue;
        }
        let mut off = skip;
        skip = 0;
        while left > 0 && off < seg.seg_len() {
            let (iova, run) = seg.iova_extent(off);
            let take = run.min(left);
            if entries == 0 {
                if iova % 4 != 0 {
                    return Err(NvmeError::BadBuffer(format!(
                        "segment {si} starts at IOVA {iova:#x}, not dword aligned"
                    )));
                }
            } else if !prev_end_aligned || iova % PAGE_SIZE as u64 != 0 {
                return Err(NvmeError::BadBuffer(format!(
                    "segment {si} breaks the PRP rules: a segment after the first must start \
                     on a {PAGE_SIZE}-byte page boundary and the one before it end on one \
                     (IOVA {iova:#x})"
                )));
            }
            let mut p = iova;
            let end = iova + take as u64;
            while p < end {
                push(p, entries, list)?;
                entries += 1;
                p = (p & !(PAGE_SIZE as u64 - 1)) + PAGE_SIZE as u64;
            }
            prev_end_aligned = end % PAGE_SIZE as u64 == 0;
            off += take;
            left -= take;
        }
    }
    if left != 0 {
        return Err(NvmeError::BufferTooShort {
            need: start + len,
            have: segs.iter().map(S::seg_len).sum(),
        });
    }
    Ok(match entries {
        0 | 1 => Prps {
            prp1: first,
            prp2: 0,
        },
        2 => Prps {
            prp1: first,
            prp2: second,
        },
        _ => Prps {
            prp1: first,
            prp2: list_iova,
        },
    })
}

/// The IOVA of bytes `start..start + len` when they are one non-empty
/// IOVA-contiguous run of a single segment.
#[inline(always)]
fn single_run<S: Segment>(segs: &[S], start: usize, len: usize) -> Option<u64> {
    let [seg] = segs else { return None };
    if start >= seg.seg_len() || len == 0 {
        return None;
    }
    let (iova, run) = seg.iova_extent(start);
    (run >= len).then_some(iova)
}

/// PRPs for `len` bytes at one contiguous IOVA, when PRPs can describe
/// them (a dword-aligned start, at most one list page of entries).
#[inline(always)]
fn contiguous_prps(iova: u64, len: usize, list: &mut [u8], list_iova: u64) -> Option<Prps> {
    (len <= MAX_PRP_TRANSFER && iova % 4 == 0).then(|| contiguous(iova, len, list, list_iova))
}

/// PRPs for `len` bytes at one contiguous IOVA.
#[inline(always)]
fn contiguous(iova: u64, len: usize, list: &mut [u8], list_iova: u64) -> Prps {
    let page = PAGE_SIZE as u64;
    let second = (iova & !(page - 1)) + page;
    let end = iova + len as u64;
    if end <= second {
        return Prps {
            prp1: iova,
            prp2: 0,
        };
    }
    if end <= second + page {
        return Prps {
            prp1: iova,
            prp2: second,
        };
    }
    fill_list(second, end, list);
    Prps {
        prp1: iova,
        prp2: list_iova,
    }
}

/// Writes the page addresses `from, from + 4 KiB, ...` below `end` into a
/// PRP list (kept out of line: only transfers over two pages need it).
#[inline(never)]
fn fill_list(from: u64, end: u64, list: &mut [u8]) {
    let mut p = from;
    for e in list.chunks_exact_mut(8) {
        if p >= end {
            break;
        }
        e.copy_from_slice(&p.to_le_bytes());
        p += PAGE_SIZE as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{self, DmaBuf, EnvOpts};

    fn buf(len: usize) -> DmaBuf {
        env::init_once(EnvOpts::no_huge()).expect("env");
        DmaBuf::alloc_zeroed(len, PAGE_SIZE).unwrap()
    }

    fn list_entry(list: &[u8], i: usize) -> u64 {
        u64::from_le_bytes(list[i * 8..i * 8 + 8].try_into().unwrap())
    }

    #[test]
    fn one_and_two_pages_need_no_list() {
        let b: DmaSlice = buf(2 * PAGE_SIZE).into();
        let base = b.buf().iova();
        let mut list = vec![0u8; PAGE_SIZE];
        let p = build(std::slice::from_ref(&b), 0, PAGE_SIZE, &mut list, 0x9000).unwrap();
        assert_eq!(
            p,
            Prps {
                prp1: base,
                prp2: 0
            }
        );
        let p = build(
            std::slice::from_ref(&b),
            0,
            2 * PAGE_SIZE,
            &mut list,
            0x9000,
        )
        .unwrap();
        assert_eq!(
            p,
            Prps {
                prp1: base,
                prp2: base + PAGE_SIZE as u64
            }
        );
    }

    #[test]
    fn unaligned_start_spills_into_a_prp_list() {
        let whole = buf(4 * PAGE_SIZE);
        let base = whole.iova();
        let s = DmaSlice::new(whole, 512..512 + 2 * PAGE_SIZE).unwrap();
        let mut list = vec![0u8; PAGE_SIZE];
        let p = build(
            std::slice::from_ref(&s),
            0,
            2 * PAGE_SIZE,
            &mut list,
            0x9000,
        )
        .unwrap();
        // 512..8704 touches three pages: PRP1 with offset, then a list of two.
        assert_eq!(p.prp1, base + 512);
        assert_eq!(p.prp2, 0x9000);
        assert_eq!(list_entry(&list, 0), base + PAGE_SIZE as u64);
        assert_eq!(list_entry(&list, 1), base + 2 * PAGE_SIZE as u64);
    }

    #[test]
    fn a_child_range_starts_mid_buffer() {
        let b: DmaSlice = buf(8 * PAGE_SIZE).into();
        let base = b.buf().iova();
        let mut list = vec![0u8; PAGE_SIZE];
        let p = build(
            std::slice::from_ref(&b),
            4 * PAGE_SIZE,
            PAGE_SIZE,
            &mut list,
            1,
        )
        .unwrap();
        assert_eq!(p.prp1, base + 4 * PAGE_SIZE as u64);
        assert_eq!(p.prp2, 0);
    }

    #[test]
    fn vectored_segments_must_meet_on_page_boundaries() {
        let a: DmaSlice = buf(PAGE_SIZE).into();
        let b: DmaSlice = buf(2 * PAGE_SIZE).into();
        let (ia, ib) = (a.buf().iova(), b.buf().iova());
        let mut list = vec![0u8; PAGE_SIZE];
        let segs = [a, b];
        let p = build(&segs, 0, 3 * PAGE_SIZE, &mut list, 0x7000).unwrap();
        assert_eq!((p.prp1, p.prp2), (ia, 0x7000));
        assert_eq!(list_entry(&list, 0), ib);
        assert_eq!(list_entry(&list, 1), ib + PAGE_SIZE as u64);

        let c = DmaSlice::new(buf(2 * PAGE_SIZE), 512..PAGE_SIZE + 512).unwrap();
        let bad = [segs.into_iter().next().unwrap(), c];
        let e = build(&bad, 0, 2 * PAGE_SIZE, &mut list, 0).unwrap_err();
        assert!(e.to_string().contains("page boundary"), "{e}");
    }

    #[test]
    fn buffer_shorter_than_the_range_is_refused() {
        let b: DmaSlice = buf(PAGE_SIZE).into();
        let mut list = vec![0u8; PAGE_SIZE];
        let e = build(std::slice::from_ref(&b), 0, 2 * PAGE_SIZE, &mut list, 0).unwrap_err();
        assert!(matches!(
            e,
            NvmeError::BufferTooShort {
                need: 8192,
                have: 4096
            }
        ));
    }

    #[test]
    fn max_transfer_fills_exactly_one_list_page() {
        let whole = buf(MAX_PRP_TRANSFER + PAGE_SIZE);
        let s = DmaSlice::new(whole, 8..8 + MAX_PRP_TRANSFER).unwrap();
        let mut list = vec![0u8; PAGE_SIZE];
        build(std::slice::from_ref(&s), 0, MAX_PRP_TRANSFER, &mut list, 0).unwrap();
    }
}
