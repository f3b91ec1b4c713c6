//! `Channel`: one thread's I/O path to one bdev (SPDK's bdev channel).
//!
//! It owns the pooled requests, the module's channel, the completion
//! queue, the NOMEM retry queue and the io_wait queue. Everything here runs
//! on the channel's thread; [`Channel::poll`] (the channel's poller) reaps
//! the module, runs completions, retries NOMEM I/O and wakes io_wait
//! entries. Completions never run inside a submit call.
//!
//! Its LBA range lock state (`lock_local`: set only on its thread, by the
//! lock walks of `lock_walk`) costs the I/O path one load of its own gate
//! word and one branch while no lock is held; its QoS switch is its own
//! too (set by a walk when the bdev's limits change).

use super::buf::IoData;
use super::device::Bdev;
use super::io::{IoDone, IoId, IoStatus, IoType};
use super::lock_local::{ChanRange, LockLocal};
use super::ops::{Completer, Done, IoRequest, ModuleChannel, Packed};
use super::per_thread::{channel_error, host_thread, poll_host, ThreadChannels};
use super::pool::{Cb, Pool, Stamp, State, NO_PARENT};
use super::range_lock::lock;
use super::reset_local::ResetLocal;
use super::stat::ChannelStat;
use super::ticks::ticks;
use super::{BdevError, Result};
use crate::thread::{IoChannel, Poller, PollerStatus, Thread};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

static POOL_SIZE: AtomicUsize = AtomicUsize::new(1024);

/// A channel poll starts another round of completions (those reported
/// while its callbacks ran) only while fewer than this many I/Os completed
/// in it and it has run for less than [`ROUND_TIME_NS`], so one busy
/// channel keeps its thread's other pollers waiting about as long as one
/// batch of a deep queue to a copying module (128 malloc reads) takes.
const ROUND_BUDGET: usize = 1024;

/// The time a channel poll may spend in extra rounds (see
/// [`ROUND_BUDGET`]): while the channel's own I/O keeps completing, the
/// next reactor iteration waits at most this long. A round that crosses
/// the reactor loop costs its I/O the loop's other work (a few hundred
/// instructions), so the rarer such crossings, the tighter the tail of a
/// queue-depth-1 job.
const ROUND_TIME_NS: u64 = 50_000;

/// At most this many such extra rounds per poll (a round may complete
/// nothing: reports of split pieces, or of NOMEM).
const MAX_ROUNDS: usize = 1024;
static NEXT_CHANNEL_ID: AtomicU64 = AtomicU64::new(1);

/// Sets how many requests each new channel preallocates (SPDK's
/// `bdev_io_cache_size`, per thread); default 1024.
pub fn set_io_pool_size(n: usize) {
    POOL_SIZE.store(n.max(1), Ordering::Relaxed);
}

/// How many requests each new channel preallocates.
pub fn io_pool_size() -> usize {
    POOL_SIZE.load(Ordering::Relaxed)
}

/// A thread's I/O channel to a bdev. `!Send`: it stays on the thread that
/// made it. Cloning is cheap and yields the same channel.
///
/// Made on a lightweight thread ([`crate::thread::Thread`]), the channel
/// is one of that thread's io_channels (of the bdev's io_device) and
/// registers a poller there that calls [`Channel::poll`]; a thread that
/// exits while one is still held gets
/// [`ThreadError::ChannelsHeld`](crate::thread::ThreadError::ChannelsHeld)
/// from [`Thread::shutdown`] at once. Made outside any thread, its owner
/// calls `poll` itself (it lives on its OS thread's host thread, whose
/// messages — lock walks — each such channel's poll runs first).
#[derive(Clone)]
pub struct Channel(pub(crate) Rc<ChannelInner>);

