//! bdevperf's report: SPDK's table (latency in microseconds) or JSON.

use super::job::JobResult;
use super::{BdevperfArgs, OutputFormat};
use serde_json::json;
use spdk_io::util::histogram::Histogram;

/// The percentiles of the per-job line of the table.
const PCTS: [f64; 5] = [0.50, 0.90, 0.99, 0.999, 0.9999];

struct Figures {
    iops: f64,
    mibps: f64,
    fail_s: f64,
    avg_us: f64,
    min_us: f64,
    max_us: f64,
}

fn figures(r: &JobResult, io_size: u64) -> Figures {
    let rt = r.runtime.max(1e-9);
    let iops = r.ios as f64 / rt;
    Figures {
        iops,
        mibps: iops * io_size as f64 / (1 << 20) as f64,
        fail_s: r.failed as f64 / rt,
        avg_us: if r.ios == 0 {
            0.0
        } else {
            r.lat_sum_ns as f64 / r.ios as f64 / 1e3
        },
        min_us: r.lat_min_ns as f64 / 1e3,
        max_us: r.lat_max_ns as f64 / 1e3,
    }
}

/// A cut-off as a percentile's name: 0.999 -> "99.9".
fn pct_name(cut: f64) -> String {
    let s = format!("{:.5}", cut * 100.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Every summary cut-off the histogram reaches, in µs.
fn pcts(h: &Histogram) -> Vec<(f64, f64)> {
    h.percentiles()
        .into_iter()
        .map(|(c, ns)| (c, ns as f64 / 1e3))
        .collect()
}

fn total(results: &[JobResult]) -> JobResult {
    let mut hist = Histogram::new();
    for r in results {
        hist.merge(&r.hist);
    }
    let mut t = JobResult {
        bdev: "Total".into(),
        core: 0,
        queue_depth: results.iter().map(|r| r.queue_depth).max().unwrap_or(0),
        runtime: results.iter().map(|r| r.runtime).fold(0.0, f64::max),
        ios: results.iter().map(|r| r.ios).sum(),
        failed: results.iter().map(|r| r.failed).sum(),
        miscompares: results.iter().map(|r| r.miscompares).sum(),
        lat_sum_ns: results.iter().map(|r| r.lat_sum_ns).sum(),
        lat_min_ns: results
            .iter()
            .filter(|r| r.ios > 0)
            .map(|r| r.lat_min_ns)
            .min()
            .unwrap_or(0),
        lat_max_ns: results.iter().map(|r| r.lat_max_ns).max().unwrap_or(0),
        hist,
        error: None,
        cpu_ns: 0,
        wait_ns: results.iter().map(|r| r.wait_ns).max().unwrap_or(0),
        breakdown: None,
    };
    // Sum of per-job rates, as SPDK totals them.
    let rate: f64 = results
        .iter()
        .map(|r| r.ios as f64 / r.runtime.max(1e-9))
        .sum();
    t.ios = (rate * t.runtime.max(1e-9)).round() as u64;
    t
}

/// CPU nanoseconds per I/O: per core, the reactor's CPU time over the
/// I/O its jobs completed; summed over cores. Independent of how much of
/// the core the machine gave us.
fn cpu_ns_per_io(results: &[JobResult]) -> Option<f64> {
    let mut per_core: std::collections::BTreeMap<usize, (u64, u64)> = Default::default();
    for r in results {
        let e = per_core.entry(r.core).or_default();
        e.0 = e.0.max(r.cpu_ns);
        e.1 += r.ios;
    }
    let (cpu, ios) = per_core
        .values()
        .fold((0u64, 0u64), |a, v| (a.0 + v.0, a.1 + v.1));
    (cpu > 0 && ios > 0).then(|| cpu as f64 / ios as f64)
}

/// Prints the report.
pub fn print(args: &BdevperfArgs, results: &[JobResult]) {
    let t = total(results);
    match args.output_format {
        OutputFormat::Json => {
            let job = |r: &JobResult, name: &str| {
                let f = figures(r, args.io_size);
                let p: serde_json::Map<String, serde_json::Value> = pcts(&r.hist)
                    .into_iter()
                    .map(|(p, v)| (format!("p{}_latency_us", pct_name(p)), json!(v)))
                    .collect();
                json!({
                    "job": name, "core_mask": format!("{:#x}", 1u64 << r.core), "workload": format!("{:?}", args.workload).to_lowercase(),
                    "status": if r.error.is_some() || r.miscompares > 0 { "failed" } else { "finished" },
                    "queue_depth": r.queue_depth, "io_size": args.io_size, "runtime": r.runtime,
                    "iops": f.iops, "mibps": f.mibps, "io_failed": r.failed, "miscompares": r.miscompares,
                    "avg_latency_us": f.avg_us, "min_latency_us": f.min_us, "max_latency_us": f.max_us,
                    "percentiles": p, "error": r.error, "runqueue_wait_us": r.wait_ns as f64 / 1e3,
                    "histogram": (args.latency > 1).then(|| r.hist.buckets().map(|b| json!({
                        "start_us": b.start as f64 / 1e3, "end_us": b.end as f64 / 1e3, "count": b.count,
                    })).collect::<Vec<_>>()),
                })
            };
            let out = json!({
                "results": results.iter().map(|r| job(r, &r.bdev)).collect::<Vec<_>>(),
                "total": job(&t, "Total"),
                "core_count": results.iter().map(|r| r.core).collect::<std::collections::BTreeSet<_>>().len(),
                "ns_per_io_per_core": if t.ios > 0 { 1e9 / (figures(&t, args.io_size).iops / results.iter().map(|r| r.core).collect::<std::collections::BTreeSet<_>>().len() as f64) } else { 0.0 },
                "cpu_ns_per_io": cpu_ns_per_io(results),
            });
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        }
        OutputFormat::Text => {
            println!("{:>98}", "Latency(us)");
            println!(
                "{:<24}: {:>10} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10}",
                "Device Information",
                "runtime(s)",
                "IOPS",
                "MiB/s",
                "Fail/s",
                "Average",
                "min",
                "max"
            );
            let row = |r: &JobResult, name: &str| {
                let f = figures(r, args.io_size);
                println!(
                    "\t {:<16}: {:>10.2} {:>12.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
                    name, r.runtime, f.iops, f.mibps, f.fail_s, f.avg_us, f.min_us, f.max_us
                );
            };
            for r in results {
                println!(
                    "Job: {} (Core Mask {:#x}, workload: {:?}, depth: {}, IO size: {})",
                    r.bdev,
                    1u64 << r.core,
                    args.workload,
                    r.queue_depth,
                    args.io_size
                );
                if let Some(e) = &r.error {
                    println!("\t error: {e}");
                }
                row(r, &r.bdev);
                let all = pcts(&r.hist);
                let p: Vec<String> = all
                    .iter()
                    .filter(|(c, _)| PCTS.iter().any(|p| (p - c).abs() < 1e-12))
                    .map(|(c, v)| format!("p{}={v:.2}", pct_name(*c)))
                    .collect();
                println!("\t {:<16}  latency percentiles (us): {}", "", p.join(" "));
                if r.miscompares > 0 {
                    println!("\t VERIFY FAILED: {} miscompares", r.miscompares);
                }
            }
            println!("{}", "=".repeat(112));
            row(&t, "Total");
            let cores = results
                .iter()
                .map(|r| r.core)
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            let f = figures(&t, args.io_size);
            if f.iops > 0.0 {
                let cpu = cpu_ns_per_io(results)
                    .map(|c| format!(", {c:.1} ns of reactor CPU time per I/O"))
                    .unwrap_or_default();
                let wait = if t.wait_ns > 0 {
                    format!(
                        "; reactor preempted (runnable, not running) {:.3} ms",
                        t.wait_ns as f64 / 1e6
                    )
                } else {
                    String::new()
                };
                println!(
                    "\t {:<16}  {:.1} ns per I/O per core (wall){cpu}{wait}",
                    "",
                    1e9 * cores as f64 / f.iops
                );
            }
            if args.latency > 0 && t.ios > 0 {
                print_latency(args.latency, results);
            }
            for b in results.iter().filter_map(|r| r.breakdown.as_deref()) {
                print!("{b}");
            }
        }
    }
}

/// SPDK bdevperf's `-l` latency summary (each cut-off with the end of the
/// bucket that reaches it) and, at `-ll`, the detailed histogram (each
/// non-empty bucket with the cumulative share and its count), per job.
fn print_latency(level: u8, results: &[JobResult]) {
    let header = |r: &JobResult| {
        println!(" =============================================");
        println!(" Job: {} (Core Mask {:#x})", r.bdev, 1u64 << r.core);
    };
    println!("\n Latency summary");
    for r in results {
        header(r);
        for (c, ns) in r.hist.percentiles() {
            println!("{:9.5}% : {:9.3}us", c * 100.0, ns as f64 / 1e3);
        }
        println!();
    }
    if level < 2 {
        return;
    }
    println!(" Latency histogram");
    for r in results {
        header(r);
        for b in r.hist.buckets() {
            println!(
                "{:9.3} - {:9.3}: {:9.4}%  ({:9})",
                b.start as f64 / 1e3,
                b.end as f64 / 1e3,
                b.so_far as f64 * 100.0 / b.total as f64,
                b.count
            );
        }
        println!();
    }
}
