//! One perf worker: a pinned thread, `-P` qpairs per namespace, a fixed
//! number of I/Os in flight, one doorbell per batch, one clock read per batch
//! (the env's TSC clock: a vDSO `clock_gettime` costs far more in a VM
//! without a stable TSC clocksource, and in emulated CPUs).
//!
//! Each poll reaps, reads the clock once, resubmits the freed buffers and
//! rings, and only then accounts the completed I/Os' latencies: the
//! accounting overlaps the device's work on the new batch instead of
//! delaying its doorbell (which matters at queue depth 1, where the next
//! I/O waits for it, and under emulation, where every instruction counts).

use super::args::{Config, Pattern};
use super::report::{NsResult, Progress};
use super::timeline::Timeline;
use spdk_io::env::{now_ns, DmaBuf};
use spdk_io::nvme::{Controller, IoCompletion, Namespace, QPair, QPairOpts};
use spdk_io::util::histogram::Histogram;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// A completed I/O waiting to be accounted (kept in a preallocated vector).
struct Done {
    /// Submission time in [`now_ns`] nanoseconds.
    start: u64,
    ok: bool,
}

/// What the completion callbacks hand back to the loop.
struct Completed {
    /// I/Os completed since the last accounting.
    done: Vec<Done>,
    /// Buffers of completed I/Os, free for the next submissions.
    free: Vec<DmaBuf>,
    /// The first I/O error seen.
    error: Option<String>,
}

type Shared = Rc<RefCell<Completed>>;

struct NsCtx {
    name: String,
    qp: QPair,
    ns: Namespace,
    shared: Shared,
    hist: Histogram,
    ios: u64,
    errors: u64,
    min_ns: u64,
    max_ns: u64,
    sum_ns: u128,
    blocks_per_io: u32,
    ios_in_ns: u64,
    next_seq: u64,
    /// The per-batch timeline (`--timeline`).
    timeline: Option<Box<Timeline>>,
}

/// xorshift64*: a small fast generator; no syscalls, no allocation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn on_complete(shared: Shared, start: u64, c: IoCompletion) {
    let mut d = shared.borrow_mut();
    let ok = c.result.is_ok();
    if let Err(e) = &c.result {
        d.error.get_or_insert_with(|| e.to_string());
    }
    d.done.push(Done { start, ok });
    if let Some(buf) = c.buf.into_dma_buf() {
        d.free.push(buf);
    }
}

fn pin(core: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(core).is_ok() {
        if let Err(e) = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set) {
            eprintln!("perf: cannot pin to core {core}: {e}; running unpinned");
        }
    }
}

/// Runs one worker until `stop`; returns one result per namespace.
///
/// The worker connects its queue pairs first, then meets the other
/// workers and the main thread at `ready` (whether or not it got them),
/// and only then starts its clock: the run time is time with I/O in
/// flight, as in spdk_nvme_perf, however long the connections took.
pub fn run(
    slot: usize,
    core: usize,
    targets: &[(&Controller, Namespace)],
    cfg: &Config,
    stop: &AtomicBool,
    progress: &Progress,
    ready: &Barrier,
) -> Result<Vec<NsResult>, String> {
    pin(core);
    let mut arrival = Arrival(Some(ready));
    let ctxs = setup(core, targets, cfg);
    arrival.arrive();
    io_loop(slot, core, ctxs?, cfg, stop, progress)
}

/// Meets the others at a barrier exactly once: at `arrive`, or when
/// dropped (a worker that fails or panics still lets the run go on).
struct Arrival<'a>(Option<&'a Barrier>);

impl Arrival<'_> {
    fn arrive(&mut self) {
        if let Some(b) = self.0.take() {
            b.wait();
        }
    }
}

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        self.arrive();
    }
}

