//! The system calls of the env layer: mapping memory, hugepage counters,
//! /proc/self/pagemap, and IOMMU detection.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{EnvError, HugePageSize};

/// Size of a base page.
pub(crate) const PAGE_4K: usize = 4096;

/// Alignment of ordinary (`no_huge`) regions, so 2 MiB alignments work there too.
pub(crate) const NO_HUGE_ALIGN: usize = 2 << 20;

/// DMA regions are placed from here up, so that IOVA = VA fits an IOMMU with a
/// 39-bit address width (the narrowest intel-iommu, and QEMU's default), far
/// from the MSI window at 0xfee00000 and from the program's own heap.
const DMA_VA_BASE: usize = 0x10_0000_0000;
/// The end of the 39-bit IOVA space.
const DMA_VA_LIMIT: usize = 1 << 39;
static NEXT_DMA_VA: AtomicUsize = AtomicUsize::new(DMA_VA_BASE);

/// One mapping of DMA memory; dropping it unmaps it.
///
/// Regions are placed low ([`LowMapping`]) when they can be; otherwise
/// memmap2 maps them wherever the kernel likes.
#[allow(dead_code)] // the memmap2 variants are held only for their Drop
pub(crate) enum Mapping {
    /// Placed below [`DMA_VA_LIMIT`] by [`map_low`].
    Low(LowMapping),
    /// Private anonymous memory (hugepages or not), possibly larger than
    /// the region so that the region's start could be aligned inside it.
    Anon(memmap2::MmapMut),
    /// A shared mapping of a hugetlbfs file.
    File(memmap2::MmapRaw),
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mapping::Low(m) => write!(f, "Low({:p}, {:#x})", m.base, m.len),
            Mapping::Anon(m) => write!(f, "Anon({:p}, {:#x})", m.as_ptr(), m.len()),
            Mapping::File(m) => write!(f, "File({:p}, {:#x})", m.as_ptr(), m.len()),
        }
    }
}

/// A mapping made with `MAP_FIXED_NOREPLACE` at a chosen low address.
///
/// This is the one place the env calls mmap itself: memmap2 has no way to
/// ask for an address without replacing what is there, and DMA memory must
/// sit below the IOMMU's address width for IOVA = VA to work.
pub(crate) struct LowMapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: an owned mapping; the memory is reached only through the Region holding it.
unsafe impl Send for LowMapping {}
// SAFETY: as for Send: &LowMapping exposes nothing but its address.
unsafe impl Sync for LowMapping {}

impl Drop for LowMapping {
    fn drop(&mut self) {
        // SAFETY: base..base+len is the mapping map_low made for this value alone;
        // it is dropped only once its Region (and so every DmaBuf in it) is gone.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Maps `len` bytes at a low address (see [`DMA_VA_BASE`]) aligned to
/// `align`, with MAP_FIXED_NOREPLACE, skipping ranges already taken; None
/// when the low range is used up or the kernel refuses.
fn map_low(len: usize, align: usize, flags: libc::c_int, fd: libc::c_int) -> Option<LowMapping> {
    for _ in 0..64 {
        let step = (len + align - 1) & !(align - 1);
        let hint = NEXT_DMA_VA
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                let a = (v + align - 1) & !(align - 1);
                (a + step <= DMA_VA_LIMIT).then_some(a + step)
            })
            .ok()?;
        let hint = (hint + align - 1) & !(align - 1);
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping: it fails instead.
        let p = unsafe {
            libc::mmap(
                hint as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags | libc::MAP_FIXED_NOREPLACE,
                fd,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            let base = NonNull::new(p.cast::<u8>())?;
            return Some(LowMapping { base, len });
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return None;
        }
    }
    None
}

/// Reserved and free hugepages of one size, from sysfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HugepageCounts {
    /// Pages reserved (nr_hugepages).
    pub total: u64,
    /// Pages not yet used.
    pub free: u64,
}

/// Reads the reserved/free counts for hugepages of `size` under `sysfs_root`
/// (normally `/sys`). Missing files count as zero.
pub fn hugepage_counts_at(sysfs_root: &Path, size: HugePageSize) -> HugepageCounts {
    let dir = sysfs_root.join(format!("kernel/mm/hugepages/hugepages-{}kB", size.kb()));
    let read = |f: &str| -> u64 {
        std::fs::read_to_string(dir.join(f))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    HugepageCounts {
        total: read("nr_hugepages"),
        free: read("free_hugepages"),
    }
}

/// Reserved and free hugepages of `size` on this machine.
pub fn hugepage_counts(size: HugePageSize) -> HugepageCounts {
    hugepage_counts_at(Path::new("/sys"), size)
}

/// True when an IOMMU translates DMA for devices on this machine: some IOMMU
/// group exists in sysfs, or a VFIO group node other than VFIO's no-IOMMU ones.
pub fn iommu_present() -> bool {
    let groups = std::fs::read_dir("/sys/kernel/iommu_groups")
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    let vfio = std::fs::read_dir("/dev/vfio")
        .map(|d| {
            d.flatten().any(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n != "vfio" && !n.starts_with("noiommu-")
            })
        })
        .unwrap_or(false);
    groups || vfio
}

/// True when `dir` is on a hugetlbfs mount.
pub(crate) fn is_hugetlbfs(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir)
        .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::HUGETLBFS_MAGIC)
}

/// Where a region's memory comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backing {
    /// Ordinary anonymous memory, pinned with mlock where the limit allows.
    Anonymous,
    /// Anonymous hugepages (MAP_HUGETLB).
    Hugetlb(HugePageSize),
    /// A file on hugetlbfs (unlinked right after mapping).
    HugetlbFile(HugePageSize),
    /// Memory the user registered; not ours to unmap.
    User,
}

