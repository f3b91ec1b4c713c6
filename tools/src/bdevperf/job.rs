//! One bdevperf job: a bdev driven at queue depth `-q` from one lightweight
//! thread. Each in-flight I/O is a preallocated [`Task`] that owns its
//! buffers and resubmits itself from its completion, so the steady state
//! allocates nothing.

use super::breakdown::{Breakdown, Sample};
use super::outstanding::Outstanding;
use super::task::{Phase, Task};
use super::Workload;
use spdk_io::bdev::{self, Channel, Desc, IoBuf, IoCompletion, IoData, IoType};
use spdk_io::thread::{poller_register, ticks, Poller, PollerStatus};
use spdk_io::util::histogram::Histogram;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};

pub use super::spec::{share, JobConfig, JobResult, Shared};

/// The calling OS thread's (CPU time, run-queue wait) in ns, from the
/// scheduler's accounting (/proc/thread-self/schedstat); zeros where
/// unavailable.
fn thread_sched_ns() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let mut f = s.split_whitespace().map(|v| v.parse::<u64>().unwrap_or(0));
    (f.next().unwrap_or(0), f.next().unwrap_or(0))
}

pub(crate) struct Job {
    pub(crate) cfg: JobConfig,
    pub(crate) desc: Desc,
    pub(crate) ch: Channel,
    pub(crate) block_size: usize,
    pub(crate) io_blocks: u64,
    pub(crate) base_io: u64,
    pub(crate) span_ios: u64,
    /// Offsets are random (otherwise sequential).
    pub(crate) random: bool,
    /// The I/O type of every I/O, for the workloads of one type that move
    /// data (read, randread, reset, write, randwrite): the fast path.
    pub(crate) plain: Option<IoType>,
    pub(crate) next_io: Cell<u64>,
    pub(crate) rng: Cell<u64>,
    pub(crate) seq: Cell<u64>,
    pub(crate) stopping: Cell<bool>,
    /// The steady state of a plain workload (see [`Job::plain`]) without
    /// `--latency-breakdown`: its I/O type while the job is not stopping,
    /// so a completion makes one test before it records and resubmits.
    pub(crate) steady: Cell<Option<IoType>>,
    pub(crate) outstanding: Cell<u32>,
    pub(crate) ios: Cell<u64>,
    pub(crate) failed: Cell<u64>,
    pub(crate) miscompares: Cell<u64>,
    pub(crate) lat_sum: Cell<u64>,
    /// Every latency recorded (its minimum and maximum are the job's).
    pub(crate) hist: RefCell<Histogram>,
    /// Verify: one bit per I/O of the job's share, set while an I/O there
    /// is in flight, so no two in-flight I/Os overlap (SPDK's
    /// `job->outstanding`). `None` for the other workloads.
    pub(crate) busy: Option<RefCell<Outstanding>>,
    /// Run-length of equal latencies not yet in `hist` (completions of one
    /// poll share their tick, so runs are common): (value, count).
    pub(crate) pending_lat: Cell<(u64, u64)>,
    /// When the run started: after every task's buffers were allocated.
    pub(crate) start: Cell<u64>,
    /// (CPU time, run-queue wait) of the reactor thread at the start and
    /// the end of the run.
    pub(crate) start_cpu: Cell<(u64, u64)>,
    pub(crate) stop_cpu: Cell<(u64, u64)>,
    pub(crate) stop_at: Cell<u64>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) tx: mpsc::Sender<JobResult>,
    pub(crate) poller: RefCell<Option<Poller>>,
    pub(crate) error: RefCell<Option<String>>,
    /// `--latency-breakdown`: where the latency goes (boxed: one word
    /// beside the fields every I/O touches).
    pub(crate) breakdown: Option<Box<Breakdown>>,
}

