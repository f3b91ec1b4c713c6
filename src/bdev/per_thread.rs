//! Each bdev is an io_device of the thread layer, keyed by its address as
//! SPDK's bdev.c keys `__bdev_to_io_dev(bdev)`: a lightweight thread's
//! channels to a bdev are got through it, so the thread knows it holds
//! them (an exit with one still held is an error at once) and the
//! device's `for_each_channel` reaches every thread that has one — how
//! range locks, quiesce, resets and per-channel statistics reach every
//! channel, each on its own thread.
//!
//! A channel made outside any lightweight thread lives on its OS thread's
//! *host* thread: an unlisted lightweight thread that no reactor polls.
//! Every such channel's poll runs the host's messages first, so walks
//! visit those channels too, from whichever of them is polled.
//!
//! The per-thread context names the channel type through `Any` so this
//! file sits below the channel in the module graph.

use super::{BdevError, ErrorSource, Result};
use crate::thread::{io_device_register, IoDevice, IoDeviceKey, Thread, ThreadError};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

/// A thread's context for one bdev: its channels, while they live.
pub(crate) struct ThreadChannels {
    /// What `Desc::get_io_channel` hands out on this thread (a
    /// `Weak<ChannelInner>`, type-erased).
    pub shared: Option<Weak<dyn Any>>,
    /// Every channel of this bdev on this thread (shared or not).
    pub chans: Vec<Weak<dyn Any>>,
}

impl ThreadChannels {
    /// The live channels, as their concrete type.
    pub fn live<C: 'static>(&mut self) -> Vec<Rc<C>> {
        self.chans.retain(|w| w.strong_count() > 0);
        self.chans
            .iter()
            .filter_map(|w| w.upgrade()?.downcast::<C>().ok())
            .collect()
    }
}

/// The io_device of one bdev.
pub(crate) type BdevIoDevice = IoDevice<ThreadChannels>;

/// Registers the io_device of a bdev named `name`.
pub(crate) fn register(name: &str) -> Result<BdevIoDevice> {
    io_device_register(
        IoDeviceKey::unique(),
        name,
        || {
            Ok(ThreadChannels {
                shared: None,
                chans: Vec::new(),
            })
        },
        |_| {},
    )
    .map_err(|e| channel_error(name, e))
}

/// A thread-layer failure to get or serve a bdev's channel.
pub(crate) fn channel_error(bdev: &str, e: ThreadError) -> BdevError {
    BdevError::Channel {
        bdev: bdev.to_string(),
        source: ErrorSource::new(e),
    }
}

thread_local! {
    static HOST: RefCell<Option<Thread>> = const { RefCell::new(None) };
    static IN_HOST: Cell<bool> = const { Cell::new(false) };
}

/// This OS thread's host thread for channels made outside any thread.
pub(crate) fn host_thread() -> Thread {
    HOST.with(|h| {
        h.borrow_mut()
            .get_or_insert_with(|| Thread::unlisted("bdev_host"))
            .clone()
    })
}

/// The thread a lock walk or event may start from here: the current
/// lightweight thread, or this OS thread's host.
pub(crate) fn here() -> Thread {
    Thread::current().unwrap_or_else(host_thread)
}

/// Runs the host thread's messages (walk visits, grants) and deferred
/// channel releases, unless already inside it. Cheap when it has none.
#[inline]
pub(crate) fn poll_host(host: &Thread, force: bool) {
    if (force || host.has_messages()) && !IN_HOST.with(Cell::get) {
        poll_host_slow(host);
    }
}

#[cold]
fn poll_host_slow(host: &Thread) {
    struct Inside;
    impl Drop for Inside {
        fn drop(&mut self) {
            let _ = IN_HOST.try_with(|c| c.set(false));
        }
    }
    IN_HOST.with(|c| c.set(true));
    let _inside = Inside;
    // Bounded: messages a visit sends to this same host wait for the next poll.
    host.poll(0);
}
