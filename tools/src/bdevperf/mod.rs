//! `spdk-io bdevperf`: SPDK's bdevperf — I/O load on every bdev of an SPDK
//! JSON config, one job per bdev per core of `-m`, each job on its own
//! lightweight thread on that core's reactor.

mod breakdown;
mod job;
mod largest;
mod limits;
mod lvol_setup;
mod outstanding;
mod pattern;
mod report;
mod spec;
mod task;

use clap::{Args, ValueEnum};
use job::{JobConfig, JobResult, Shared};
use spdk_io::bdev::{self, IoType};
use spdk_io::thread::{CpuMask, ReactorOpts, ReactorSet, ThreadOpts};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Workloads (`-w`), as SPDK bdevperf names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Workload {
    /// Sequential reads.
    Read,
    /// Sequential writes.
    Write,
    /// Random reads.
    Randread,
    /// Random writes.
    Randwrite,
    /// Sequential mix of reads and writes (`-M` percent reads).
    Rw,
    /// Random mix of reads and writes (`-M` percent reads).
    Randrw,
    /// Write a pattern, read it back and compare; any mismatch fails the run.
    /// Each write + read-back pair counts as one I/O, as in SPDK bdevperf.
    Verify,
    /// Sequential unmaps.
    Unmap,
    /// Sequential flushes.
    Flush,
    /// Sequential write-zeroes.
    WriteZeroes,
    /// Random reads with a bdev reset every second.
    Reset,
}

impl Workload {
    /// Whether offsets are random (otherwise sequential).
    pub(crate) fn random(self) -> bool {
        matches!(
            self,
            Workload::Randread | Workload::Randwrite | Workload::Randrw | Workload::Reset
        )
    }

    /// The I/O type of every I/O, for the workloads of one type; `None`
    /// for the mixes and verify.
    pub(crate) fn single_type(self) -> Option<IoType> {
        match self {
            Workload::Read | Workload::Randread | Workload::Reset => Some(IoType::Read),
            Workload::Write | Workload::Randwrite => Some(IoType::Write),
            Workload::Unmap => Some(IoType::Unmap),
            Workload::Flush => Some(IoType::Flush),
            Workload::WriteZeroes => Some(IoType::WriteZeroes),
            Workload::Rw | Workload::Randrw | Workload::Verify => None,
        }
    }
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Tables as SPDK bdevperf prints them.
    Text,
    /// One JSON document on stdout.
    Json,
}

/// Arguments of `spdk-io bdevperf` (SPDK bdevperf's flags).
#[derive(Args, Debug)]
pub struct BdevperfArgs {
    /// SPDK JSON config that creates the bdevs.
    #[arg(long = "json", value_name = "CONFIG")]
    pub json: PathBuf,
    /// I/O queue depth per job.
    #[arg(short = 'q', long = "queue-depth", default_value_t = 128)]
    pub queue_depth: u32,
    /// I/O size in bytes (suffixes k, m accepted: 4k).
    #[arg(short = 'o', long = "io-size", default_value = "4096", value_parser = parse_size)]
    pub io_size: u64,
    /// Workload.
    #[arg(short = 'w', long = "workload", value_enum, default_value = "randread")]
    pub workload: Workload,
    /// Percent reads for rw and randrw.
    #[arg(short = 'M', long = "rwmixread", default_value_t = 50, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub rwmixread: u32,
    /// Run time in seconds.
    #[arg(short = 't', long = "time", default_value_t = 5)]
    pub time: u64,
    /// Core mask: one reactor per core, one job per bdev per core.
    #[arg(short = 'm', long = "cpumask", default_value = "0x1")]
    pub cpumask: String,
    /// Only this bdev (default: every unclaimed bdev).
    #[arg(short = 'T', long = "target")]
    pub target: Option<String>,
    /// Output format.
    #[arg(long = "output-format", value_enum, default_value = "text")]
    pub output_format: OutputFormat,
    /// Seed of the random offsets.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
    /// DMA memory from ordinary pinned pages instead of hugepages (as
    /// SPDK's `--no-huge`; for software bdevs, or devices behind an IOMMU).
    #[arg(long = "no-huge")]
    pub no_huge: bool,
    /// MiB of DMA memory to reserve up front (SPDK's `-s`; 0: grow on demand).
    #[arg(short = 's', long = "mem-size", default_value_t = 0)]
    pub mem_size: usize,
    /// Latency report: `-l` adds SPDK's latency summary (percentile
    /// cut-offs per job), `-ll` also the detailed histogram.
    #[arg(short = 'l', action = clap::ArgAction::Count)]
    pub latency: u8,
    /// Diagnostic: split each job's latency by what happened while an I/O
    /// was in flight (preemption, page faults, the job's ramp, neither),
    /// with the callback delay, the cost of recording and the batch cycle
    /// beside it. Costs one system call per completion batch.
    #[arg(long = "latency-breakdown")]
    pub latency_breakdown: bool,
    /// After the run, print each nvme bdev's transport counters (polls,
    /// MMIO and shadow doorbell writes), as SPDK's
    /// `bdev_nvme_get_transport_statistics` reports them.
    #[arg(long = "transport-stats")]
    pub transport_stats: bool,
}

