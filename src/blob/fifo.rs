//! The metadata thread's side of a [`super::BlobstoreHandle`]: one task on
//! the thread's executor owns the [`Blobstore`] and runs its operations
//! one at a time, in arrival order, each to completion (awaiting the
//! device as long as it takes) before the next starts — SPDK's serialised
//! metadata operations, with no lock and no blocking.
//!
//! Operations that move clusters freeze the blobs they touch first
//! ([`super::io_map`]); after each operation the shared cluster maps are
//! brought up to date (all of them, only the entries it allocated, or none
//! for a look that changes nothing: [`Refresh`]), then the freeze ends, and only then does the caller
//! hear the result: a caller that does I/O as soon as its operation
//! completes (a read right after an allocating write) finds the new map.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};

use super::dev::BsDev;
use super::io_map::{Freeze, Maps, Refresh};
use super::stats::SharedStats;
use super::store::Blobstore;

/// A future on the metadata thread, borrowing the store.
pub(crate) type LocalFut<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// What an operation hands back: the delivery of its result to its caller,
/// run once the maps are up to date and the freeze is over.
pub(crate) type Deliver = Box<dyn FnOnce()>;

/// One queued operation: given the store, a future that does the work and
/// resolves to the delivery of its result.
pub(crate) type OpFn<D> =
    Box<dyn for<'a> FnOnce(&'a mut Blobstore<D>) -> LocalFut<'a, Deliver> + Send>;

/// The last operation: takes the store by value.
pub(crate) type EndFn<D> = Box<dyn FnOnce(Blobstore<D>) -> LocalFut<'static, ()> + Send>;

/// What the FIFO holds.
pub(crate) enum Job<D: BsDev> {
    /// An operation, with the blobs it freezes and the map entries it may change.
    Op(Freeze, Refresh, OpFn<D>),
    /// Unload (or hand back) the store; the worker ends after it.
    End(EndFn<D>),
}

struct Fifo<D: BsDev> {
    jobs: VecDeque<Job<D>>,
    waker: Option<Waker>,
}

thread_local! {
    static FIFOS: RefCell<HashMap<u64, Box<dyn Any>>> = RefCell::new(HashMap::new());
}

fn fifo<D: BsDev + 'static>(key: u64) -> Option<Rc<RefCell<Fifo<D>>>> {
    FIFOS.with(|f| {
        f.borrow()
            .get(&key)
            .and_then(|a| a.downcast_ref::<Rc<RefCell<Fifo<D>>>>())
            .cloned()
    })
}

/// On the metadata thread: makes the FIFO of store `key` and spawns the
/// task that owns `bs` and serves it.
pub(crate) fn start<D: BsDev + 'static>(
    key: u64,
    bs: Blobstore<D>,
    maps: Arc<Maps>,
    stats: Arc<SharedStats>,
) -> Result<(), crate::thread::ThreadError> {
    let q = Rc::new(RefCell::new(Fifo::<D> {
        jobs: VecDeque::new(),
        waker: None,
    }));
    FIFOS.with(|f| f.borrow_mut().insert(key, Box::new(q.clone())));
    maps.refresh(&bs);
    stats.publish(&bs.counters);
    crate::thread::spawn_local(serve(key, q, bs, maps, stats)).map(drop)
}

async fn serve<D: BsDev + 'static>(
    key: u64,
    q: Rc<RefCell<Fifo<D>>>,
    mut bs: Blobstore<D>,
    maps: Arc<Maps>,
    stats: Arc<SharedStats>,
) {
    loop {
        let job = poll_fn(|cx| {
            let mut f = q.borrow_mut();
            match f.jobs.pop_front() {
                Some(job) => Poll::Ready(job),
                None => {
                    f.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        match job {
            Job::Op(freeze, refresh, op) => {
                let frozen = maps.freeze(freeze).await;
                if refresh == Refresh::Logged {
                    bs.alloc_log = Some(Vec::new());
                }
                let deliver = op(&mut bs).await;
                match refresh {
                    Refresh::All => maps.refresh(&bs),
                    Refresh::Logged => {
                        let log = bs.alloc_log.take().unwrap_or_default();
                        maps.refresh_logged(&bs, &log);
                    }
                    Refresh::Nothing => {}
                }
                stats.publish(&bs.counters);
                Maps::thaw(frozen);
                deliver();
            }
            Job::End(end) => {
                // Later jobs are dropped unrun: their callers hear NotRunning.
                FIFOS.with(|f| f.borrow_mut().remove(&key));
                let rest = std::mem::take(&mut q.borrow_mut().jobs);
                drop(rest);
                maps.retire_all();
                end(bs).await;
                return;
            }
        }
    }
}

/// On the metadata thread: queues `job` for store `key` (dropped unrun,
/// its caller told, when the store is gone).
pub(crate) fn push<D: BsDev + 'static>(key: u64, job: Job<D>) {
    let Some(q) = fifo::<D>(key) else { return };
    let waker = {
        let mut f = q.borrow_mut();
        f.jobs.push_back(job);
        f.waker.take()
    };
    if let Some(w) = waker {
        w.wake();
    }
}
