//! The `thread` layer: SPDK's `<spdk/thread.h>` concurrency model in Rust —
//! lightweight threads that own their data, talk by message and poll.
//!
//! It depends on nothing else in the crate; no device is needed to use or
//! test it.
//!
//! # The model
//! - [`Thread`]: a lightweight, stackless thread (SPDK's `spdk_thread`),
//!   polled by whoever hosts it with [`Thread::poll`]`(max_msgs) -> busy`
//!   (a [`Reactor`](ReactorSet), a test harness, your own loop; a host
//!   polling many threads chains [`Thread::poll_at`] to read the clock once).
//!   [`Thread::current`] is the thread being polled on this OS thread.
//!   A `Thread` is `!Send`: its pollers, io_channels and tasks never leave
//!   the OS thread polling it. [`ThreadStats`] counts busy/idle ticks.
//! - [`ThreadHandle`]: the `Send + Sync` face of a thread;
//!   [`send_msg`]`(&handle, f)` queues a closure on its bounded lock-free
//!   ring from any OS thread. Never run inline, FIFO per sender, no heap
//!   allocation when the closure captures ≤ [`MSG_INLINE_SIZE`] bytes; a
//!   full ring is [`ThreadError::RingFull`]; one critical-message slot
//!   ([`ThreadHandle::send_critical_msg`]).
//! - The thread list: [`ThreadHandle::by_id`], [`threads`], [`thread_count`],
//!   [`for_each_thread`] (run a closure on every thread in turn, then
//!   complete on the caller). [`Thread::unlisted`] makes a thread left
//!   out of it (for a host polled only now and then).
//! - [`Poller`]: [`poller_register`]`(name, period_us, f)` — untimed
//!   (period 0) or timed (deadline order); returns [`PollerStatus`];
//!   pause/resume; unregister (also from inside itself, see
//!   [`Poller::current`]); never runs after unregister.
//! - [`IoDevice`] / [`IoChannel`]: [`io_device_register`]`(key, name,
//!   create, destroy)` with a per-thread context `T`;
//!   [`IoDevice::get_io_channel`] creates or references the current
//!   thread's channel; dropping the last reference destroys it at the next
//!   poll unless a get came in between; [`IoDevice::for_each_channel`]
//!   visits each thread with a channel, one at a time ([`ChannelIter`]);
//!   [`IoDevice::current_channel`] finds the current thread's channel
//!   without making one;
//!   [`IoDevice::unregister`] completes once all channels and walks are gone
//!   ([`IoDevice::unregister_detached`] from outside any thread, with no
//!   completion); [`IoChannel::poller_register`] gives a channel its own
//!   poller, which [`Thread::shutdown`] does not count as work left when
//!   only held channels remain.
//! - Listings: [`Thread::pollers`] ([`PollerInfo`]) and
//!   [`Thread::io_channels`] ([`IoChannelInfo`]), for the framework's
//!   `thread_get_pollers` / `thread_get_io_channels`.
//! - Exit: [`Thread::exit`] then poll until [`Thread::is_exited`] (no
//!   pollers, channels, walks, tasks or messages left, or the exit timeout);
//!   [`Thread::shutdown`] does both from the calling OS thread and returns
//!   an error at once when only channels the caller holds are left;
//!   [`Thread::destroy`] refuses a thread that has not exited.
//! - Async: [`spawn_local`] (`!Send` futures on the thread's executor,
//!   [`JoinHandle`], whose result a host loop takes with
//!   [`JoinHandle::try_take`]), [`Thread::block_on`] (run a future to
//!   completion from the calling OS thread), [`Thread::send`] (await a closure's result from
//!   another thread), [`sleep`] (a timed poller), [`yield_now`].
//! - Reactors: [`ReactorSet::start`]`(cpumask, opts)` runs one pinned OS
//!   thread per core, each polling its lightweight threads, with optional
//!   idle back-off; [`ReactorSet::spawn_thread`] places a thread;
//!   [`ReactorSet::stop`] exits every thread and joins; moving a thread
//!   between reactors is [`ReactorSet::move_thread`] (unsafe: see its
//!   contract); [`ReactorSet::reactor_stats`] gives busy/idle per core.
//!
//! # Design notes
//! - Messages are `FnOnce() + Send` closures stored inline in a 64-byte
//!   [`Msg`] (48 bytes of captures) on a crossbeam `ArrayQueue`; larger
//!   closures are boxed. A full ring is the sender's problem
//!   ([`ThreadError::RingFull`], [`ThreadHandle::try_send`] hands the
//!   message back); the layer's own messages (for_each steps, wakes,
//!   unregister completions) overflow into an unbounded queue instead, so
//!   they are never lost.
//! - Exit is race-free against senders: a sender counts itself in around
//!   its state check and push; the exiting thread marks itself exited,
//!   waits for in-flight senders, and goes back to exiting if a message
//!   got in. Every accepted message runs (unless the exit times out or
//!   the thread is dropped without exiting: then it is dropped unrun).
//! - Walks (for_each_channel, for_each_thread), `Thread::send` replies and
//!   unregister completions carry drop guards: if a thread disappears with
//!   one of them unrun, the walk moves on or the waiter gets an error.
//! - `unsafe` is denied by lint here, and allowed by name in one place
//!   only: [`ReactorSet::move_thread`] with the `Migrant` it sends
//!   (reactor.rs, reactor_loop.rs) — moving a `!Send` thread to another OS
//!   thread is sound only under a contract the caller states. A [`Msg`]'s
//!   inline closure buffer is the environment's
//!   [`InlineFn`](crate::env::InlineFn), whose unsafe lives there.
//! - Time is [`ticks`] (nanoseconds, monotonic); a poll reads the clock
//!   once when its host chains [`Thread::poll_at`].
//!
//! # Using it (a test-harness sketch)
//! ```
//! use spdk_io::thread::{Thread, PollerStatus};
//! let t = Thread::new("app");
//! let h = t.handle();
//! std::thread::spawn(move || h.send_msg(|| println!("hello")).unwrap()).join().unwrap();
//! let p = t.enter(|| spdk_io::thread::poller_register("tick", 0, || PollerStatus::Idle)).unwrap();
//! while t.poll(0) {}
//! p.unregister();
//! t.exit();
//! while !t.is_exited() { t.poll(0); }
//! t.destroy().unwrap();
//! ```
//!
//! # An io_device and its channels
//! ```
//! use spdk_io::thread::{io_device_register, IoDeviceKey, Thread};
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//!
//! // Each thread's channel context: here, a per-thread I/O counter.
//! struct Ctx { ios: u64 }
//! let live = Arc::new(AtomicU32::new(0));
//! let (l1, l2) = (live.clone(), live.clone());
//! let dev = io_device_register(
//!     IoDeviceKey::unique(),
//!     "nvme0n1",
//!     move || { l1.fetch_add(1, Ordering::SeqCst); Ok(Ctx { ios: 0 }) },
//!     move |_ctx: &mut Ctx| { l2.fetch_sub(1, Ordering::SeqCst); },
//! ).unwrap();
//!
//! let t = Thread::new("io");
//! let ch = t.enter(|| dev.get_io_channel()).unwrap();
//! ch.ctx_mut().ios += 1;
//! assert_eq!(live.load(Ordering::SeqCst), 1);
//!
//! // Sum the counters of every channel, then report on the caller.
//! let total = Arc::new(std::sync::atomic::AtomicU64::new(0));
//! let tt = total.clone();
//! t.enter(|| dev.for_each_channel(
//!     move |ch, it| { tt.fetch_add(ch.ctx().ios, Ordering::SeqCst); it.continue_with(0) },
//!     |status| assert_eq!(status, 0),
//! )).unwrap();
//! while t.poll(0) {}
//! assert_eq!(total.load(Ordering::SeqCst), 1);
//!
//! t.enter(|| drop(ch));               // the last put: destroyed at the next poll
//! t.enter(|| dev.unregister(|| println!("nvme0n1 gone"))).unwrap();
//! while t.poll(0) {}
//! assert_eq!(live.load(Ordering::SeqCst), 0);
//! # t.exit(); while !t.is_exited() { t.poll(0); } t.destroy().unwrap();
//! ```
//!
//! # What stays on its thread
//! Channels, pollers and threads are `!Send`; the compiler refuses to
//! move them to another OS thread:
//! ```compile_fail
//! fn assert_send<T: Send>() {}
//! assert_send::<spdk_io::thread::IoChannel<u32>>();
//! ```
//! ```compile_fail
//! fn assert_send<T: Send>() {}
//! assert_send::<spdk_io::thread::Thread>();
//! ```
//! ```compile_fail
//! fn assert_send<T: Send>() {}
//! assert_send::<spdk_io::thread::Poller>();
//! ```
//! while handles, devices and messages cross freely:
//! ```
//! fn assert_send_sync<T: Send + Sync>() {}
//! assert_send_sync::<spdk_io::thread::ThreadHandle>();
//! assert_send_sync::<spdk_io::thread::IoDevice<std::rc::Rc<u32>>>();
//! fn assert_send<T: Send>() {}
//! assert_send::<spdk_io::thread::Msg>();
//! assert_send::<spdk_io::thread::ChannelIter<std::rc::Rc<u32>>>();
//! ```

