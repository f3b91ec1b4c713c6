//! Command-line flags of `spdk-io perf`, spelled as `spdk_nvme_perf` spells them.

use clap::Args;

/// Options of `spdk-io perf`.
#[derive(Args, Debug)]
pub struct PerfArgs {
    /// I/Os kept in flight per namespace per core.
    #[arg(short = 'q', long = "io-depth")]
    queue_depth: u32,
    /// I/O size in bytes (suffixes k, m accepted: 4k, 128k).
    #[arg(short = 'o', long = "io-size")]
    io_size: String,
    /// Workload: read, write, randread, randwrite, rw, randrw.
    #[arg(short = 'w', long = "io-pattern")]
    workload: String,
    /// Percentage of reads for rw and randrw.
    #[arg(short = 'M', long = "rwmixread")]
    rwmixread: Option<u32>,
    /// Run time in seconds.
    #[arg(short = 't', long = "time")]
    seconds: u64,
    /// Transport ID of a controller (repeatable). Default: every NVMe bound
    /// to vfio-pci or uio_pci_generic.
    #[arg(short = 'r', long = "transport")]
    pub(crate) trid: Vec<String>,
    /// Core mask in hex: one pinned thread with its own qpair(s) per core.
    #[arg(short = 'c', long = "core-mask", default_value = "0x1")]
    core_mask: String,
    /// Report latency percentiles (-L) or also a histogram summary (-LL).
    #[arg(short = 'L', long = "enable-sw-latency-tracking", action = clap::ArgAction::Count)]
    latency: u8,
    /// Output format: `text` or `json`.
    #[arg(long = "output-format", default_value = "text")]
    output_format: String,
    /// Do not use the shadow doorbell buffer even if the controller offers it.
    #[arg(long = "no-shadow-doorbell", conflicts_with = "shadow_doorbell")]
    pub(crate) no_shadow_doorbell: bool,
    /// Use the shadow doorbell buffer even on a controller known to spend
    /// more on it than it saves (QEMU's), to measure it.
    #[arg(long = "shadow-doorbell")]
    pub(crate) shadow_doorbell: bool,
    /// Describe buffers with PRP lists even if the controller supports SGLs.
    #[arg(long = "no-sgl")]
    pub(crate) no_sgl: bool,
    /// Ring the SQ doorbell after every command instead of once per batch.
    #[arg(long = "no-batch")]
    no_batch: bool,
    /// Ring the SQ doorbell as soon as N submissions of a batch wait for
    /// it, not only once the batch is queued (0: once per batch).
    #[arg(long = "ring-every", default_value_t = 0, conflicts_with = "no_batch")]
    ring_every: u16,
    /// Account completed I/Os before resubmitting (with a second clock
    /// read) instead of after the doorbell: the loop's earlier order, kept
    /// for measuring.
    #[arg(long = "account-before-submit")]
    account_before_submit: bool,
    /// Submission/completion queue entries per qpair (default: enough for -q).
    #[arg(long = "io-queue-size")]
    io_queue_size: Option<u32>,
    /// I/O queue pairs per namespace per core (spdk_nvme_perf's -P): the
    /// `-q` I/Os in flight are spread over them.
    /// Given twice, the last one counts (as in spdk_nvme_perf).
    #[arg(
        short = 'P',
        long = "num-qpairs",
        default_value_t = 1,
        overrides_with = "num_qpairs"
    )]
    num_qpairs: u32,
    /// Completions reaped per poll of a queue pair at most (spdk_nvme_perf's
    /// -C; 0: all that are posted). Each poll resubmits what it reaped and
    /// rings once, so a cap splits a queue's refills into smaller batches.
    #[arg(short = 'C', long = "max-completion-per-poll", default_value_t = 0)]
    max_completions: u32,
    /// Time each queue pair's round trips: the thread's reap and submit
    /// time per batch against the wait from its SQ doorbell to the next
    /// completions (mean, p50, p99; in the JSON output as `timeline`).
    /// Costs one more clock read per poll.
    #[arg(long = "timeline", conflicts_with = "account_before_submit")]
    timeline: bool,
    /// Print each qpair's transport counters (polls, MMIO and shadow
    /// doorbell writes) after the run; JSON output always has them.
    #[arg(long = "transport-stats")]
    transport_stats: bool,
    /// Print the driver's debug log on stderr (SPDK's `-G`): connection
    /// setup, and each queue pair's state when a run ends with I/O in flight.
    #[arg(short = 'G', long = "enable-debug")]
    pub(crate) debug: bool,
}