/// Starts a job on the current lightweight thread (its first message).
pub fn start(cfg: JobConfig, shared: Arc<Shared>, tx: mpsc::Sender<JobResult>) {
    let fail = |tx: &mpsc::Sender<JobResult>, cfg: &JobConfig, e: String| {
        let _ = tx.send(JobResult {
            bdev: cfg.bdev.clone(),
            core: cfg.core,
            queue_depth: cfg.queue_depth,
            runtime: 0.0,
            ios: 0,
            failed: 0,
            miscompares: 0,
            lat_sum_ns: 0,
            lat_min_ns: 0,
            lat_max_ns: 0,
            hist: Histogram::new(),
            error: Some(e),
            cpu_ns: 0,
            wait_ns: 0,
            breakdown: None,
        });
    };
    let writes = !matches!(cfg.workload, Workload::Read | Workload::Randread);
    let opened = bdev::open(&cfg.bdev, writes).and_then(|d| d.get_io_channel().map(|c| (d, c)));
    let (desc, ch) = match opened {
        Ok(x) => x,
        Err(e) => return fail(&tx, &cfg, format!("{}: {e}", cfg.bdev)),
    };
    let b = desc.bdev().clone();
    let block_size = b.block_size() as usize;
    let io_blocks = cfg.io_size / block_size as u64;
    let (base_io, span_ios) = share(b.num_blocks(), io_blocks, cfg.part);
    let verify = cfg.workload == Workload::Verify;
    let mut cfg = cfg;
    if verify && u64::from(cfg.queue_depth) > span_ios {
        eprintln!(
            "bdevperf: a verify job never has two I/Os in flight on the same blocks, so its queue depth (-q {}) cannot exceed the {span_ios} I/Os of -o {} that fit in its share of '{}': queue depth limited to {span_ios}",
            cfg.queue_depth, cfg.io_size, cfg.bdev
        );
        cfg.queue_depth = span_ios as u32;
    }
    let busy = verify.then(|| RefCell::new(Outstanding::new(span_ios)));
    let now = ticks();
    let job = Rc::new(Job {
        desc,
        ch,
        block_size,
        io_blocks,
        base_io,
        span_ios,
        random: cfg.workload.random(),
        plain: cfg.workload.single_type().filter(|t| t.has_data()),
        next_io: Cell::new(0),
        rng: Cell::new(cfg.seed | 1),
        seq: Cell::new(0),
        stopping: Cell::new(false),
        steady: Cell::new(
            cfg.workload
                .single_type()
                .filter(|t| t.has_data() && !cfg.breakdown),
        ),
        outstanding: Cell::new(0),
        ios: Cell::new(0),
        failed: Cell::new(0),
        miscompares: Cell::new(0),
        lat_sum: Cell::new(0),
        hist: RefCell::new(Histogram::new()),
        busy,
        pending_lat: Cell::new((0, 0)),
        start: Cell::new(now),
        start_cpu: Cell::new(thread_sched_ns()),
        stop_cpu: Cell::new((0, 0)),
        stop_at: Cell::new(now + cfg.time.as_nanos() as u64),
        shared,
        tx,
        poller: RefCell::new(None),
        error: RefCell::new(None),
        breakdown: cfg.breakdown.then(|| Box::new(Breakdown::new())),
        cfg,
    });
    let j = job.clone();
    let p = poller_register("bdevperf_job", 10_000, move || j.tick());
    match p {
        Ok(p) => *job.poller.borrow_mut() = Some(p),
        Err(e) => return fail(&job.tx, &job.cfg, format!("poller: {e}")),
    }
    let tasks: Vec<Box<Task>> = (0..job.cfg.queue_depth)
        .map(|_| {
            Box::new(Task {
                job: job.clone(),
                buf: Some(job.new_buf()),
                wbuf: verify.then(|| job.new_buf()),
                phase: Phase::Io,
                offset_blocks: 0,
                sub: Sample::default(),
            })
        })
        .collect();
    // The clock starts when the I/O does: allocating the buffers is setup.
    let now = ticks();
    job.start.set(now);
    job.start_cpu.set(thread_sched_ns());
    job.stop_at.set(now + job.cfg.time.as_nanos() as u64);
    for task in tasks {
        job.outstanding.set(job.outstanding.get() + 1);
        task.next(&job);
    }
}

impl Job {
    /// A data buffer for one task: DMA memory (hugepages), as SPDK's
    /// bdevperf allocates, so the nvme bdev moves it without a bounce copy;
    /// heap memory if the DMA heap is exhausted.
    pub(crate) fn new_buf(&self) -> IoBuf {
        let len = self.cfg.io_size as usize;
        IoBuf::dma(len, 4096).unwrap_or_else(|e| {
            log::warn!("bdevperf: {e}; using heap buffers");
            IoBuf::new(len)
        })
    }