pub(crate) struct ChannelInner {
    // Declared first so it drops first: a module channel with I/O in the
    // kernel (io_uring) waits for it before the pool's buffers go away.
    pub module: RefCell<Box<dyn ModuleChannel>>,
    pub pool: RefCell<Pool>,
    pub bdev: Arc<Bdev>,
    pub block_size: u32,
    pub max_rw: u64,
    pub boundary: u64,
    /// `max_rw` or `boundary` is set: only then can an I/O need splitting
    /// (one test on the I/O path of a bdev that never splits).
    may_split: bool,
    pub supported: u32,
    /// The module channel reaps or publishes work of its own
    /// ([`ModuleChannel::needs_poll`], asked once): otherwise the poll
    /// skips its `poll`, `reap_more` and `flush`.
    module_polled: bool,
    /// The module does its work in [`ModuleChannel::reap_more`]
    /// ([`ModuleChannel::completes_on_reap`], asked once): the poll's
    /// extra rounds reap it again, so I/O resubmitted from completions
    /// completes in the same poll, as a null bdev's does.
    reap_rounds: bool,
    pub done: Completer,
    /// The storage the poll swaps with the completion queue (empty
    /// between polls; see [`Completer::take_all`]).
    batch: Cell<Vec<Packed>>,
    pub(crate) nomem: RefCell<VecDeque<u32>>,
    pub(crate) split_wait: RefCell<VecDeque<u32>>,
    /// Requests waiting for QoS quota, in submission order.
    pub(crate) qos_queue: RefCell<VecDeque<u32>>,
    io_wait: RefCell<VecDeque<Box<dyn FnOnce()>>>,
    pub stat: Arc<ChannelStat>,
    /// The clock read when this poll's completions were reaped: the
    /// completion time of each, and the submission time of each I/O their
    /// callbacks submit (see [`ChannelInner::stamp`]).
    pub now: Cell<u64>,
    /// The poll is running completions (their callbacks' submissions take
    /// `now`); outside, a submission reads the clock.
    in_completions: Cell<bool>,
    pub(crate) in_module: Cell<u32>,
    pub(crate) progressed: Cell<bool>,
    poller: RefCell<Option<Poller>>,
    /// The thread layer's channel this one is part of: the thread knows
    /// the bdev channel is held, and the device's walks reach it.
    pub(crate) io_ch: RefCell<Option<IoChannel<ThreadChannels>>>,
    /// This channel's number (a lock's owner is named by it).
    pub(crate) id: u64,
    /// The lightweight thread it belongs to (its OS thread's host thread
    /// when made outside any).
    pub(crate) home: Thread,
    /// Made outside any thread: its poll runs the host thread's messages.
    on_host: bool,
    /// The bdev has rate limits: submissions take the QoS path. Set on
    /// this thread by a walk when the limits change.
    pub(crate) qos_on: Cell<bool>,
    /// Its LBA range lock state (set only on this thread); its gate word
    /// also sends resets, and everything while a reset froze the channel,
    /// to the slow path.
    pub(crate) lock_local: LockLocal,
    /// The resets it drives or waits for (`reset`).
    pub(crate) reset: ResetLocal,
    /// Compare-and-write runs through the layer's emulation.
    pub(crate) emulate_caw: bool,
    /// The module compares natively (the emulation's compare step).
    pub(crate) native_compare: bool,
}

impl Drop for ChannelInner {
    fn drop(&mut self) {
        if let Some(p) = self.poller.get_mut().take() {
            p.unregister();
        }
        if !self.module.get_mut().shutdown() {
            // A device may still use the buffers of unfinished requests
            // (lent by address): never free them.
            let mut leaked = 0;
            for s in &mut self.pool.get_mut().slots {
                if s.state != State::Free && !matches!(s.data, IoData::None) {
                    std::mem::forget(std::mem::take(&mut s.data));
                    leaked += 1;
                }
            }
            log::error!(
                "bdev {}: channel closed with device I/O it could not stop; {leaked} buffers leaked",
                self.bdev.name()
            );
        }
        self.locks_on_drop();
        let snap = self.stat.snapshot();
        {
            let mut st = self.bdev.lock();
            st.retired.add(&snap);
            st.stats.retain(|w| w.strong_count() > 1);
        }
        // Last: the thread's io_channel reference is put (destroyed at the
        // thread's next poll unless another channel holds it). Nobody
        // polls a host thread but its channels: do it now, or walks would
        // still visit it.
        drop(self.io_ch.get_mut().take());
        if self.on_host {
            poll_host(&self.home, true);
        }
    }
}

