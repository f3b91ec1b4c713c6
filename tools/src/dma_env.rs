//! Bringing up the env's DMA memory for a tool, as SPDK apps do at start.

use spdk_io::env::{self, EnvOpts};

/// Initialises the env for tool `name`: hugepages unless `no_huge`; when no
/// hugepages can be had (none reserved, no permission) it says so on stderr
/// and falls back to ordinary pinned pages, which serve every bdev but an
/// NVMe device without an IOMMU.
pub fn init(name: &str, no_huge: bool, mem_size_mb: usize) -> Result<(), String> {
    let opts = |no_huge: bool| EnvOpts {
        name: name.into(),
        mem_size_mb,
        ..if no_huge {
            EnvOpts::no_huge()
        } else {
            EnvOpts::default()
        }
    };
    if no_huge {
        return env::init(opts(true)).map_err(|e| e.to_string());
    }
    env::init(opts(false)).or_else(|e| {
        eprintln!("{name}: hugepage DMA memory unavailable ({e}); using ordinary pinned pages (--no-huge)");
        env::init(opts(true)).map_err(|e| e.to_string())
    })
}
