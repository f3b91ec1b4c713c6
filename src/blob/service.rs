//! The blobstore on its metadata thread, as in SPDK: the thread that loads
//! a blobstore owns it, and every operation runs there, one at a time, in
//! arrival order (`fifo`: a task on that thread's executor that
//! awaits the device, never blocks). Other threads reach it by message,
//! with a completion callback on their own thread ([`BlobstoreHandle::call`],
//! [`BlobstoreHandle::call_async`]) or as an `async` call
//! ([`BlobstoreHandle::run`], [`BlobstoreHandle::run_async`], and the
//! operations by name in [`super::handle_ops`]).
//!
//! A [`BlobstoreHandle`] is the `Send + Sync` way in; the store itself
//! never leaves its thread.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::dev::BsDev;
use super::error::{BlobError, Result};
use super::fifo::{self, Job, LocalFut};
use super::io_map::{Freeze, Maps, Refresh};
use super::stats::{BlobStats, SharedStats};
use super::store::Blobstore;
use crate::thread::{ThreadError, ThreadHandle};

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
    maps: Arc<Maps>,
    stats: Arc<SharedStats>,
    _dev: PhantomData<fn() -> D>,
}

impl<D> Clone for BlobstoreHandle<D> {
    fn clone(&self) -> Self {
        BlobstoreHandle {
            md_thread: self.md_thread.clone(),
            key: self.key,
            maps: self.maps.clone(),
            stats: self.stats.clone(),
            _dev: PhantomData,
        }
    }
}

fn thread_err(e: ThreadError) -> BlobError {
    BlobError::Thread(e.to_string())
}

impl<D: BsDev + Send + 'static> BlobstoreHandle<D> {
    /// Hands `bs` to `md_thread`, which owns it from the next poll on.
    pub fn start(md_thread: &ThreadHandle, bs: Blobstore<D>) -> Result<Self> {
        let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        let maps = Arc::new(Maps::default());
        let stats = Arc::new(SharedStats::default());
        let (m, st) = (maps.clone(), stats.clone());
        md_thread
            .send_msg(move || {
                if let Err(e) = fifo::start(key, bs, m, st) {
                    log::error!("blobstore: metadata thread cannot take the store: {e}");
                }
            })
            .map_err(thread_err)?;
        Ok(Self::new(md_thread, key, maps, stats))
    }

    /// Unloads the store on the metadata thread (after every operation
    /// queued before) and returns the device.
    pub async fn unload(self) -> Result<D> {
        let (tx, rx) = reply_pair();
        self.end(Box::new(move |bs| {
            Box::pin(async move { tx.send(bs.unload_async().await) })
        }))?;
        rx.await
    }
}