/// Brings up DMA memory (hugepages unless `--no-huge`).
fn env_init(args: &BdevperfArgs) -> Result<(), String> {
    crate::dma_env::init("bdevperf", args.no_huge, args.mem_size)
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mul) = match t.strip_suffix(['k', 'm', 'g']) {
        Some(n) => (
            n,
            match t.chars().last() {
                Some('k') => 1 << 10,
                Some('m') => 1 << 20,
                _ => 1 << 30,
            },
        ),
        None => (t.as_str(), 1),
    };
    num.parse::<u64>()
        .map(|n| n * mul)
        .map_err(|_| format!("'{s}' is not a size (e.g. 4096 or 4k)"))
}

/// Runs bdevperf; `Ok(false)` when a verify mismatch or I/O error occurred.
pub fn run(args: BdevperfArgs) -> Result<bool, String> {
    let cores = CpuMask::parse(&args.cpumask)?;
    if cores.is_empty() {
        return Err("-m selects no core".into());
    }
    if args.queue_depth == 0 || args.io_size == 0 || args.time == 0 {
        return Err("-q, -o and -t must be positive".into());
    }
    let text = limits::read_config(&args.json, limits::MAX_CONFIG_BYTES)?;
    env_init(&args)?;
    bdev::init().map_err(|e| e.to_string())?;
    let result = lvol_setup::split(&text)
        .and_then(|(text, lvol)| {
            bdev::load_config(&text)
                .map(|_| lvol)
                .map_err(|e| e.to_string())
        })
        .map_err(|e| format!("{}: {e}", args.json.display()))
        .and_then(|lvol| run_jobs(&args, &cores, lvol));
    bdev::fini();
    spdk_io::env::fini();
    result
}

fn targets(args: &BdevperfArgs) -> Result<Vec<Arc<bdev::Bdev>>, String> {
    let all = bdev::bdevs();
    let t: Vec<_> =
        match &args.target {
            Some(n) => vec![bdev::get_by_name(n)
                .ok_or_else(|| format!("-T {n}: no such bdev in the config"))?],
            None => all
                .into_iter()
                .filter(|b| b.claimed_by().is_none())
                .collect(),
        };
    if t.is_empty() {
        return Err("no bdev to test: the config created none (or all are claimed)".into());
    }
    for b in &t {
        if args.io_size % (b.block_size() as u64) != 0 {
            return Err(format!(
                "-o {} is not a multiple of the block size {} of '{}'",
                args.io_size,
                b.block_size(),
                b.name()
            ));
        }
        if args.io_size / (b.block_size() as u64) > b.num_blocks() {
            return Err(format!(
                "-o {} is larger than bdev '{}'",
                args.io_size,
                b.name()
            ));
        }
    }
    Ok(t)
}

/// The queue depth of each job (a verify job's is at most the I/Os of its
/// share), checked against the memory available; sizes the channels'
/// request pools for them.
fn plan_memory(args: &BdevperfArgs, bdevs: &[Arc<bdev::Bdev>], parts: u64) -> Result<(), String> {
    let verify = args.workload == Workload::Verify;
    let mut depths = Vec::new();
    for b in bdevs {
        let io_blocks = args.io_size / u64::from(b.block_size());
        for k in 0..parts {
            let (_, span) = job::share(b.num_blocks(), io_blocks, (k, parts));
            let q = u64::from(args.queue_depth);
            depths.push(if verify { q.min(span) } else { q });
        }
    }
    let need = limits::needed_bytes(&depths, args.io_size, if verify { 2 } else { 1 });
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let avail = limits::available_bytes(&meminfo);
    limits::check_memory(need, avail, depths.len(), args.queue_depth, args.io_size)?;
    let deepest = depths.iter().copied().max().unwrap_or(1) as usize;
    // Room for every job's queue plus split pieces.
    bdev::set_io_pool_size(deepest * 2 + 64);
    Ok(())
}

