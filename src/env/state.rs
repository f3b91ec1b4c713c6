//! The process's environment: options, the DMA heap, the translation maps
//! and the DMA mappers, with the locking between them.
//!
//! Lock order: `heap`, then `mappers`, then `maps`.

use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use super::heap::{align_up, Heap, GRANULE};
use super::region::Region;
use super::sys::{self, Backing};
use super::{DmaMapper, EnvError, EnvOpts, IovaMode};

/// Largest single allocation accepted (64 GiB): anything larger is a caller bug.
pub(crate) const MAX_ALLOC: usize = 64 << 30;

/// Smallest amount the heap grows by (unless the hugepage is larger).
const MIN_GROW: usize = 8 << 20;

/// vaddr -> region and iova -> vaddr lookups over everything registered for DMA.
#[derive(Default)]
pub(crate) struct Maps {
    by_va: BTreeMap<usize, Arc<Region>>,
    /// iova start -> (vaddr, len) of each IOVA-contiguous extent.
    by_iova: BTreeMap<u64, (usize, usize)>,
}

impl Maps {
    fn insert(&mut self, r: &Arc<Region>) {
        for (va, iova, len) in r.extents() {
            self.by_iova.insert(iova, (va, len));
        }
        self.by_va.insert(r.addr(), r.clone());
    }

    fn remove(&mut self, r: &Region) {
        for (_, iova, _) in r.extents() {
            self.by_iova.remove(&iova);
        }
        self.by_va.remove(&r.addr());
    }

    /// The region holding `va` and the offset of `va` in it.
    pub(crate) fn find(&self, va: usize) -> Option<(&Arc<Region>, usize)> {
        let (&base, r) = self.by_va.range(..=va).next_back()?;
        (va < base + r.len()).then_some((r, va - base))
    }

    /// Whether [va, va+len) overlaps any registered region.
    fn overlaps(&self, va: usize, len: usize) -> bool {
        if self.find(va).is_some() {
            return true;
        }
        self.by_va.range(va..va + len).next().is_some()
    }

    /// The vaddr of `iova` if [iova, iova+len) lies in one extent.
    pub(crate) fn iova_to_vaddr(&self, iova: u64, len: usize) -> Option<usize> {
        let (&start, &(va, elen)) = self.by_iova.range(..=iova).next_back()?;
        let end = iova.checked_add(len.max(1) as u64)?;
        (end <= start + elen as u64).then_some(va + (iova - start) as usize)
    }
}

