//! A thread's poller bookkeeping: the untimed list, the timed heap
//! (ordered by next deadline) and the paused list, with the state machine
//! that lets pollers unregister or pause themselves mid-run.

use super::PollerStatus;
use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::rc::Rc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Waiting,
    Running,
    /// pause() asked; parked in the paused list at the next compaction.
    PausePending,
    Paused,
    Unregistered,
}

pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) period: u64,
    pub(crate) state: Cell<State>,
    pub(crate) next_run: Cell<u64>,
    pub(crate) run_count: Cell<u64>,
    pub(crate) busy_count: Cell<u64>,
    /// Registered through [`super::IoChannel::poller_register`]: it serves
    /// a channel, and goes when the channel's holder puts it.
    pub(crate) serves_channel: bool,
    /// Taken (and dropped) once the poller is unregistered and not running.
    pub(crate) f: RefCell<Option<Box<dyn FnMut() -> PollerStatus>>>,
}

impl Entry {
    /// Drops the poller's closure (and what it captured) unless it is
    /// running right now; compaction retries after the run.
    pub(crate) fn release_fn(&self) {
        let f = match self.f.try_borrow_mut() {
            Ok(mut slot) => slot.take(),
            Err(_) => None,
        };
        drop(f);
    }
}

struct Timed {
    at: u64,
    seq: u64,
    entry: Rc<Entry>,
}

impl PartialEq for Timed {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Timed {
    /// Reversed: the earliest deadline is the heap's maximum.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// A thread's pollers.
pub(crate) struct PollerSet {
    untimed: RefCell<Vec<Rc<Entry>>>,
    timed: RefCell<BinaryHeap<Timed>>,
    pub(crate) paused: RefCell<Vec<Rc<Entry>>>,
    pub(crate) current: RefCell<Option<Rc<Entry>>>,
    pub(crate) dirty: Cell<bool>,
    pub(crate) live: Cell<usize>,
    /// Of `live`, the pollers that serve an io_channel.
    pub(crate) channel_live: Cell<usize>,
    seq: Cell<u64>,
}

impl PollerSet {
    pub(crate) fn new(_thread_id: u64) -> PollerSet {
        PollerSet {
            untimed: RefCell::new(Vec::new()),
            timed: RefCell::new(BinaryHeap::new()),
            paused: RefCell::new(Vec::new()),
            current: RefCell::new(None),
            dirty: Cell::new(false),
            live: Cell::new(0),
            channel_live: Cell::new(0),
            seq: Cell::new(0),
        }
    }

    /// Registered and not unregistered pollers (paused ones count).
    pub(crate) fn live(&self) -> usize {
        self.live.get()
    }

    /// Live pollers that do not serve an io_channel.
    pub(crate) fn live_own(&self) -> usize {
        self.live.get() - self.channel_live.get()
    }

    pub(crate) fn schedule(&self, e: Rc<Entry>, now: u64) {
        if e.period == 0 {
            self.untimed.borrow_mut().push(e);
        } else {
            let at = now.saturating_add(e.period);
            e.next_run.set(at);
            let seq = self.seq.get();
            self.seq.set(seq + 1);
            self.timed.borrow_mut().push(Timed { at, seq, entry: e });
        }
    }

    /// Runs every untimed poller and the expired timed ones; returns busy.
    pub(crate) fn run(&self, now: u64) -> bool {
        self.compact();
        let mut busy = false;
        let n = self.untimed.borrow().len();
        for i in 0..n {
            let e = match self.untimed.borrow().get(i) {
                Some(e) => e.clone(),
                None => break,
            };
            if e.state.get() == State::Waiting {
                busy |= self.run_one(&e);
            }
        }
        loop {
            let e = {
                let mut heap = self.timed.borrow_mut();
                match heap.peek() {
                    Some(t) if t.at <= now => heap.pop().map(|t| t.entry),
                    _ => None,
                }
            };
            let Some(e) = e else { break };
            match e.state.get() {
                State::Waiting => {
                    busy |= self.run_one(&e);
                    if e.state.get() == State::Waiting {
                        self.schedule(e, now);
                    } else {
                        self.park_or_drop(e);
                    }
                }
                _ => self.park_or_drop(e),
            }
        }
        self.compact();
        busy
    }