impl Channel {
    /// A channel to `bdev`; `io_ch` is the current thread's io_channel of
    /// the bdev's io_device (None outside any thread: then it is one of
    /// the OS thread's host thread).
    pub(crate) fn new(
        bdev: Arc<Bdev>,
        pool_size: Option<usize>,
        io_ch: Option<IoChannel<ThreadChannels>>,
    ) -> Result<Channel> {
        let (io_ch, home, on_host) = match io_ch.zip(Thread::current()) {
            Some((io_ch, t)) => (io_ch, t, false),
            None => {
                let host = host_thread();
                let io_ch = host
                    .enter(|| bdev.io_device.get_io_channel())
                    .map_err(|e| channel_error(bdev.name(), e))?;
                (io_ch, host, true)
            }
        };
        let n = pool_size.unwrap_or_else(|| POOL_SIZE.load(Ordering::Relaxed));
        let done = Completer::with_capacity(n);
        let module = bdev.ops.get_io_channel(done.clone())?;
        let module_polled = module.needs_poll();
        let reap_rounds = module_polled && module.completes_on_reap();
        let supported = super::IoType::ALL
            .iter()
            .filter(|t| bdev.io_type_supported(**t))
            .fold(0, |m, t| m | t.bit());
        let p = bdev.props();
        let emulate_caw = bdev.emulates_compare_and_write();
        let native_compare = bdev.ops.io_type_supported(IoType::Compare);
        let lock_local = LockLocal::new(
            IoType::Reset.bit()
                | if emulate_caw {
                    IoType::CompareAndWrite.bit()
                } else {
                    0
                },
        );
        let id = NEXT_CHANNEL_ID.fetch_add(1, Ordering::Relaxed);
        let stat = Arc::new(ChannelStat::default());
        bdev.lock().stats.push(Arc::downgrade(&stat));
        let boundary = if p.split_on_optimal_io_boundary {
            p.optimal_io_boundary
        } else {
            0
        };
        let ch = Channel(Rc::new(ChannelInner {
            module: RefCell::new(module),
            pool: RefCell::new(Pool::new(n)),
            block_size: p.block_size,
            max_rw: p.max_rw_size,
            boundary,
            may_split: p.max_rw_size != 0 || boundary != 0,
            supported,
            module_polled,
            reap_rounds,
            done,
            batch: Cell::new(Packed::queue(n)),
            nomem: RefCell::new(VecDeque::with_capacity(n)),
            split_wait: RefCell::new(VecDeque::new()),
            qos_queue: RefCell::new(VecDeque::new()),
            io_wait: RefCell::new(VecDeque::new()),
            stat,
            now: Cell::new(ticks()),
            in_completions: Cell::new(false),
            in_module: Cell::new(0),
            progressed: Cell::new(false),
            poller: RefCell::new(None),
            io_ch: RefCell::new(None),
            id,
            home,
            on_host,
            qos_on: Cell::new(bdev.qos.enabled.load(Ordering::Relaxed)),
            lock_local,
            reset: ResetLocal::default(),
            emulate_caw,
            native_compare,
            bdev,
        }));
        // It starts with the locks held now (it has nothing in flight);
        // a walk still handing one out finds it holds it already. No walk
        // runs on this thread before it is in the thread's list below.
        {
            let ll = &ch.0.lock_local;
            let t = lock(&ch.0.bdev.locks);
            ll.ranges
                .borrow_mut()
                .extend(t.held.iter().map(|e| ChanRange {
                    entry: e.clone(),
                    acked: true,
                    seq: 0,
                }));
            ll.recompute_gate();
        }
        ch.0.set_qos_on(ch.0.qos_on.get());
        io_ch
            .ctx_mut()
            .chans
            .push(Rc::downgrade(&ch.0) as std::rc::Weak<dyn std::any::Any>);
        if !on_host {
            let weak = Rc::downgrade(&ch.0);
            let p = io_ch
                .poller_register("bdev_channel", 0, move || match weak.upgrade() {
                    Some(c) => PollerStatus::from(c.poll() > 0 || c.in_module.get() > 0),
                    None => PollerStatus::Idle,
                })
                .map_err(|e| channel_error(ch.0.bdev.name(), e))?;
            *ch.0.poller.borrow_mut() = Some(p);
        }
        *ch.0.io_ch.borrow_mut() = Some(io_ch);
        Ok(ch)
    }

    /// The bdev this channel reaches.
    pub fn bdev(&self) -> &Arc<Bdev> {
        &self.0.bdev
    }

    /// Runs the channel once: reaps the module, completes finished I/O
    /// (calling callbacks / waking futures), resubmits NOMEM-queued I/O and
    /// calls io_wait entries while requests are free. Returns the number of
    /// I/O completed. The thread layer's poller calls this; a program
    /// driving its own loop may call it directly.
    pub fn poll(&self) -> usize {
        self.0.poll()
    }

    /// Queues `f` to run when a request becomes free
    /// (`spdk_bdev_queue_io_wait`); use it after a submit failed with
    /// [`BdevError::NoMem`].
    pub fn queue_io_wait(&self, f: impl FnOnce() + 'static) {
        self.0.io_wait.borrow_mut().push_back(Box::new(f));
    }

