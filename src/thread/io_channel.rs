//! io_channels (SPDK's `spdk_io_channel`): a thread's reference-counted
//! context for one io_device, and the per-thread table of them.

use super::io_device::IoDevice;
use super::spdk_thread::{Thread, ThreadInner};
use std::any::Any;
use std::cell::{Cell, Ref, RefCell, RefMut};
use std::marker::PhantomData;
use std::rc::{Rc, Weak};

pub(crate) struct ChannelInner<T: 'static> {
    dev: IoDevice<T>,
    ctx: RefCell<T>,
    refs: Cell<u32>,
    destroyed: Cell<bool>,
    thread: Weak<ThreadInner>,
    thread_id: u64,
}

impl<T: 'static> ChannelInner<T> {
    pub(crate) fn new(dev: IoDevice<T>, ctx: T, t: &Thread) -> ChannelInner<T> {
        ChannelInner {
            dev,
            ctx: RefCell::new(ctx),
            refs: Cell::new(0),
            destroyed: Cell::new(false),
            thread: Rc::downgrade(&t.inner),
            thread_id: t.id(),
        }
    }
}

/// Type-erased view of a channel in a thread's table.
pub(crate) trait ChannelEntry {
    fn refs(&self) -> u32;
    /// The io_device's name.
    fn name(&self) -> String;
    /// Runs the device's destroy callback and drops the thread from the device.
    fn destroy(&self);
    fn into_any(self: Rc<Self>) -> Rc<dyn Any>;
}

impl<T: 'static> ChannelEntry for ChannelInner<T> {
    fn refs(&self) -> u32 {
        self.refs.get()
    }

    fn name(&self) -> String {
        self.dev.shared.core.name.clone()
    }

    fn destroy(&self) {
        if self.destroyed.replace(true) {
            return;
        }
        (self.dev.shared.destroy)(&mut self.ctx.borrow_mut());
        let core = &self.dev.shared.core;
        let mut st = core.lock();
        st.threads.remove(&self.thread_id);
        core.maybe_finish(st);
    }

    fn into_any(self: Rc<Self>) -> Rc<dyn Any> {
        self
    }
}

/// A thread's channels, by device id, and the puts waiting to be processed.
/// A thread holds few channels, so a vector searched linearly beats a hash
/// map here.
#[derive(Default)]
pub(crate) struct ChannelTable {
    map: RefCell<Vec<(u64, Rc<dyn ChannelEntry>)>>,
    deferred: RefCell<Vec<u64>>,
}

impl ChannelTable {
    pub(crate) fn count(&self) -> usize {
        self.map.borrow().len()
    }

    /// Each live channel's device name and reference count, for listings.
    pub(crate) fn entries(&self) -> Vec<(String, u32)> {
        self.map
            .borrow()
            .iter()
            .map(|(_, e)| (e.name(), e.refs()))
            .collect()
    }

    pub(crate) fn has_deferred(&self) -> bool {
        !self.deferred.borrow().is_empty()
    }

    pub(crate) fn insert(&self, dev_id: u64, e: Rc<dyn ChannelEntry>) {
        // Only called after lookup found no channel for dev_id.
        self.map.borrow_mut().push((dev_id, e));
    }

    /// Another reference to this thread's channel for `dev_id`, if live.
    pub(crate) fn lookup<T: 'static>(&self, dev_id: u64) -> Option<IoChannel<T>> {
        let e = self
            .map
            .borrow()
            .iter()
            .find(|(id, _)| *id == dev_id)?
            .1
            .clone();
        let inner = e.into_any().downcast::<ChannelInner<T>>().ok()?;
        Some(IoChannel::from_inner(inner))
    }

    /// Destroys channels whose last reference was put, unless a new get
    /// came in since. Returns whether anything was processed.
    #[inline]
    pub(crate) fn process_deferred(&self) -> bool {
        if self.deferred.borrow().is_empty() {
            return false;
        }
        self.process_deferred_slow()
    }

    #[cold]
    fn process_deferred_slow(&self) -> bool {
        let ids = std::mem::take(&mut *self.deferred.borrow_mut());
        for id in &ids {
            let victim = {
                let mut map = self.map.borrow_mut();
                match map.iter().position(|(d, _)| d == id) {
                    Some(i) if map[i].1.refs() == 0 => Some(map.swap_remove(i).1),
                    _ => None,
                }
            };
            if let Some(e) = victim {
                e.destroy();
            }
        }
        let mut ids = ids;
        ids.clear();
        let mut d = self.deferred.borrow_mut();
        if d.is_empty() {
            *d = ids;
        }
        true
    }

    /// Destroys every channel (thread destruction).
    pub(crate) fn release_all(&self) {
        let all: Vec<_> = self.map.borrow_mut().drain(..).map(|(_, e)| e).collect();
        for e in all {
            e.destroy();
        }
        self.deferred.borrow_mut().clear();
    }
}

