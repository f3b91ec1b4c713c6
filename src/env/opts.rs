//! Environment options, after SPDK's `spdk_env_opts`.

use std::path::PathBuf;

/// Size of the hugepages DMA memory is carved from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HugePageSize {
    /// 2 MiB pages (x86-64 PMD size), the usual choice.
    Size2M,
    /// 1 GiB pages, reserved at boot on most systems.
    Size1G,
}

impl HugePageSize {
    /// The page size in bytes.
    pub const fn bytes(self) -> usize {
        match self {
            HugePageSize::Size2M => 2 << 20,
            HugePageSize::Size1G => 1 << 30,
        }
    }

    /// The page size in kB, as sysfs names it (`hugepages-2048kB`).
    pub const fn kb(self) -> u64 {
        (self.bytes() / 1024) as u64
    }
}

/// How the device addresses host memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IovaMode {
    /// I/O virtual address = process virtual address (an IOMMU translates; VFIO type1).
    Va,
    /// I/O virtual address = physical address (no IOMMU; uio_pci_generic).
    Pa,
}

/// Options for [`init`](super::init), like `spdk_env_opts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvOpts {
    /// Process name, used in hugetlbfs file names.
    pub name: String,
    /// MiB of DMA memory to reserve up front (0: grow on demand only).
    pub mem_size_mb: usize,
    /// Hugepage size to allocate from.
    pub hugepage_size: HugePageSize,
    /// A hugetlbfs mount to create (and immediately unlink) backing files in;
    /// `None` maps anonymous hugepages with `MAP_HUGETLB`.
    pub huge_dir: Option<PathBuf>,
    /// Ordinary pinned 4 KiB pages instead of hugepages (needs IOVA = VA).
    pub no_huge: bool,
    /// IOVA mode; `None` picks VA when an IOMMU is present, PA otherwise.
    pub iova_mode: Option<IovaMode>,
    /// PCI addresses the process may use (empty: all).
    pub pci_allowed: Vec<String>,
}

impl Default for EnvOpts {
    /// 2 MiB hugepages via `MAP_HUGETLB`, grown on demand, IOVA mode auto.
    fn default() -> Self {
        Self {
            name: "spdk-io".to_string(),
            mem_size_mb: 0,
            hugepage_size: HugePageSize::Size2M,
            huge_dir: None,
            no_huge: false,
            iova_mode: None,
            pci_allowed: Vec::new(),
        }
    }
}

impl EnvOpts {
    /// Ordinary pinned memory with IOVA = VA: for tests and software devices
    /// on machines without hugepages. A real device can use it only behind an IOMMU.
    pub fn no_huge() -> Self {
        Self {
            no_huge: true,
            iova_mode: Some(IovaMode::Va),
            ..Self::default()
        }
    }
}