/// One initialized environment.
pub(crate) struct Env {
    pub(crate) opts: EnvOpts,
    pub(crate) mode: IovaMode,
    backing: Backing,
    /// Size regions are rounded to, and the largest alignment offered.
    pub(crate) page: usize,
    heap: Mutex<Heap>,
    pub(crate) maps: RwLock<Maps>,
    mappers: Mutex<Vec<Arc<dyn DmaMapper>>>,
    seq: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Env {
    pub(crate) fn new(
        opts: EnvOpts,
        mode: IovaMode,
        mappers: Vec<Arc<dyn DmaMapper>>,
    ) -> Result<Self, EnvError> {
        let (backing, page) = if opts.no_huge {
            (Backing::Anonymous, sys::NO_HUGE_ALIGN)
        } else {
            let size = opts.hugepage_size;
            match &opts.huge_dir {
                Some(_) => (Backing::HugetlbFile(size), size.bytes()),
                None => (Backing::Hugetlb(size), size.bytes()),
            }
        };
        let env = Self {
            opts,
            mode,
            backing,
            page,
            heap: Mutex::new(Heap::default()),
            maps: RwLock::new(Maps::default()),
            mappers: Mutex::new(mappers),
            seq: AtomicU64::new(0),
        };
        if env.opts.mem_size_mb > 0 {
            let bytes = align_up(env.opts.mem_size_mb << 20, page);
            let mut heap = lock(&env.heap);
            env.grow(&mut heap, bytes)?;
        }
        Ok(env)
    }

    pub(crate) fn maps(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(|p| p.into_inner())
    }

    fn maps_mut(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Maps a new region of `bytes` and adds it to the heap, the maps and every mapper.
    fn grow(&self, heap: &mut Heap, bytes: usize) -> Result<(), EnvError> {
        let safe: String = self
            .opts
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let name = format!(
            "{safe}_{}_map_{}",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let region = Arc::new(Region::map(
            self.backing,
            bytes,
            self.mode,
            self.opts.huge_dir.as_deref(),
            &name,
        )?);
        self.publish(&region)?;
        heap.add_region(region);
        Ok(())
    }

    /// Maps `region` into every mapper (undoing on failure), then into the maps.
    fn publish(&self, region: &Arc<Region>) -> Result<(), EnvError> {
        let mappers = lock(&self.mappers);
        for (i, m) in mappers.iter().enumerate() {
            if let Err(e) = map_into(m.as_ref(), region) {
                for done in &mappers[..i] {
                    unmap_from(done.as_ref(), region);
                }
                return Err(e);
            }
        }
        self.maps_mut().insert(region);
        Ok(())
    }

    /// Allocates `len` bytes aligned to `align`; returns the region, the offset and the
    /// length actually reserved.
    pub(crate) fn alloc(
        &self,
        len: usize,
        align: usize,
    ) -> Result<(Arc<Region>, usize, usize), EnvError> {
        if len == 0 || len > MAX_ALLOC {
            return Err(EnvError::InvalidSize {
                len,
                max: MAX_ALLOC,
            });
        }
        if !align.is_power_of_two() || align > self.page {
            return Err(EnvError::InvalidAlignment {
                align,
                max: self.page,
            });
        }
        let align = align.max(GRANULE);
        let alen = align_up(len, GRANULE);
        let mut heap = lock(&self.heap);
        if let Some((r, off)) = heap.alloc(alen, align) {
            return Ok((r, off, alen));
        }
        let need = align_up(alen, self.page);
        let want = need.max(align_up(MIN_GROW, self.page));
        let grown = want > need && self.grow(&mut heap, want).is_ok();
        if !grown {
            self.grow(&mut heap, need)?;
        }
        let (r, off) = heap.alloc(alen, align).ok_or(EnvError::OutOfMemory {
            bytes: need,
            reason: "a fresh region could not hold the allocation".into(),
        })?;
        Ok((r, off, alen))
    }

    /// Returns an allocation made by `alloc`.
    pub(crate) fn free(&self, region: &Region, off: usize, alen: usize) {
        lock(&self.heap).free(region.addr(), off, alen);
    }

    /// (bytes mapped, bytes in use, largest free block).
    pub(crate) fn stats(&self) -> (usize, usize, usize) {
        let h = lock(&self.heap);
        (h.mapped(), h.used(), h.largest_free())
    }

    pub(crate) fn mem_register(&self, addr: usize, len: usize) -> Result<(), EnvError> {
        let page = sys::PAGE_4K;
        let base = NonNull::new(addr as *mut u8);
        if base.is_none() || addr % page != 0 || len % page != 0 || len == 0 {
            return Err(EnvError::Unaligned { addr, len, page });
        }
        let _heap = lock(&self.heap);
        if self.maps().overlaps(addr, len) {
            return Err(EnvError::Overlap { addr, len });
        }
        let region = Arc::new(Region::user(base.expect("checked"), len, self.mode)?);
        self.publish(&region)
    }

    pub(crate) fn mem_unregister(&self, addr: usize, len: usize) -> Result<(), EnvError> {
        let _heap = lock(&self.heap);
        let mappers = lock(&self.mappers);
        let mut maps = self.maps_mut();
        let region = match maps.by_va.get(&addr) {
            Some(r) if r.is_user() && r.len() == len => r.clone(),
            _ => return Err(EnvError::NotRegistered { addr, len }),
        };
        for m in mappers.iter() {
            unmap_from(m.as_ref(), &region);
        }
        maps.remove(&region);
        Ok(())
    }

    pub(crate) fn register_mapper(&self, mapper: Arc<dyn DmaMapper>) -> Result<(), EnvError> {
        let _heap = lock(&self.heap);
        let mut mappers = lock(&self.mappers);
        let regions: Vec<Arc<Region>> = self.maps().by_va.values().cloned().collect();
        for (i, r) in regions.iter().enumerate() {
            if let Err(e) = map_into(mapper.as_ref(), r) {
                for done in &regions[..i] {
                    unmap_from(mapper.as_ref(), done);
                }
                return Err(e);
            }
        }
        mappers.push(mapper);
        Ok(())
    }

    pub(crate) fn unregister_mapper(&self, mapper: &Arc<dyn DmaMapper>) -> bool {
        let _heap = lock(&self.heap);
        let mut mappers = lock(&self.mappers);
        let Some(i) = mappers.iter().position(|m| Arc::ptr_eq(m, mapper)) else {
            return false;
        };
        let m = mappers.remove(i);
        for r in self.maps().by_va.values() {
            unmap_from(m.as_ref(), r);
        }
        true
    }
}

impl Drop for Env {
    /// Teardown: every region leaves every mapper and the maps; the heap's
    /// regions are unmapped when their last reference goes (here, since every
    /// DmaBuf holds the Env).
    fn drop(&mut self) {
        let regions = lock(&self.heap).take_regions();
        let mappers = std::mem::take(&mut *lock(&self.mappers));
        let maps = std::mem::take(&mut *self.maps_mut());
        for r in maps.by_va.values() {
            for m in &mappers {
                unmap_from(m.as_ref(), r);
            }
        }
        drop(maps);
        drop(regions);
    }
}

fn map_into(m: &dyn DmaMapper, r: &Region) -> Result<(), EnvError> {
    let extents = r.extents();
    for (i, &(vaddr, iova, len)) in extents.iter().enumerate() {
        if let Err(source) = m.dma_map(vaddr, iova, len) {
            for &(_, iova, len) in &extents[..i] {
                let _ = m.dma_unmap(iova, len);
            }
            return Err(EnvError::Mapper {
                vaddr,
                iova,
                len,
                source,
            });
        }
    }
    Ok(())
}

fn unmap_from(m: &dyn DmaMapper, r: &Region) {
    for (_, iova, len) in r.extents() {
        if let Err(e) = m.dma_unmap(iova, len) {
            log::warn!("DMA unmap of {len:#x} bytes at iova {iova:#x} failed: {e}");
        }
    }
}
