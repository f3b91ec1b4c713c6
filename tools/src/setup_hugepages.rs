//! Reserving 2 MiB hugepages for `spdk-io setup`: checked against the
//! memory the machine can give, and rolled back when the kernel reserves
//! only part of what was asked.

use std::path::PathBuf;

/// The kernel's pool of 2 MiB hugepages, as setup reserves it.
pub(super) trait HugepagePool {
    /// Pages reserved now.
    fn reserved(&self) -> Result<u64, String>;
    /// Asks the kernel for `n` pages (it may reserve fewer).
    fn set(&mut self, n: u64) -> Result<(), String>;
}

/// The pool of sysfs's `kernel/mm/hugepages/hugepages-2048kB`.
pub(super) struct SysfsPool {
    file: PathBuf,
}

impl SysfsPool {
    /// The pool under the sysfs mounted at `sys`.
    pub(super) fn new(sys: &std::path::Path) -> SysfsPool {
        SysfsPool {
            file: sys.join("kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"),
        }
    }
}

impl HugepagePool for SysfsPool {
    fn reserved(&self) -> Result<u64, String> {
        let s = std::fs::read_to_string(&self.file)
            .map_err(|e| format!("reading {}: {e}", self.file.display()))?;
        s.trim()
            .parse()
            .map_err(|_| format!("{}: {s:?} is not a page count", self.file.display()))
    }

    fn set(&mut self, n: u64) -> Result<(), String> {
        std::fs::write(&self.file, n.to_string())
            .map_err(|e| format!("writing {n} to {}: {e} (run as root)", self.file.display()))
    }
}

/// KiB of MemAvailable in /proc/meminfo text.
pub(super) fn mem_available_kb(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix("MemAvailable:")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Reserves `mib` MiB as 2 MiB pages. Refused if the memory available
/// (`avail_kb`, plus the pages already reserved) cannot hold them; if the
/// kernel reserves fewer, the pool goes back to what it was and the error
/// says so. Returns what was done.
pub(super) fn reserve(
    pool: &mut dyn HugepagePool,
    mib: u64,
    avail_kb: Option<u64>,
) -> Result<String, String> {
    let pages = mib.div_ceil(2);
    let before = pool.reserved()?;
    if let Some(avail) = avail_kb {
        let can = avail / 2048 + before;
        if pages > can {
            return Err(format!(
                "HUGEMEM={mib} asks for {pages} hugepages of 2 MiB, but the memory available holds at most {can} ({before} already reserved): lower HUGEMEM; nothing was changed"
            ));
        }
    }
    if pages == before {
        return Ok(format!(
            "hugepages: {pages} x 2 MiB already reserved ({mib} MiB)"
        ));
    }
    pool.set(pages)?;
    let got = pool.reserved()?;
    if got < pages {
        let rollback = pool.set(before).and_then(|_| pool.reserved());
        return Err(match rollback {
            Ok(n) => format!(
                "only {got} of {pages} hugepages of 2 MiB could be reserved (memory short or fragmented): the reservation was rolled back to {n}; lower HUGEMEM or reboot"
            ),
            Err(e) => format!(
                "only {got} of {pages} hugepages of 2 MiB could be reserved, and rolling back to {before} failed: {e}"
            ),
        });
    }
    Ok(format!(
        "hugepages: {got} x 2 MiB reserved ({mib} MiB; {before} before)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel that reserves at most `cap` pages.
    struct FakePool {
        reserved: u64,
        cap: u64,
        writes: Vec<u64>,
    }

    impl HugepagePool for FakePool {
        fn reserved(&self) -> Result<u64, String> {
            Ok(self.reserved)
        }
        fn set(&mut self, n: u64) -> Result<(), String> {
            self.writes.push(n);
            self.reserved = n.min(self.cap);
            Ok(())
        }
    }

    fn pool(reserved: u64, cap: u64) -> FakePool {
        FakePool {
            reserved,
            cap,
            writes: vec![],
        }
    }

    #[test]
    fn a_reservation_within_memory_is_made_and_reported() {
        let mut p = pool(0, 10_000);
        let r = reserve(&mut p, 2048, Some(8 << 20)).unwrap();
        assert_eq!(p.reserved, 1024);
        assert!(r.contains("1024 x 2 MiB reserved"), "{r}");
    }

    #[test]
    fn hugemem_beyond_available_memory_is_refused_without_change() {
        let mut p = pool(16, 1 << 30);
        // 1 GiB available + 16 pages reserved: 528 pages at most.
        let e = reserve(&mut p, 1 << 20, Some(1 << 20)).unwrap_err();
        assert!(
            e.contains("at most 528") && e.contains("lower HUGEMEM"),
            "{e}"
        );
        assert!(p.writes.is_empty(), "the pool was written: {:?}", p.writes);
    }

    #[test]
    fn a_partial_reservation_is_rolled_back_with_an_error() {
        let mut p = pool(8, 100);
        let e = reserve(&mut p, 1024, None).unwrap_err();
        assert!(e.contains("only 100 of 512"), "{e}");
        assert!(e.contains("rolled back to 8"), "{e}");
        assert_eq!(p.reserved, 8);
        assert_eq!(p.writes, [512, 8]);
    }

    #[test]
    fn mem_available_is_read_from_meminfo() {
        let m = "MemTotal: 100 kB\nMemAvailable:   4096 kB\n";
        assert_eq!(mem_available_kb(m), Some(4096));
        assert_eq!(mem_available_kb("MemTotal: 1 kB"), None);
    }
}
