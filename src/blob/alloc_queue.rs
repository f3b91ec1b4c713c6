//! A channel's writes to clusters their blob does not own yet (thin
//! provisioning's first writes, copy-on-write from a snapshot), gathered
//! into batches for the metadata thread.
//!
//! The first such write opens a batch and sends it; every one that
//! arrives before the metadata thread starts it joins (its clusters added,
//! the write parked), up to [`ALLOC_BATCH_MAX`](super::ALLOC_BATCH_MAX) writes. The metadata thread allocates the whole batch with
//! one metadata sync per blob (`alloc_batch`) and publishes the new map
//! entries; then each parked write is routed again and goes straight to
//! the device with its own buffer. Writes that arrive after the batch was
//! taken open the next one. A burst of first writes at any queue depth
//! thus costs a sync or two, not one per write, and no write waits behind
//! other writes' data on the metadata thread.

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use super::alloc_batch::Need;
use super::dev::BsDev;
use super::error::BlobError;
use super::io_map::{Freeze, Refresh};
use super::service::BlobstoreHandle;
use crate::thread::spawn_local;

/// How a batch ended for its writes: `None` when it went through (their
/// clusters are theirs now, unless something moved them since), or the
/// error that stopped it.
pub(crate) type Outcome = Option<Rc<BlobError>>;

/// A parked write: routed again with its batch's outcome.
pub(crate) type Waiter = Box<dyn FnOnce(Outcome)>;

/// The clusters of a batch, until the metadata thread takes them (`None`
/// after: the batch is closed).
type Needs = Arc<Mutex<Option<Vec<Need>>>>;

struct Batch {
    needs: Needs,
    waiters: Rc<RefCell<Vec<Waiter>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A channel's open allocation batch.
#[derive(Default)]
pub(crate) struct AllocQueue {
    open: RefCell<Option<Batch>>,
}

impl AllocQueue {
    /// Parks a write that needs the clusters `need` names until a batch
    /// with them has run; `w` gets its outcome, on this thread, never
    /// inside this call.
    pub(crate) fn wait<D: BsDev + 'static>(&self, bs: &BlobstoreHandle<D>, need: Need, w: Waiter) {
        bs.shared_stats().count_wait();
        if let Some(b) = &*self.open.borrow() {
            if let Some(list) = lock(&b.needs)
                .as_mut()
                .filter(|l| l.len() < super::ALLOC_BATCH_MAX)
            {
                list.push(need);
                b.waiters.borrow_mut().push(w);
                return;
            }
        }
        let needs: Needs = Arc::new(Mutex::new(Some(vec![need])));
        let waiters = Rc::new(RefCell::new(vec![w]));
        *self.open.borrow_mut() = Some(Batch {
            needs: needs.clone(),
            waiters: waiters.clone(),
        });
        let (bs, parked) = (bs.clone(), waiters.clone());
        let task = async move {
            let r = bs
                .op_with(Freeze::None, Refresh::Logged, move |s| {
                    let list = lock(&needs).take().unwrap_or_default();
                    Box::pin(async move { s.alloc_batch_async(&list).await })
                })
                .await;
            let outcome = r.err().map(Rc::new);
            let ws = std::mem::take(&mut *parked.borrow_mut());
            for w in ws {
                w(outcome.clone());
            }
        };
        if let Err(e) = spawn_local(task) {
            // No executor on this thread: the batch never runs; its writes
            // hear why instead of waiting for ever.
            let why = Rc::new(BlobError::Thread(format!(
                "cluster allocation needs an spdk-io thread to run on: {e}"
            )));
            *self.open.borrow_mut() = None;
            let ws = std::mem::take(&mut *waiters.borrow_mut());
            for w in ws {
                w(Some(why.clone()));
            }
        }
    }

    /// Async form of [`Self::wait`]: resolves once a batch with `need`
    /// has run, to its outcome.
    pub(crate) async fn allocate<D: BsDev + 'static>(
        &self,
        bs: &BlobstoreHandle<D>,
        need: Need,
    ) -> Outcome {
        type Slot = Rc<RefCell<(Option<Outcome>, Option<Waker>)>>;
        let slot: Slot = Rc::default();
        let s = slot.clone();
        self.wait(
            bs,
            need,
            Box::new(move |o| {
                let w = {
                    let mut st = s.borrow_mut();
                    st.0 = Some(o);
                    st.1.take()
                };
                if let Some(w) = w {
                    w.wake();
                }
            }),
        );
        poll_fn(|cx| {
            let mut st = slot.borrow_mut();
            match st.0.take() {
                Some(o) => Poll::Ready(o),
                None => {
                    st.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}
