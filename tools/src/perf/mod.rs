//! `spdk-io perf`: SPDK's `spdk_nvme_perf` on the spdk-io driver.
//!
//! One OS thread per core of the core mask, pinned; on each, one I/O qpair
//! per namespace, `-q` I/Os kept in flight, submissions batched behind one
//! doorbell per poll. Latency in SPDK's histogram buckets; clock read once per batch.

mod args;
mod report;
mod timeline;
mod worker;

pub use args::PerfArgs;

use report::{NsResult, Progress};
use spdk_io::env::{self, EnvOpts};
use spdk_io::event::log;
use spdk_io::nvme::{self, ControllerOpts, TransportId};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Runs `spdk-io perf`.
pub fn run(args: PerfArgs) -> ExitCode {
    let cfg = match args.validate() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("perf: {e}");
            return ExitCode::from(2);
        }
    };
    let mut trids = Vec::new();
    for s in &args.trid {
        match s.parse::<TransportId>() {
            Ok(t) => trids.push(t),
            Err(e) => {
                eprintln!("perf: {e}");
                return ExitCode::from(2);
            }
        }
    }
    // Errors of the driver (a connection lost, a PDU refused) print on
    // stderr; -G adds its debug records.
    log::init();
    if args.debug {
        log::set_print_level(log::Level::Debug);
        log::set_flag("nvme");
        log::set_flag("app");
    }
    if let Err(e) = env::init(EnvOpts::default()) {
        eprintln!("perf: {e}");
        return ExitCode::FAILURE;
    }
    let copts = ControllerOpts {
        shadow_doorbell: !args.no_shadow_doorbell,
        shadow_doorbell_always: args.shadow_doorbell,
        use_sgl: !args.no_sgl,
        num_io_queues: (cfg.cores.len() * (cfg.num_qpairs as usize).max(4)).clamp(1, 1024) as u16,
        ..ControllerOpts::default()
    };
    let ctrlrs = match nvme::connect_all(&trids, &copts) {
        Ok(c) if c.is_empty() => {
            eprintln!("perf: no NVMe controller bound to vfio-pci or uio_pci_generic: run `spdk-io setup` first");
            return ExitCode::FAILURE;
        }
        Ok(c) => c,
        Err(e) => {
            eprintln!("perf: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut targets = Vec::new();
    for c in &ctrlrs {
        for ns in c.namespaces() {
            if let Err(why) = ns.check_block_io() {
                eprintln!("perf: skipping {} NSID {}: {why}", c.trid(), ns.id());
                continue;
            }
            if (ns.size_bytes() as usize) < cfg.io_size {
                eprintln!(
                    "perf: skipping {} NSID {}: smaller than one I/O",
                    c.trid(),
                    ns.id()
                );
                continue;
            }
            if cfg.io_size % ns.block_size() as usize != 0 {
                eprintln!(
                    "perf: skipping {} NSID {}: I/O size {} is not a multiple of its {} byte blocks",
                    c.trid(), ns.id(), cfg.io_size, ns.block_size()
                );
                continue;
            }
            targets.push((c, ns));
        }
    }
    if targets.is_empty() {
        eprintln!("perf: no namespace to test");
        return ExitCode::FAILURE;
    }
    if !cfg.json {
        eprintln!(
            "Initializing NVMe controllers... {} controller(s), {} namespace(s), shadow doorbells {}",
            ctrlrs.len(),
            targets.len(),
            if ctrlrs.iter().any(|c| c.shadow_doorbells_enabled()) { "on" } else { "off" }
        );
        eprintln!("Initialization complete. Launching workers.");
    }
    let stop = AtomicBool::new(false);
    let progress = Progress::new(cfg.cores.len());
    // The workers and this thread: the clock starts when every worker has
    // connected its queue pairs.
    let ready = Barrier::new(cfg.cores.len() + 1);
    let results: Vec<Result<Vec<NsResult>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = cfg
            .cores
            .iter()
            .enumerate()
            .map(|(slot, &core)| {
                let targets = &targets;
                let cfg = &cfg;
                let stop = &stop;
                let progress = &progress;
                let ready = &ready;
                s.spawn(move || worker::run(slot, core, targets, cfg, stop, progress, ready))
            })
            .collect();
        ready.wait();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(cfg.seconds);
        let show = !cfg.json && cfg.seconds > 3;
        let mut last = progress.snapshot();
        let mut last_t = start;
        while Instant::now() < deadline && !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(
                Duration::from_millis(100).min(deadline - Instant::now().min(deadline)),
            );
            if show && last_t.elapsed() >= Duration::from_secs(1) {
                let now = progress.snapshot();
                let dt = last_t.elapsed().as_secs_f64();
                let ios = (now.0 - last.0) as f64 / dt;
                let mib = (now.1 - last.1) as f64 / dt / 1048576.0;
                eprintln!(
                    "[{:4}s] IOPS: {:>12.2}  MiB/s: {:>10.2}",
                    start.elapsed().as_secs(),
                    ios,
                    mib
                );
                last = now;
                last_t = Instant::now();
            }
        }
        stop.store(true, Ordering::Release);
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("worker panicked".into())))
            .collect()
    });
    let mut all = Vec::new();
    for r in results {
        match r {
            Ok(v) => all.extend(v),
            Err(e) => {
                eprintln!("perf: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    report::print(&all, &cfg);
    if all.iter().any(|r| r.errors > 0) {
        eprintln!("perf: some I/O failed (see errors above)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
