//! The reactor loop: one OS thread polling its lightweight threads,
//! taking placement and move commands from its inbox between polls.

use super::handle::Shared;
use super::reactor::ReactorOpts;
use super::{ticks, Thread, ThreadError};
use crossbeam_queue::SegQueue;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A `Thread` in transit between reactors.
pub(crate) struct Migrant(pub(crate) Thread);

// SAFETY: a Migrant is only built while handling `Cmd::MoveOut`, which
// only the unsafe `ReactorSet::move_thread` issues; its caller promises
// that no non-`Send` value inside the thread is shared with anything
// outside it, and the handler checks that the source reactor holds the
// only strong reference to the thread. So every `Rc`/`RefCell` reachable
// from the thread moves with it and is touched by one OS thread at a time.
#[allow(unsafe_code)]
unsafe impl Send for Migrant {}

pub(crate) enum Cmd {
    Spawn {
        shared: Arc<Shared>,
        exit_timeout: Duration,
    },
    MoveOut {
        thread_id: u64,
        to: Arc<Inbox>,
        done: Box<dyn FnOnce(Result<(), ThreadError>) + Send>,
    },
    Adopt(Migrant),
}

pub(crate) struct Inbox {
    pub(crate) core: usize,
    pub(crate) cmds: SegQueue<Cmd>,
    pub(crate) stop: AtomicBool,
    /// Threads placed here, counted when placed (before the reactor has
    /// picked them up) and when moved in; uncounted when reaped or moved out.
    pub(crate) threads: AtomicUsize,
    /// Time in loop iterations that did work / found none (ticks).
    pub(crate) busy_ticks: AtomicU64,
    pub(crate) idle_ticks: AtomicU64,
}

thread_local! {
    pub(crate) static CORE: Cell<Option<usize>> = const { Cell::new(None) };
    /// On a reactor's OS thread: how many loop iterations in a row found
    /// no work on any of its threads.
    static IDLE_ITERATIONS: Cell<Option<u32>> = const { Cell::new(None) };
    /// On a reactor's OS thread: whether its pollers may wait for their
    /// own events when idle (`ReactorOpts::poller_idle_wait`).
    static MAY_WAIT: Cell<bool> = const { Cell::new(false) };
    /// A poller waited for its events in the current loop iteration.
    static WAITED: Cell<bool> = const { Cell::new(false) };
}

/// How many loop iterations in a row the calling reactor has found no
/// work on any of its threads; `None` when the caller is not running on a
/// reactor (a thread polled by its own loop).
///
/// A poller that could block briefly while it has nothing to do (waiting
/// on its sockets, say) asks this first: `Some(0)` means another thread
/// of the same reactor did work in the last iteration, and blocking would
/// stall it.
pub fn reactor_idle_iterations() -> Option<u32> {
    IDLE_ITERATIONS.with(Cell::get)
}

/// May a poller that has nothing to do block briefly for its own events
/// (a poll group in `ppoll` on its sockets)? Off a reactor, yes: the
/// thread's own loop decides how it runs. On a reactor, only when it
/// lets pollers wait ([`ReactorOpts::poller_idle_wait`]) and none of its
/// threads did work in the last iteration; a reactor that polls flat
/// out, as SPDK's do by default, has no poller block.
pub fn idle_wait_allowed() -> bool {
    match IDLE_ITERATIONS.with(Cell::get) {
        None => true,
        Some(idle) => idle > 0 && MAY_WAIT.with(Cell::get),
    }
}

/// Tells the calling reactor that a poller has just waited for its
/// events: the reactor skips its own back-off sleep in this iteration, so
/// a wake-up the poller's wait would have caught is not delayed by a
/// blind sleep. A no-op off a reactor.
pub fn note_idle_wait() {
    WAITED.with(|w| w.set(true));
}

pub(crate) fn pin_to(core: usize) -> Result<(), ThreadError> {
    use nix::sched::{sched_setaffinity, CpuSet};
    let mut set = CpuSet::new();
    set.set(core)
        .and_then(|_| sched_setaffinity(nix::unistd::Pid::from_raw(0), &set))
        .map_err(|source| ThreadError::ReactorPin { core, source })
}

