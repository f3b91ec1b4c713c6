//! `Thread`: a lightweight, stackless thread (SPDK's `spdk_thread`), polled
//! by whoever hosts it — a reactor, a test harness, or your own loop.

use super::exec::Executor;
use super::handle::{Shared, ThreadHandle, STATE_EXITED, STATE_EXITING, STATE_RUNNING};
use super::io_channel::ChannelTable;
use super::poller_set::PollerSet;
use super::time::{ticks, PollNow};
use super::{CpuMask, ThreadError};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Messages run per [`Thread::poll`] when `max_msgs` is 0 (SPDK's
/// `SPDK_MSG_BATCH_SIZE`).
pub const MSG_BATCH_SIZE: usize = 8;

/// Options for [`Thread::with_opts`].
#[derive(Clone, Debug)]
pub struct ThreadOpts {
    /// The thread's name (shown in errors and statistics).
    pub name: String,
    /// The cores it may run on (reactors honour it when placing the thread).
    pub cpumask: CpuMask,
    /// Capacity of the message ring (messages in flight towards this thread).
    pub msg_ring_size: usize,
    /// How long an exiting thread waits for its pollers, channels and
    /// messages before it is forced to exited (SPDK: 5 s).
    pub exit_timeout: Duration,
}

impl Default for ThreadOpts {
    fn default() -> Self {
        ThreadOpts {
            name: "thread".into(),
            cpumask: CpuMask::all(),
            msg_ring_size: 4096,
            exit_timeout: Duration::from_secs(5),
        }
    }
}

/// Busy and idle time of a thread, in ticks (nanoseconds): SPDK's
/// `spdk_thread_stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ThreadStats {
    /// Time spent in polls that did work.
    pub busy_ticks: u64,
    /// Time spent in polls that found nothing to do.
    pub idle_ticks: u64,
}

pub(crate) struct ThreadInner {
    pub(crate) shared: Arc<Shared>,
    pub(crate) pollers: PollerSet,
    pub(crate) channels: ChannelTable,
    pub(crate) exec: Executor,
    /// for_each_channel calls started here and not yet completed.
    pub(crate) for_each_pending: Cell<usize>,
    exit_timeout: Duration,
    exit_deadline: Cell<Option<u64>>,
    exit_timed_out: Cell<bool>,
    stats: Cell<ThreadStats>,
    last_poll_end: Cell<u64>,
}

/// A lightweight thread. Not `Send`: it and everything it owns (pollers,
/// io_channels, tasks) stay on the OS thread that polls it. Cloning gives
/// another reference to the same thread. Other OS threads talk to it
/// through its [`ThreadHandle`].
#[derive(Clone)]
pub struct Thread {
    pub(crate) inner: Rc<ThreadInner>,
}

thread_local! {
    static CURRENT: RefCell<Option<Thread>> = const { RefCell::new(None) };
}

/// Makes a thread current for the guard's lifetime (restores the previous one).
pub(crate) struct CurrentGuard {
    prev: Option<Thread>,
}

impl CurrentGuard {
    // Inlined: every thread poll enters once (as a call it cost the poll
    // about 20 instructions more).
    #[inline]
    pub(crate) fn enter(t: &Thread) -> CurrentGuard {
        // try_with: a host thread kept in a thread_local may be entered
        // while the OS thread's locals are being destroyed.
        let prev = CURRENT
            .try_with(|c| c.replace(Some(t.clone())))
            .ok()
            .flatten();
        CurrentGuard { prev }
    }
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = prev);
    }
}

impl Thread {
    /// Creates a thread named `name` with default options
    /// (SPDK's `spdk_thread_create(name, NULL)`).
    pub fn new(name: &str) -> Thread {
        Thread::with_opts(ThreadOpts {
            name: name.into(),
            ..ThreadOpts::default()
        })
    }

    /// Creates a thread with explicit options.
    pub fn with_opts(opts: ThreadOpts) -> Thread {
        let exit_timeout = opts.exit_timeout;
        let shared = Shared::new_registered(opts.name, opts.cpumask, opts.msg_ring_size);
        Thread::from_shared(shared, exit_timeout)
    }

    /// A thread left out of the process-wide thread list: [`threads`](super::threads),
    /// [`ThreadHandle::by_id`] and [`for_each_thread`](super::for_each_thread)
    /// do not see it. For a host that polls it only now and then on behalf
    /// of something else (the bdev layer's channels made outside any
    /// thread live on one), where a walk over every thread must not wait
    /// for it.
    pub fn unlisted(name: &str) -> Thread {
        let opts = ThreadOpts::default();
        let shared = Arc::new(Shared::new(name.into(), opts.cpumask, opts.msg_ring_size));
        Thread::from_shared(shared, opts.exit_timeout)
    }

    /// Whether a message is waiting (a cheap check before a [`poll`](Self::poll)).
    pub fn has_messages(&self) -> bool {
        self.inner.shared.has_messages()
    }