/// The I/O pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Sequential offsets.
    Sequential,
    /// Uniform random offsets aligned to the I/O size.
    Random,
}

/// Validated run settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub queue_depth: u32,
    pub io_size: usize,
    pub workload: String,
    pub pattern: Pattern,
    /// Percentage of reads (100 read-only, 0 write-only).
    pub read_pct: u32,
    pub seconds: u64,
    pub cores: Vec<usize>,
    pub latency: u8,
    pub json: bool,
    pub batch: bool,
    /// Submissions per SQ doorbell within a batch (0: one per batch).
    pub ring_every: u16,
    /// Account completions before resubmitting (the earlier loop order).
    pub account_first: bool,
    pub io_queue_size: u32,
    pub transport_stats: bool,
    /// Queue pairs per namespace per core.
    pub num_qpairs: u32,
    /// Completions reaped per poll at most (0: no limit).
    pub max_completions: u32,
    /// Keep a per-batch timeline of each queue pair (`--timeline`).
    pub timeline: bool,
}

fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1024),
        Some('m') => (&t[..t.len() - 1], 1024 * 1024),
        _ => (t.as_str(), 1),
    };
    num.parse::<usize>()
        .map(|n| n * mul)
        .map_err(|_| format!("bad I/O size {s:?}: give bytes, e.g. 4096 or 128k"))
}

impl PerfArgs {
    /// Checks the flags and derives the run configuration.
    pub fn validate(&self) -> Result<Config, String> {
        if self.queue_depth == 0 {
            return Err("-q must be at least 1".into());
        }
        let io_size = parse_size(&self.io_size)?;
        if io_size == 0 || io_size % 512 != 0 {
            return Err(format!(
                "-o {io_size}: the I/O size must be a non-zero multiple of 512"
            ));
        }
        let (pattern, default_pct) = match self.workload.as_str() {
            "read" => (Pattern::Sequential, 100),
            "write" => (Pattern::Sequential, 0),
            "randread" => (Pattern::Random, 100),
            "randwrite" => (Pattern::Random, 0),
            "rw" => (Pattern::Sequential, 50),
            "randrw" => (Pattern::Random, 50),
            w => {
                return Err(format!(
                    "-w {w:?}: use read, write, randread, randwrite, rw or randrw"
                ))
            }
        };
        let mixed = self.workload.ends_with("rw");
        let read_pct = match (mixed, self.rwmixread) {
            (true, Some(m)) if m <= 100 => m,
            (true, Some(m)) => return Err(format!("-M {m}: give a percentage 0..=100")),
            (true, None) => {
                return Err("-M (read percentage) is required with rw and randrw".into())
            }
            (false, _) => default_pct,
        };
        if self.num_qpairs == 0 || self.num_qpairs > self.queue_depth {
            return Err(format!(
                "-P {}: give 1 to -q ({}) queue pairs, each with at least one I/O in flight",
                self.num_qpairs, self.queue_depth
            ));
        }
        if self.seconds == 0 {
            return Err("-t must be at least 1 second".into());
        }
        let mask = u64::from_str_radix(self.core_mask.trim_start_matches("0x"), 16)
            .map_err(|_| format!("-c {:?}: give a hex core mask such as 0x3", self.core_mask))?;
        let cores: Vec<usize> = (0..64).filter(|i| mask & (1 << i) != 0).collect();
        if cores.is_empty() {
            return Err("-c: the core mask selects no core".into());
        }
        let json = match self.output_format.as_str() {
            "json" => true,
            "text" => false,
            o => return Err(format!("--output-format {o:?}: use text or json")),
        };
        // Enough entries for the deepest queue pair's share of -q.
        let per_qpair = self.queue_depth.div_ceil(self.num_qpairs);
        let io_queue_size = self
            .io_queue_size
            .unwrap_or((per_qpair + 1).next_power_of_two().max(64));
        Ok(Config {
            queue_depth: self.queue_depth,
            io_size,
            workload: self.workload.clone(),
            pattern,
            read_pct,
            seconds: self.seconds,
            cores,
            latency: self.latency,
            json,
            batch: !self.no_batch,
            ring_every: self.ring_every,
            account_first: self.account_before_submit,
            io_queue_size,
            transport_stats: self.transport_stats,
            num_qpairs: self.num_qpairs,
            max_completions: self.max_completions,
            timeline: self.timeline,
        })
    }
}