impl<D: BsDev + 'static> BlobstoreHandle<D> {
    fn new(md_thread: &ThreadHandle, key: u64, maps: Arc<Maps>, stats: Arc<SharedStats>) -> Self {
        BlobstoreHandle {
            md_thread: md_thread.clone(),
            key,
            maps,
            stats,
            _dev: PhantomData,
        }
    }

    /// The cluster maps of the store's open blobs.
    pub(crate) fn maps(&self) -> &Arc<Maps> {
        &self.maps
    }

    /// The counters channels add to.
    pub(crate) fn shared_stats(&self) -> &SharedStats {
        &self.stats
    }

    /// What the store has counted (metadata syncs, clusters allocated,
    /// allocation batches, channel writes that waited for one), as of the
    /// last operation the metadata thread finished; from any thread, no
    /// message.
    pub fn stats(&self) -> BlobStats {
        self.stats.snapshot()
    }

    /// Makes the store on `md_thread` itself with `make` (a synchronous
    /// init or load, for devices that complete inline).
    pub async fn start_with<F>(md_thread: &ThreadHandle, make: F) -> Result<Self>
    where
        F: FnOnce() -> Result<Blobstore<D>> + Send + 'static,
    {
        Self::start_with_async(md_thread, move || std::future::ready(make())).await
    }

    /// Makes the store on `md_thread` itself with the future `make` returns
    /// there (e.g. [`Blobstore::load_async`] on a [`super::BdevBsDev`]
    /// opened on that thread, whose channel belongs to it), as SPDK loads a
    /// blobstore on its md thread. Resolves once the store is up.
    pub async fn start_with_async<F, Fut>(md_thread: &ThreadHandle, make: F) -> Result<Self>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Blobstore<D>>> + 'static,
    {
        let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        let maps = Arc::new(Maps::default());
        let stats = Arc::new(SharedStats::default());
        let (m, st) = (maps.clone(), stats.clone());
        let (tx, rx) = reply_pair();
        md_thread
            .send_msg(move || {
                let task = async move {
                    let r = make()
                        .await
                        .and_then(|bs| fifo::start(key, bs, m, st).map_err(thread_err));
                    tx.send(r)
                };
                if let Err(e) = crate::thread::spawn_local(task) {
                    log::error!("blobstore: cannot start on the metadata thread: {e}");
                }
            })
            .map_err(thread_err)?;
        rx.await?;
        Ok(Self::new(md_thread, key, maps, stats))
    }

    /// The metadata thread.
    pub fn md_thread(&self) -> &ThreadHandle {
        &self.md_thread
    }

    fn push(&self, job: Job<D>) -> Result<()> {
        let key = self.key;
        self.md_thread
            .send_msg(move || fifo::push(key, job))
            .map_err(thread_err)
    }

    fn end(&self, end: fifo::EndFn<D>) -> Result<()> {
        self.push(Job::End(end))
    }

    /// Callback form: runs `op` on the metadata thread, then `cb` with its
    /// result on `reply_to` (the caller's thread, as SPDK completes).
    pub fn call<R, Op, Cb>(&self, op: Op, reply_to: &ThreadHandle, cb: Cb) -> Result<()>
    where
        R: Send + 'static,
        Op: FnOnce(&mut Blobstore<D>) -> Result<R> + Send + 'static,
        Cb: FnOnce(Result<R>) + Send + 'static,
    {
        self.call_async(move |bs| Box::pin(std::future::ready(op(bs))), reply_to, cb)
    }

    /// Callback form of an asynchronous operation: `op` returns the future
    /// of an `*_async` method (`|bs| Box::pin(bs.create_blob_async(..))`);
    /// `cb` gets its result on `reply_to`.
    pub fn call_async<R, Op, Cb>(&self, op: Op, reply_to: &ThreadHandle, cb: Cb) -> Result<()>
    where
        R: Send + 'static,
        Op: for<'a> FnOnce(&'a mut Blobstore<D>) -> LocalFut<'a, Result<R>> + Send + 'static,
        Cb: FnOnce(Result<R>) + Send + 'static,
    {
        let reply_to = reply_to.clone();
        self.push(Job::Op(
            Freeze::All,
            Refresh::All,
            Box::new(move |bs| {
                Box::pin(async move {
                    let r = op(bs).await;
                    let deliver = move || {
                        if let Err(e) = reply_to.send_msg(move || cb(r)) {
                            log::error!("blobstore completion lost: {e}");
                        }
                    };
                    Box::new(deliver) as fifo::Deliver
                })
            }),
        ))
    }

    /// Async form: runs `op` on the metadata thread and resolves to its
    /// result. It freezes the I/O of every open blob while it runs (it may
    /// move any cluster): prefer the named operations or [`Self::query`].
    pub async fn run<R, Op>(&self, op: Op) -> Result<R>
    where
        R: Send + 'static,
        Op: FnOnce(&mut Blobstore<D>) -> Result<R> + Send + 'static,
    {
        self.run_async(move |bs| Box::pin(std::future::ready(op(bs))))
            .await
    }

    /// Async form of a read-only look at the store (`&Blobstore`: it
    /// cannot move a cluster, so unlike [`Self::run`] it freezes no blob's
    /// I/O): sizes, xattrs, blob info, iteration.
    pub async fn query<R, Q>(&self, q: Q) -> Result<R>
    where
        R: Send + 'static,
        Q: FnOnce(&Blobstore<D>) -> R + Send + 'static,
    {
        self.op_with(Freeze::None, Refresh::Nothing, move |bs| {
            Box::pin(std::future::ready(Ok(q(bs))))
        })
        .await
    }

    /// Async form of an asynchronous operation (see [`Self::call_async`]).
    /// It freezes the I/O of every open blob while it runs (it may move
    /// any cluster); the named operations freeze only what they touch.
    pub async fn run_async<R, Op>(&self, op: Op) -> Result<R>
    where
        R: Send + 'static,
        Op: for<'a> FnOnce(&'a mut Blobstore<D>) -> LocalFut<'a, Result<R>> + Send + 'static,
    {
        self.op(Freeze::All, op).await
    }

    /// Runs `op` on the metadata thread with the blobs `freeze` names frozen;
    /// resolves once the shared cluster maps show what `op` did, so I/O the
    /// caller issues next goes where `op` left the blob's clusters.
    pub(crate) async fn op<R, Op>(&self, freeze: Freeze, op: Op) -> Result<R>
    where
        R: Send + 'static,
        Op: for<'a> FnOnce(&'a mut Blobstore<D>) -> LocalFut<'a, Result<R>> + Send + 'static,
    {
        self.op_with(freeze, Refresh::All, op).await
    }

    /// [`Self::op`], publishing only the map entries `refresh` names
    /// afterwards (an operation that only allocates clusters, or changes
    /// nothing).
    pub(crate) async fn op_with<R, Op>(&self, freeze: Freeze, refresh: Refresh, op: Op) -> Result<R>
    where
        R: Send + 'static,
        Op: for<'a> FnOnce(&'a mut Blobstore<D>) -> LocalFut<'a, Result<R>> + Send + 'static,
    {
        let (tx, rx) = reply_pair();
        self.push(Job::Op(
            freeze,
            refresh,
            Box::new(move |bs| {
                Box::pin(async move {
                    let r = op(bs).await;
                    Box::new(move || tx.send(r)) as fifo::Deliver
                })
            }),
        ))?;
        rx.await
    }

    /// Unloads the store on the metadata thread, closing its device there
    /// (for devices that must stay on that thread, like a bdev's).
    pub async fn unload_in_place(self) -> Result<()> {
        let (tx, rx) = reply_pair();
        self.end(Box::new(move |bs| {
            Box::pin(async move { tx.send(bs.unload_async().await.map(drop)) })
        }))?;
        rx.await
    }
}