    /// Requests free in the pool.
    pub fn free_requests(&self) -> usize {
        self.0.pool.borrow().free_count()
    }

    /// Requests the pool holds in total.
    pub fn pool_size(&self) -> usize {
        self.0.pool.borrow().capacity()
    }

    /// I/O submitted and not yet completed to its caller.
    pub fn outstanding(&self) -> usize {
        let p = self.0.pool.borrow();
        p.capacity() - p.free_count()
    }

    /// This channel's statistics.
    pub fn iostat(&self) -> super::IoStat {
        self.0.stat.snapshot()
    }
}

impl ChannelInner {
    /// Switches the channel's QoS path on or off (its submissions then
    /// take, or leave, the general path).
    pub(crate) fn set_qos_on(&self, on: bool) {
        self.qos_on.set(on);
        let all = super::IoType::ALL.iter().fold(0, |m, t| m | t.bit());
        let extra = (all & !self.supported) | if on { all } else { 0 };
        self.lock_local.set_extra(extra);
    }

    /// Made outside any thread (no poller), yet awaited on one: the thread
    /// will never poll it. Checked once per async wait, not per I/O.
    pub(crate) fn unpolled_on_a_thread(&self) -> bool {
        self.on_host && Thread::current().is_some_and(|t| t.id() != self.home.id())
    }

    /// Takes a request from the pool and starts it, or queues it for QoS
    /// quota when the bdev has rate limits. Checks are done by the caller.
    // The error tuple is large but only built when the pool is empty.
    #[allow(clippy::result_large_err)]
    #[inline(always)]
    pub(crate) fn start(
        &self,
        io_type: IoType,
        offset_blocks: u64,
        num_blocks: u64,
        data: IoData,
        cb: Cb,
    ) -> std::result::Result<IoId, (BdevError, IoData, Cb)> {
        // The only cost of QoS when no limit is set: one load, one branch.
        if self.qos_on.get() {
            return self.start_qos(io_type, offset_blocks, num_blocks, data, cb);
        }
        self.start_now(io_type, offset_blocks, num_blocks, data, cb)
    }

    /// [`ChannelInner::start`] past QoS: a pooled request to the module now.
    // The error tuple is large but only built when the pool is empty.
    #[allow(clippy::result_large_err)]
    #[inline(always)]
    pub(crate) fn start_now(
        &self,
        io_type: IoType,
        offset_blocks: u64,
        num_blocks: u64,
        data: IoData,
        cb: Cb,
    ) -> std::result::Result<IoId, (BdevError, IoData, Cb)> {
        let mut pool = self.pool.borrow_mut();
        let Some(idx) = pool.alloc() else {
            return Err((BdevError::NoMem, data, cb));
        };
        let now = self.stamp();
        let s = &mut pool.slots[idx as usize];
        s.arm(io_type, offset_blocks, num_blocks, data, cb, now);
        let id = IoId::new(idx, s.gen);
        if self.needs_split(io_type, offset_blocks, num_blocks) {
            s.state = State::SplitParent;
            s.split_next = offset_blocks;
            s.split_end = offset_blocks + num_blocks;
            s.split_outstanding = 0;
            self.continue_split(&mut pool, idx);
        } else {
            s.state = State::InModule;
            self.in_module.set(self.in_module.get() + 1);
            // Hand the request over with the values in registers: reading
            // them back from the slot just written would stall on store
            // forwarding.
            let data = &mut s.data;
            self.module.borrow_mut().submit_request(IoRequest {
                id,
                io_type,
                offset_blocks,
                num_blocks,
                block_size: self.block_size,
                data,
                data_off: 0,
                whole: true,
                submit_tick: now.tick,
            });
        }
        Ok(id)
    }

    /// Whether a caller's I/O of `num_blocks` at `offset_blocks` is split
    /// into pieces the module takes (its size limit, its boundary).
    #[inline(always)]
    pub(crate) fn needs_split(&self, io_type: IoType, offset_blocks: u64, num_blocks: u64) -> bool {
        self.may_split
            && io_type.has_data()
            && ((self.max_rw != 0 && num_blocks > self.max_rw)
                || (self.boundary != 0
                    && offset_blocks % self.boundary + num_blocks > self.boundary))
    }