/// `-P` queue pairs per namespace, the `-q` I/Os in flight spread over
/// them, and their buffers.
fn setup(
    core: usize,
    targets: &[(&Controller, Namespace)],
    cfg: &Config,
) -> Result<Vec<NsCtx>, String> {
    let mut ctxs = Vec::new();
    let p = cfg.num_qpairs.max(1);
    let per_qpair = (0..p).map(|k| cfg.queue_depth / p + u32::from(k < cfg.queue_depth % p));
    let each = targets
        .iter()
        .flat_map(|t| per_qpair.clone().map(move |depth| (t, depth)));
    for ((c, ns), depth) in each {
        let opts = QPairOpts {
            io_queue_size: cfg.io_queue_size,
            io_queue_requests: 0,
            delay_cmd_submit: cfg.batch,
            sq_ring_every: cfg.ring_every,
            timeout: None,
        };
        let t0 = Instant::now();
        let qp = c
            .alloc_io_qpair(opts)
            .map_err(|e| format!("{} NSID {}: allocating a qpair: {e}", c.trid(), ns.id()))?;
        log::debug!(
            "core {core}: {} NSID {}: I/O qpair allocated in {:?}",
            c.trid(),
            ns.id(),
            t0.elapsed()
        );
        if (qp.free_requests() as u32) < depth {
            return Err(format!(
                "{depth} I/Os in flight (-q {} over -P {p}) exceed the {} requests of a qpair; \
                 raise --io-queue-size",
                cfg.queue_depth,
                qp.free_requests()
            ));
        }
        let mut free = Vec::with_capacity(depth as usize);
        for i in 0..depth {
            let mut b = DmaBuf::alloc(cfg.io_size, 4096).map_err(|e| e.to_string())?;
            b.fill((i as u8) ^ 0x5a);
            free.push(b);
        }
        let blocks_per_io = (cfg.io_size / ns.block_size() as usize) as u32;
        let t = c.trid();
        // As SPDK's nvme_util names a controller.
        let ctrlr_name = match t.trtype {
            spdk_io::nvme::TransportType::Tcp => format!(
                "TCP (addr:{} subnqn:{})",
                t.traddr,
                t.subnqn.as_deref().unwrap_or("")
            ),
            _ => format!("PCIE ({})", t.traddr),
        };
        ctxs.push(NsCtx {
            name: format!("{ctrlr_name} NSID {} from core {core:2}", ns.id()),
            qp,
            ns: ns.clone(),
            shared: Rc::new(RefCell::new(Completed {
                done: Vec::with_capacity(depth as usize),
                free,
                error: None,
            })),
            hist: Histogram::new(),
            ios: 0,
            errors: 0,
            min_ns: u64::MAX,
            max_ns: 0,
            sum_ns: 0,
            blocks_per_io,
            ios_in_ns: (ns.num_blocks() / blocks_per_io as u64).max(1),
            next_seq: 0,
            timeline: cfg.timeline.then(|| Box::new(Timeline::new())),
        });
    }
    Ok(ctxs)
}

/// Keeps the I/O going until `stop`, then drains what is in flight.
fn io_loop(
    slot: usize,
    core: usize,
    mut ctxs: Vec<NsCtx>,
    cfg: &Config,
    stop: &AtomicBool,
    progress: &Progress,
) -> Result<Vec<NsResult>, String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((slot as u64 + 1) << 17));
    let start = Instant::now();
    let mut iter = 0u64;
    let mut total_ios = 0u64;
    let max_completions = cfg.max_completions as usize;
    while !stop.load(Ordering::Relaxed) {
        for ctx in &mut ctxs {
            if let Some(t) = &mut ctx.timeline {
                t.poll_start();
            }
            let reaped = ctx
                .qp
                .process_completions(max_completions)
                .map_err(|e| format!("{}: {e}", ctx.name))?;
            if cfg.account_first {
                if !ctx.shared.borrow().done.is_empty() {
                    total_ios += account(ctx, now_ns());
                }
                if !ctx.shared.borrow().free.is_empty() {
                    submit_free(ctx, cfg, &mut rng, now_ns())?;
                }
                continue;
            }
            // Every completion frees a buffer: nothing freed, nothing to do.
            if ctx.shared.borrow().free.is_empty() {
                continue;
            }
            let now = now_ns();
            if let Some(t) = &mut ctx.timeline {
                t.reaped(reaped, now);
            }
            submit_free(ctx, cfg, &mut rng, now)?;
            if let Some(t) = &mut ctx.timeline {
                t.rung();
            }
            total_ios += account(ctx, now);
            if let Some(t) = &mut ctx.timeline {
                t.accounted();
            }
        }
        iter += 1;
        if iter & 63 == 0 {
            progress.update(slot, total_ios, total_ios * cfg.io_size as u64);
        }
    }
    let elapsed = start.elapsed();
    // Drain: let every I/O in flight complete (not counted).
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    for ctx in &mut ctxs {
        while ctx.qp.outstanding() > 0 && Instant::now() < drain_deadline {
            ctx.qp
                .process_completions(0)
                .map_err(|e| format!("{}: {e}", ctx.name))?;
        }
        let left = ctx.qp.outstanding();
        if left > 0 {
            eprintln!(
                "perf: {}: {left} I/O still in flight 10 s after the run ended",
                ctx.name
            );
        }
        ctx.shared.borrow_mut().done.clear();
    }
    Ok(ctxs
        .into_iter()
        .map(|c| {
            if let Some(e) = &c.shared.borrow().error {
                eprintln!("perf: {}: I/O error: {e}", c.name);
            }
            NsResult {
                name: c.name,
                nsid: c.ns.id(),
                core,
                ios: c.ios,
                bytes: c.ios * cfg.io_size as u64,
                errors: c.errors,
                seconds: elapsed.as_secs_f64(),
                min_ns: if c.ios == 0 { 0 } else { c.min_ns },
                max_ns: c.max_ns,
                sum_ns: c.sum_ns,
                pcie: c.qp.pcie_stat(),
                hist: c.hist,
                timeline: c.timeline,
            }
        })
        .collect())
}