    /// `data` as a plain I/O's data: a buffer handed back is used again;
    /// anything else (no buffer yet) gets a new one.
    #[inline(always)]
    pub(crate) fn with_buf(&self, data: IoData) -> IoData {
        match data {
            IoData::Buf(_) => data,
            other => self.replace_data(other),
        }
    }

    #[cold]
    #[inline(never)]
    fn replace_data(&self, other: IoData) -> IoData {
        drop(other);
        IoData::Buf(self.new_buf())
    }

    /// [`Job::with_buf`] in place: `data` keeps a buffer handed back, and
    /// gets a new one otherwise.
    #[inline(always)]
    pub(crate) fn fill_buf(&self, data: &mut IoData) {
        if !matches!(data, IoData::Buf(_)) {
            self.put_new_buf(data)
        }
    }

    #[cold]
    #[inline(never)]
    fn put_new_buf(&self, data: &mut IoData) {
        *data = IoData::Buf(self.new_buf());
    }

    /// Timed poller: publishes progress, ends the run, issues resets.
    pub(crate) fn tick(&self) -> PollerStatus {
        self.shared
            .completed
            .store(self.completed(), Ordering::Relaxed);
        let interrupted = self.shared.stop.load(Ordering::Relaxed);
        if !self.stopping.get() && (interrupted || ticks() >= self.stop_at.get()) {
            self.stop();
            self.stop_at.set(ticks());
            self.stop_cpu.set(thread_sched_ns());
        }
        if self.cfg.workload == Workload::Reset && !self.stopping.get() {
            let since = (ticks() - self.start.get()) / 1_000_000_000;
            if since > self.seq.get() {
                self.seq.set(since);
                let r = self.desc.reset(
                    &self.ch,
                    Box::new(|c: IoCompletion| {
                        if !c.success() {
                            log::warn!("bdevperf: reset completed with {:?}", c.status);
                        }
                    }),
                );
                if let Err(e) = r {
                    log::warn!("bdevperf: reset not submitted: {e}");
                }
            }
        }
        PollerStatus::Idle
    }

    /// The next pseudo-random number (wyrand: a Weyl sequence through one
    /// 64×64→128 multiply; it passes BigCrush and costs a handful of
    /// instructions per I/O).
    #[inline]
    pub(crate) fn rand(&self) -> u64 {
        let x = self.rng.get().wrapping_add(0xa076_1d64_78bd_642f);
        self.rng.set(x);
        let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
        (t >> 64) as u64 ^ t as u64
    }

    #[inline(always)]
    pub(crate) fn next_offset(&self, random: bool) -> u64 {
        let io = if random {
            // Lemire's multiply-shift range reduction: no division per I/O.
            ((self.rand() as u128 * self.span_ios as u128) >> 64) as u64
        } else {
            let n = self.next_sequential();
            match &self.busy {
                Some(busy) => self.claim_free(&mut busy.borrow_mut(), n),
                None => n,
            }
        };
        (self.base_io + io) * self.io_blocks
    }

    #[inline]
    fn next_sequential(&self) -> u64 {
        let n = self.next_io.get();
        self.next_io
            .set(if n + 1 >= self.span_ios { 0 } else { n + 1 });
        n
    }

    /// Verify: from I/O `n` on, the first one with nothing in flight (as
    /// SPDK's bdevperf skips outstanding offsets), marked busy. The queue
    /// depth is at most the share's I/Os, so a free one exists among the
    /// next `span_ios`.
    fn claim_free(&self, busy: &mut Outstanding, n: u64) -> u64 {
        busy.claim(n, self.span_ios, || self.next_sequential())
            .unwrap_or_else(|| {
                // Unreachable while depth <= span_ios.
                log::error!(
                    "bdevperf {}: no free offset for a verify I/O",
                    self.cfg.bdev
                );
                n
            })
    }

    /// Verify: the I/O at `offset_blocks` is no longer in flight.
    pub(crate) fn release(&self, offset_blocks: u64) {
        if let Some(busy) = &self.busy {
            busy.borrow_mut()
                .release(offset_blocks / self.io_blocks - self.base_io);
        }
    }

    /// Stops the job: no I/O is recorded or submitted from now on.
    pub(crate) fn stop(&self) {
        self.stopping.set(true);
        self.steady.set(None);
    }

