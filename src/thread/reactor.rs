//! Reactors (SPDK's `spdk_reactor`): one OS thread per core, pinned, each
//! polling the lightweight threads placed on it in a loop.

use super::handle::Shared;
use super::reactor_loop::{reactor_main, Cmd, Inbox, CORE};
use super::{CpuMask, Msg, ThreadError, ThreadHandle, ThreadOpts, ThreadStats};
use crossbeam_queue::SegQueue;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How reactors run.
#[derive(Clone, Debug)]
pub struct ReactorOpts {
    /// Pin each reactor's OS thread to its core (sched_setaffinity).
    pub pin: bool,
    /// Sleep this long when idle for a while (and no poller waited for
    /// its events in that iteration), so an idle app does not burn a core
    /// even without pollers that can wait: what `--interrupt-mode`
    /// selects in the daemons. `None` never sleeps.
    pub idle_backoff: Option<Duration>,
    /// Consecutive idle loop iterations before backing off.
    pub idle_polls_before_backoff: u32,
    /// Let pollers that can wait for their own events (a poll group's
    /// sockets) block briefly while the whole reactor is idle, woken by
    /// those events (see [`idle_wait_allowed`]); false polls flat out
    /// and no poller ever blocks, as SPDK's reactors do by default
    /// (`--busy-poll` in the daemons).
    ///
    /// [`idle_wait_allowed`]: super::idle_wait_allowed
    pub poller_idle_wait: bool,
}

impl Default for ReactorOpts {
    fn default() -> Self {
        ReactorOpts {
            pin: true,
            idle_backoff: Some(Duration::from_micros(100)),
            idle_polls_before_backoff: 10_000,
            poller_idle_wait: true,
        }
    }
}

/// A set of running reactors, one per core of the mask given to
/// [`start`](Self::start) (SPDK's reactors under `spdk_app_start`).
pub struct ReactorSet {
    inboxes: Vec<Arc<Inbox>>,
    joins: Vec<std::thread::JoinHandle<()>>,
    /// The reactors sleep when idle (`opts.idle_backoff`).
    interrupt: bool,
}

