//! The process-global environment: `init`, `fini` and the lookups that
//! need no buffer in hand (`vtophys`, `iova_to_vaddr`, `mem_register`).

use std::ptr::NonNull;
use std::sync::{Arc, Mutex, RwLock};

use super::state::Env;
use super::sys::{self, Pagemap};
use super::{DmaMapper, EnvError, EnvOpts, IovaMode};

static ENV: RwLock<Option<Arc<Env>>> = RwLock::new(None);

/// Registered DMA mappers; they outlive an env, so one made after `fini` and
/// `init` maps its memory into them too. Lock order: ENV, then MAPPERS.
static MAPPERS: Mutex<Vec<Arc<dyn DmaMapper>>> = Mutex::new(Vec::new());

fn mappers() -> std::sync::MutexGuard<'static, Vec<Arc<dyn DmaMapper>>> {
    MAPPERS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The current environment, if initialized.
pub(crate) fn current() -> Option<Arc<Env>> {
    ENV.read().unwrap_or_else(|p| p.into_inner()).clone()
}

pub(crate) fn require() -> Result<Arc<Env>, EnvError> {
    current().ok_or(EnvError::NotInitialized)
}

/// Decides the IOVA mode and checks the options can work on this machine.
fn resolve(opts: &EnvOpts) -> Result<IovaMode, EnvError> {
    let mode = match opts.iova_mode {
        Some(m) => m,
        None if opts.no_huge => IovaMode::Va,
        None if sys::iommu_present() => IovaMode::Va,
        None => IovaMode::Pa,
    };
    if mode == IovaMode::Pa {
        if opts.no_huge {
            return Err(EnvError::NoHugeNeedsIommu);
        }
        let probe = 0u64;
        Pagemap::open()?.phys(&probe as *const u64 as usize)?;
    }
    if !opts.no_huge {
        let counts = sys::hugepage_counts(opts.hugepage_size);
        if counts.total == 0 || counts.free == 0 {
            return Err(EnvError::NoHugepages {
                size_kb: opts.hugepage_size.kb(),
                free: counts.free,
                total: counts.total,
            });
        }
        if let Some(dir) = &opts.huge_dir {
            if !sys::is_hugetlbfs(dir) {
                return Err(EnvError::NotHugetlbfs { path: dir.clone() });
            }
        }
    }
    Ok(mode)
}

/// Brings the environment up: decides the IOVA mode, checks hugepages, and
/// reserves `mem_size_mb` of DMA memory. Once per process (until [`fini`]).
///
/// ```
/// use spdk_io::env::{self, DmaBuf, EnvOpts};
/// // Ordinary pinned pages: runs anywhere. EnvOpts::default() wants
/// // hugepages (reserve them with `spdk-io setup`).
/// env::init(EnvOpts::no_huge())?;
/// let mut buf = DmaBuf::alloc_zeroed(4096, 4096)?; // memory a device may DMA into
/// buf[0] = 0xab;
/// assert_eq!((buf.len(), buf[0]), (4096, 0xab));
/// drop(buf);
/// env::fini();
/// # Ok::<(), spdk_io::env::EnvError>(())
/// ```
pub fn init(opts: EnvOpts) -> Result<(), EnvError> {
    let mut g = ENV.write().unwrap_or_else(|p| p.into_inner());
    if g.is_some() {
        return Err(EnvError::AlreadyInitialized);
    }
    let mode = resolve(&opts)?;
    log::info!(
        "env {}: IOVA mode {mode:?}, {}",
        opts.name,
        if opts.no_huge {
            "no_huge (ordinary pinned pages)".to_string()
        } else {
            format!("{} kB hugepages", opts.hugepage_size.kb())
        }
    );
    let m = mappers().clone();
    *g = Some(Arc::new(Env::new(opts, mode, m)?));
    Ok(())
}

/// Like [`init`], but succeeds without change when the environment is already
/// up (whatever options it was started with): for tests, which share one process.
pub fn init_once(opts: EnvOpts) -> Result<(), EnvError> {
    match init(opts) {
        Err(EnvError::AlreadyInitialized) => Ok(()),
        r => r,
    }
}

/// True between [`init`] and [`fini`].
pub fn is_initialized() -> bool {
    current().is_some()
}

