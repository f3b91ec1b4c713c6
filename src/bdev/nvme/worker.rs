//! Blocking controller work (bring-up, reset, shutdown) on an OS thread of
//! its own, awaited from a lightweight thread without holding it.
//!
//! The nvme layer brings a controller up by waiting (CSTS.RDY, a TCP
//! connect and ICResp, admin commands), as SPDK's synchronous probe does.
//! A reactor must never wait, so the nvme bdev module runs that work here:
//! [`spawn`] starts it and returns a [`Pending`] future that the app
//! thread awaits (woken by the worker when it finishes, optionally given
//! up after a deadline). The workers are remembered, so the module's fini
//! can wait for those still running before the environment goes away.

use crate::bdev::{BdevError, Result};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    /// The awaiting side went away (deadline or drop): the worker disposes
    /// of its own result.
    abandoned: bool,
}

/// The result of a worker, to await (see [`spawn`]).
#[must_use = "futures do nothing unless awaited"]
pub(super) struct Pending<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

/// Workers not yet joined (module fini joins them).
static WORKERS: Mutex<Vec<std::thread::JoinHandle<()>>> = Mutex::new(Vec::new());

/// Runs `f` on a new OS thread named `name`; its result is awaited with
/// the returned future. If the future is dropped first, the result is
/// dropped on the worker (a controller brought up too late is detached
/// there, off every reactor).
pub(super) fn spawn<T, F>(name: &str, f: F) -> Result<Pending<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
        abandoned: false,
    }));
    let s = slot.clone();
    let h = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let v = f();
            let mut st = s.lock().unwrap_or_else(|p| p.into_inner());
            if st.abandoned {
                drop(st);
                drop(v);
                return;
            }
            st.value = Some(v);
            if let Some(w) = st.waker.take() {
                w.wake();
            }
        })
        .map_err(|e| BdevError::Os {
            op: "start a controller worker thread",
            path: name.to_string(),
            source: e.into(),
        })?;
    remember(h);
    Ok(Pending { slot })
}

/// Runs `f` on a new OS thread named `name` that nobody awaits (a
/// controller's recovery loop); module fini waits for it like the others.
pub(super) fn spawn_detached<F>(name: &str, f: F) -> Result<()>
where
    F: FnOnce() + Send + 'static,
{
    let h = std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| BdevError::Os {
            op: "start a controller worker thread",
            path: name.to_string(),
            source: e.into(),
        })?;
    remember(h);
    Ok(())
}

fn remember(h: std::thread::JoinHandle<()>) {
    let mut w = WORKERS.lock().unwrap_or_else(|p| p.into_inner());
    w.retain(|h| !h.is_finished());
    w.push(h);
}

/// Waits for every worker still running (the nvme module's fini: their
/// controllers and DMA buffers must be gone before the env is).
pub(super) fn join_all() {
    let list = std::mem::take(&mut *WORKERS.lock().unwrap_or_else(|p| p.into_inner()));
    for h in list {
        if h.join().is_err() {
            log::error!("nvme bdev: a controller worker thread panicked");
        }
    }
}

impl<T> Pending<T> {
    /// The result, if the worker has finished (for a poller that checks
    /// instead of awaiting).
    pub(super) fn try_take(&self) -> Option<T> {
        self.slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .value
            .take()
    }
}

impl<T> Future for Pending<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut st = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        match st.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for Pending<T> {
    fn drop(&mut self) {
        let mut st = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        st.abandoned = true;
        st.waker = None;
        let late = st.value.take();
        drop(st);
        // A result that arrived but was never taken is dropped here.
        drop(late);
    }
}

/// Awaits `p`, or gives up after `limit` (`None`: no limit) with
/// `Err(limit)`. Needs a current lightweight thread for the timer.
pub(super) async fn with_deadline<T>(
    p: Pending<T>,
    limit: Option<Duration>,
) -> std::result::Result<T, Duration> {
    let Some(limit) = limit else {
        return Ok(p.await);
    };
    let mut p = p;
    let mut timer = crate::thread::sleep(limit);
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(v) = Pin::new(&mut p).poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut timer).poll(cx) {
            Poll::Ready(_) => Poll::Ready(Err(limit)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}