impl ReactorSet {
    /// Starts one reactor per core in `cores`, each on its own OS thread
    /// (pinned if `opts.pin`). Errors: an empty mask, a core the process
    /// may not run on, or an OS thread that cannot be spawned.
    pub fn start(cores: CpuMask, opts: ReactorOpts) -> Result<ReactorSet, ThreadError> {
        if cores.is_empty() {
            return Err(ThreadError::Reactor(
                "core mask is empty: give at least one core".into(),
            ));
        }
        let mut set = ReactorSet {
            inboxes: Vec::new(),
            joins: Vec::new(),
            interrupt: opts.idle_backoff.is_some(),
        };
        for core in cores.iter() {
            let inbox = Arc::new(Inbox {
                core,
                cmds: SegQueue::new(),
                stop: AtomicBool::new(false),
                threads: AtomicUsize::new(0),
                busy_ticks: AtomicU64::new(0),
                idle_ticks: AtomicU64::new(0),
            });
            let (tx, rx) = std::sync::mpsc::channel();
            let ib = inbox.clone();
            let o = opts.clone();
            let join = std::thread::Builder::new()
                .name(format!("reactor_{core}"))
                .spawn(move || reactor_main(ib, o, tx))
                .map_err(|source| ThreadError::ReactorSpawn { core, source })?;
            set.inboxes.push(inbox);
            set.joins.push(join);
            match rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    set.stop();
                    return Err(e);
                }
                Err(_) => {
                    set.stop();
                    return Err(ThreadError::Reactor(format!(
                        "reactor {core} died at start"
                    )));
                }
            }
        }
        Ok(set)
    }

    /// The cores with a reactor.
    pub fn cores(&self) -> Vec<usize> {
        self.inboxes.iter().map(|i| i.core).collect()
    }

    /// The core of the reactor running on this OS thread, if any
    /// (SPDK's `spdk_env_get_current_core`).
    pub fn current_core() -> Option<usize> {
        CORE.with(|c| c.get())
    }

    /// True when the reactors sleep when idle (`--interrupt-mode`; SPDK's
    /// `in_interrupt` of `framework_get_reactors`).
    pub fn in_interrupt(&self) -> bool {
        self.interrupt
    }

    /// Busy and idle time of `core`'s reactor loop so far (SPDK's reactor
    /// busy/idle tsc): time spent polling threads in iterations that did
    /// work, and in iterations that found none (back-off sleeps excluded).
    pub fn reactor_stats(&self, core: usize) -> Option<ThreadStats> {
        self.inbox(core).ok().map(|i| ThreadStats {
            busy_ticks: i.busy_ticks.load(Ordering::Relaxed),
            idle_ticks: i.idle_ticks.load(Ordering::Relaxed),
        })
    }

    /// Lightweight threads placed on `core`'s reactor.
    pub fn thread_count(&self, core: usize) -> Option<usize> {
        self.inbox(core)
            .ok()
            .map(|i| i.threads.load(Ordering::SeqCst))
    }

    fn inbox(&self, core: usize) -> Result<&Arc<Inbox>, ThreadError> {
        self.inboxes.iter().find(|i| i.core == core).ok_or_else(|| {
            ThreadError::Reactor(format!(
                "no reactor on core {core}: cores are {:?}",
                self.cores()
            ))
        })
    }

    /// Creates a lightweight thread on `core`'s reactor; `init` is its
    /// first message (register pollers, get channels there). Errors: no
    /// reactor on `core`, or `core` outside `opts.cpumask`.
    pub fn spawn_thread<F>(
        &self,
        core: usize,
        opts: ThreadOpts,
        init: F,
    ) -> Result<ThreadHandle, ThreadError>
    where
        F: FnOnce() + Send + 'static,
    {
        let inbox = self.inbox(core)?;
        if !opts.cpumask.contains(core) {
            return Err(ThreadError::Reactor(format!(
                "thread '{}' has cpumask {} which excludes core {core}",
                opts.name, opts.cpumask
            )));
        }
        let exit_timeout = opts.exit_timeout;
        let shared = Shared::new_registered(opts.name, opts.cpumask, opts.msg_ring_size);
        let handle = ThreadHandle {
            shared: shared.clone(),
        };
        handle.try_send(Msg::new(init)).map_err(|(_, e)| e)?;
        // Counted now, so back-to-back placements spread out.
        inbox.threads.fetch_add(1, Ordering::SeqCst);
        inbox.cmds.push(Cmd::Spawn {
            shared,
            exit_timeout,
        });
        Ok(handle)
    }

    /// Creates a lightweight thread on the reactor with the fewest threads
    /// among the cores of `opts.cpumask` (SPDK places a new thread on a
    /// reactor its cpumask allows). Error: no reactor in the mask.
    pub fn spawn_thread_anywhere<F>(
        &self,
        opts: ThreadOpts,
        init: F,
    ) -> Result<ThreadHandle, ThreadError>
    where
        F: FnOnce() + Send + 'static,
    {
        let core = self
            .inboxes
            .iter()
            .filter(|i| opts.cpumask.contains(i.core))
            .min_by_key(|i| i.threads.load(Ordering::SeqCst))
            .map(|i| i.core)
            .ok_or_else(|| {
                ThreadError::Reactor(format!(
                    "thread '{}' has cpumask {} but reactors run on cores {:?}",
                    opts.name,
                    opts.cpumask,
                    self.cores()
                ))
            })?;
        self.spawn_thread(core, opts, init)
    }

    /// Moves a lightweight thread to `core`'s reactor, between two of its
    /// polls, with its pollers, channels, tasks and queued messages
    /// (SPDK's scheduler moving a thread). `done` runs (on the source
    /// reactor's OS thread, outside any lightweight thread) with the result.
    ///
    /// Errors passed to `done`: the thread is on no reactor, or something
    /// outside the thread still holds a `Thread` reference to it.
    ///
    /// # Safety
    /// A `Thread` is `!Send` because the values inside it (pollers,
    /// channel contexts, futures) may be `!Send`. Moving it to another OS
    /// thread is sound only if none of those values shares non-`Send`
    /// state with anything outside the thread — for example an `Rc` also
    /// kept in a `thread_local!` of the reactor's OS thread, or in another
    /// lightweight thread on the same reactor. The thread layer's own
    /// objects (Thread, Poller, IoChannel, tasks) satisfy this; the caller
    /// vouches for the user values in the thread.
    // The caller vouches for the `!Send` values inside the thread.
    #[allow(unsafe_code)]
    pub unsafe fn move_thread<D>(
        &self,
        thread: &ThreadHandle,
        core: usize,
        done: D,
    ) -> Result<(), ThreadError>
    where
        D: FnOnce(Result<(), ThreadError>) + Send + 'static,
    {
        let to = self.inbox(core)?.clone();
        if !thread.cpumask().contains(core) {
            return Err(ThreadError::Reactor(format!(
                "thread '{}' has cpumask {} which excludes core {core}",
                thread.name(),
                thread.cpumask()
            )));
        }
        // Every reactor is asked; the one holding the thread answers. A
        // shared countdown reports "not found" only once all have looked.
        let pending = Arc::new(std::sync::Mutex::new((
            self.inboxes.len(),
            Some(Box::new(done) as Box<dyn FnOnce(_) + Send>),
        )));
        for ib in &self.inboxes {
            let p = pending.clone();
            let name = thread.name().to_string();
            ib.cmds.push(Cmd::MoveOut {
                thread_id: thread.id(),
                to: to.clone(),
                done: Box::new(move |res| {
                    let mut g = p.lock().unwrap_or_else(|e| e.into_inner());
                    g.0 -= 1;
                    let report = match &res {
                        Err(ThreadError::Reactor(m)) if m.is_empty() => g.0 == 0,
                        _ => true,
                    };
                    if report {
                        if let Some(d) = g.1.take() {
                            drop(g);
                            d(match res {
                                Err(ThreadError::Reactor(m)) if m.is_empty() => Err(ThreadError::Reactor(format!(
                                    "thread '{name}' is on no reactor (exited, or not placed by this ReactorSet)"
                                ))),
                                r => r,
                            });
                        }
                    }
                }),
            });
        }
        Ok(())
    }

    /// Stops every reactor: each exits its threads (waiting at most their
    /// exit timeout), destroys them, and its OS thread is joined.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        for ib in &self.inboxes {
            ib.stop.store(true, Ordering::SeqCst);
        }
        for j in self.joins.drain(..) {
            if j.join().is_err() {
                log::error!("a reactor panicked");
            }
        }
    }
}

impl Drop for ReactorSet {
    fn drop(&mut self) {
        self.stop_inner();
    }
}