#![deny(unsafe_code)]

mod block_on;
mod cpumask;
mod error;
mod exec;
mod for_each;
mod future;
mod handle;
mod introspect;
mod io_channel;
mod io_device;
mod join;
mod msg;
mod poller;
mod poller_set;
mod reactor;
mod reactor_loop;
mod spdk_thread;
mod thread_list;
mod time;

pub use cpumask::{CpuMask, MAX_CORES};
pub use error::ThreadError;
pub use exec::spawn_local;
pub use for_each::{ChannelIter, FOR_EACH_DROPPED};
pub use future::{sleep, yield_now, SendFuture, Sleep, YieldNow};
pub use handle::{send_msg, ThreadHandle};
pub use introspect::{IoChannelInfo, PollerInfo, PollerKind};
pub use io_channel::IoChannel;
pub use io_device::{io_device_register, BoxError, IoDevice, IoDeviceKey};
pub use join::JoinHandle;
pub use msg::{Msg, MSG_INLINE_SIZE};
pub use poller::{poller_register, Poller, PollerStatus, MAX_POLLER_PERIOD_US};
pub use reactor::{ReactorOpts, ReactorSet};
pub use reactor_loop::{idle_wait_allowed, note_idle_wait, reactor_idle_iterations};
pub use spdk_thread::{Thread, ThreadOpts, ThreadStats, MSG_BATCH_SIZE};
pub use thread_list::{for_each_thread, thread_count, threads};
pub use time::{poll_ticks, ticks, TICKS_HZ};
