//! A region: one mapping of DMA memory and its vaddr -> IOVA table.
//!
//! In VA mode the IOVA of a byte is its address. In PA mode the table holds the
//! physical address of every page (a hugepage, or a 4 KiB page of registered
//! memory) and, for each page, where its physically contiguous run ends, so
//! [`Region::iova_at`] and [`Region::contiguous_len`] are both O(1).

use std::ptr::NonNull;

use super::sys::{self, Backing, Pagemap};
use super::{EnvError, IovaMode};

/// How a region's offsets translate to IOVAs.
#[derive(Debug)]
enum Table {
    /// IOVA = VA.
    Va,
    /// One IOVA per page of `1 << shift` bytes; `run_end[i]` is the offset
    /// where the contiguous run holding page i ends.
    Pages {
        shift: u32,
        iova: Vec<u64>,
        run_end: Vec<usize>,
    },
}

/// One virtually contiguous mapping registered for DMA.
#[derive(Debug)]
pub(crate) struct Region {
    base: NonNull<u8>,
    len: usize,
    backing: Backing,
    table: Table,
    /// The mapping holding the memory (None for user memory). It is unmapped
    /// when the region drops, which happens only once no DmaBuf holds the
    /// region (every DmaBuf keeps its Region alive through an Arc).
    _mapping: Option<sys::Mapping>,
}

// SAFETY: a Region is an owned mapping plus an immutable table; the memory itself is
// reached only through DmaBufs, which hand out disjoint ranges.
unsafe impl Send for Region {}
// SAFETY: as for Send: &Region exposes only the immutable table and addresses.
unsafe impl Sync for Region {}

impl Region {
    /// Maps a new region of `len` bytes (a multiple of the page size) and builds its table.
    pub(crate) fn map(
        backing: Backing,
        len: usize,
        mode: IovaMode,
        huge_dir: Option<&std::path::Path>,
        file_name: &str,
    ) -> Result<Self, EnvError> {
        let (base, mapping) = sys::map_region(backing, len, huge_dir, file_name)?;
        let shift = match backing {
            Backing::Hugetlb(s) | Backing::HugetlbFile(s) => s.bytes().trailing_zeros(),
            _ => sys::PAGE_4K.trailing_zeros(),
        };
        let mut region = Self {
            base,
            len,
            backing,
            table: Table::Va,
            _mapping: Some(mapping),
        };
        if mode == IovaMode::Pa {
            region.table = Self::pa_table(base.as_ptr() as usize, len, shift)?;
        }
        Ok(region)
    }

    /// Wraps user memory (mem_register): nothing is mapped or unmapped here.
    pub(crate) fn user(base: NonNull<u8>, len: usize, mode: IovaMode) -> Result<Self, EnvError> {
        let table = match mode {
            IovaMode::Va => Table::Va,
            IovaMode::Pa => {
                sys::mlock(base.as_ptr() as usize, len).map_err(|source| EnvError::Io {
                    what: format!(
                        "pinning {len:#x} bytes at {:#x} for PA mode (raise ulimit -l)",
                        base.as_ptr() as usize
                    ),
                    source,
                })?;
                Self::pa_table(base.as_ptr() as usize, len, sys::PAGE_4K.trailing_zeros())?
            }
        };
        Ok(Self {
            base,
            len,
            backing: Backing::User,
            table,
            _mapping: None,
        })
    }

    fn pa_table(base: usize, len: usize, shift: u32) -> Result<Table, EnvError> {
        let pagemap = Pagemap::open()?;
        let page = 1usize << shift;
        let n = len.div_ceil(page);
        let mut iova = Vec::with_capacity(n);
        for i in 0..n {
            iova.push(pagemap.phys(base + i * page)?);
        }
        let run_end = run_ends(&iova, page, len);
        Ok(Table::Pages {
            shift,
            iova,
            run_end,
        })
    }

    /// First byte of the region.
    pub(crate) fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// First byte's address as an integer.
    pub(crate) fn addr(&self) -> usize {
        self.base.as_ptr() as usize
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True for memory registered by the user (not owned by the heap).
    pub(crate) fn is_user(&self) -> bool {
        self.backing == Backing::User
    }

    /// IOVA of the byte at `off` (< len).
    #[inline]
    pub(crate) fn iova_at(&self, off: usize) -> u64 {
        match &self.table {
            Table::Va => (self.addr() + off) as u64,
            Table::Pages { shift, iova, .. } => {
                iova[off >> shift] + (off & ((1usize << shift) - 1)) as u64
            }
        }
    }

    /// Bytes from `off` to the end of its IOVA-contiguous run.
    #[inline]
    pub(crate) fn contiguous_len(&self, off: usize) -> usize {
        match &self.table {
            Table::Va => self.len - off,
            Table::Pages { shift, run_end, .. } => run_end[off >> shift] - off,
        }
    }

    /// The region's IOVA-contiguous extents: (vaddr, iova, len).
    pub(crate) fn extents(&self) -> Vec<(usize, u64, usize)> {
        let mut out = Vec::new();
        let mut off = 0;
        while off < self.len {
            let n = self.contiguous_len(off);
            out.push((self.addr() + off, self.iova_at(off), n));
            off += n;
        }
        out
    }
}

/// For each page, the offset where its IOVA-contiguous run ends (capped at `len`).
fn run_ends(iova: &[u64], page: usize, len: usize) -> Vec<usize> {
    let n = iova.len();
    let mut run_end = vec![0usize; n];
    let mut end = n * page;
    for i in (0..n).rev() {
        if i + 1 < n && iova[i] + page as u64 != iova[i + 1] {
            end = (i + 1) * page;
        }
        run_end[i] = end.min(len);
    }
    run_end
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: usize = 2 << 20;

    fn table(iova: Vec<u64>, len: usize) -> Region {
        Region {
            base: NonNull::dangling(),
            len,
            backing: Backing::User,
            table: Table::Pages {
                shift: P.trailing_zeros(),
                run_end: run_ends(&iova, P, len),
                iova,
            },
            _mapping: None,
        }
    }

    #[test]
    fn contiguous_runs_end_where_physical_pages_jump() {
        // pages 0,1 adjacent; 2 elsewhere; 3 follows 2; 4 before 0
        let g = 1u64 << 30;
        let r = table(
            vec![g, g + P as u64, 5 * g, 5 * g + P as u64, g - P as u64],
            5 * P,
        );
        assert_eq!(r.contiguous_len(0), 2 * P);
        assert_eq!(r.contiguous_len(P + 10), P - 10);
        assert_eq!(r.contiguous_len(2 * P), 2 * P);
        assert_eq!(
            r.contiguous_len(4 * P),
            P,
            "going backwards is not contiguous"
        );
        assert_eq!(r.iova_at(2 * P + 5), 5 * g + 5);
        let ex = r.extents();
        assert_eq!(ex.len(), 3);
        assert_eq!((ex[1].1, ex[1].2), (5 * g, 2 * P));
    }

    #[test]
    fn a_region_shorter_than_its_last_page_caps_the_run() {
        let r = table(vec![0x1000_0000, 0x1000_0000 + P as u64], P + 4096);
        assert_eq!(r.contiguous_len(0), P + 4096);
        assert_eq!(r.extents(), vec![(r.addr(), 0x1000_0000, P + 4096)]);
    }
}