    /// Builds the thread around an existing shared part (a reactor makes
    /// the handle first, then the thread on its own OS thread).
    pub(crate) fn from_shared(shared: Arc<Shared>, exit_timeout: Duration) -> Thread {
        Thread {
            inner: Rc::new(ThreadInner {
                pollers: PollerSet::new(shared.id),
                channels: ChannelTable::default(),
                exec: Executor::default(),
                shared,
                for_each_pending: Cell::new(0),
                exit_timeout,
                exit_deadline: Cell::new(None),
                exit_timed_out: Cell::new(false),
                stats: Cell::new(ThreadStats::default()),
                last_poll_end: Cell::new(0),
            }),
        }
    }

    /// The thread being polled on this OS thread right now (inside a
    /// message, poller, channel callback or task), if any: SPDK's
    /// `spdk_get_thread`.
    pub fn current() -> Option<Thread> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Runs `f` with the current thread, without cloning it.
    pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Thread>) -> R) -> R {
        CURRENT.with(|c| f(c.borrow().as_ref()))
    }

    /// The current thread or [`ThreadError::NoCurrentThread`].
    pub(crate) fn current_or_err() -> Result<Thread, ThreadError> {
        Thread::current().ok_or(ThreadError::NoCurrentThread)
    }

    /// Runs `f` with this thread made current, without polling it: for
    /// hosts and tests that set a thread up (register pollers, get
    /// channels) from outside (SPDK's `set_thread`).
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = CurrentGuard::enter(self);
        f()
    }

    /// The `Send` handle other OS threads use to message this thread.
    pub fn handle(&self) -> ThreadHandle {
        ThreadHandle {
            shared: self.inner.shared.clone(),
        }
    }

    /// The thread's unique id.
    pub fn id(&self) -> u64 {
        self.inner.shared.id
    }

    /// The thread's name.
    pub fn name(&self) -> &str {
        &self.inner.shared.name
    }

    /// The cores the thread may run on.
    pub fn cpumask(&self) -> CpuMask {
        self.inner.shared.cpumask
    }

    /// Busy/idle statistics so far.
    pub fn stats(&self) -> ThreadStats {
        self.inner.stats.get()
    }

    /// Sends `f` to this thread; see [`ThreadHandle::send_msg`].
    pub fn send_msg<F: FnOnce() + Send + 'static>(&self, f: F) -> Result<(), ThreadError> {
        self.handle().send_msg(f)
    }

    /// Polls the thread once (SPDK's `spdk_thread_poll`): the critical
    /// message, up to `max_msgs` messages (0 means [`MSG_BATCH_SIZE`]),
    /// deferred channel releases, every untimed poller, the timed pollers
    /// whose deadline passed, and the ready async tasks. Returns whether
    /// anything did work. Polling an exited thread does nothing.
    ///
    /// Not re-entrant: do not poll a thread from inside its own callbacks.
    pub fn poll(&self, max_msgs: usize) -> bool {
        self.poll_at(max_msgs, ticks())
    }

    /// [`poll`](Self::poll) with the start time given, as SPDK's
    /// `spdk_thread_poll(thread, max_msgs, now)`: a host polling several
    /// threads passes the previous thread's [`last_poll_end`](Self::last_poll_end)
    /// so each poll reads the clock once.
    pub fn poll_at(&self, max_msgs: usize, now: u64) -> bool {
        let inner = &*self.inner;
        if inner.shared.state.load(Ordering::Acquire) == STATE_EXITED {
            return false;
        }
        let _g = CurrentGuard::enter(self);
        let _now = PollNow::enter(now);
        let start = now;
        let mut busy = false;
        // A plain load first: the swap (an atomic write) only when set.
        if inner.shared.critical.load().is_some() {
            if let Some(f) = inner.shared.critical.take() {
                f();
                busy = true;
            }
        }
        let max = if max_msgs == 0 {
            MSG_BATCH_SIZE
        } else {
            max_msgs
        };
        // Pop only what len() saw: a pop on an empty ArrayQueue pays a
        // SeqCst fence, which would dominate an idle poll. And len() only
        // when is_empty() (two loads) says there is something: len() reads
        // the queue's indices in a loop until they agree.
        let queued = if inner.shared.ring.is_empty() {
            0
        } else {
            inner.shared.ring.len()
        };
        for _ in 0..max.min(queued) {
            match inner.shared.ring.pop() {
                Some(m) => {
                    m.run();
                    busy = true;
                }
                None => break,
            }
        }
        for _ in 0..max {
            if inner.shared.overflow.is_empty() {
                break;
            }
            match inner.shared.overflow.pop() {
                Some(m) => {
                    m.run();
                    busy = true;
                }
                None => break,
            }
        }
        busy |= inner.channels.process_deferred();
        busy |= inner.pollers.run(start);
        busy |= inner.exec.run_ready();
        if inner.shared.state.load(Ordering::Relaxed) == STATE_EXITING {
            self.check_exit(start);
        }
        let end = ticks();
        inner.last_poll_end.set(end);
        let mut s = inner.stats.get();
        let spent = end.saturating_sub(start);
        if busy {
            s.busy_ticks += spent;
        } else {
            s.idle_ticks += spent;
        }
        inner.stats.set(s);
        busy
    }

    /// The tick at which the last poll ended (SPDK's `spdk_thread_get_last_tsc`).
    pub fn last_poll_end(&self) -> u64 {
        self.inner.last_poll_end.get()
    }

    /// Asks the thread to exit (SPDK's `spdk_thread_exit`). It keeps
    /// running messages and pollers until it has no pollers, io_channels,
    /// in-flight for_each_channel, async tasks or queued messages left;
    /// then it is exited. If that takes longer than
    /// [`ThreadOpts::exit_timeout`] it is forced to exited and
    /// [`exit_timed_out`](Self::exit_timed_out) reports it. Idempotent.
    pub fn exit(&self) {
        let s = &self.inner.shared.state;
        if s.compare_exchange(
            STATE_RUNNING,
            STATE_EXITING,
            Ordering::SeqCst,
            Ordering::SeqCst,
        )
        .is_ok()
        {
            let t = self.inner.exit_timeout.as_nanos().min(u64::MAX as u128 / 2) as u64;
            self.inner
                .exit_deadline
                .set(Some(ticks().saturating_add(t)));
        }
    }

    /// Whether [`exit`](Self::exit) was called.
    pub fn is_exiting(&self) -> bool {
        self.inner.shared.state.load(Ordering::SeqCst) != STATE_RUNNING
    }

    /// Whether the thread has exited (SPDK's `spdk_thread_is_exited`).
    pub fn is_exited(&self) -> bool {
        self.inner.shared.state.load(Ordering::SeqCst) == STATE_EXITED
    }

    /// Whether the exit was forced by the exit timeout with work left.
    pub fn exit_timed_out(&self) -> bool {
        self.inner.exit_timed_out.get()
    }

    /// Whether the thread has nothing left to do: no pollers, channels,
    /// tasks, pending for_each or messages (what exit waits for).
    pub fn is_quiescent(&self) -> bool {
        let i = &*self.inner;
        i.pollers.live() == 0
            && i.channels.count() == 0
            && i.for_each_pending.get() == 0
            && i.exec.task_count() == 0
            && !i.channels.has_deferred()
            && !i.shared.has_messages()
    }

    fn check_exit(&self, now: u64) {
        let inner = &*self.inner;
        if self.is_quiescent() {
            let s = &inner.shared;
            s.state.store(STATE_EXITED, Ordering::SeqCst);
            // A sender that saw "exiting" may still be pushing: wait for it,
            // and if a message got in, stay exiting so it is not lost.
            let mut spins = 0u32;
            while s.senders.load(Ordering::SeqCst) != 0 {
                // A sender is between its state check and its push; on a
                // busy machine it may be preempted there, so yield soon.
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            if s.has_messages() {
                s.state.store(STATE_EXITING, Ordering::SeqCst);
            }
            return;
        }
        if inner.exit_deadline.get().is_some_and(|d| now > d) {
            log::error!(
                "thread '{}' exit timed out with {} pollers, {} io_channels, {} for_each, {} tasks left: forcing exited",
                inner.shared.name,
                inner.pollers.live(),
                inner.channels.count(),
                inner.for_each_pending.get(),
                inner.exec.task_count()
            );
            inner.exit_timed_out.set(true);
            inner.shared.state.store(STATE_EXITED, Ordering::SeqCst);
        }
    }

    /// Destroys an exited thread (SPDK's `spdk_thread_destroy`): drops
    /// anything left (after a timed-out exit) and releases its channels.
    /// A thread that has not exited is refused with
    /// [`ThreadError::NotExited`] and left untouched.
    pub fn destroy(self) -> Result<(), ThreadError> {
        if !self.is_exited() {
            return Err(ThreadError::NotExited {
                thread: self.inner.shared.name.clone(),
            });
        }
        // Channel destroy callbacks run with the thread current, as usual.
        let _g = CurrentGuard::enter(&self);
        self.inner.release_all();
        Ok(())
    }
}

impl ThreadInner {
    /// Drops everything the thread still owns, releasing channels properly.
    fn release_all(&self) {
        self.shared.state.store(STATE_EXITED, Ordering::SeqCst);
        self.pollers.clear();
        self.exec.clear();
        self.channels.release_all();
        while self.shared.ring.pop().is_some() {}
        while self.shared.overflow.pop().is_some() {}
    }
}

impl Drop for ThreadInner {
    fn drop(&mut self) {
        let idle = self.pollers.live() == 0
            && self.channels.count() == 0
            && self.exec.task_count() == 0
            && !self.shared.has_messages();
        if self.shared.state.load(Ordering::SeqCst) != STATE_EXITED && !idle {
            log::warn!(
                "thread '{}' dropped without exit(): its channels are released, its pollers and messages dropped",
                self.shared.name
            );
        }
        self.release_all();
    }
}

impl std::fmt::Debug for Thread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Thread({}, '{}')", self.id(), self.name())
    }
}
