//! The blobstore on its metadata thread, as in SPDK: the thread that loads
//! a blobstore owns it, and every operation runs there. Other threads reach
//! it by message, with a completion callback on their own thread or as an
//! `async` call. Any [`Blobstore`] method — create, open, resize, xattrs,
//! snapshots, I/O — is one operation: a closure over `&mut Blobstore`.
//!
//! The store lives in a thread-local table of the metadata thread, so no
//! lock guards it; a [`BlobstoreHandle`] is the `Send + Sync` way in.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use super::dev::BsDev;
use super::error::{BlobError, Result};
use super::store::Blobstore;
use crate::thread::{Thread, ThreadError, ThreadHandle};

thread_local! {
    static STORES: RefCell<HashMap<u64, Box<dyn Any>>> = RefCell::new(HashMap::new());
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
        Thread::send(&self.md_thread, move || take_store::<D>(key)?.unload())
            .await
            .map_err(thread_err)?
    }
}

fn take_store<D: BsDev + 'static>(key: u64) -> Result<Box<Blobstore<D>>> {
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
                let r = with_store(key, op).and_then(|r| r);
                if let Err(e) = reply_to.send_msg(move || cb(r)) {
                    log::error!("blobstore completion lost: {e}");
                }
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
        Thread::send(&self.md_thread, move || with_store(key, op).and_then(|r| r))
            .await
            .map_err(thread_err)?
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
