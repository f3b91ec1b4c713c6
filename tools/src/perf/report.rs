//! Results of a perf run: per-namespace and total IOPS, MiB/s and latency,
//! printed as `spdk_nvme_perf` prints them, or as JSON.

use super::args::Config;
use hdrhistogram::Histogram;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};

/// The measurement of one namespace on one core.
pub struct NsResult {
    pub name: String,
    pub nsid: u32,
    pub core: usize,
    pub ios: u64,
    pub bytes: u64,
    pub errors: u64,
    pub seconds: f64,
    pub min_ns: u64,
    pub max_ns: u64,
    pub sum_ns: u128,
    pub hist: Histogram<u64>,
    /// The qpair's transport counters over the run (drain included).
    pub pcie: spdk_io::nvme::PcieStat,
}

/// Live counters the workers publish for the once-a-second progress line.
pub struct Progress {
    slots: Vec<(AtomicU64, AtomicU64)>,
}

impl Progress {
    pub fn new(n: usize) -> Self {
        Progress {
            slots: (0..n)
                .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
                .collect(),
        }
    }
    pub fn update(&self, slot: usize, ios: u64, bytes: u64) {
        self.slots[slot].0.store(ios, Ordering::Relaxed);
        self.slots[slot].1.store(bytes, Ordering::Relaxed);
    }
    /// Total (ios, bytes) so far.
    pub fn snapshot(&self) -> (u64, u64) {
        self.slots.iter().fold((0, 0), |a, s| {
            (
                a.0 + s.0.load(Ordering::Relaxed),
                a.1 + s.1.load(Ordering::Relaxed),
            )
        })
    }
}

struct Line {
    iops: f64,
    mib_s: f64,
    avg_us: f64,
    min_us: f64,
    max_us: f64,
    p: [f64; 4],
}

const PCTS: [f64; 4] = [50.0, 90.0, 99.0, 99.9];

fn line(
    ios: u64,
    bytes: u64,
    secs: f64,
    sum_ns: u128,
    min_ns: u64,
    max_ns: u64,
    h: &Histogram<u64>,
) -> Line {
    let secs = secs.max(1e-9);
    Line {
        iops: ios as f64 / secs,
        mib_s: bytes as f64 / secs / 1048576.0,
        avg_us: if ios == 0 {
            0.0
        } else {
            sum_ns as f64 / ios as f64 / 1000.0
        },
        min_us: min_ns as f64 / 1000.0,
        max_us: max_ns as f64 / 1000.0,
        p: PCTS.map(|q| h.value_at_quantile(q / 100.0) as f64 / 1000.0),
    }
}

fn line_json(l: &Line) -> serde_json::Value {
    json!({
        "iops": l.iops, "mib_s": l.mib_s, "avg_lat_us": l.avg_us,
        "min_lat_us": l.min_us, "max_lat_us": l.max_us,
        "p50_us": l.p[0], "p90_us": l.p[1], "p99_us": l.p[2], "p999_us": l.p[3],
    })
}

/// Prints the results.
pub fn print(results: &[NsResult], cfg: &Config) {
    let mut total_h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
    let (mut ios, mut bytes, mut sum, mut min, mut max) = (0u64, 0u64, 0u128, u64::MAX, 0u64);
    let mut secs = 0f64;
    for r in results {
        let _ = total_h.add(&r.hist);
        ios += r.ios;
        bytes += r.bytes;
        sum += r.sum_ns;
        if r.ios > 0 {
            min = min.min(r.min_ns);
        }
        max = max.max(r.max_ns);
        secs = secs.max(r.seconds);
    }
    if ios == 0 {
        min = 0;
    }
    let total = line(ios, bytes, secs, sum, min, max, &total_h);
    let per: Vec<Line> = results
        .iter()
        .map(|r| {
            line(
                r.ios, r.bytes, r.seconds, r.sum_ns, r.min_ns, r.max_ns, &r.hist,
            )
        })
        .collect();
    if cfg.json {
        let ns: Vec<_> = results
            .iter()
            .zip(&per)
            .map(|(r, l)| {
                let mut v = line_json(l);
                v["name"] = json!(r.name);
                v["nsid"] = json!(r.nsid);
                v["core"] = json!(r.core);
                v["ios"] = json!(r.ios);
                v["errors"] = json!(r.errors);
                v["transport_stats"] = json!(r.pcie);
                v
            })
            .collect();
        let mut t = line_json(&total);
        t["ios"] = json!(ios);
        let out = json!({
            "workload": {
                "rw": cfg.workload, "queue_depth": cfg.queue_depth, "io_size": cfg.io_size,
                "read_pct": cfg.read_pct, "seconds": cfg.seconds, "cores": cfg.cores,
            },
            "namespaces": ns,
            "total": t,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("serializable")
        );
        return;
    }
    let w = results
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(5)
        .max(18);
    println!("========================================================");
    println!("{:w$}   {:>52}", "", "Latency(us)");
    println!(
        "{:w$} : {:>12} {:>10} {:>10} {:>10} {:>10}",
        "Device Information", "IOPS", "MiB/s", "Average", "min", "max"
    );
    for (r, l) in results.iter().zip(&per) {
        println!(
            "{:w$} : {:>12.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            r.name, l.iops, l.mib_s, l.avg_us, l.min_us, l.max_us
        );
    }
    println!("========================================================");
    println!(
        "{:w$} : {:>12.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
        "Total", total.iops, total.mib_s, total.avg_us, total.min_us, total.max_us
    );
    if cfg.transport_stats {
        for r in results {
            let s = &r.pcie;
            println!("\nPCIE transport statistics for {}:", r.name);
            println!("  polls:              {}", s.polls);
            println!("  idle_polls:         {}", s.idle_polls);
            println!("  completions:        {}", s.completions);
            println!("  submitted_requests: {}", s.submitted_requests);
            println!(
                "  sq_mmio_doorbell_updates:   {}",
                s.sq_mmio_doorbell_updates
            );
            println!(
                "  cq_mmio_doorbell_updates:   {}",
                s.cq_mmio_doorbell_updates
            );
            println!(
                "  sq_shadow_doorbell_updates: {}",
                s.sq_shadow_doorbell_updates
            );
            println!(
                "  cq_shadow_doorbell_updates: {}",
                s.cq_shadow_doorbell_updates
            );
            println!("  doorbell_kicks:     {}", s.doorbell_kicks);
            println!(
                "  mmio doorbell writes per completion: {:.3}",
                s.mmio_per_completion()
            );
        }
    }
    if cfg.latency > 0 {
        for (r, l) in results.iter().zip(&per) {
            println!("\nSummary latency data for {}:", r.name);
            println!(
                "================================================================================="
            );
            for (q, v) in PCTS.iter().zip(l.p) {
                println!("{:>10.5}% : {:>10.3}us", q, v);
            }
            if cfg.latency > 1 {
                for q in [1.0, 10.0, 25.0, 75.0, 95.0, 99.99] {
                    println!(
                        "{:>10.5}% : {:>10.3}us",
                        q,
                        r.hist.value_at_quantile(q / 100.0) as f64 / 1000.0
                    );
                }
            }
        }
        println!(
            "\nTotal: p50 {:.3}us p90 {:.3}us p99 {:.3}us p99.9 {:.3}us",
            total.p[0], total.p[1], total.p[2], total.p[3]
        );
    }
}
