//! Errors of the env layer: every message names the cause and the fix.

use std::path::PathBuf;

/// What went wrong setting up the environment or allocating DMA memory.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// `env::init` was called while the environment is already up.
    #[error("the env is already initialized: call env::init once per process (tests use env::init_once)")]
    AlreadyInitialized,
    /// DMA memory was requested before `env::init`.
    #[error("the env is not initialized: call env::init(EnvOpts::default()) (or env::init_once) before allocating DMA memory")]
    NotInitialized,
    /// No hugepages of the requested size are reserved (or free).
    #[error("no {size_kb} kB hugepages reserved ({free} free of {total}): run `spdk-io setup` or set HUGEMEM, e.g. echo 512 > /sys/kernel/mm/hugepages/hugepages-{size_kb}kB/nr_hugepages")]
    NoHugepages {
        /// The hugepage size in kB.
        size_kb: u64,
        /// Pages free of that size.
        free: u64,
        /// Pages reserved of that size.
        total: u64,
    },
    /// `huge_dir` is not a hugetlbfs mount.
    #[error("{path}: not a hugetlbfs mount: mount one with `mount -t hugetlbfs -o pagesize=2M nodev {path}` or run `spdk-io setup`, or leave huge_dir unset to use MAP_HUGETLB")]
    NotHugetlbfs {
        /// The directory given.
        path: PathBuf,
    },
    /// The DMA heap could not grow to satisfy an allocation.
    #[error("out of DMA memory: could not map {bytes} more bytes ({reason}): reserve more hugepages with `spdk-io setup` (HUGEMEM=<MiB>) or free buffers")]
    OutOfMemory {
        /// How many bytes the heap tried to add.
        bytes: usize,
        /// What the kernel said.
        reason: String,
    },
    /// A zero-length or absurdly large allocation.
    #[error("invalid DMA allocation size {len}: sizes must be between 1 byte and {max} bytes")]
    InvalidSize {
        /// The requested length.
        len: usize,
        /// The largest size accepted.
        max: usize,
    },
    /// An alignment that is not a power of two or exceeds the page size.
    #[error("invalid DMA alignment {align}: use a power of two no larger than {max} (the hugepage size)")]
    InvalidAlignment {
        /// The requested alignment.
        align: usize,
        /// The largest alignment supported.
        max: usize,
    },
    /// `no_huge` memory was asked for in PA mode.
    #[error("no_huge memory cannot be used with physical addresses (IOVA mode PA): ordinary pages can move; use hugepages (`spdk-io setup`) or an IOMMU (IOVA = VA)")]
    NoHugeNeedsIommu,
    /// Physical addresses could not be read from /proc/self/pagemap.
    #[error("cannot read physical addresses from /proc/self/pagemap ({reason}): PA mode needs root (CAP_SYS_ADMIN); run as root or use an IOMMU with vfio-pci (IOVA = VA)")]
    PagemapUnavailable {
        /// What failed.
        reason: String,
    },
    /// `mem_register` of a range that is not page-aligned.
    #[error(
        "mem_register({addr:#x}, {len:#x}): address and length must be multiples of {page:#x}"
    )]
    Unaligned {
        /// Start address.
        addr: usize,
        /// Length.
        len: usize,
        /// The required granularity.
        page: usize,
    },
    /// `mem_register` of a range overlapping one already registered.
    #[error("mem_register({addr:#x}, {len:#x}): overlaps memory already registered for DMA; unregister it first")]
    Overlap {
        /// Start address.
        addr: usize,
        /// Length.
        len: usize,
    },
    /// `mem_unregister` of a range that was not registered with `mem_register`.
    #[error("mem_unregister({addr:#x}, {len:#x}): not a range registered with env::mem_register")]
    NotRegistered {
        /// Start address.
        addr: usize,
        /// Length.
        len: usize,
    },
    /// A fixed-size pool has no free element.
    #[error("DMA pool of {count} x {elem_size} bytes exhausted: return elements (drop them) or make the pool larger")]
    PoolExhausted {
        /// Elements in the pool.
        count: usize,
        /// Size of each element.
        elem_size: usize,
    },
    /// A DMA mapper (a VFIO container) refused a mapping.
    #[error("DMA map of {len:#x} bytes at vaddr {vaddr:#x} -> iova {iova:#x} failed: {source}; the IOMMU may not reach that address (IOVA = VA needs the address below 2^aw-bits: use memory from DmaBuf, or PA mode) or the locked-memory limit is low (ulimit -l)")]
    Mapper {
        /// Virtual address.
        vaddr: usize,
        /// IOVA asked for.
        iova: u64,
        /// Length.
        len: usize,
        /// The mapper's error.
        #[source]
        source: std::io::Error,
    },
    /// An I/O error on a named file.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A copy into or out of a [`SharedDmaBuf`](super::SharedDmaBuf) beyond its end.
    #[error("{len} bytes at offset {off} are outside the {size}-byte shared DMA buffer: keep offset + length within the buffer")]
    OutOfBounds {
        /// Offset asked for.
        off: usize,
        /// Length asked for.
        len: usize,
        /// Size of the buffer.
        size: usize,
    },
}