fn run_jobs(
    args: &BdevperfArgs,
    cores: &CpuMask,
    lvol: Vec<lvol_setup::Entry>,
) -> Result<bool, String> {
    let core_list: Vec<usize> = cores.iter().collect();
    // SIGINT or SIGTERM end the run early, with its report (as SPDK's
    // bdevperf drains its jobs on shutdown); a second one ends the process.
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let armed = signal_hook::flag::register_conditional_shutdown(sig, 130, interrupted.clone())
            .and_then(|_| signal_hook::flag::register(sig, interrupted.clone()));
        if let Err(e) = armed {
            eprintln!(
                "bdevperf: cannot handle signal {sig} ({e}): it will end the run without a report"
            );
        }
    }
    let rs = ReactorSet::start(
        *cores,
        ReactorOpts {
            pin: true,
            idle_backoff: None,
            ..ReactorOpts::default()
        },
    )
    .map_err(|e| e.to_string())?;
    keep_off_reactor_cores(cores);
    // lvstores and lvols of the config, made on the first core's reactor.
    lvol_setup::run(&rs, core_list[0], lvol)?;
    let bdevs = targets(args)?;
    plan_memory(args, &bdevs, core_list.len() as u64)?;
    let (tx, rx) = mpsc::channel::<JobResult>();
    let mut shared = Vec::new();
    for b in &bdevs {
        for (k, &core) in core_list.iter().enumerate() {
            let s = Arc::new(Shared::new());
            let cfg = JobConfig {
                bdev: b.name().to_string(),
                core,
                part: (k as u64, core_list.len() as u64),
                queue_depth: args.queue_depth,
                io_size: args.io_size,
                workload: args.workload,
                rwmixread: args.rwmixread,
                time: Duration::from_secs(args.time),
                seed: args.seed ^ ((core as u64) << 32) ^ shared.len() as u64,
                breakdown: args.latency_breakdown,
            };
            let (s2, tx2) = (s.clone(), tx.clone());
            let opts = ThreadOpts {
                name: format!("bdevperf_{}_{core}", b.name()),
                cpumask: CpuMask::single(core),
                // A job's thread gets a few messages (its start, channel
                // and bdev events), not the default ring of 4096 (about
                // 100 KiB per job: 10,000 bdevs would hold 1 GB in rings).
                msg_ring_size: 256,
                ..ThreadOpts::default()
            };
            rs.spawn_thread(core, opts, move || job::start(cfg, s2, tx2))
                .map_err(|e| e.to_string())?;
            shared.push(s);
        }
    }
    drop(tx);
    let text = args.output_format == OutputFormat::Text;
    if text {
        println!("Running I/O for {} seconds...", args.time);
    }
    let start = Instant::now();
    let mut last = vec![0u64; shared.len()];
    let mut results = Vec::new();
    let mut next_progress = Duration::from_secs(1);
    let mut stopped = false;
    while results.len() < shared.len() {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(r) => results.push(r),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if !stopped && interrupted.load(Ordering::Relaxed) {
                    stopped = true;
                    eprintln!("bdevperf: interrupted: ending the run");
                    for s in &shared {
                        s.stop.store(true, Ordering::Relaxed);
                    }
                }
                if start.elapsed() < next_progress {
                    continue;
                }
                next_progress += Duration::from_secs(1);
                if text {
                    let now: Vec<u64> = shared
                        .iter()
                        .map(|s| s.completed.load(Ordering::Relaxed))
                        .collect();
                    let iops: u64 = now.iter().zip(&last).map(|(a, b)| a - b).sum();
                    let mib = iops as f64 * args.io_size as f64 / (1 << 20) as f64;
                    eprintln!(
                        "{:>8.2} s: {:>12.2} IOPS, {:>10.2} MiB/s",
                        start.elapsed().as_secs_f64(),
                        iops as f64,
                        mib
                    );
                    last = now;
                }
                if start.elapsed() > Duration::from_secs(args.time + 60) {
                    rs.stop();
                    return Err(
                        "jobs did not finish within 60 s after the run time: I/O is stuck".into(),
                    );
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    rs.stop();
    if results.len() < shared.len() {
        return Err(format!(
            "{} of {} jobs failed to start or finish",
            shared.len() - results.len(),
            shared.len()
        ));
    }
    results.sort_by_key(|a| (a.core, a.bdev.clone()));
    // As SPDK's bdevperf: with resets in the workload, failed I/O (aborted
    // by a reset) does not fail the run.
    let resets = args.workload == Workload::Reset;
    let ok = results
        .iter()
        .all(|r| r.error.is_none() && r.miscompares == 0 && (r.failed == 0 || resets));
    report::print(args, &results);
    if args.transport_stats {
        print_transport_stats(&bdevs);
    }
    Ok(ok)
}

/// Moves the calling (main) thread off the reactors' cores when the process
/// may run elsewhere: its wakeups (progress lines, signals, results) then
/// never preempt a reactor in the middle of a batch of completions. On a
/// machine with no other core it stays where it is.
fn keep_off_reactor_cores(reactors: &CpuMask) {
    use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
    let me = nix::unistd::Pid::from_raw(0);
    let Ok(allowed) = sched_getaffinity(me) else {
        return;
    };
    let mut rest = CpuSet::new();
    let mut any = false;
    for c in 0..CpuSet::count() {
        if allowed.is_set(c).unwrap_or(false) && !reactors.contains(c) && rest.set(c).is_ok() {
            any = true;
        }
    }
    if any {
        if let Err(e) = sched_setaffinity(me, &rest) {
            log::debug!("bdevperf: main thread stays on the reactors' cores: {e}");
        }
    }
}

/// Prints the transport counters of every nvme bdev among `bdevs` (their
/// channels have closed by now: the reactors stopped).
fn print_transport_stats(bdevs: &[Arc<bdev::Bdev>]) {
    for b in bdevs {
        let info = b.info_json();
        let Some(st) = info["driver_specific"]["nvme"].get("transport_stats") else {
            eprintln!(
                "bdevperf: '{}' is not an nvme bdev: no transport statistics",
                b.name()
            );
            continue;
        };
        println!("Transport statistics of {}: {st}", b.name());
    }
}