    /// Records a successful I/O of the steady state (the checks of
    /// [`Job::record`] made by the caller's one test of `steady`).
    #[inline(always)]
    pub(crate) fn record_ok(&self, c: &IoCompletion) {
        let lat = c.latency_ticks();
        // Counted with the run (`flush_lat`): the I/Os, their latencies'
        // sum and the histogram.
        let (v, n) = self.pending_lat.get();
        if v == lat {
            self.pending_lat.set((v, n + 1));
        } else {
            self.flush_lat();
            self.pending_lat.set((lat, 1));
        }
    }

    #[inline]
    pub(crate) fn record(&self, c: &IoCompletion) {
        if self.stopping.get() {
            return;
        }
        if !c.success() {
            self.failed.set(self.failed.get() + 1);
            return;
        }
        // The minimum and maximum are the histogram's: no compare here.
        self.record_ok(c)
    }

    /// [`Job::record`], and with `--latency-breakdown` the I/O's class
    /// (`sub`: the breakdown's sample when it was submitted).
    #[inline(always)]
    pub(crate) fn record_io(&self, c: &IoCompletion, sub: Sample) {
        if self.breakdown.is_some() {
            return self.record_breakdown(c, sub);
        }
        self.record(c)
    }

    /// [`Job::record_io`] with `--latency-breakdown`: off the I/O path
    /// of an ordinary run.
    #[cold]
    #[inline(never)]
    fn record_breakdown(&self, c: &IoCompletion, sub: Sample) {
        let Some(b) = &self.breakdown else {
            return self.record(c);
        };
        let entered = Breakdown::clock();
        self.record(c);
        if !self.stopping.get() && c.success() {
            b.complete(
                sub,
                c.complete_tick,
                c.latency_ticks(),
                entered,
                Breakdown::clock(),
            );
        }
    }

    /// `--latency-breakdown`: the sample an I/O submitted now is compared
    /// against at completion.
    #[cold]
    #[inline(never)]
    pub(crate) fn breakdown_sample(&self) -> Sample {
        self.breakdown
            .as_ref()
            .map_or_else(Sample::default, |b| b.at_submit())
    }

    /// Counts the run of equal latencies not counted yet: the I/Os, the
    /// sum of their latencies, the histogram.
    pub(crate) fn flush_lat(&self) {
        let (v, n) = self.pending_lat.replace((0, 0));
        if n > 0 {
            self.ios.set(self.ios.get() + n);
            self.lat_sum.set(self.lat_sum.get() + v * n);
            self.hist.borrow_mut().tally_n(v, n);
        }
    }

    /// The I/Os completed so far, the run not counted yet included.
    pub(crate) fn completed(&self) -> u64 {
        self.ios.get() + self.pending_lat.get().1
    }

    pub(crate) fn task_done(&self) {
        let left = self.outstanding.get() - 1;
        self.outstanding.set(left);
        if left == 0 {
            self.finish();
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(p) = self.poller.borrow_mut().take() {
            p.unregister();
        }
        self.flush_lat();
        self.shared
            .completed
            .store(self.ios.get(), Ordering::Relaxed);
        let end = if self.stopping.get() {
            self.stop_at.get()
        } else {
            ticks()
        };
        let hist = std::mem::take(&mut *self.hist.borrow_mut());
        let (start, stop) = (
            self.start_cpu.get(),
            if self.stopping.get() {
                self.stop_cpu.get()
            } else {
                thread_sched_ns()
            },
        );
        let _ = self.tx.send(JobResult {
            bdev: self.cfg.bdev.clone(),
            core: self.cfg.core,
            queue_depth: self.cfg.queue_depth,
            runtime: end.saturating_sub(self.start.get()) as f64 / 1e9,
            ios: self.ios.get(),
            failed: self.failed.get(),
            miscompares: self.miscompares.get(),
            lat_sum_ns: self.lat_sum.get(),
            lat_min_ns: hist.min(),
            lat_max_ns: hist.max(),
            hist,
            error: self.error.borrow_mut().take(),
            cpu_ns: stop.0.saturating_sub(start.0),
            wait_ns: stop.1.saturating_sub(start.1),
            breakdown: self.breakdown.as_ref().map(|b| b.render(&self.cfg.bdev)),
        });
    }
}
