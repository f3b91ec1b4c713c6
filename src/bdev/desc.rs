//! Descriptors (SPDK's `spdk_bdev_desc`): an open handle on a bdev,
//! read-only or writable, that receives the bdev's events and may hold a
//! module's exclusive claim.

use super::channel::{Channel, ChannelInner};
use super::device::{Bdev, Claim};
use super::{registry, BdevError, Result};
use crate::thread::{Thread, ThreadHandle};
use std::cell::RefCell;
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

impl DescInner {
    /// Delivers Remove on the thread that opened the descriptor (by
    /// message), or right here when it was opened outside any thread.
    pub(crate) fn notify_remove(self: &Arc<Self>) {
        if self.event_cb.is_none() {
            return;
        }
        if let Some(t) = &self.thread {
            let me = self.clone();
            match t.send_msg(move || me.run_event(BdevEvent::Remove)) {
                Ok(()) => return,
                Err(e) => log::warn!(
                    "bdev '{}': remove event not sent to thread {}: {e}; delivering here",
                    self.bdev.name(),
                    t.name()
                ),
            }
        }
        self.run_event(BdevEvent::Remove);
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

/// (bdev address, lightweight thread id or 0).
type ChannelKey = (usize, u64);

thread_local! {
    /// This OS thread's live channels, by bdev and lightweight thread: what makes
    /// `get_io_channel` return the same channel per thread.
    static THREAD_CHANNELS: RefCell<Vec<(ChannelKey, Weak<ChannelInner>)>> = const { RefCell::new(Vec::new()) };
}

/// Opens a bdev by name, alias or UUID (`spdk_bdev_open_ext`).
/// `event_cb` receives [`BdevEvent::Remove`] when the bdev goes away, on
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
    st.descs.push(Arc::downgrade(&inner));
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
    /// (`spdk_bdev_get_io_channel`): the same channel for every call on one
    /// thread while any handle to it is alive, a new one otherwise. It must
    /// be polled on that thread (its poller does this on a lightweight thread).
    pub fn get_io_channel(&self) -> Result<Channel> {
        // Per bdev and per lightweight thread (several may share an OS thread).
        let key = (
            Arc::as_ptr(&self.inner.bdev) as usize,
            Thread::current().map_or(0, |t| t.id()),
        );
        let cached = THREAD_CHANNELS.with(|c| {
            let mut c = c.borrow_mut();
            c.retain(|(_, w)| w.strong_count() > 0);
            c.iter()
                .find(|(k, _)| *k == key)
                .and_then(|(_, w)| w.upgrade())
        });
        if let Some(inner) = cached {
            return Ok(Channel(inner));
        }
        let ch = Channel::new(self.inner.bdev.clone(), None)?;
        THREAD_CHANNELS.with(|c| c.borrow_mut().push((key, Rc::downgrade(&ch.0))));
        Ok(ch)
    }

    /// A new channel (never shared) whose pool holds `pool_size` requests
    /// instead of the default (see [`super::set_io_pool_size`]).
    pub fn get_io_channel_sized(&self, pool_size: usize) -> Result<Channel> {
        Channel::new(self.inner.bdev.clone(), Some(pool_size.max(1)))
    }

    /// Closes the descriptor (the same as dropping it).
    pub fn close(self) {}
}
