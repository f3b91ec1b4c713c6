//! Running a thread from the calling OS thread until something is done:
//! [`Thread::block_on`] (a future to completion) and [`Thread::shutdown`]
//! (exit, with an error at once instead of a silent stall).

use super::spdk_thread::CurrentGuard;
use super::{Thread, ThreadError};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// The waker of [`Thread::block_on`]'s future: a flag the loop reads.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// Idle rounds after which a waiting loop yields its OS thread.
const SPIN_ROUNDS: u32 = 64;

impl Thread {
    /// Runs `fut` to completion on this thread, polling the thread (its
    /// messages, pollers, channels and spawned tasks) from the calling OS
    /// thread in between: the role of `tokio_uring::start`'s `block_on`.
    /// Inside, [`Thread::current`] is this thread, so
    /// [`spawn_local`](super::spawn_local), pollers and channels work.
    ///
    /// Errors, instead of a silent hang:
    /// - [`ThreadError::NestedBlockOn`] when called while a thread is being
    ///   polled or entered on this OS thread (a thread cannot poll itself
    ///   from inside its own callbacks);
    /// - [`ThreadError::ThreadExited`] on an exited thread;
    /// - [`ThreadError::NeverWoken`] when the future is pending, the thread
    ///   has nothing left to run (no messages, pollers or tasks) and nobody
    ///   holds the future's waker: nothing can ever complete it.
    ///
    /// ```
    /// use spdk_io::thread::{spawn_local, Thread};
    /// let t = Thread::new("app");
    /// let v = t.block_on(async {
    ///     let task = spawn_local(async { 40 }).unwrap();
    ///     task.await.unwrap() + 2
    /// }).unwrap();
    /// assert_eq!(v, 42);
    /// t.shutdown().unwrap();
    /// t.destroy().unwrap();
    /// ```
    pub fn block_on<F: Future>(&self, fut: F) -> Result<F::Output, ThreadError> {
        if let Some(name) = Thread::with_current(|t| t.map(|t| t.inner.shared.name.clone())) {
            return Err(ThreadError::NestedBlockOn { thread: name });
        }
        if self.is_exited() {
            return Err(ThreadError::ThreadExited {
                thread: self.inner.shared.name.clone(),
            });
        }
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = pin!(fut);
        let mut idle = 0u32;
        loop {
            if flag.0.swap(false, Ordering::AcqRel) {
                let _g = CurrentGuard::enter(self);
                if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                    return Ok(v);
                }
            }
            if self.poll(0) || flag.0.load(Ordering::Acquire) {
                idle = 0;
                continue;
            }
            // Our own two references (`flag`, `waker`) are all there are:
            // nobody can wake the future, and nothing on the thread runs.
            if Arc::strong_count(&flag) <= 2 && self.has_nothing_to_run() {
                // A waker let go of just now may have woken the future first:
                // `wake` sets the flag before it drops its reference, so once
                // the count shows that drop, the flag shows the wake.
                std::sync::atomic::fence(Ordering::Acquire);
                if flag.0.load(Ordering::Acquire) {
                    continue;
                }
                return Err(ThreadError::NeverWoken {
                    thread: self.inner.shared.name.clone(),
                });
            }
            idle += 1;
            if idle > SPIN_ROUNDS {
                std::thread::yield_now();
            }
        }
    }

    /// No pollers, tasks, messages, pending walks or deferred puts.
    fn has_nothing_to_run(&self) -> bool {
        self.inner.pollers.live() == 0 && self.runs_only_channel_pollers()
    }

    /// Nothing to run but the pollers of io_channels (those go when their
    /// holder puts the channel): no other poller, task, message, pending
    /// walk or deferred put.
    fn runs_only_channel_pollers(&self) -> bool {
        let i = &*self.inner;
        i.pollers.live_own() == 0
            && i.exec.task_count() == 0
            && i.for_each_pending.get() == 0
            && !i.channels.has_deferred()
            && !i.shared.has_messages()
    }

    /// Exits the thread and polls it from the calling OS thread until it
    /// has exited (SPDK's `spdk_thread_exit` followed by polling until
    /// `spdk_thread_is_exited`); afterwards [`destroy`](Self::destroy) it.
    ///
    /// Errors, at once rather than after a logged stall:
    /// - [`ThreadError::ChannelsHeld`] when everything else is done but
    ///   io_channels are still referenced (their own pollers, registered
    ///   with [`IoChannel::poller_register`](super::IoChannel::poller_register),
    ///   idle): only their holder (the caller) can put them, so nothing on
    ///   the thread will. The thread stays
    ///   exiting: drop the channels (inside [`enter`](Self::enter)) and call
    ///   `shutdown` again.
    /// - [`ThreadError::ExitTimedOut`] when the exit timeout forced it
    ///   (pollers or tasks never finished); the thread is exited.
    /// - [`ThreadError::NestedBlockOn`] when called from inside a thread.
    pub fn shutdown(&self) -> Result<(), ThreadError> {
        if let Some(name) = Thread::with_current(|t| t.map(|t| t.inner.shared.name.clone())) {
            return Err(ThreadError::NestedBlockOn { thread: name });
        }
        self.exit();
        let mut idle = 0u32;
        while !self.is_exited() {
            if self.poll(0) {
                idle = 0;
                continue;
            }
            if self.inner.channels.count() > 0 && self.runs_only_channel_pollers() {
                let held: Vec<String> = self
                    .inner
                    .channels
                    .entries()
                    .into_iter()
                    .map(|(name, refs)| format!("{name} ({refs} refs)"))
                    .collect();
                return Err(ThreadError::ChannelsHeld {
                    thread: self.inner.shared.name.clone(),
                    channels: held.join(", "),
                });
            }
            idle += 1;
            if idle > SPIN_ROUNDS {
                std::thread::yield_now();
            }
        }
        if self.exit_timed_out() {
            let pollers: Vec<String> = self.pollers().into_iter().map(|p| p.name).collect();
            return Err(ThreadError::ExitTimedOut {
                thread: self.inner.shared.name.clone(),
                pollers: pollers.join(", "),
            });
        }
        Ok(())
    }
}