/// Submits one I/O per free buffer, all stamped `now`, then rings once.
fn submit_free(ctx: &mut NsCtx, cfg: &Config, rng: &mut Rng, now: u64) -> Result<(), String> {
    // The free buffers are taken out for the batch (no borrow per I/O; a
    // submission runs no callback) and their emptied vector put back, its
    // capacity kept for the callbacks' pushes.
    let mut free = std::mem::take(&mut ctx.shared.borrow_mut().free);
    let r = submit_from(ctx, cfg, rng, now, &mut free);
    let mut d = ctx.shared.borrow_mut();
    // Buffers left (a full queue, or an error) go back with it.
    free.append(&mut d.free);
    d.free = free;
    r
}

/// `submit_free`'s loop over the buffers taken out.
fn submit_from(
    ctx: &mut NsCtx,
    cfg: &Config,
    rng: &mut Rng,
    now: u64,
    free: &mut Vec<DmaBuf>,
) -> Result<(), String> {
    let mut submitted = false;
    while let Some(buf) = free.pop() {
        let idx = match cfg.pattern {
            // Multiply-shift onto 0..ios_in_ns: no 64-bit division per I/O
            // (emulated out of line under TCG).
            Pattern::Random => ((rng.next() as u128 * ctx.ios_in_ns as u128) >> 64) as u64,
            Pattern::Sequential => {
                let i = ctx.next_seq;
                ctx.next_seq = if i + 1 >= ctx.ios_in_ns { 0 } else { i + 1 };
                i
            }
        };
        let lba = idx * ctx.blocks_per_io as u64;
        let read =
            cfg.read_pct == 100 || (cfg.read_pct > 0 && (rng.next() % 100) < cfg.read_pct as u64);
        let shared = ctx.shared.clone();
        let cb = move |_: &mut QPair, c: IoCompletion| on_complete(shared, now, c);
        let r = if read {
            ctx.qp.read(&ctx.ns, buf, lba, ctx.blocks_per_io, cb)
        } else {
            ctx.qp.write(&ctx.ns, buf, lba, ctx.blocks_per_io, cb)
        };
        if let Err(e) = r {
            let retry = e.error.is_retryable();
            if let Some(b) = e.buf.into_dma_buf() {
                free.push(b);
            }
            if retry {
                break;
            }
            ring(ctx, submitted);
            return Err(format!("{}: submit: {}", ctx.name, e.error));
        }
        submitted = true;
    }
    ring(ctx, submitted);
    Ok(())
}

/// Rings the SQ doorbell for what a batch submitted (if anything).
fn ring(ctx: &mut NsCtx, submitted: bool) {
    if submitted {
        if let Some(t) = &mut ctx.timeline {
            t.built();
        }
        ctx.qp.flush();
    }
}

/// Accounts the I/Os completed by `now`; returns how many.
fn account(ctx: &mut NsCtx, now: u64) -> u64 {
    let mut d = ctx.shared.borrow_mut();
    let n = d.done.len() as u64;
    for Done { start, ok } in d.done.drain(..) {
        let lat = now.saturating_sub(start);
        if ok {
            ctx.ios += 1;
            ctx.sum_ns += lat as u128;
            ctx.min_ns = ctx.min_ns.min(lat);
            ctx.max_ns = ctx.max_ns.max(lat);
            ctx.hist.tally_n(lat, 1);
        } else {
            ctx.errors += 1;
        }
    }
    n
}