pub(crate) fn reactor_main(
    inbox: Arc<Inbox>,
    opts: ReactorOpts,
    started: std::sync::mpsc::Sender<Result<(), ThreadError>>,
) {
    if opts.pin {
        if let Err(e) = pin_to(inbox.core) {
            let _ = started.send(Err(e));
            return;
        }
    }
    CORE.with(|c| c.set(Some(inbox.core)));
    IDLE_ITERATIONS.with(|c| c.set(Some(0)));
    MAY_WAIT.with(|c| c.set(opts.poller_idle_wait));
    let _ = started.send(Ok(()));
    let mut threads: Vec<Thread> = Vec::new();
    let mut idle: u32 = 0;
    let mut exiting = false;
    // One clock read per thread poll: each poll starts where the previous
    // one ended, also across loop iterations (the few instructions between
    // iterations count towards the next poll).
    let mut now = ticks();
    loop {
        // A pop on an empty SegQueue pays a SeqCst fence: look first (two
        // plain loads), as the threads' message rings are looked at.
        while !inbox.cmds.is_empty() {
            let Some(cmd) = inbox.cmds.pop() else { break };
            handle_cmd(cmd, &mut threads, &inbox);
        }
        let mut busy = false;
        if threads.is_empty() {
            now = ticks();
        }
        let loop_start = now;
        for t in &threads {
            busy |= t.poll_at(0, now);
            now = now.max(t.last_poll_end());
        }
        if threads.iter().any(|t| t.is_exited()) {
            let (gone, kept): (Vec<_>, Vec<_>) = threads.drain(..).partition(|t| t.is_exited());
            threads = kept;
            inbox.threads.fetch_sub(gone.len(), Ordering::SeqCst);
            for t in gone {
                let _ = t.destroy();
            }
        }
        if inbox.stop.load(Ordering::SeqCst) {
            if !exiting {
                exiting = true;
                threads.iter().for_each(Thread::exit);
            }
            if threads.is_empty() && inbox.cmds.is_empty() {
                break;
            }
            // Threads placed or moved here while stopping exit too.
            threads
                .iter()
                .filter(|t| !t.is_exiting())
                .for_each(Thread::exit);
        }
        // Only this reactor writes its counters: a relaxed load+store.
        let spent = now.saturating_sub(loop_start);
        let counter = if busy {
            &inbox.busy_ticks
        } else {
            &inbox.idle_ticks
        };
        counter.store(counter.load(Ordering::Relaxed) + spent, Ordering::Relaxed);
        if busy {
            idle = 0;
        } else {
            idle = idle.saturating_add(1);
            if let Some(backoff) = opts.idle_backoff {
                // A poller that waited for its events has idled already,
                // and woke for them; sleeping on would only delay them.
                if idle >= opts.idle_polls_before_backoff && !WAITED.with(Cell::get) {
                    std::thread::sleep(backoff);
                    now = ticks();
                }
            }
        }
        WAITED.with(|w| w.set(false));
        IDLE_ITERATIONS.with(|c| c.set(Some(idle)));
    }
    CORE.with(|c| c.set(None));
    IDLE_ITERATIONS.with(|c| c.set(None));
    MAY_WAIT.with(|c| c.set(false));
}

fn handle_cmd(cmd: Cmd, threads: &mut Vec<Thread>, inbox: &Inbox) {
    match cmd {
        Cmd::Spawn {
            shared,
            exit_timeout,
        } => {
            threads.push(Thread::from_shared(shared, exit_timeout));
        }
        Cmd::Adopt(Migrant(t)) => threads.push(t),
        Cmd::MoveOut {
            thread_id,
            to,
            done,
        } => {
            let Some(i) = threads.iter().position(|t| t.id() == thread_id) else {
                // Empty message: "not here" (see move_thread's countdown).
                return done(Err(ThreadError::Reactor(String::new())));
            };
            if std::rc::Rc::strong_count(&threads[i].inner) != 1 {
                return done(Err(ThreadError::Reactor(format!(
                    "thread '{}' cannot move: something outside it holds a Thread reference to it",
                    threads[i].name()
                ))));
            }
            if to.core == inbox.core {
                return done(Ok(()));
            }
            let t = threads.swap_remove(i);
            to.cmds.push(Cmd::Adopt(Migrant(t)));
            to.threads.fetch_add(1, Ordering::SeqCst);
            inbox.threads.fetch_sub(1, Ordering::SeqCst);
            done(Ok(()));
        }
    }
}
