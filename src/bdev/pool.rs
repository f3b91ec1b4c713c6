//! The per-channel pool of I/O requests (SPDK's `spdk_bdev_io`): allocated
//! once when the channel is created, recycled through a free list.

use super::buf::{put_into, IoData};
use super::io::{IoDone, IoId, IoStatus, IoType};
use super::pass_through::PassLink;
use std::rc::Rc;
use std::task::Waker;

pub(crate) const NO_PARENT: u32 = u32::MAX;

/// Where a completion goes. A slot keeps a callback object apart, in
/// [`Slot::done`]: [`Slot::cb`] never holds `Done`.
pub(crate) enum Cb {
    /// Nobody waits (a future was dropped, or a split child).
    None,
    /// A callback object.
    Done(Box<dyn IoDone>),
    /// An async future: wake it and keep the result in the slot.
    Waker(Option<Waker>),
    /// A step of the layer's compare-and-write: hand the result to the
    /// parent request in this slot.
    Step(u32),
    /// A virtual bdev's request passed through to this (its base's)
    /// channel: report to the link, with the virtual bdev's own id.
    Up(Rc<PassLink>, IoId),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum State {
    Free,
    /// With the module.
    InModule,
    /// Waiting to be resubmitted after the module said NOMEM.
    NoMem,
    /// A split parent: its children are in flight.
    SplitParent,
    /// Finished; an async future will collect it.
    AsyncDone,
    /// Queued behind an LBA range lock.
    Locked,
    /// An emulated compare-and-write: waits for its lock or a step.
    CawParent,
    /// Held for a compare-and-write's next step.
    Reserved,
    /// Waiting in the channel's QoS queue for its bdev's rate limits.
    QosQueued,
    /// A reset: its walks run, or it waits for another reset.
    Reset,
    /// A reset with the module.
    ResetInModule,
}

/// When an I/O was submitted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stamp {
    /// The tick.
    pub tick: u64,
    /// The tick is the channel's completion batch's shared clock read (the
    /// I/O was submitted from one of that batch's callbacks), not a read of
    /// its own; its completion then takes its batch's shared read too, so
    /// both ends are off by about the same few callbacks.
    pub batch: bool,
}

pub(crate) struct Slot {
    pub gen: u32,
    pub state: State,
    pub io_type: IoType,
    pub offset_blocks: u64,
    pub num_blocks: u64,
    pub data: IoData,
    /// A caller's callback object (SPDK's `cb` of a `spdk_bdev_io`): kept
    /// apart from the other waiters, so storing and finding it is one
    /// pointer test, not a match of every kind.
    pub done: Option<Box<dyn IoDone>>,
    /// Every other waiter ([`Cb::None`] while `done` is set).
    pub cb: Cb,
    pub submit_tick: u64,
    /// `submit_tick` is a completion batch's shared tick (see [`Stamp`]).
    pub batch_stamped: bool,
    pub status: IoStatus,
    /// For a split child: its parent; NO_PARENT otherwise.
    pub parent: u32,
    /// For a split child: byte offset into the parent's data.
    pub data_off: usize,
    /// For a split parent: next block to issue, end block, children in flight.
    pub split_next: u64,
    pub split_end: u64,
    pub split_outstanding: u32,
    /// While free: the next free slot ([`FreeList`]).
    pub next_free: u32,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            gen: 0,
            state: State::Free,
            io_type: IoType::Read,
            offset_blocks: 0,
            num_blocks: 0,
            data: IoData::None,
            done: None,
            cb: Cb::None,
            submit_tick: 0,
            batch_stamped: false,
            status: IoStatus::Success,
            parent: NO_PARENT,
            data_off: 0,
            split_next: 0,
            split_end: 0,
            split_outstanding: 0,
            next_free: NO_FREE,
        }
    }

    /// Fills a freshly allocated slot with a new caller I/O submitted at
    /// `now` (status Success until told otherwise). Always inlined into
    /// the submission (a call of its own cost every I/O about 15
    /// instructions).
    #[inline(always)]
    pub(crate) fn arm(
        &mut self,
        io_type: IoType,
        offset_blocks: u64,
        num_blocks: u64,
        data: IoData,
        cb: Cb,
        now: Stamp,
    ) {
        self.io_type = io_type;
        self.offset_blocks = offset_blocks;
        self.num_blocks = num_blocks;
        self.data.put(data);
        // The slot's callback was taken when it last completed: no drop glue.
        match cb {
            Cb::Done(b) => put_into(&mut self.done, Some(b), Option::is_none),
            cb => put_into(&mut self.cb, cb, |c| matches!(c, Cb::None)),
        }
        self.submit_tick = now.tick;
        self.batch_stamped = now.batch;
        self.status = IoStatus::Success;
    }

    /// [`Slot::arm`] for a caller's I/O with a callback object whose data
    /// is taken from the caller's place (`data` is left `IoData::None`).
    #[inline(always)]
    pub(crate) fn arm_done(
        &mut self,
        io_type: IoType,
        offset_blocks: u64,
        num_blocks: u64,
        data: &mut IoData,
        cb: Box<dyn IoDone>,
        now: Stamp,
    ) {
        self.io_type = io_type;
        self.offset_blocks = offset_blocks;
        self.num_blocks = num_blocks;
        // The slot's data and callback were taken when it last completed:
        // tested in place first, so the caller's data moves once, straight
        // into the slot.
        if matches!(self.data, IoData::None) {
            // Nothing to drop. (A swap moved both ways word by word; an
            // assignment kept its drop call.)
            std::mem::forget(std::mem::replace(&mut self.data, std::mem::take(data)));
        } else {
            self.data.put(std::mem::take(data));
        }
        put_into(&mut self.done, Some(cb), Option::is_none);
        self.submit_tick = now.tick;
        self.batch_stamped = now.batch;
        self.status = IoStatus::Success;
    }

    /// Takes whoever waits for this slot: its callback object as
    /// [`Cb::Done`], or the other waiter; leaves nobody.
    #[inline]
    pub(crate) fn take_cb(&mut self) -> Cb {
        match self.done.take() {
            Some(b) => Cb::Done(b),
            None => std::mem::replace(&mut self.cb, Cb::None),
        }
    }

    /// Frees a caller's own request (no parent, no data offset: what
    /// [`Pool::release`] leaves them at): the slot part of a release; the
    /// caller puts its index back on the free list.
    #[inline(always)]
    pub(crate) fn release_own(&mut self) {
        debug_assert!(self.parent == NO_PARENT && self.data_off == 0);
        self.state = State::Free;
        self.gen = self.gen.wrapping_add(1);
    }
}