    fn park_or_drop(&self, e: Rc<Entry>) {
        match e.state.get() {
            State::PausePending => {
                e.state.set(State::Paused);
                self.paused.borrow_mut().push(e);
            }
            State::Unregistered => e.release_fn(),
            _ => {}
        }
    }

    // Inlined into both loops of `run`: as a call it cost every thread
    // poll about a dozen instructions more.
    #[inline(always)]
    fn run_one(&self, e: &Rc<Entry>) -> bool {
        e.state.set(State::Running);
        let prev = self.current.replace(Some(e.clone()));
        let status = match e.f.borrow_mut().as_mut() {
            Some(f) => f(),
            None => PollerStatus::Idle,
        };
        *self.current.borrow_mut() = prev;
        e.run_count.set(e.run_count.get() + 1);
        let busy = status == PollerStatus::Busy;
        if busy {
            e.busy_count.set(e.busy_count.get() + 1);
        }
        if e.state.get() == State::Running {
            e.state.set(State::Waiting);
        } else {
            self.dirty.set(true);
        }
        busy
    }

    /// Removes unregistered pollers and parks pause-pending ones.
    #[inline]
    fn compact(&self) {
        if self.dirty.get() {
            self.compact_slow();
        }
    }

    #[cold]
    fn compact_slow(&self) {
        self.dirty.set(false);
        let mut graveyard = Vec::new();
        let mut list = std::mem::take(&mut *self.untimed.borrow_mut());
        list.retain(|e| match e.state.get() {
            State::Waiting | State::Running => true,
            State::PausePending => {
                self.park_or_drop(e.clone());
                false
            }
            State::Paused => false,
            State::Unregistered => {
                graveyard.push(e.clone());
                false
            }
        });
        let added = std::mem::replace(&mut *self.untimed.borrow_mut(), list);
        self.untimed.borrow_mut().extend(added);
        let mut heap = std::mem::take(&mut *self.timed.borrow_mut());
        heap.retain(|t| match t.entry.state.get() {
            State::Waiting | State::Running => true,
            State::Unregistered => {
                graveyard.push(t.entry.clone());
                false
            }
            _ => {
                self.park_or_drop(t.entry.clone());
                false
            }
        });
        self.timed.borrow_mut().extend(heap);
        for e in graveyard {
            e.release_fn();
        }
    }

    /// Ticks until a poller is due (0 if an untimed one is active), or
    /// `None` if no poller is active.
    pub(crate) fn next_deadline(&self, now: u64) -> Option<u64> {
        if self
            .untimed
            .borrow()
            .iter()
            .any(|e| e.state.get() == State::Waiting)
        {
            return Some(0);
        }
        self.timed.borrow().peek().map(|t| t.at.saturating_sub(now))
    }

    /// Every poller the set holds (untimed, timed and paused), for listings.
    pub(crate) fn entries(&self) -> Vec<Rc<Entry>> {
        let mut v: Vec<Rc<Entry>> = self.untimed.borrow().clone();
        v.extend(self.timed.borrow().iter().map(|t| t.entry.clone()));
        v.extend(self.paused.borrow().iter().cloned());
        v
    }

    /// Drops every poller (thread destruction).
    pub(crate) fn clear(&self) {
        let u = std::mem::take(&mut *self.untimed.borrow_mut());
        let t = std::mem::take(&mut *self.timed.borrow_mut());
        let p = std::mem::take(&mut *self.paused.borrow_mut());
        self.live.set(0);
        self.channel_live.set(0);
        for e in u.iter().chain(p.iter()).chain(t.iter().map(|t| &t.entry)) {
            e.state.set(State::Unregistered);
            e.release_fn();
        }
        drop((u, t, p));
    }
}
