//! Helpers shared by the env and pci integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use spdk_io::env::{self, HugePageSize};

/// Makes sure `pages` 2 MiB hugepages are free, reserving more when running
/// as root; otherwise fails the test with the command that would fix it.
pub fn ensure_hugepages(pages: u64) {
    let c = env::hugepage_counts(HugePageSize::Size2M);
    if c.free >= pages {
        return;
    }
    let want = c.total + (pages - c.free);
    let path = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
    if let Err(e) = std::fs::write(path, want.to_string()) {
        panic!(
            "this test needs {pages} free 2 MiB hugepages ({} free): could not reserve them ({e}); \
             run it as root or `echo {want} > {path}` first",
            c.free
        );
    }
    let c = env::hugepage_counts(HugePageSize::Size2M);
    assert!(
        c.free >= pages,
        "asked the kernel for {want} hugepages but only {} are free: free some memory",
        c.free
    );
}

/// A fresh directory under the system temp dir, removed by the caller if wanted.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "spdk-io-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).expect("creating a temp dir");
    d
}

/// Physical address of `va` from /proc/self/pagemap (root only).
pub fn pagemap_phys(va: usize) -> u64 {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open("/proc/self/pagemap").expect("open pagemap");
    let mut e = [0u8; 8];
    f.read_exact_at(&mut e, (va / 4096) as u64 * 8)
        .expect("read pagemap");
    let e = u64::from_le_bytes(e);
    assert!(e >> 63 == 1, "page {va:#x} not present");
    let pfn = e & ((1 << 55) - 1);
    assert!(pfn != 0, "pagemap PFNs read as zero: not root");
    pfn * 4096 + (va % 4096) as u64
}

/// The env var naming a test device; fails the test clearly when unset.
pub fn test_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: this test runs inside the QEMU guest, via qemu/run-tests")
    })
}
pub mod raw_nvme;
