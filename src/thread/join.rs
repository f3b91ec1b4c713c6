//! `JoinHandle`: the result of a task spawned with `spawn_local`.

use super::ThreadError;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

struct JoinState<T> {
    result: RefCell<Option<T>>,
    /// Ran to completion (the result may have been taken since).
    finished: Cell<bool>,
    /// Dropped before completing (its thread was destroyed).
    canceled: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    thread: Arc<str>,
}

impl<T> JoinState<T> {
    fn wake(&self) {
        let w = self.waker.borrow_mut().take();
        if let Some(w) = w {
            w.wake();
        }
    }
}

/// Marks the task canceled if it is dropped before it completes.
struct CancelOnDrop<T>(Option<Rc<JoinState<T>>>);

impl<T> Drop for CancelOnDrop<T> {
    fn drop(&mut self) {
        if let Some(st) = self.0.take() {
            st.canceled.set(true);
            st.wake();
        }
    }
}

/// Awaits a task spawned with [`spawn_local`](super::spawn_local): resolves
/// to its output, or to [`ThreadError::Canceled`] if the task was dropped
/// unfinished (its thread was destroyed). Dropping the handle detaches the
/// task: it keeps running.
pub struct JoinHandle<T> {
    state: Rc<JoinState<T>>,
}

impl<T> JoinHandle<T> {
    /// Whether the task is over: completed, or canceled.
    pub fn is_finished(&self) -> bool {
        self.state.finished.get() || self.state.canceled.get()
    }

    /// Takes the task's result without awaiting (from a host loop, a
    /// poller or a callback): `None` while it runs, then once
    /// `Some(Ok(output))` — or `Some(Err(`[`ThreadError::Canceled`]`))` if
    /// its thread dropped it unfinished. After the result was taken,
    /// `None` again (and awaiting the handle then panics, as awaiting it
    /// twice does).
    ///
    /// ```
    /// use spdk_io::thread::Thread;
    /// let t = Thread::new("app");
    /// let h = t.spawn_local(async { 7 }).unwrap();
    /// assert!(h.try_take().is_none(), "not polled yet");
    /// while !h.is_finished() { t.poll(0); }
    /// assert_eq!(h.try_take().unwrap().unwrap(), 7);
    /// assert!(h.try_take().is_none());
    /// # t.shutdown().unwrap(); t.destroy().unwrap();
    /// ```
    pub fn try_take(&self) -> Option<Result<T, ThreadError>> {
        let st = &self.state;
        if let Some(v) = st.result.borrow_mut().take() {
            return Some(Ok(v));
        }
        if st.canceled.get() && !st.finished.get() {
            st.finished.set(true);
            return Some(Err(ThreadError::Canceled {
                thread: st.thread.clone(),
            }));
        }
        None
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, ThreadError>;

    /// Panics if polled again after it returned its output.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let st = &self.state;
        if let Some(v) = st.result.borrow_mut().take() {
            return Poll::Ready(Ok(v));
        }
        assert!(!st.finished.get(), "JoinHandle polled after it completed");
        if st.canceled.get() {
            return Poll::Ready(Err(ThreadError::Canceled {
                thread: st.thread.clone(),
            }));
        }
        let mut w = st.waker.borrow_mut();
        match &*w {
            Some(old) if old.will_wake(cx.waker()) => {}
            _ => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// Wraps `fut` into the task body the executor runs, and its handle.
pub(crate) fn join_pair<F>(
    fut: F,
    thread: Arc<str>,
) -> (impl Future<Output = ()>, JoinHandle<F::Output>)
where
    F: Future + 'static,
    F::Output: 'static,
{
    let state = Rc::new(JoinState {
        result: RefCell::new(None),
        finished: Cell::new(false),
        canceled: Cell::new(false),
        waker: RefCell::new(None),
        thread,
    });
    let st = state.clone();
    let body = async move {
        let mut guard = CancelOnDrop(Some(st));
        let v = fut.await;
        if let Some(st) = guard.0.take() {
            *st.result.borrow_mut() = Some(v);
            st.finished.set(true);
            st.wake();
        }
    };
    (body, JoinHandle { state })
}
