//! One bdevperf job: a bdev driven at queue depth `-q` from one lightweight
//! thread. Each in-flight I/O is a preallocated [`Task`] that owns its
//! buffers and resubmits itself from its completion, so the steady state
//! allocates nothing.

use super::pattern;
use super::Workload;
use hdrhistogram::Histogram;
use spdk_io::bdev::{self, BdevError, Channel, Desc, IoBuf, IoCompletion, IoDone, IoType};
use spdk_io::thread::{poller_register, ticks, Poller, PollerStatus};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
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
}

/// Progress counters the main thread reads.
pub struct Shared {
    pub completed: AtomicU64,
}

impl Shared {
    pub fn new(_bdev: &str, _core: usize) -> Shared {
        Shared {
            completed: AtomicU64::new(0),
        }
    }
}

/// A finished job's figures.
pub struct JobResult {
    pub bdev: String,
    pub core: usize,
    pub runtime: f64,
    pub ios: u64,
    pub failed: u64,
    pub miscompares: u64,
    pub lat_sum_ns: u64,
    pub lat_min_ns: u64,
    pub lat_max_ns: u64,
    pub hist: Histogram<u64>,
    pub error: Option<String>,
    /// CPU time the job's reactor thread ran during the job (from
    /// /proc/thread-self/schedstat; 0 where unavailable).
    pub cpu_ns: u64,
}

/// CPU time of the calling OS thread in ns, from the scheduler's accounting.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

struct Job {
    cfg: JobConfig,
    desc: Desc,
    ch: Channel,
    block_size: usize,
    io_blocks: u64,
    base_io: u64,
    span_ios: u64,
    next_io: Cell<u64>,
    rng: Cell<u64>,
    seq: Cell<u64>,
    stopping: Cell<bool>,
    outstanding: Cell<u32>,
    ios: Cell<u64>,
    failed: Cell<u64>,
    miscompares: Cell<u64>,
    lat_sum: Cell<u64>,
    lat_min: Cell<u64>,
    lat_max: Cell<u64>,
    hist: RefCell<Histogram<u64>>,
    /// Run-length of equal latencies not yet in `hist` (completions of one
    /// poll share their tick, so runs are common): (value, count).
    pending_lat: Cell<(u64, u64)>,
    start: u64,
    start_cpu: u64,
    stop_cpu: Cell<u64>,
    stop_at: Cell<u64>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<JobResult>,
    poller: RefCell<Option<Poller>>,
    error: RefCell<Option<String>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A plain I/O of the workload.
    Io,
    /// Verify: the pattern write is in flight.
    VerifyWrite,
    /// Verify: the read-back is in flight.
    VerifyRead,
}

struct Task {
    job: Rc<Job>,
    /// The data buffer while no I/O holds it.
    buf: Option<IoBuf>,
    /// Verify: the written pattern, kept to compare the read-back against.
    wbuf: Option<IoBuf>,
    phase: Phase,
    offset_blocks: u64,
}

