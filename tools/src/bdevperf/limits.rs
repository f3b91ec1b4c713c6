//! What bdevperf's inputs may make it allocate: a config file of bounded
//! size, and I/O buffers (jobs × depth × I/O size) that fit in the memory
//! the system has available.

use std::io::Read;
use std::path::Path;

/// The largest `--json` config read (SPDK configs of 100,000 bdevs are a
/// few MiB); a larger one, or an endless file such as /dev/zero, is
/// refused instead of read into memory.
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;

/// Bookkeeping per queued I/O besides its data buffers: the task, its
/// requests in the channel's pool (two per I/O) and their completions.
const PER_IO_OVERHEAD: u64 = 2048;

/// Reads the config at `path`, refusing one past `limit` bytes.
pub fn read_config(path: &Path, limit: u64) -> Result<String, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    f.take(limit + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() as u64 > limit {
        return Err(format!(
            "{}: config larger than {} MiB: not an SPDK JSON config (or split it)",
            path.display(),
            limit >> 20
        ));
    }
    Ok(text)
}

/// Bytes of memory the system can still give: MemAvailable plus the free
/// hugepages, from /proc/meminfo text. `None` if the text has neither.
pub fn available_bytes(meminfo: &str) -> Option<u64> {
    let field = |name: &str| {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    let avail_kb = field("MemAvailable");
    let huge = field("HugePages_Free").zip(field("Hugepagesize"));
    if avail_kb.is_none() && huge.is_none() {
        return None;
    }
    let huge_kb = huge.map_or(0, |(n, kb)| n * kb);
    Some((avail_kb.unwrap_or(0) + huge_kb) * 1024)
}

/// Memory per job besides its I/Os: its latency histogram (SPDK's 58 KiB
/// of counters, allocated up front so counting never allocates).
const PER_JOB_OVERHEAD: u64 = spdk_io::util::histogram::Histogram::BYTES as u64;

/// Memory the jobs need for their I/Os: each of `depths` (one per job) ×
/// (`io_size` per buffer × `buffers` per I/O + bookkeeping), plus each
/// job's histogram.
pub fn needed_bytes(depths: &[u64], io_size: u64, buffers: u64) -> u64 {
    let per_io = io_size
        .saturating_mul(buffers)
        .saturating_add(PER_IO_OVERHEAD);
    depths.iter().fold(0u64, |a, &d| {
        a.saturating_add(d.saturating_mul(per_io))
            .saturating_add(PER_JOB_OVERHEAD)
    })
}

/// Refuses a run whose I/O memory exceeds what is available.
pub fn check_memory(
    need: u64,
    available: Option<u64>,
    jobs: usize,
    q: u32,
    o: u64,
) -> Result<(), String> {
    match available {
        Some(avail) if need > avail => Err(format!(
            "{jobs} job(s) at -q {q} with -o {o} need {} MiB for their I/O buffers, but only {} MiB of memory is available: lower -q or -o, or test fewer bdevs or cores",
            need >> 20,
            avail >> 20
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       8000000 kB\nMemAvailable:    4000000 kB\nHugePages_Total:    1024\nHugePages_Free:      512\nHugepagesize:       2048 kB\n";

    #[test]
    fn available_memory_counts_free_hugepages_too() {
        assert_eq!(
            available_bytes(MEMINFO),
            Some((4_000_000 + 512 * 2048) * 1024)
        );
        assert_eq!(available_bytes("nothing here"), None);
    }

    #[test]
    fn a_depth_times_size_beyond_memory_is_refused_by_its_flags() {
        // 128 × 64 MiB = 8 GiB against 4 GB available and 1 GiB of hugepages.
        let need = needed_bytes(&[128], 64 << 20, 1);
        let e = check_memory(need, available_bytes(MEMINFO), 1, 128, 64 << 20).unwrap_err();
        assert!(e.contains("-q 128") && e.contains("lower -q or -o"), "{e}");
        let huge_q = needed_bytes(&[1_000_000], 4096, 1);
        assert!(check_memory(huge_q, Some(1 << 30), 1, 1_000_000, 4096).is_err());
        let fine = needed_bytes(&[128, 128], 4096, 2);
        assert!(check_memory(fine, available_bytes(MEMINFO), 2, 128, 4096).is_ok());
    }

    #[test]
    fn an_endless_config_is_refused_at_the_limit() {
        let e = read_config(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(e.contains("larger than 1 MiB"), "{e}");
    }
}
