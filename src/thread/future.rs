//! Futures built on messages and pollers: [`Thread::send`] (run a closure
//! on another thread and await its result), [`sleep`] (a timed poller) and
//! [`yield_now`].

use super::{Poller, PollerStatus, Thread, ThreadError, ThreadHandle, MAX_POLLER_PERIOD_US};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

enum Reply<R> {
    Waiting(Option<Waker>),
    Done(R),
    Canceled,
    Taken,
}

struct ReplySlot<R> {
    state: Mutex<Reply<R>>,
    /// The target, to name it in an error (cloning a handle does not allocate).
    thread: ThreadHandle,
}

impl<R> ReplySlot<R> {
    fn set(&self, v: Reply<R>) {
        let old = std::mem::replace(
            &mut *self.state.lock().unwrap_or_else(|p| p.into_inner()),
            v,
        );
        if let Reply::Waiting(Some(w)) = old {
            w.wake();
        }
    }
}

/// Carried by the request message: answers it, or cancels it if the
/// message is dropped unrun.
struct Replier<R> {
    slot: Option<Arc<ReplySlot<R>>>,
}

impl<R> Replier<R> {
    fn reply(mut self, v: R) {
        if let Some(s) = self.slot.take() {
            s.set(Reply::Done(v));
        }
    }
}

impl<R> Drop for Replier<R> {
    fn drop(&mut self) {
        if let Some(s) = self.slot.take() {
            s.set(Reply::Canceled);
        }
    }
}

/// The future of [`Thread::send`]: resolves to the closure's result, or to
/// the error that kept it from running.
#[must_use = "futures do nothing unless awaited"]
pub struct SendFuture<R> {
    slot: Result<Arc<ReplySlot<R>>, Option<ThreadError>>,
}

impl<R> Future for SendFuture<R> {
    type Output = Result<R, ThreadError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let slot = match &mut this.slot {
            Err(e) => {
                return Poll::Ready(Err(e.take().expect("SendFuture polled after completion")))
            }
            Ok(s) => s,
        };
        let mut st = slot.state.lock().unwrap_or_else(|p| p.into_inner());
        match std::mem::replace(&mut *st, Reply::Taken) {
            Reply::Done(v) => Poll::Ready(Ok(v)),
            Reply::Canceled => Poll::Ready(Err(ThreadError::Canceled {
                thread: slot.thread.shared.name.clone(),
            })),
            Reply::Waiting(w) => {
                let w = match w {
                    Some(w) if w.will_wake(cx.waker()) => w,
                    _ => cx.waker().clone(),
                };
                *st = Reply::Waiting(Some(w));
                Poll::Pending
            }
            Reply::Taken => panic!("SendFuture polled after completion"),
        }
    }
}

impl Thread {
    /// Runs `f` on `target` and returns a future of its result: the async
    /// face of a message round trip. The request is sent now; if it cannot
    /// be (ring full, thread exited) the future resolves to that error, and
    /// to [`ThreadError::Canceled`] if the target drops it unrun. Costs one
    /// allocation (the reply slot) per call when `f` and `R` are small
    /// enough for an inline message. Works from any executor.
    pub fn send<R, F>(target: &ThreadHandle, f: F) -> SendFuture<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let slot = Arc::new(ReplySlot {
            state: Mutex::new(Reply::Waiting(None)),
            thread: target.clone(),
        });
        let replier = Replier {
            slot: Some(slot.clone()),
        };
        match target.send_msg(move || replier.reply(f())) {
            Ok(()) => SendFuture { slot: Ok(slot) },
            Err(e) => SendFuture { slot: Err(Some(e)) },
        }
    }
}

struct SleepState {
    fired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// The future of [`sleep`].
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    dur: Duration,
    state: Rc<SleepState>,
    poller: Option<Poller>,
}

/// A future that completes after `dur`, on the current thread: a one-shot
/// timed poller (so its resolution is the thread's poll rate). Resolves to
/// [`ThreadError::NoCurrentThread`] outside a thread and
/// [`ThreadError::PollerPeriodTooLong`] beyond a day.
pub fn sleep(dur: Duration) -> Sleep {
    Sleep {
        dur,
        state: Rc::new(SleepState {
            fired: Cell::new(false),
            waker: RefCell::new(None),
        }),
        poller: None,
    }
}

impl Future for Sleep {
    type Output = Result<(), ThreadError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.state.fired.get() || this.dur.is_zero() {
            return Poll::Ready(Ok(()));
        }
        *this.state.waker.borrow_mut() = Some(cx.waker().clone());
        if this.poller.is_none() {
            let us = this.dur.as_micros().clamp(1, u128::from(u64::MAX)) as u64;
            if us > MAX_POLLER_PERIOD_US {
                return Poll::Ready(Err(ThreadError::PollerPeriodTooLong {
                    period_us: us,
                    max_us: MAX_POLLER_PERIOD_US,
                }));
            }
            let t = match Thread::current_or_err() {
                Ok(t) => t,
                Err(e) => return Poll::Ready(Err(e)),
            };
            let st = this.state.clone();
            let p = t.poller_register("sleep", us, move || {
                st.fired.set(true);
                if let Some(p) = Poller::current() {
                    p.unregister();
                }
                if let Some(w) = st.waker.borrow_mut().take() {
                    w.wake();
                }
                PollerStatus::Busy
            });
            match p {
                Ok(p) => this.poller = Some(p),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(p) = self.poller.take() {
            p.unregister();
        }
    }
}

/// A future that yields once to the thread's other work: it wakes itself
/// and completes at its next poll.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