/// A pool's free list (see [`Pool::parts`]): a stack threaded through the
/// free slots' [`Slot::next_free`], so freeing a slot in hand is two
/// stores and a count, with no vector to grow.
pub(crate) struct FreeList {
    head: u32,
    count: u32,
}

/// The end of the free list.
const NO_FREE: u32 = u32::MAX;

impl FreeList {
    /// Puts freed slot `idx` (`s`) back, on top.
    #[inline(always)]
    pub(crate) fn push(&mut self, idx: u32, s: &mut Slot) {
        s.next_free = self.head;
        self.head = idx;
        self.count += 1;
    }
}

pub(crate) struct Pool {
    pub slots: Vec<Slot>,
    free: FreeList,
}

impl Pool {
    pub fn new(n: usize) -> Pool {
        let n = n.min(NO_FREE as usize);
        let mut slots: Vec<Slot> = (0..n).map(|_| Slot::new()).collect();
        // Slot 0 on top, each pointing at the next.
        for (i, s) in slots.iter_mut().enumerate() {
            s.next_free = if i + 1 < n { i as u32 + 1 } else { NO_FREE };
        }
        Pool {
            slots,
            free: FreeList {
                head: if n > 0 { 0 } else { NO_FREE },
                count: n as u32,
            },
        }
    }

    #[inline]
    pub fn alloc(&mut self) -> Option<u32> {
        let idx = self.free.head;
        let s = self.slots.get(idx as usize)?;
        self.free.head = s.next_free;
        self.free.count -= 1;
        Some(idx)
    }

    /// [`Pool::alloc`] with the slot in hand (indexed once).
    #[inline(always)]
    pub fn alloc_slot(&mut self) -> Option<(u32, &mut Slot)> {
        let idx = self.free.head;
        let s = self.slots.get_mut(idx as usize)?;
        self.free.head = s.next_free;
        self.free.count -= 1;
        Some((idx, s))
    }

    #[inline]
    pub fn release(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        s.state = State::Free;
        s.gen = s.gen.wrapping_add(1);
        s.parent = NO_PARENT;
        s.data_off = 0;
        self.free.push(idx, s);
    }

    /// The slots and the free list apart, so a slot can be freed while it
    /// is still read from.
    #[inline(always)]
    pub(crate) fn parts(&mut self) -> (&mut [Slot], &mut FreeList) {
        (&mut self.slots, &mut self.free)
    }

    #[inline]
    pub fn id(&self, idx: u32) -> IoId {
        IoId::new(idx, self.slots[idx as usize].gen)
    }

    pub fn free_count(&self) -> usize {
        self.free.count as usize
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}
