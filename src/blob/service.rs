//! The blobstore on its metadata thread, as in SPDK: the thread that loads
//! a blobstore owns it, and every operation runs there. Other threads reach
//! it by message, with a completion callback on their own thread or as an
//! `async` call. Any [`Blobstore`] method — create, open, resize, xattrs,
//! snapshots, I/O — is one operation: a closure over `&mut Blobstore`.
//!
//! The store lives in a thread-local table of the metadata thread, so no
//! lock guards it; a [`BlobstoreHandle`] is the `Send + Sync` way in.
//!
//! Operations pass a gate, SPDK's freeze: while any [`super::BlobIoChannel`]
//! of another thread has I/O in flight on device blocks the metadata thread
//! mapped for it, operations wait (queued, in order), so no operation moves
//! a cluster under a running I/O; and mapping requests queue behind waiting
//! operations.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::dev::BsDev;
use super::error::{BlobError, Result};
use super::io::Piece;
use super::store::Blobstore;
use super::BlobId;
use crate::thread::{Thread, ThreadError, ThreadHandle};

thread_local! {
    static STORES: RefCell<HashMap<u64, Box<dyn Any>>> = RefCell::new(HashMap::new());
    static GATES: RefCell<HashMap<u64, Gate>> = RefCell::new(HashMap::new());
}

/// Per store, on its metadata thread: channel I/O in flight, and the work
/// waiting for it to drain.
#[derive(Default)]
struct Gate {
    inflight: u64,
    queued: VecDeque<Box<dyn FnOnce()>>,
}

/// Runs `f` now if no channel I/O is in flight and nothing waits, else queues it.
fn gated(key: u64, f: Box<dyn FnOnce()>) {
    let f = GATES.with(|g| {
        let mut g = g.borrow_mut();
        let gate = g.entry(key).or_default();
        if gate.inflight == 0 && gate.queued.is_empty() {
            Some(f)
        } else {
            gate.queued.push_back(f);
            None
        }
    });
    if let Some(f) = f {
        f();
    }
}

fn inflight_add(key: u64) {
    GATES.with(|g| g.borrow_mut().entry(key).or_default().inflight += 1);
}

/// A channel I/O finished: when none is left in flight, run what waited.
fn release(key: u64) {
    GATES.with(|g| {
        let mut g = g.borrow_mut();
        let gate = g.entry(key).or_default();
        gate.inflight = gate.inflight.saturating_sub(1);
    });
    loop {
        let next = GATES.with(|g| {
            let mut g = g.borrow_mut();
            let gate = g.entry(key).or_default();
            if gate.inflight == 0 {
                gate.queued.pop_front()
            } else {
                None
            }
        });
        match next {
            Some(f) => f(),
            None => break,
        }
    }
}

/// A reply slot filled on the metadata thread and awaited on the caller's.
struct Slot<R> {
    state: Mutex<(Option<R>, Option<Waker>)>,
}

/// The sending half: dropping it unfilled (the thread went away) replies
/// [`BlobError::NotRunning`].
struct Replier<R>(Option<Arc<Slot<Result<R>>>>);

