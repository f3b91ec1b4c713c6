//! `for_each_channel` (SPDK's `spdk_for_each_channel`): visit every thread
//! holding a channel to a device, one at a time, then complete on the
//! thread that started it.

use super::io_device::IoDevice;
use super::{Thread, ThreadError, ThreadHandle};
use std::sync::Arc;

type VisitFn<T> = dyn Fn(&super::IoChannel<T>, ChannelIter<T>) + Send + Sync;

struct IterState<T: 'static> {
    dev: IoDevice<T>,
    visit: Arc<VisitFn<T>>,
    done: Box<dyn FnOnce(i32) + Send>,
    origin: ThreadHandle,
    /// Id of the last thread visited: the walk goes on with higher ids, so
    /// each thread is visited at most once even as channels come and go.
    last: u64,
}

/// The cursor of a [`IoDevice::for_each_channel`] walk (SPDK's
/// `spdk_io_channel_iter`). The visit function gets it with each channel
/// and must hand it on with [`continue_with`](Self::continue_with) —
/// right away or later (after some I/O on that thread); it is `Send`.
/// Dropping it without continuing stops the walk and completes it with
/// [`FOR_EACH_DROPPED`] (SPDK would hang; a dropped cursor is a bug, logged).
pub struct ChannelIter<T: 'static> {
    state: Option<Box<IterState<T>>>,
}

/// The status `done` gets when a [`ChannelIter`] is dropped without
/// [`continue_with`](ChannelIter::continue_with): `-ECANCELED`.
pub const FOR_EACH_DROPPED: i32 = -125;

impl<T: 'static> Drop for ChannelIter<T> {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            log::warn!(
                "for_each_channel on '{}': a visit dropped its ChannelIter without continue_with; completing with -ECANCELED",
                state.dev.name()
            );
            finish(*state, FOR_EACH_DROPPED);
        }
    }
}

impl<T: 'static> ChannelIter<T> {
    /// The device being walked.
    pub fn device(&self) -> &IoDevice<T> {
        &self.state().dev
    }

    fn state(&self) -> &IterState<T> {
        self.state
            .as_deref()
            .expect("a ChannelIter holds its walk until continue_with consumes it")
    }

    /// The thread that started the walk (where `done` runs).
    pub fn origin(&self) -> &ThreadHandle {
        &self.state().origin
    }

    /// Goes on to the next thread (SPDK's `spdk_for_each_channel_continue`):
    /// `status == 0` continues; anything else stops the walk and completes
    /// it with that status.
    pub fn continue_with(mut self, status: i32) {
        let Some(state) = self.state.take() else {
            return;
        };
        if status != 0 {
            finish(*state, status);
        } else {
            step(state);
        }
    }
}

impl<T: 'static> IoDevice<T> {
    /// Calls `visit` on each thread that holds a channel to this device,
    /// one thread at a time (each visit runs on the channel's own thread),
    /// then calls `done(status)` on the calling thread. Threads that get a
    /// channel during the walk are visited if their id is higher than the
    /// thread being visited; channels destroyed before their turn are
    /// skipped. The device's unregistration waits for the walk. Error:
    /// [`ThreadError::NoCurrentThread`].
    pub fn for_each_channel<V, D>(&self, visit: V, done: D) -> Result<(), ThreadError>
    where
        V: Fn(&super::IoChannel<T>, ChannelIter<T>) + Send + Sync + 'static,
        D: FnOnce(i32) + Send + 'static,
    {
        let t = Thread::current_or_err()?;
        self.shared.core.lock().for_each += 1;
        t.inner
            .for_each_pending
            .set(t.inner.for_each_pending.get() + 1);
        step(Box::new(IterState {
            dev: self.clone(),
            visit: Arc::new(visit),
            done: Box::new(done),
            origin: t.handle(),
            last: 0,
        }));
        Ok(())
    }
}

/// Sends the walk to the next thread holding a channel, or completes it.
fn step<T: 'static>(mut state: Box<IterState<T>>) {
    let next = {
        let st = state.dev.shared.core.lock();
        st.threads
            .range(state.last + 1..)
            .next()
            .map(|(id, h)| (*id, h.clone()))
    };
    let Some((id, target)) = next else {
        return finish(*state, 0);
    };
    state.last = id;
    // The walk travels as one Box (8 bytes): the message needs no
    // allocation. If the target is gone, the message is dropped and the
    // guard moves the walk on.
    let walk = Walk(Some(state));
    let _ = target.send_internal(move || walk.visit());
}

/// A walk in flight to a thread; if the message is dropped unrun (the
/// thread exited), dropping the guard goes on to the next thread.
struct Walk<T: 'static>(Option<Box<IterState<T>>>);

impl<T: 'static> Walk<T> {
    fn visit(mut self) {
        let Some(state) = self.0.take() else { return };
        let ch = Thread::with_current(|t| {
            t.and_then(|t| t.inner.channels.lookup::<T>(state.dev.shared.core.id))
        });
        match ch {
            // lookup took one reference: more than one means the thread
            // still holds the channel (it is not waiting to be destroyed).
            Some(ch) if ch.ref_count() > 1 => {
                let f = state.visit.clone();
                f(&ch, ChannelIter { state: Some(state) });
            }
            _ => step(state),
        }
    }
}

impl<T: 'static> Drop for Walk<T> {
    fn drop(&mut self) {
        if let Some(state) = self.0.take() {
            step(state);
        }
    }
}

/// The completion in flight to the origin thread; the device's for_each
/// count drops when it runs or, if the origin exited, when it is dropped.
struct Finish<T: 'static> {
    dev: IoDevice<T>,
    done: Option<Box<dyn FnOnce(i32) + Send>>,
    status: i32,
}

impl<T: 'static> Finish<T> {
    fn run(mut self) {
        if let Some(t) = Thread::current() {
            let p = &t.inner.for_each_pending;
            p.set(p.get().saturating_sub(1));
        }
        if let Some(done) = self.done.take() {
            done(self.status);
        }
    }
}

impl<T: 'static> Drop for Finish<T> {
    fn drop(&mut self) {
        if self.done.is_some() {
            log::warn!(
                "for_each_channel on '{}' finished but the thread that started it has exited: completion dropped",
                self.dev.name()
            );
        }
        let core = &self.dev.shared.core;
        let mut st = core.lock();
        st.for_each -= 1;
        core.maybe_finish(st);
    }
}

fn finish<T: 'static>(state: IterState<T>, status: i32) {
    let IterState {
        dev, done, origin, ..
    } = state;
    let fin = Finish {
        dev,
        done: Some(done),
        status,
    };
    let _ = origin.send_internal(move || fin.run());
}