fn os_err(bytes: usize, e: io::Error) -> EnvError {
    EnvError::OutOfMemory {
        bytes,
        reason: e.to_string(),
    }
}

/// Maps `len` bytes (a multiple of the backing's page size) of fresh, zeroed,
/// populated memory, aligned to that page size (2 MiB for anonymous memory).
/// Returns the region's first byte and the mapping that owns it.
pub(crate) fn map_region(
    backing: Backing,
    len: usize,
    huge_dir: Option<&Path>,
    file_name: &str,
) -> Result<(NonNull<u8>, Mapping), EnvError> {
    let low = |m: LowMapping| (m.base, Mapping::Low(m));
    match backing {
        Backing::Anonymous => {
            let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE;
            let (base, mapping) = match map_low(len, NO_HUGE_ALIGN, flags, -1) {
                Some(m) => low(m),
                None => {
                    // Over-map so an aligned start fits, and keep the whole mapping.
                    let m = memmap2::MmapOptions::new()
                        .len(len + NO_HUGE_ALIGN)
                        .populate()
                        .map_anon()
                        .map_err(|e| os_err(len, e))?;
                    let start = m.as_ptr() as usize;
                    let aligned = (start + NO_HUGE_ALIGN - 1) & !(NO_HUGE_ALIGN - 1);
                    let base = NonNull::new(aligned as *mut u8).expect("an mmap is never at 0");
                    (base, Mapping::Anon(m))
                }
            };
            pin(base.as_ptr() as usize, len);
            Ok((base, mapping))
        }
        Backing::Hugetlb(size) => {
            let shift = size.bytes().trailing_zeros();
            let flags = libc::MAP_PRIVATE
                | libc::MAP_ANONYMOUS
                | libc::MAP_HUGETLB
                | libc::MAP_POPULATE
                | ((shift as libc::c_int) << libc::MAP_HUGE_SHIFT);
            if let Some(m) = map_low(len, size.bytes(), flags, -1) {
                return Ok(low(m));
            }
            // Hugepage mappings are aligned to their page size by the kernel.
            let m = memmap2::MmapOptions::new()
                .len(len)
                .huge(Some(shift as u8))
                .populate()
                .map_anon()
                .map_err(|e| os_err(len, e))?;
            let base = NonNull::new(m.as_ptr().cast_mut()).expect("an mmap is never at 0");
            Ok((base, Mapping::Anon(m)))
        }
        Backing::HugetlbFile(size) => {
            let dir = huge_dir.expect("a hugetlbfs file backing always has a directory");
            let path = dir.join(file_name);
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|source| EnvError::Io {
                    what: format!("creating hugepage file {}", path.display()),
                    source,
                })?;
            // Unlink at once: the mapping keeps the pages, and nothing is left behind on exit or crash.
            let _ = std::fs::remove_file(&path);
            file.set_len(len as u64).map_err(|e| os_err(len, e))?;
            use std::os::fd::AsRawFd;
            // A shared hugetlbfs mapping reserves its pages at mmap time, so later access cannot SIGBUS.
            let flags = libc::MAP_SHARED | libc::MAP_POPULATE;
            if let Some(m) = map_low(len, size.bytes(), flags, file.as_raw_fd()) {
                return Ok(low(m));
            }
            let m = memmap2::MmapOptions::new()
                .len(len)
                .populate()
                .map_raw(&file)
                .map_err(|e| os_err(len, e))?;
            let base = NonNull::new(m.as_mut_ptr()).expect("an mmap is never at 0");
            Ok((base, Mapping::File(m)))
        }
        Backing::User => unreachable!("user memory is registered, never mapped by the env"),
    }
}

/// Pins no_huge memory so its pages never move or swap; a low RLIMIT_MEMLOCK
/// only costs the pinning (a VFIO container pins what it maps anyway).
fn pin(addr: usize, len: usize) {
    if let Err(e) = mlock(addr, len) {
        log::debug!("mlock of {len} bytes of no_huge memory failed: {e}");
    }
}

/// Pins user memory (`mem_register` in PA mode); failure is reported.
pub(crate) fn mlock(addr: usize, len: usize) -> io::Result<()> {
    // SAFETY: mlock only changes residency of the pages; it fails cleanly on unmapped ranges.
    if unsafe { libc::mlock(addr as *const libc::c_void, len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads physical addresses of virtual pages from /proc/self/pagemap.
pub(crate) struct Pagemap {
    file: File,
}

impl Pagemap {
    /// Opens /proc/self/pagemap.
    pub(crate) fn open() -> Result<Self, EnvError> {
        let file = File::open("/proc/self/pagemap").map_err(|e| EnvError::PagemapUnavailable {
            reason: e.to_string(),
        })?;
        Ok(Self { file })
    }

    /// The physical address of the byte at `vaddr`, which must be resident.
    pub(crate) fn phys(&self, vaddr: usize) -> Result<u64, EnvError> {
        let mut entry = [0u8; 8];
        let off = (vaddr / PAGE_4K) as u64 * 8;
        self.file
            .read_exact_at(&mut entry, off)
            .map_err(|e| EnvError::PagemapUnavailable {
                reason: format!("reading entry of {vaddr:#x}: {e}"),
            })?;
        let e = u64::from_le_bytes(entry);
        let present = e >> 63 & 1 == 1;
        let pfn = e & ((1u64 << 55) - 1);
        if !present {
            return Err(EnvError::PagemapUnavailable {
                reason: format!("page at {vaddr:#x} is not resident"),
            });
        }
        if pfn == 0 {
            return Err(EnvError::PagemapUnavailable {
                reason: "page frame numbers read as 0 (not privileged)".into(),
            });
        }
        Ok(pfn * PAGE_4K as u64 + (vaddr % PAGE_4K) as u64)
    }
}
