//! What a bdevperf job is told (its config, its share of the bdev) and
//! what it hands back (progress while it runs, its figures at the end).

use super::Workload;
use spdk_io::util::histogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

/// What a job is told to do (sent to its thread).
pub struct JobConfig {
    pub bdev: String,
    pub core: usize,
    /// This job's share of the bdev: (index, count) among the jobs on it.
    pub part: (u64, u64),
    pub queue_depth: u32,
    pub io_size: u64,
    pub workload: Workload,
    pub rwmixread: u32,
    pub time: Duration,
    pub seed: u64,
    /// Keep a latency breakdown (`--latency-breakdown`).
    pub breakdown: bool,
}

/// What the main thread and a job share: the job's progress, and the
/// main thread's request to end the run early (SIGINT).
pub struct Shared {
    pub completed: AtomicU64,
    pub stop: AtomicBool,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            completed: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }
}

/// I/Os of `io_blocks` blocks in a bdev of `num_blocks`, and the
/// (first, count) of them that job `k` of `n` on the bdev owns.
pub fn share(num_blocks: u64, io_blocks: u64, (k, n): (u64, u64)) -> (u64, u64) {
    let total_ios = num_blocks / io_blocks.max(1);
    let base = total_ios * k / n;
    (base, (total_ios * (k + 1) / n - base).max(1))
}

/// A finished job's figures.
pub struct JobResult {
    pub bdev: String,
    pub core: usize,
    /// The queue depth the job ran at (a verify job's may be below `-q`).
    pub queue_depth: u32,
    pub runtime: f64,
    pub ios: u64,
    pub failed: u64,
    pub miscompares: u64,
    pub lat_sum_ns: u64,
    pub lat_min_ns: u64,
    pub lat_max_ns: u64,
    pub hist: Histogram,
    pub error: Option<String>,
    /// CPU time the job's reactor thread ran during the job (from
    /// /proc/thread-self/schedstat; 0 where unavailable).
    pub cpu_ns: u64,
    /// Time the job's reactor thread was runnable but not running (waiting
    /// for the CPU: preempted) during the job; 0 where unavailable. Where
    /// the latency tail's time goes when the core is shared.
    pub wait_ns: u64,
    /// The latency breakdown, rendered (`--latency-breakdown`).
    pub breakdown: Option<String>,
}
