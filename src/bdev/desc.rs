//! Descriptors (SPDK's `spdk_bdev_desc`): an open handle on a bdev,
//! read-only or writable, that receives the bdev's events and may hold a
//! module's exclusive claim.

use super::channel::{Channel, ChannelInner};
use super::device::{Bdev, Claim, OpenDesc};
use super::per_thread::channel_error;
use super::{registry, BdevError, Result};
use crate::thread::{Thread, ThreadHandle};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Events delivered to every open descriptor (`enum spdk_bdev_event_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BdevEvent {
    /// The bdev is being removed: stop I/O, put channels, close the descriptor.
    Remove,
    /// The bdev changed size.
    Resize,
}

/// The event callback of a descriptor.
pub type EventCb = Box<dyn Fn(BdevEvent, &Arc<Bdev>) + Send + Sync>;

pub(crate) struct DescInner {
    pub id: u64,
    pub bdev: Arc<Bdev>,
    pub write: bool,
    event_cb: Option<EventCb>,
    thread: Option<ThreadHandle>,
}

impl OpenDesc for DescInner {
    fn notify_remove(self: Arc<Self>) {
        self.deliver(BdevEvent::Remove);
    }

    fn notify_resize(self: Arc<Self>) {
        self.deliver(BdevEvent::Resize);
    }
}

impl DescInner {
    /// Delivers `ev` on the thread that opened the descriptor (by
    /// message), or right here when it was opened outside any thread.
    fn deliver(self: Arc<Self>, ev: BdevEvent) {
        if self.event_cb.is_none() {
            return;
        }
        if let Some(t) = &self.thread {
            let me = self.clone();
            match t.send_msg(move || me.run_event(ev)) {
                Ok(()) => return,
                Err(e) => log::warn!(
                    "bdev '{}': {ev:?} event not sent to thread {}: {e}; delivering here",
                    self.bdev.name(),
                    t.name()
                ),
            }
        }
        self.run_event(ev);
    }

    fn run_event(&self, ev: BdevEvent) {
        if let Some(cb) = &self.event_cb {
            cb(ev, &self.bdev);
        }
    }
}

impl Drop for DescInner {
    fn drop(&mut self) {
        super::lock_end::close_desc(&self.bdev, self.id);
        {
            let mut st = self.bdev.lock();
            if st.claim.as_ref().is_some_and(|c| c.desc_id == self.id) {
                st.claim = None;
            }
        }
        self.bdev.maybe_destruct();
    }
}

/// An open bdev. Closing is dropping it (`spdk_bdev_close`).
///
/// I/O goes through a descriptor and a [`Channel`] of the calling thread:
/// `desc.read(&ch, buf, offset, cb)`.
#[derive(Clone)]
pub struct Desc {
    pub(crate) inner: Arc<DescInner>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Opens a bdev by name, alias or UUID (`spdk_bdev_open_ext`).
/// `event_cb` receives [`BdevEvent::Remove`] when the bdev goes away and
/// [`BdevEvent::Resize`] when its size changes, on
/// the lightweight thread that opened it (by message), or directly on the
/// unregistering thread when it was opened outside any thread.
/// Opening for writing fails when a module claimed the bdev.
pub fn open_ext(
    name: &str,
    write: bool,
    event_cb: impl Fn(BdevEvent, &Arc<Bdev>) + Send + Sync + 'static,
) -> Result<Desc> {
    open_inner(name, write, Some(Box::new(event_cb)))
}

/// Opens a bdev without an event callback.
///
/// ```
/// use spdk_io::bdev::{self, malloc::{self, MallocOpts}, BdevError};
/// spdk_io::env::init(spdk_io::env::EnvOpts::no_huge())?;
/// malloc::create(MallocOpts::new("Malloc0", 64, 512))?;
/// let desc = bdev::open("Malloc0", true)?;
/// assert_eq!(desc.bdev().name(), "Malloc0");
/// assert!(matches!(bdev::open("Nope", false), Err(BdevError::NotFound(_))));
/// # drop(desc); bdev::fini(); spdk_io::env::fini();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open(name: &str, write: bool) -> Result<Desc> {
    open_inner(name, write, None)
}