    /// [`ChannelInner::start_now`] for a caller's I/O with a callback that
    /// is not split: the data is taken out of `data` only once a request
    /// is in hand, so it moves once, into the request (moved by value
    /// through the inlined frames of the general path, it is copied once
    /// per frame). Hands `cb` back, and leaves `data`, when the pool is
    /// empty.
    #[inline(always)]
    pub(crate) fn start_whole(
        &self,
        io_type: IoType,
        offset_blocks: u64,
        num_blocks: u64,
        data: &mut IoData,
        cb: Box<dyn IoDone>,
    ) -> std::result::Result<IoId, Box<dyn IoDone>> {
        let mut pool = self.pool.borrow_mut();
        let Some((idx, s)) = pool.alloc_slot() else {
            return Err(cb);
        };
        let now = self.stamp();
        s.arm_done(io_type, offset_blocks, num_blocks, data, cb, now);
        let id = IoId::new(idx, s.gen);
        s.state = State::InModule;
        self.in_module.set(self.in_module.get() + 1);
        let data = &mut s.data;
        self.module.borrow_mut().submit_request(IoRequest {
            id,
            io_type,
            offset_blocks,
            num_blocks,
            block_size: self.block_size,
            data,
            data_off: 0,
            whole: true,
            submit_tick: now.tick,
        });
        Ok(id)
    }

    /// Hands request `idx` to the module.
    #[inline]
    pub(crate) fn to_module(&self, pool: &mut Pool, idx: u32) {
        let s = &mut pool.slots[idx as usize];
        s.state = State::InModule;
        let (io_type, off, n, parent, data_off, gen, tick) = (
            s.io_type,
            s.offset_blocks,
            s.num_blocks,
            s.parent,
            s.data_off,
            s.gen,
            s.submit_tick,
        );
        let whole = parent == NO_PARENT;
        let (data, submit_tick) = if whole {
            (&mut s.data, tick)
        } else {
            let p = &mut pool.slots[parent as usize];
            (&mut p.data, p.submit_tick)
        };
        self.in_module.set(self.in_module.get() + 1);
        self.module.borrow_mut().submit_request(IoRequest {
            id: IoId::new(idx, gen),
            io_type,
            offset_blocks: off,
            num_blocks: n,
            block_size: self.block_size,
            data,
            data_off,
            whole,
            submit_tick,
        });
    }

    /// The submission time of an I/O submitted now: inside this channel's
    /// completions, the time they were reaped (they run in the same few
    /// microseconds, and one clock read serves the batch); anywhere else
    /// (a message, another poller, an io_wait callback) the clock itself,
    /// as SPDK stamps each submission. A cached time from elsewhere would
    /// be off: the channel's last poll is arbitrarily old, and the start of
    /// the thread's poll precedes completions reaped later in that same
    /// poll, which then timed out at 0.
    ///
    /// The completion end matches (see [`ChannelInner::completion_tick`]):
    /// an I/O stamped with a batch's read completes with its batch's read,
    /// an I/O stamped with its own read completes with its own read.
    #[inline]
    pub(crate) fn stamp(&self) -> Stamp {
        if self.in_completions.get() {
            Stamp {
                tick: self.now.get(),
                batch: true,
            }
        } else {
            Stamp {
                tick: ticks(),
                batch: false,
            }
        }
    }

    /// The completion time of an I/O whose callback runs now. One stamped
    /// with a batch's shared read (resubmitted from a completion, the
    /// steady state of a queue kept full) takes this batch's shared read:
    /// both its ends sit the same few callbacks before the truth, and one
    /// clock read serves the whole batch. One stamped with its own read
    /// (submitted from a message, a poller, another channel) takes its own
    /// read too, as SPDK times every completion: timed against the batch's
    /// start it would leave out the callbacks that ran before its own, and
    /// the last of a burst submitted one by one would time at almost
    /// nothing (bdevperf's minimum of 2 µs at queue depth 128, from the
    /// first I/Os of a job).
    #[inline]
    pub(crate) fn completion_tick(&self, batch_stamped: bool) -> u64 {
        if batch_stamped {
            self.now.get()
        } else {
            ticks()
        }
    }

