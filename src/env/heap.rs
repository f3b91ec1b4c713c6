//! The DMA heap: a first-fit free list over regions, with coalescing frees.
//!
//! Each region keeps its free ranges in a map from offset to length; an
//! allocation is carved from the first range that fits it aligned, and a free
//! merges with its neighbours, so memory returns to one block when every
//! buffer in a region is gone. Allocations never straddle two regions.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::region::Region;

/// Allocation granule: every block starts and ends on a cache line.
pub(crate) const GRANULE: usize = 64;

/// A region and its free ranges.
#[derive(Debug)]
struct HeapRegion {
    region: Arc<Region>,
    /// offset -> length of each free range, never adjacent to another.
    free: BTreeMap<usize, usize>,
    used: usize,
}

/// All DMA regions of the process and their free lists.
#[derive(Debug, Default)]
pub(crate) struct Heap {
    /// Keyed by the region's base address.
    regions: BTreeMap<usize, HeapRegion>,
}

/// Rounds `v` up to a multiple of `a` (a power of two).
pub(crate) fn align_up(v: usize, a: usize) -> usize {
    (v + a - 1) & !(a - 1)
}

impl Heap {
    /// Adds a fresh region, entirely free.
    pub(crate) fn add_region(&mut self, region: Arc<Region>) {
        let mut free = BTreeMap::new();
        free.insert(0, region.len());
        self.regions.insert(
            region.addr(),
            HeapRegion {
                region,
                free,
                used: 0,
            },
        );
    }

    /// Carves `len` bytes (a multiple of GRANULE) aligned to `align` from the
    /// first region and range that fit; returns the region and the offset.
    pub(crate) fn alloc(&mut self, len: usize, align: usize) -> Option<(Arc<Region>, usize)> {
        for hr in self.regions.values_mut() {
            if hr.region.len() - hr.used < len {
                continue;
            }
            let base = hr.region.addr();
            let found = hr.free.iter().find_map(|(&off, &flen)| {
                let start = align_up(base + off, align) - base;
                (start + len <= off + flen).then_some((off, flen, start))
            });
            if let Some((off, flen, start)) = found {
                hr.free.remove(&off);
                if start > off {
                    hr.free.insert(off, start - off);
                }
                let end = start + len;
                if end < off + flen {
                    hr.free.insert(end, off + flen - end);
                }
                hr.used += len;
                return Some((hr.region.clone(), start));
            }
        }
        None
    }

    /// Returns `len` bytes at `off` of the region based at `base` to its free list.
    pub(crate) fn free(&mut self, base: usize, off: usize, len: usize) {
        let Some(hr) = self.regions.get_mut(&base) else {
            log::error!("DMA free of {len:#x} bytes at a region {base:#x} the heap does not own");
            return;
        };
        hr.used -= len;
        let mut start = off;
        let mut flen = len;
        if let Some((&poff, &plen)) = hr.free.range(..off).next_back() {
            debug_assert!(poff + plen <= off, "double free in DMA heap at {off:#x}");
            if poff + plen == off {
                hr.free.remove(&poff);
                start = poff;
                flen += plen;
            }
        }
        if let Some(&nlen) = hr.free.get(&(off + len)) {
            hr.free.remove(&(off + len));
            flen += nlen;
        }
        hr.free.insert(start, flen);
    }

    /// Bytes handed out and not yet freed.
    pub(crate) fn used(&self) -> usize {
        self.regions.values().map(|r| r.used).sum()
    }

    /// Bytes mapped in all regions.
    pub(crate) fn mapped(&self) -> usize {
        self.regions.values().map(|r| r.region.len()).sum()
    }

    /// Largest free range of any region.
    pub(crate) fn largest_free(&self) -> usize {
        self.regions
            .values()
            .flat_map(|r| r.free.values().copied())
            .max()
            .unwrap_or(0)
    }

    /// Removes and returns every region.
    pub(crate) fn take_regions(&mut self) -> Vec<Arc<Region>> {
        std::mem::take(&mut self.regions)
            .into_values()
            .map(|r| r.region)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::sys::Backing;
    use crate::env::IovaMode;

    fn heap_with(len: usize) -> (Heap, usize) {
        let r = Arc::new(Region::map(Backing::Anonymous, len, IovaMode::Va, None, "t").unwrap());
        let base = r.addr();
        let mut h = Heap::default();
        h.add_region(r);
        (h, base)
    }

    #[test]
    fn allocations_are_aligned_and_disjoint() {
        let (mut h, base) = heap_with(1 << 20);
        let (_, a) = h.alloc(128, 64).unwrap();
        let (_, b) = h.alloc(4096, 4096).unwrap();
        let (_, c) = h.alloc(64, 64).unwrap();
        assert_eq!((base + b) % 4096, 0);
        assert!(a + 128 <= b || b + 4096 <= a);
        assert!(c + 64 <= b || b + 4096 <= c);
        assert_eq!(h.used(), 128 + 4096 + 64);
    }

    #[test]
    fn alignment_gap_is_kept_free_and_reused() {
        let (mut h, _) = heap_with(1 << 20);
        let (_, a) = h.alloc(64, 64).unwrap();
        let (_, b) = h.alloc(4096, 4096).unwrap();
        assert_eq!((a, b), (0, 4096));
        // the gap 64..4096 is used by the next small allocation
        let (_, c) = h.alloc(64, 64).unwrap();
        assert_eq!(c, 64);
    }

    #[test]
    fn frees_coalesce_back_into_one_block() {
        let (mut h, _) = heap_with(1 << 20);
        let offs: Vec<usize> = (0..10).map(|_| h.alloc(4096, 64).unwrap().1).collect();
        for (i, &o) in offs.iter().enumerate() {
            if i % 2 == 0 {
                h.free(h_base(&h), o, 4096);
            }
        }
        for (i, &o) in offs.iter().enumerate() {
            if i % 2 == 1 {
                h.free(h_base(&h), o, 4096);
            }
        }
        assert_eq!(h.used(), 0);
        assert_eq!(h.largest_free(), 1 << 20);
    }

    fn h_base(h: &Heap) -> usize {
        *h.regions.keys().next().unwrap()
    }

    #[test]
    fn exhaustion_is_none_and_freed_memory_is_reusable() {
        let (mut h, base) = heap_with(64 << 10);
        let (_, a) = h.alloc(64 << 10, 64).unwrap();
        assert!(h.alloc(64, 64).is_none());
        h.free(base, a, 64 << 10);
        assert_eq!(h.alloc(64 << 10, 64).unwrap().1, 0);
    }
}