/// Starts a job on the current lightweight thread (its first message).
pub fn start(cfg: JobConfig, shared: Arc<Shared>, tx: mpsc::Sender<JobResult>) {
    let fail = |tx: &mpsc::Sender<JobResult>, cfg: &JobConfig, e: String| {
        let _ = tx.send(JobResult {
            bdev: cfg.bdev.clone(),
            core: cfg.core,
            runtime: 0.0,
            ios: 0,
            failed: 0,
            miscompares: 0,
            lat_sum_ns: 0,
            lat_min_ns: 0,
            lat_max_ns: 0,
            hist: Histogram::new(3).expect("3 significant figures is valid"),
            error: Some(e),
            cpu_ns: 0,
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
    let total_ios = b.num_blocks() / io_blocks;
    let (k, n) = cfg.part;
    let base_io = total_ios * k / n;
    let span_ios = (total_ios * (k + 1) / n - base_io).max(1);
    let hist = match Histogram::new_with_bounds(1, 3_600_000_000_000, 3) {
        Ok(h) => h,
        Err(e) => return fail(&tx, &cfg, format!("histogram: {e}")),
    };
    let now = ticks();
    let job = Rc::new(Job {
        desc,
        ch,
        block_size,
        io_blocks,
        base_io,
        span_ios,
        next_io: Cell::new(0),
        rng: Cell::new(cfg.seed | 1),
        seq: Cell::new(0),
        stopping: Cell::new(false),
        outstanding: Cell::new(0),
        ios: Cell::new(0),
        failed: Cell::new(0),
        miscompares: Cell::new(0),
        lat_sum: Cell::new(0),
        lat_min: Cell::new(u64::MAX),
        lat_max: Cell::new(0),
        hist: RefCell::new(hist),
        pending_lat: Cell::new((0, 0)),
        start: now,
        start_cpu: thread_cpu_ns(),
        stop_cpu: Cell::new(0),
        stop_at: Cell::new(now + cfg.time.as_nanos() as u64),
        shared,
        tx,
        poller: RefCell::new(None),
        error: RefCell::new(None),
        cfg,
    });
    let j = job.clone();
    let p = poller_register("bdevperf_job", 10_000, move || j.tick());
    match p {
        Ok(p) => *job.poller.borrow_mut() = Some(p),
        Err(e) => return fail(&job.tx, &job.cfg, format!("poller: {e}")),
    }
    let verify = job.cfg.workload == Workload::Verify;
    for _ in 0..job.cfg.queue_depth {
        let task = Box::new(Task {
            job: job.clone(),
            buf: Some(IoBuf::new(job.cfg.io_size as usize)),
            wbuf: verify.then(|| IoBuf::new(job.cfg.io_size as usize)),
            phase: Phase::Io,
            offset_blocks: 0,
        });
        job.outstanding.set(job.outstanding.get() + 1);
        task.next(&job);
    }
}

impl Job {
    /// Timed poller: publishes progress, ends the run, issues resets.
    fn tick(&self) -> PollerStatus {
        self.shared
            .completed
            .store(self.ios.get(), Ordering::Relaxed);
        if !self.stopping.get() && ticks() >= self.stop_at.get() {
            self.stopping.set(true);
            self.stop_at.set(ticks());
            self.stop_cpu.set(thread_cpu_ns());
        }
        if self.cfg.workload == Workload::Reset && !self.stopping.get() {
            let since = (ticks() - self.start) / 1_000_000_000;
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

    #[inline]
    fn rand(&self) -> u64 {
        // xorshift64*
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[inline]
    fn next_offset(&self, random: bool) -> u64 {
        let io = if random {
            // Lemire's multiply-shift range reduction: no division per I/O.
            ((self.rand() as u128 * self.span_ios as u128) >> 64) as u64
        } else {
            let n = self.next_io.get();
            self.next_io
                .set(if n + 1 >= self.span_ios { 0 } else { n + 1 });
            n
        };
        (self.base_io + io) * self.io_blocks
    }

    #[inline]
    fn record(&self, c: &IoCompletion) {
        if self.stopping.get() {
            return;
        }
        if !c.success() {
            self.failed.set(self.failed.get() + 1);
            return;
        }
        let lat = c.latency_ticks();
        self.ios.set(self.ios.get() + 1);
        self.lat_sum.set(self.lat_sum.get() + lat);
        if lat < self.lat_min.get() {
            self.lat_min.set(lat);
        }
        if lat > self.lat_max.get() {
            self.lat_max.set(lat);
        }
        let (v, n) = self.pending_lat.get();
        if v == lat {
            self.pending_lat.set((v, n + 1));
        } else {
            self.flush_lat();
            self.pending_lat.set((lat, 1));
        }
    }

    fn flush_lat(&self) {
        let (v, n) = self.pending_lat.replace((0, 0));
        if n > 0 {
            let _ = self.hist.borrow_mut().record_n(v.max(1), n);
        }
    }

    fn task_done(&self) {
        let left = self.outstanding.get() - 1;
        self.outstanding.set(left);
        if left == 0 {
            self.finish();
        }
    }

    fn finish(&self) {
        if let Some(p) = self.poller.borrow_mut().take() {
            p.unregister();
        }
        self.shared
            .completed
            .store(self.ios.get(), Ordering::Relaxed);
        let end = if self.stopping.get() {
            self.stop_at.get()
        } else {
            ticks()
        };
        self.flush_lat();
        let hist = self.hist.borrow().clone();
        let _ = self.tx.send(JobResult {
            bdev: self.cfg.bdev.clone(),
            core: self.cfg.core,
            runtime: (end - self.start) as f64 / 1e9,
            ios: self.ios.get(),
            failed: self.failed.get(),
            miscompares: self.miscompares.get(),
            lat_sum_ns: self.lat_sum.get(),
            lat_min_ns: if self.ios.get() == 0 {
                0
            } else {
                self.lat_min.get()
            },
            lat_max_ns: self.lat_max.get(),
            hist,
            error: self.error.borrow_mut().take(),
            cpu_ns: if self.stopping.get() {
                self.stop_cpu.get()
            } else {
                thread_cpu_ns()
            }
            .saturating_sub(self.start_cpu),
        });
    }
}

impl Task {
    /// Picks and submits this task's next I/O, or retires the task.
    fn next(mut self: Box<Self>, job: &Job) {
        if job.stopping.get() {
            return job.task_done();
        }
        let w = job.cfg.workload;
        let random = matches!(
            w,
            Workload::Randread | Workload::Randwrite | Workload::Randrw | Workload::Reset
        );
        let off = job.next_offset(random);
        self.offset_blocks = off;
        let n = job.io_blocks;
        let io_type = match w {
            Workload::Read | Workload::Randread | Workload::Reset => IoType::Read,
            Workload::Write | Workload::Randwrite => IoType::Write,
            Workload::Rw | Workload::Randrw => {
                if (job.rand() % 100) < job.cfg.rwmixread as u64 {
                    IoType::Read
                } else {
                    IoType::Write
                }
            }
            Workload::Verify => {
                self.phase = Phase::VerifyWrite;
                let seq = job.seq.get() + 1;
                job.seq.set(seq);
                let mut wb = self
                    .wbuf
                    .take()
                    .unwrap_or_else(|| IoBuf::new(job.cfg.io_size as usize));
                pattern::fill(&mut wb, off, job.block_size, seq);
                let r = job.desc.write_blocks(&job.ch, wb, off, n, self);
                return job.rejected(r);
            }
            Workload::Unmap => IoType::Unmap,
            Workload::Flush => IoType::Flush,
            Workload::WriteZeroes => IoType::WriteZeroes,
        };
        self.phase = Phase::Io;
        let data = if io_type.has_data() {
            bdev::IoData::Buf(
                self.buf
                    .take()
                    .unwrap_or_else(|| IoBuf::new(job.cfg.io_size as usize)),
            )
        } else {
            bdev::IoData::None
        };
        let r = job.desc.submit(&job.ch, io_type, off, n, data, self);
        job.rejected(r)
    }
}

impl Job {
    /// Handles a refused submission: wait for a free request on NOMEM,
    /// otherwise count the failure and retire the task.
    fn rejected(&self, r: bdev::Submitted) {
        let Err(rej) = r else { return };
        let rej = *rej;
        match (rej.error, rej.cb) {
            (BdevError::NoMem, Some(cb)) => {
                // Resubmit from scratch when a request frees up: give the
                // completion a synthetic success-less path by retrying `next`.
                let retry = Retry(Some(cb));
                self.ch.queue_io_wait(move || retry.fire());
            }
            (e, _) => {
                log::error!("bdevperf {}: submit failed: {e}", self.cfg.bdev);
                self.error.borrow_mut().get_or_insert_with(|| e.to_string());
                self.failed.set(self.failed.get() + 1);
                self.stopping.set(true);
                self.task_done();
            }
        }
    }
}

/// A task waiting in the io_wait queue. The task's callback is resumed
/// with an aborted completion so it picks its next I/O again.
struct Retry(Option<Box<dyn IoDone>>);

impl Retry {
    fn fire(mut self) {
        if let Some(cb) = self.0.take() {
            cb.io_done(IoCompletion {
                status: bdev::IoStatus::NoMem,
                io_type: IoType::Read,
                offset_blocks: 0,
                num_blocks: 0,
                data: bdev::IoData::None,
                submit_tick: 0,
                complete_tick: 0,
            });
        }
    }
}

impl IoDone for Task {
    fn io_done(mut self: Box<Self>, c: IoCompletion) {
        let job = self.job.clone();
        if c.status == bdev::IoStatus::NoMem {
            // Resumed from the io_wait queue: nothing completed; try again.
            return self.next(&job);
        }
        match self.phase {
            Phase::Io => {
                job.record(&c);
                if let Some(b) = c.data.into_buf() {
                    self.buf = Some(b);
                }
                self.next(&job)
            }
            Phase::VerifyWrite => {
                // A verify pair counts once, at its read-back (as SPDK
                // bdevperf counts); a failed write counts as a failure.
                if !c.success() {
                    job.record(&c);
                }
                let ok = c.success();
                self.wbuf = c.data.into_buf();
                if !ok || job.stopping.get() {
                    return self.next(&job);
                }
                self.phase = Phase::VerifyRead;
                let rb = self
                    .buf
                    .take()
                    .unwrap_or_else(|| IoBuf::new(job.cfg.io_size as usize));
                let (off, n) = (self.offset_blocks, job.io_blocks);
                let r = job.desc.read_blocks(&job.ch, rb, off, n, self);
                job.rejected(r)
            }
            Phase::VerifyRead => {
                job.record(&c);
                let ok = c.success();
                let rb = c.data.into_buf();
                if ok {
                    if let (Some(r), Some(w)) = (&rb, &self.wbuf) {
                        if let Some(at) = pattern::first_mismatch(r, w) {
                            let m = job.miscompares.get() + 1;
                            job.miscompares.set(m);
                            if m <= 10 {
                                eprintln!(
                                    "bdevperf: VERIFY MISMATCH on {} at block {} (byte {at} of the I/O): wrote {:#04x}, read {:#04x}",
                                    job.cfg.bdev, self.offset_blocks + (at / job.block_size) as u64, w[at], r[at]
                                );
                            }
                        }
                    }
                }
                self.buf = rb;
                self.next(&job)
            }
        }
    }
}