/// A thread's reference to its channel for one io_device, with the
/// per-thread context `T` (SPDK's `spdk_io_channel` + `spdk_io_channel_get_ctx`).
///
/// Not `Send`: it belongs to the thread that got it. Cloning takes another
/// reference (as another `spdk_get_io_channel` would); dropping puts one
/// (SPDK's `spdk_put_io_channel`). When the last reference is put, the
/// context is destroyed at the thread's next poll — not at all if a new
/// get came in meanwhile. Putting a channel on a thread other than its own
/// is a bug: a debug assertion catches it, as SPDK asserts.
pub struct IoChannel<T: 'static> {
    inner: Rc<ChannelInner<T>>,
    _not_send: PhantomData<*const ()>,
}

impl<T: 'static> IoChannel<T> {
    pub(crate) fn from_inner(inner: Rc<ChannelInner<T>>) -> IoChannel<T> {
        inner.refs.set(inner.refs.get() + 1);
        IoChannel {
            inner,
            _not_send: PhantomData,
        }
    }

    /// The channel's context.
    ///
    /// Panics if the context is already mutably borrowed (as `RefCell`).
    pub fn ctx(&self) -> Ref<'_, T> {
        self.inner.ctx.borrow()
    }

    /// The channel's context, mutably.
    ///
    /// Panics if the context is already borrowed (as `RefCell`).
    pub fn ctx_mut(&self) -> RefMut<'_, T> {
        self.inner.ctx.borrow_mut()
    }

    /// The device this channel belongs to.
    pub fn device(&self) -> &IoDevice<T> {
        &self.inner.dev
    }

    /// Id of the thread that owns the channel.
    pub fn thread_id(&self) -> u64 {
        self.inner.thread_id
    }

    /// The thread that owns the channel, if it still exists.
    pub fn thread(&self) -> Option<Thread> {
        self.inner.thread.upgrade().map(|inner| Thread { inner })
    }

    /// References to this channel held on its thread.
    pub fn ref_count(&self) -> u32 {
        self.inner.refs.get()
    }

    /// Puts the reference now (the same as dropping it).
    pub fn put(self) {}

    /// Registers a poller on the channel's thread that serves this channel
    /// (a device polling its queues per thread, as SPDK's bdev modules
    /// do): a poller like any other, except that a thread whose only work
    /// left is idle channel pollers and channels its caller holds is
    /// reported by [`Thread::shutdown`] as
    /// [`ThreadError::ChannelsHeld`](super::ThreadError::ChannelsHeld) at
    /// once. Unregister it when the channel's context is destroyed.
    /// Errors: those of [`Thread::poller_register`], and
    /// [`ThreadError::ThreadExited`](super::ThreadError::ThreadExited) if
    /// the channel's thread is gone.
    pub fn poller_register<F>(
        &self,
        name: &str,
        period_us: u64,
        f: F,
    ) -> Result<super::Poller, super::ThreadError>
    where
        F: FnMut() -> super::PollerStatus + 'static,
    {
        let t = self
            .thread()
            .ok_or_else(|| super::ThreadError::ThreadExited {
                thread: format!(
                    "{} (it held a channel of '{}')",
                    self.inner.thread_id,
                    self.inner.dev.name()
                )
                .into(),
            })?;
        t.register_entry(name, period_us, Box::new(f), true)
    }
}

impl<T: 'static> Clone for IoChannel<T> {
    fn clone(&self) -> Self {
        IoChannel::from_inner(self.inner.clone())
    }
}

impl<T: 'static> Drop for IoChannel<T> {
    fn drop(&mut self) {
        let inner = &self.inner;
        debug_assert!(
            Thread::with_current(|t| t.map_or(true, |t| t.id() == inner.thread_id)),
            "io_channel of '{}' put on a thread other than its own",
            inner.dev.name()
        );
        let refs = inner.refs.get() - 1;
        inner.refs.set(refs);
        if refs == 0 && !inner.destroyed.get() {
            if let Some(t) = inner.thread.upgrade() {
                t.channels
                    .deferred
                    .borrow_mut()
                    .push(inner.dev.shared.core.id);
            }
        }
    }
}

impl<T> std::fmt::Debug for IoChannel<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "IoChannel('{}', thread {}, refs {})",
            self.inner.dev.name(),
            self.inner.thread_id,
            self.inner.refs.get()
        )
    }
}
