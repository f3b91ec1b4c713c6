//! Results of a perf run: per-namespace and total IOPS, MiB/s and latency,
//! printed as `spdk_nvme_perf` prints them, or as JSON.

use super::args::Config;
use serde_json::json;
use spdk_io::util::histogram::Histogram;
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
    pub hist: Histogram,
    /// The qpair's transport counters over the run (drain included).
    pub pcie: spdk_io::nvme::PcieStat,
    /// The qpair's per-batch timeline (`--timeline`).
    pub timeline: Option<Box<super::timeline::Timeline>>,
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

/// The percentiles of the table's JSON lines, as fractions.
const PCTS: [f64; 4] = [0.50, 0.90, 0.99, 0.999];

/// Every summary cut-off the histogram reaches, as JSON: "p99.9" -> µs.
fn percentiles_json(h: &Histogram) -> serde_json::Value {
    let m: serde_json::Map<String, serde_json::Value> = h
        .percentiles()
        .into_iter()
        .map(|(c, ns)| {
            let name = format!("{:.5}", c * 100.0);
            let name = name.trim_end_matches('0').trim_end_matches('.');
            (format!("p{name}"), json!(ns as f64 / 1000.0))
        })
        .collect();
    serde_json::Value::Object(m)
}

/// The µs at cut-off `q` (a fraction), 0 when nothing was counted.
fn at(h: &Histogram, q: f64) -> f64 {
    h.percentiles()
        .into_iter()
        .find(|(c, _)| (c - q).abs() < 1e-12)
        .map_or(0.0, |(_, ns)| ns as f64 / 1000.0)
}

fn line(
    ios: u64,
    bytes: u64,
    secs: f64,
    sum_ns: u128,
    min_ns: u64,
    max_ns: u64,
    h: &Histogram,
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
        p: PCTS.map(|q| at(h, q)),
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
    let mut total_h = Histogram::new();
    let (mut ios, mut bytes, mut sum, mut min, mut max) = (0u64, 0u64, 0u128, u64::MAX, 0u64);
    let mut secs = 0f64;
    for r in results {
        total_h.merge(&r.hist);
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
                v["percentiles_us"] = percentiles_json(&r.hist);
                v["transport_stats"] = json!(r.pcie);
                if let Some(t) = &r.timeline {
                    v["timeline"] = t.json();
                }
                v
            })
            .collect();
        let mut t = line_json(&total);
        t["ios"] = json!(ios);
        t["percentiles_us"] = percentiles_json(&total_h);
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
    for r in results {
        if let Some(t) = &r.timeline {
            println!("\n{}", t.text(&r.name));
        }
    }
    if cfg.latency > 0 {
        print_latency(cfg.latency, results);
    }
}

/// spdk_nvme_perf's `-L` summary (each cut-off with the end of the bucket
/// that reaches it) and, at `-LL`, its histogram, per namespace and core.
fn print_latency(level: u8, results: &[NsResult]) {
    print!("{}", render_latency(level, results));
}

fn render_latency(level: u8, results: &[NsResult]) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let ns_name = |r: &NsResult| r.name.split(" from core").next().unwrap_or("").to_string();
    for r in results {
        let _ = writeln!(
            o,
            "Summary latency data for {:<43.43} from core {}:",
            ns_name(r),
            r.core
        );
        let _ = writeln!(o, "{}", "=".repeat(81));
        for (c, ns) in r.hist.percentiles() {
            let _ = writeln!(o, "{:9.5}% : {:9.3}us", c * 100.0, ns as f64 / 1000.0);
        }
        let _ = writeln!(o);
    }
    if level < 2 {
        return o;
    }
    for r in results {
        let _ = writeln!(
            o,
            "Latency histogram for {:<43.43} from core {}:",
            ns_name(r),
            r.core
        );
        let _ = writeln!(o, "{}", "=".repeat(78));
        let _ = writeln!(o, "       Range in us     Cumulative    IO count");
        for b in r.hist.buckets() {
            let _ = writeln!(
                o,
                "{:9.3} - {:9.3}: {:9.4}%  ({:9})",
                b.start as f64 / 1000.0,
                b.end as f64 / 1000.0,
                b.so_far as f64 * 100.0 / b.total as f64,
                b.count
            );
        }
        let _ = writeln!(o);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result() -> NsResult {
        let mut hist = Histogram::new();
        hist.tally_n(20_000, 99);
        hist.tally_n(100_000, 1);
        NsResult {
            name: "PCIE (0000:00:04.0) NSID 1 from core  0".into(),
            nsid: 1,
            core: 0,
            ios: 100,
            bytes: 409_600,
            errors: 0,
            seconds: 1.0,
            min_ns: 20_000,
            max_ns: 100_000,
            sum_ns: 2_080_000,
            hist,
            pcie: Default::default(),
            timeline: None,
        }
    }

    #[test]
    fn dash_l_prints_spdk_nvme_perfs_summary_rows() {
        let out = render_latency(1, &[result()]);
        let mut lines = out.lines();
        let head = format!(
            "Summary latency data for {:<43} from core 0:",
            "PCIE (0000:00:04.0) NSID 1"
        );
        assert_eq!(lines.next(), Some(head.as_str()));
        assert!(out.contains("  1.00000% :    20.096us"), "{out}");
        assert!(out.contains(" 99.00000% :    20.096us"), "{out}");
        assert!(out.contains(" 99.50000% :   100.352us"), "{out}");
        assert!(out.contains(" 99.99999% :   100.352us"), "{out}");
        assert!(!out.contains("Latency histogram"), "{out}");
    }

    #[test]
    fn dash_ll_adds_the_histogram_buckets() {
        let out = render_latency(2, &[result()]);
        assert!(
            out.contains("       Range in us     Cumulative    IO count"),
            "{out}"
        );
        assert!(
            out.contains("   19.968 -    20.096:   99.0000%  (       99)"),
            "{out}"
        );
        assert!(
            out.contains("   99.840 -   100.352:  100.0000%  (        1)"),
            "{out}"
        );
    }
}