fn open_inner(name: &str, write: bool, event_cb: Option<EventCb>) -> Result<Desc> {
    let bdev = registry::get_by_name(name).ok_or_else(|| BdevError::NotFound(name.to_string()))?;
    let mut st = bdev.lock();
    if bdev.is_removed() {
        return Err(BdevError::Removed(bdev.name().to_string()));
    }
    if write {
        if let Some(c) = &st.claim {
            return Err(BdevError::Claimed {
                bdev: bdev.name().to_string(),
                module: c.module.clone(),
            });
        }
    }
    let inner = Arc::new(DescInner {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        bdev: bdev.clone(),
        write,
        event_cb,
        thread: Thread::current().map(|t| t.handle()),
    });
    let weak: std::sync::Weak<dyn OpenDesc> = Arc::downgrade(&inner) as std::sync::Weak<DescInner>;
    st.descs.push(weak);
    drop(st);
    Ok(Desc { inner })
}

impl Desc {
    /// The open bdev (`spdk_bdev_desc_get_bdev`).
    pub fn bdev(&self) -> &Arc<Bdev> {
        &self.inner.bdev
    }

    /// Whether writes are allowed through this descriptor.
    pub fn is_writable(&self) -> bool {
        self.inner.write
    }

    /// Claims the bdev exclusively for `module` through this descriptor
    /// (`spdk_bdev_module_claim_bdev`): afterwards nobody else can open it
    /// for writing or claim it. The claim ends when this descriptor closes.
    pub fn claim(&self, module: &str) -> Result<()> {
        let b = &self.inner.bdev;
        let mut st = b.lock();
        if let Some(c) = &st.claim {
            return Err(BdevError::Claimed {
                bdev: b.name().to_string(),
                module: c.module.clone(),
            });
        }
        st.claim = Some(Claim {
            desc_id: self.inner.id,
            module: module.to_string(),
        });
        Ok(())
    }

    /// Gives a claim up (`spdk_bdev_module_release_bdev`).
    pub fn release_claim(&self) {
        let mut st = self.inner.bdev.lock();
        if st
            .claim
            .as_ref()
            .is_some_and(|c| c.desc_id == self.inner.id)
        {
            st.claim = None;
        }
    }

    /// The calling thread's I/O channel to the bdev
    /// (`spdk_bdev_get_io_channel`): on a lightweight thread, the same
    /// channel for every call while any handle to it is alive (the
    /// thread's io_channel of the bdev's io_device), a new one otherwise;
    /// it is polled by its poller on that thread. Outside any thread there
    /// is no thread to share with: each call makes a new channel, which its
    /// owner polls ([`Channel::poll`]).
    pub fn get_io_channel(&self) -> Result<Channel> {
        let bdev = &self.inner.bdev;
        if Thread::current().is_none() {
            return Channel::new(bdev.clone(), None, None);
        }
        let io_ch = bdev
            .io_device
            .get_io_channel()
            .map_err(|e| channel_error(bdev.name(), e))?;
        let shared = io_ch
            .ctx()
            .shared
            .as_ref()
            .and_then(Weak::upgrade)
            .and_then(|c| c.downcast::<ChannelInner>().ok());
        if let Some(inner) = shared {
            return Ok(Channel(inner));
        }
        let ch = Channel::new(bdev.clone(), None, Some(io_ch.clone()))?;
        let weak: Weak<dyn std::any::Any> = Rc::downgrade(&ch.0) as Weak<ChannelInner>;
        io_ch.ctx_mut().shared = Some(weak);
        Ok(ch)
    }

    /// A new channel (never shared) whose pool holds `pool_size` requests
    /// instead of the default (see [`super::set_io_pool_size`]); on a
    /// lightweight thread it is one of the thread's io_channels, polled by
    /// its own poller, as [`Desc::get_io_channel`]'s.
    pub fn get_io_channel_sized(&self, pool_size: usize) -> Result<Channel> {
        let bdev = &self.inner.bdev;
        let io_ch = match Thread::current() {
            Some(_) => Some(
                bdev.io_device
                    .get_io_channel()
                    .map_err(|e| channel_error(bdev.name(), e))?,
            ),
            None => None,
        };
        Channel::new(bdev.clone(), Some(pool_size.max(1)), io_ch)
    }

    /// Closes the descriptor (the same as dropping it).
    pub fn close(self) {}
}