/// Tears the environment down: every region leaves every DMA mapper, hugepage
/// files are already unlinked, and all memory is unmapped. Buffers still alive
/// keep their memory (and its mappings) until they are dropped; then it goes too.
/// [`init`] may be called again afterwards.
pub fn fini() {
    let env = ENV.write().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(env) = env {
        let live = Arc::strong_count(&env) - 1;
        if live > 0 {
            log::warn!("env fini with {live} DMA buffers still alive: their memory is released when they drop");
        }
    }
}

/// The IOVA mode of the running environment; before [`init`], the mode
/// automatic selection would pick (VA with an IOMMU, PA without).
pub fn iova_mode() -> IovaMode {
    match current() {
        Some(env) => env.mode,
        None if sys::iommu_present() => IovaMode::Va,
        None => IovaMode::Pa,
    }
}

/// The options the environment was started with.
pub fn opts() -> Option<EnvOpts> {
    current().map(|e| e.opts.clone())
}

/// The IOVA of the byte at `ptr`, if it lies in DMA memory or a registered range.
pub fn vtophys(ptr: *const u8) -> Option<u64> {
    let env = current()?;
    let maps = env.maps();
    let (r, off) = maps.find(ptr as usize)?;
    Some(r.iova_at(off))
}

/// Like SPDK's `spdk_vtophys(buf, &size)`: the IOVA of `ptr` and how many of
/// the `len` bytes from it are IOVA-contiguous (and inside one registered
/// region). Walk a range with it to build PRP lists or SGLs for memory that
/// is not a [`DmaBuf`](super::DmaBuf).
pub fn vtophys_len(ptr: *const u8, len: usize) -> Option<(u64, usize)> {
    let env = current()?;
    let maps = env.maps();
    let (r, off) = maps.find(ptr as usize)?;
    Some((r.iova_at(off), r.contiguous_len(off).min(len)))
}

/// The virtual address of `iova`, if the whole range `[iova, iova+len)` lies in
/// one IOVA-contiguous extent of registered DMA memory. Software devices use it
/// to reach "DMA" memory without trusting arbitrary addresses.
pub fn iova_to_vaddr(iova: u64, len: usize) -> Option<NonNull<u8>> {
    let env = current()?;
    let va = env.maps().iova_to_vaddr(iova, len)?;
    NonNull::new(va as *mut u8)
}

/// Registers user memory for DMA (spdk_mem_register): `ptr` and `len` must be
/// multiples of 4 KiB, and the memory must stay mapped until [`mem_unregister`].
/// It is mapped into every DMA mapper; in PA mode it is pinned with mlock (use
/// hugepage memory there: the kernel may still migrate ordinary pages).
pub fn mem_register(ptr: *const u8, len: usize) -> Result<(), EnvError> {
    require()?.mem_register(ptr as usize, len)
}

/// Undoes [`mem_register`] for exactly the range registered.
pub fn mem_unregister(ptr: *const u8, len: usize) -> Result<(), EnvError> {
    require()?.mem_unregister(ptr as usize, len)
}

/// Adds a DMA mapper (a VFIO container): every region now registered is mapped
/// into it, and every region made later, also by an env started after a
/// [`fini`]. May be called before [`init`].
pub fn register_dma_mapper(mapper: Arc<dyn DmaMapper>) -> Result<(), EnvError> {
    let g = ENV.write().unwrap_or_else(|p| p.into_inner());
    if let Some(env) = &*g {
        env.register_mapper(mapper.clone())?;
    }
    mappers().push(mapper);
    Ok(())
}

/// Removes a mapper added by [`register_dma_mapper`], unmapping everything from it.
/// Returns false if it was not registered.
pub fn unregister_dma_mapper(mapper: &Arc<dyn DmaMapper>) -> bool {
    let g = ENV.write().unwrap_or_else(|p| p.into_inner());
    let mut m = mappers();
    let Some(i) = m.iter().position(|x| Arc::ptr_eq(x, mapper)) else {
        return false;
    };
    m.remove(i);
    if let Some(env) = &*g {
        env.unregister_mapper(mapper);
    }
    true
}

/// Memory figures of the DMA heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemStats {
    /// Bytes mapped for DMA (hugepages or pinned pages).
    pub mapped: usize,
    /// Bytes handed out to live buffers.
    pub used: usize,
    /// The largest free block.
    pub largest_free: usize,
}

/// Figures of the DMA heap, if the environment is up.
pub fn mem_stats() -> Option<MemStats> {
    let (mapped, used, largest_free) = current()?.stats();
    Some(MemStats {
        mapped,
        used,
        largest_free,
    })
}
