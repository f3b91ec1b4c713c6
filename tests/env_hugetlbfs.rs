//! Hugepages from files on a hugetlbfs mount (`huge_dir`): files are unlinked
//! as soon as they are mapped, and fini gives the pages back. Mounts a
//! hugetlbfs of its own when run as root and none is mounted.

mod env_support;

use std::path::PathBuf;
use std::process::Command;

use spdk_io::env::{self, DmaBuf, EnvOpts, HugePageSize};

/// A hugetlbfs mount: /dev/hugepages if it is one, else one made in a temp dir.
fn hugetlbfs_dir() -> (PathBuf, bool) {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if let Some(line) = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("hugetlbfs") && !l.contains("pagesize=1G"))
    {
        return (
            PathBuf::from(line.split_whitespace().nth(1).unwrap()),
            false,
        );
    }
    let dir = env_support::temp_dir("hugetlbfs");
    let ok = Command::new("mount")
        .args(["-t", "hugetlbfs", "-o", "pagesize=2M", "nodev"])
        .arg(&dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "no hugetlbfs mounted and mounting one at {} failed: run as root or `spdk-io setup`",
        dir.display()
    );
    (dir, true)
}

#[test]
fn hugetlbfs_backed_memory_leaves_no_files_and_returns_pages_on_fini() {
    env_support::ensure_hugepages(16);
    let (dir, mounted) = hugetlbfs_dir();
    let free_before = env::hugepage_counts(HugePageSize::Size2M).free;
    env::init(EnvOpts {
        name: "hugetlbfs-test".into(),
        huge_dir: Some(dir.clone()),
        ..EnvOpts::default()
    })
    .unwrap();
    let mut b = DmaBuf::alloc(3 << 20, 4096).unwrap();
    b.fill(1);
    let used = free_before - env::hugepage_counts(HugePageSize::Size2M).free;
    assert!(used >= 2, "hugepages taken from the pool: {used}");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("hugetlbfs-test")
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "backing files are unlinked once mapped"
    );
    drop(b);
    env::fini();
    let free_after = env::hugepage_counts(HugePageSize::Size2M).free;
    assert!(
        free_after + 2 >= free_before,
        "fini returned the pages ({free_before} free before, {free_after} after)"
    );
    if mounted {
        let _ = Command::new("umount").arg(&dir).status();
        let _ = std::fs::remove_dir(&dir);
    }
}