    pub(crate) fn poll(&self) -> usize {
        if self.module_polled {
            self.module.borrow_mut().poll();
        }
        let mut completed = 0;
        if !self.done.is_empty() {
            // One clock read per poll that completes something: every
            // completion of the batch, and every submission its callbacks
            // make, share it.
            self.now.set(ticks());
            self.stat.sync_reset();
            let outer = self.in_completions.replace(true);
            // The reports queued so far; those their callbacks cause wait
            // for the second round or the next poll. A poll nested in a
            // callback takes an empty vector here (and gives back its own):
            // it handles the reports queued since, before the rest of this
            // batch. That is safe because a report's buffers are found by
            // its id.
            let mut batch = self.batch.take();
            completed += self.finish_queued(&mut batch);
            // What finished while those ran goes out with their
            // resubmissions, under the one flush below. A device that posts
            // a burst of completions more slowly than we reap them (QEMU's
            // NVMe does) would otherwise leave a straggler or two for the
            // next poll, and every burst would cost two doorbells. This
            // second round also takes what the first round's callbacks
            // queued (a refused resubmission); it is the last one, so a
            // poll stays bounded.
            if self.module_polled && self.module.borrow_mut().reap_more() > 0 {
                self.now.set(ticks());
                completed += self.finish_queued(&mut batch);
            }
            // A module that completes inside `submit_request` (null) has
            // already reported the resubmissions those callbacks made, and
            // one that does its work when reaped (malloc) reports them when
            // reaped again: they complete now, round after round, each
            // timed by its own clock read, instead of waiting for the
            // thread's next poll (at queue depth 1, one whole reactor
            // iteration per I/O). Bounded: once a round finds nothing to
            // complete, or ROUND_BUDGET I/Os completed in this poll, or
            // ROUND_TIME_NS passed, or after MAX_ROUNDS rounds, the thread
            // goes on.
            let start = self.now.get();
            let mut rounds = 0;
            while completed < ROUND_BUDGET && rounds < MAX_ROUNDS {
                if self.done.is_empty()
                    && !(self.reap_rounds && self.module.borrow_mut().reap_more() > 0)
                {
                    break;
                }
                rounds += 1;
                let now = ticks();
                self.now.set(now);
                completed += self.finish_queued(&mut batch);
                if now.saturating_sub(start) >= ROUND_TIME_NS {
                    break;
                }
            }
            self.in_completions.set(outer);
            self.batch.set(batch);
            if self.module_polled {
                self.module.borrow_mut().flush();
            }
        }
        // A channel made outside any thread runs its host's messages (lock
        // walks' visits, grants): after its completions, as a threaded
        // channel's visits run between its thread's polls.
        if self.on_host {
            poll_host(&self.home, false);
        }
        if self.lock_local.work.get() {
            self.lock_work();
        }
        if !self.nomem.borrow().is_empty() && (self.progressed.get() || self.in_module.get() == 0) {
            self.retry_nomem();
        }
        if !self.split_wait.borrow().is_empty() {
            self.retry_split();
        }
        if !self.qos_queue.borrow().is_empty() {
            completed += self.qos_poll();
        }
        while !self.io_wait.borrow().is_empty() && self.pool.borrow().free_count() > 0 {
            let Some(f) = self.io_wait.borrow_mut().pop_front() else {
                break;
            };
            f();
        }
        completed
    }

    /// Takes every queued report into `batch` (empty, kept for its
    /// capacity) and finishes each; returns the I/Os completed.
    #[inline]
    fn finish_queued(&self, batch: &mut Vec<Packed>) -> usize {
        self.done.take_all(batch);
        let mut completed = 0;
        for &d in batch.iter() {
            completed += self.finish(d);
        }
        batch.clear();
        completed
    }

    fn retry_nomem(&self) {
        self.progressed.set(false);
        let n = self.nomem.borrow().len();
        for _ in 0..n {
            let Some(idx) = self.nomem.borrow_mut().pop_front() else {
                break;
            };
            let mut pool = self.pool.borrow_mut();
            if self.bdev.is_removed() || self.lock_local.frozen.get() {
                let id = pool.id(idx);
                pool.slots[idx as usize].state = State::InModule;
                self.in_module.set(self.in_module.get() + 1);
                self.done.push(Done {
                    id,
                    status: IoStatus::Aborted,
                    has_data: false,
                });
            } else {
                self.to_module(&mut pool, idx);
            }
        }
    }

    /// Aborts every request waiting for NOMEM retry or QoS quota (a reset's
    /// freeze).
    pub(crate) fn abort_queued(&self) {
        self.abort_qos_queued();
        while let Some(idx) = self.nomem.borrow_mut().pop_front() {
            let mut pool = self.pool.borrow_mut();
            let id = pool.id(idx);
            pool.slots[idx as usize].state = State::InModule;
            self.in_module.set(self.in_module.get() + 1);
            self.done.push(Done {
                id,
                status: IoStatus::Aborted,
                has_data: false,
            });
        }
    }
}