impl<R> Replier<R> {
    fn send(mut self, r: Result<R>) {
        if let Some(slot) = self.0.take() {
            let waker = {
                let mut st = slot.state.lock().unwrap_or_else(|p| p.into_inner());
                st.0 = Some(r);
                st.1.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

impl<R> Drop for Replier<R> {
    fn drop(&mut self) {
        if self.0.is_some() {
            Replier(self.0.take()).send(Err(BlobError::NotRunning));
        }
    }
}

/// The awaiting half.
struct Reply<R>(Arc<Slot<Result<R>>>);

impl<R> Future for Reply<R> {
    type Output = Result<R>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<R>> {
        let mut st = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        match st.0.take() {
            Some(r) => Poll::Ready(r),
            None => {
                st.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

fn reply_pair<R>() -> (Replier<R>, Reply<R>) {
    let slot = Arc::new(Slot {
        state: Mutex::new((None, None)),
    });
    (Replier(Some(slot.clone())), Reply(slot))
}

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// A blobstore owned by a metadata thread; cheap to clone and to send.
pub struct BlobstoreHandle<D> {
    md_thread: ThreadHandle,
    key: u64,
    _dev: PhantomData<fn() -> D>,
}

impl<D> Clone for BlobstoreHandle<D> {
    fn clone(&self) -> Self {
        BlobstoreHandle {
            md_thread: self.md_thread.clone(),
            key: self.key,
            _dev: PhantomData,
        }
    }
}

fn thread_err(e: ThreadError) -> BlobError {
    BlobError::Thread(e.to_string())
}

/// Runs `op` on the store `key` of the current OS thread, taking it out of
/// the table meanwhile so `op` may itself use other stores.
fn with_store<D: BsDev + 'static, R>(
    key: u64,
    op: impl FnOnce(&mut Blobstore<D>) -> R,
) -> Result<R> {
    let mut any = STORES
        .with(|s| s.borrow_mut().remove(&key))
        .ok_or(BlobError::NotRunning)?;
    let r = any
        .downcast_mut::<Blobstore<D>>()
        .map(op)
        .ok_or(BlobError::NotRunning);
    STORES.with(|s| s.borrow_mut().insert(key, any));
    r
}

impl<D: BsDev + Send + 'static> BlobstoreHandle<D> {
    /// Hands `bs` to `md_thread`, which owns it from the next poll on.
    pub fn start(md_thread: &ThreadHandle, bs: Blobstore<D>) -> Result<Self> {
        let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        md_thread
            .send_msg(move || {
                STORES.with(|s| s.borrow_mut().insert(key, Box::new(bs) as Box<dyn Any>));
            })
            .map_err(thread_err)?;
        Ok(BlobstoreHandle {
            md_thread: md_thread.clone(),
            key,
            _dev: PhantomData,
        })
    }

    /// Unloads the store on the metadata thread and returns the device.
    pub async fn unload(self) -> Result<D> {
        let key = self.key;
        let (tx, rx) = reply_pair();
        self.md_thread
            .send_msg(move || {
                gated(
                    key,
                    Box::new(move || tx.send(take_store::<D>(key).and_then(|bs| bs.unload()))),
                )
            })
            .map_err(thread_err)?;
        rx.await
    }
}

fn take_store<D: BsDev + 'static>(key: u64) -> Result<Box<Blobstore<D>>> {
    GATES.with(|g| g.borrow_mut().remove(&key));
    let any = STORES
        .with(|s| s.borrow_mut().remove(&key))
        .ok_or(BlobError::NotRunning)?;
    any.downcast::<Blobstore<D>>()
        .map_err(|_| BlobError::NotRunning)
}

impl<D: BsDev + 'static> BlobstoreHandle<D> {
    /// Makes the store on `md_thread` itself with `make` (init or load on a
    /// device opened there, e.g. a [`super::BdevBsDev`] whose channel
    /// belongs to that thread), as SPDK loads a blobstore on its md thread.
    pub async fn start_with<F>(md_thread: &ThreadHandle, make: F) -> Result<Self>
    where
        F: FnOnce() -> Result<Blobstore<D>> + Send + 'static,
    {
        let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        Thread::send(md_thread, move || {
            let bs = make()?;
            STORES.with(|s| s.borrow_mut().insert(key, Box::new(bs) as Box<dyn Any>));
            Ok(())
        })
        .await
        .map_err(thread_err)??;
        Ok(BlobstoreHandle {
            md_thread: md_thread.clone(),
            key,
            _dev: PhantomData,
        })
    }

    /// The metadata thread.
    pub fn md_thread(&self) -> &ThreadHandle {
        &self.md_thread
    }

    /// Callback form: runs `op` on the metadata thread, then `cb` with its
    /// result on `reply_to` (the caller's thread, as SPDK completes).
    pub fn call<R, Op, Cb>(&self, op: Op, reply_to: &ThreadHandle, cb: Cb) -> Result<()>
    where
        R: Send + 'static,
        Op: FnOnce(&mut Blobstore<D>) -> Result<R> + Send + 'static,
        Cb: FnOnce(Result<R>) + Send + 'static,
    {
        let (key, reply_to) = (self.key, reply_to.clone());
        self.md_thread
            .send_msg(move || {
                gated(
                    key,
                    Box::new(move || {
                        let r = with_store(key, op).and_then(|r| r);
                        if let Err(e) = reply_to.send_msg(move || cb(r)) {
                            log::error!("blobstore completion lost: {e}");
                        }
                    }),
                )
            })
            .map_err(thread_err)
    }

    /// Async form: runs `op` on the metadata thread and resolves to its result.
    pub async fn run<R, Op>(&self, op: Op) -> Result<R>
    where
        R: Send + 'static,
        Op: FnOnce(&mut Blobstore<D>) -> Result<R> + Send + 'static,
    {
        let key = self.key;
        let (tx, rx) = reply_pair();
        self.md_thread
            .send_msg(move || {
                gated(
                    key,
                    Box::new(move || tx.send(with_store(key, op).and_then(|r| r))),
                )
            })
            .map_err(thread_err)?;
        rx.await
    }

    /// Maps an I/O for a channel; a `Some` plan holds the gate until [`Self::release`].
    pub(crate) async fn plan(
        &self,
        id: BlobId,
        offset: u64,
        bytes: usize,
        write: bool,
    ) -> Result<Option<Vec<Piece>>> {
        let key = self.key;
        let (tx, rx) = reply_pair();
        self.md_thread
            .send_msg(move || {
                gated(
                    key,
                    Box::new(move || {
                        let plan = with_store(key, |bs: &mut Blobstore<D>| {
                            bs.plan_io(id, offset, bytes, write)
                        })
                        .and_then(|r| r);
                        if let Ok(Some(_)) = plan {
                            inflight_add(key);
                        }
                        tx.send(plan)
                    }),
                )
            })
            .map_err(thread_err)?;
        rx.await
    }

    /// Ends a channel I/O mapped by [`Self::plan`].
    pub(crate) fn release(&self) {
        let key = self.key;
        if let Err(e) = self.md_thread.send_msg(move || release(key)) {
            log::error!("blobstore: lost the end of a channel I/O: {e}");
        }
    }

    /// Unloads the store on the metadata thread, closing its device there
    /// (for devices that must stay on that thread).
    pub async fn unload_in_place(self) -> Result<()> {
        let key = self.key;
        Thread::send(&self.md_thread, move || {
            take_store::<D>(key)?.unload().map(drop)
        })
        .await
        .map_err(thread_err)?
    }
}
