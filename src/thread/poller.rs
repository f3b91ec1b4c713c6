//! Pollers (SPDK's `spdk_poller`): functions a thread calls on every poll
//! (untimed) or every `period` microseconds (timed, run in deadline order).

use super::poller_set::{Entry, State};
use super::spdk_thread::{Thread, ThreadInner};
use super::time::ticks;
use super::ThreadError;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

/// The longest poller period accepted: one day, in microseconds.
pub const MAX_POLLER_PERIOD_US: u64 = 86_400_000_000;

/// What a poller reports (SPDK's `SPDK_POLLER_BUSY` / `SPDK_POLLER_IDLE`):
/// whether it found work; feeds the thread's busy/idle statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollerStatus {
    /// The poller did work.
    Busy,
    /// The poller found nothing to do.
    Idle,
}

impl From<bool> for PollerStatus {
    fn from(busy: bool) -> Self {
        if busy {
            PollerStatus::Busy
        } else {
            PollerStatus::Idle
        }
    }
}

/// A registered poller. Cloning gives another handle to the same poller.
/// Dropping handles does not unregister it: call [`unregister`](Self::unregister)
/// (as with SPDK, a thread cannot finish exiting while it has pollers).
#[derive(Clone)]
pub struct Poller {
    entry: Rc<Entry>,
    thread: Weak<ThreadInner>,
}

impl Poller {
    /// The poller whose callback is running right now, if any: lets a
    /// poller unregister or pause itself.
    pub fn current() -> Option<Poller> {
        Thread::with_current(|t| {
            let t = t?;
            let e = t.inner.pollers.current.borrow().clone()?;
            Some(Poller {
                entry: e,
                thread: Rc::downgrade(&t.inner),
            })
        })
    }

    /// The poller's name.
    pub fn name(&self) -> &str {
        &self.entry.name
    }

    /// Its period in microseconds (0: untimed).
    pub fn period_us(&self) -> u64 {
        self.entry.period / 1000
    }

    /// How many times it ran, and how many of those reported busy.
    pub fn run_counts(&self) -> (u64, u64) {
        (self.entry.run_count.get(), self.entry.busy_count.get())
    }

    /// Whether it is registered (not yet unregistered).
    pub fn is_registered(&self) -> bool {
        self.entry.state.get() != State::Unregistered
    }

    /// Whether it is paused (or pausing).
    pub fn is_paused(&self) -> bool {
        matches!(self.entry.state.get(), State::Paused | State::PausePending)
    }

    /// Unregisters the poller (SPDK's `spdk_poller_unregister`): it never
    /// runs again, even if called from inside its own callback. Its closure
    /// (and what it captured) is dropped now, or right after its run when
    /// called from inside it. Idempotent.
    pub fn unregister(&self) {
        let e = &self.entry;
        let prev = e.state.replace(State::Unregistered);
        if prev == State::Unregistered {
            return;
        }
        if let Some(t) = self.thread.upgrade() {
            let set = &t.pollers;
            set.live.set(set.live.get() - 1);
            if e.serves_channel {
                set.channel_live.set(set.channel_live.get() - 1);
            }
            if prev == State::Paused {
                let removed = {
                    let mut p = set.paused.borrow_mut();
                    p.iter()
                        .position(|x| Rc::ptr_eq(x, e))
                        .map(|i| p.swap_remove(i))
                };
                drop(removed);
            }
            set.dirty.set(true);
        }
        if prev != State::Running {
            e.release_fn();
        }
    }

    /// Pauses the poller (SPDK's `spdk_poller_pause`): it does not run until
    /// [`resume`](Self::resume). Works from inside its own callback.
    pub fn pause(&self) {
        let e = &self.entry;
        if matches!(e.state.get(), State::Waiting | State::Running) {
            e.state.set(State::PausePending);
            if let Some(t) = self.thread.upgrade() {
                t.pollers.dirty.set(true);
            }
        }
    }

    /// Resumes a paused poller (SPDK's `spdk_poller_resume`); a timed
    /// poller's next deadline is one period from now.
    pub fn resume(&self) {
        let e = &self.entry;
        match e.state.get() {
            State::PausePending => e.state.set(State::Waiting),
            State::Paused => {
                let Some(t) = self.thread.upgrade() else {
                    return;
                };
                let set = &t.pollers;
                {
                    let mut p = set.paused.borrow_mut();
                    if let Some(i) = p.iter().position(|x| Rc::ptr_eq(x, e)) {
                        p.swap_remove(i);
                    }
                }
                e.state.set(State::Waiting);
                set.schedule(e.clone(), ticks());
            }
            _ => {}
        }
    }
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Poller('{}', {:?})",
            self.entry.name,
            self.entry.state.get()
        )
    }
}

impl Thread {
    /// Registers a poller on this thread (SPDK's `spdk_poller_register_named`):
    /// `period_us == 0` runs `f` on every poll; otherwise every `period_us`
    /// microseconds, in deadline order. Errors:
    /// [`ThreadError::PollerPeriodTooLong`] beyond [`MAX_POLLER_PERIOD_US`],
    /// [`ThreadError::ThreadExited`] on an exited thread (an exiting one still takes pollers, as in SPDK).
    pub fn poller_register<F>(
        &self,
        name: &str,
        period_us: u64,
        f: F,
    ) -> Result<Poller, ThreadError>
    where
        F: FnMut() -> PollerStatus + 'static,
    {
        self.register_entry(name, period_us, Box::new(f), false)
    }

    /// Registers a poller, marked as serving an io_channel or not.
    pub(crate) fn register_entry(
        &self,
        name: &str,
        period_us: u64,
        f: Box<dyn FnMut() -> PollerStatus>,
        serves_channel: bool,
    ) -> Result<Poller, ThreadError> {
        if period_us > MAX_POLLER_PERIOD_US {
            return Err(ThreadError::PollerPeriodTooLong {
                period_us,
                max_us: MAX_POLLER_PERIOD_US,
            });
        }
        if self.is_exited() {
            return Err(ThreadError::ThreadExited {
                thread: self.inner.shared.name.clone(),
            });
        }
        let entry = Rc::new(Entry {
            name: name.to_string(),
            period: period_us * 1000,
            state: Cell::new(State::Waiting),
            next_run: Cell::new(0),
            run_count: Cell::new(0),
            busy_count: Cell::new(0),
            serves_channel,
            f: RefCell::new(Some(f)),
        });
        let set = &self.inner.pollers;
        set.live.set(set.live.get() + 1);
        if serves_channel {
            set.channel_live.set(set.channel_live.get() + 1);
        }
        set.schedule(entry.clone(), ticks());
        Ok(Poller {
            entry,
            thread: Rc::downgrade(&self.inner),
        })
    }

    /// Ticks until the earliest timed poller is due (0 if one is due or an
    /// untimed poller exists; `None` if there are no active pollers): lets
    /// a host sleep while idle.
    pub fn next_poller_deadline(&self, now: u64) -> Option<u64> {
        self.inner.pollers.next_deadline(now)
    }
}

/// Registers a poller on the current thread (SPDK's `spdk_poller_register`);
/// see [`Thread::poller_register`].
pub fn poller_register<F>(name: &str, period_us: u64, f: F) -> Result<Poller, ThreadError>
where
    F: FnMut() -> PollerStatus + 'static,
{
    Thread::current_or_err()?.poller_register(name, period_us, f)
}
