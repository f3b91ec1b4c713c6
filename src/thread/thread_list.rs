//! The process-wide list of threads (SPDK's `g_threads`):
//! [`ThreadHandle::by_id`], [`threads`], [`thread_count`] and [`for_each_thread`].

use super::handle::Shared;
use super::{Thread, ThreadError, ThreadHandle};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

fn list() -> MutexGuard<'static, BTreeMap<u64, Weak<Shared>>> {
    static LIST: OnceLock<Mutex<BTreeMap<u64, Weak<Shared>>>> = OnceLock::new();
    LIST.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn insert(s: &Arc<Shared>) {
    list().insert(s.id, Arc::downgrade(s));
}

pub(crate) fn remove(id: u64) {
    list().remove(&id);
}

/// The first thread with an id above `after` that has not exited.
///
/// Strong references are only dropped with the list unlocked: dropping the
/// last one removes the thread from the list (see `Shared`'s `Drop`).
fn next_live(mut after: u64) -> Option<ThreadHandle> {
    loop {
        let next = list()
            .range(after + 1..)
            .find_map(|(id, w)| w.upgrade().map(|s| (*id, s)));
        let (id, shared) = next?;
        let h = ThreadHandle { shared };
        if !h.is_exited() {
            return Some(h);
        }
        after = id;
    }
}

impl ThreadHandle {
    /// The thread with this id, if it still exists (SPDK's `spdk_thread_get_by_id`).
    pub fn by_id(id: u64) -> Option<ThreadHandle> {
        let shared = list().get(&id)?.upgrade()?;
        Some(ThreadHandle { shared })
    }
}

/// Handles of every thread that exists and has not exited, in id order
/// (SPDK's `spdk_thread_get_first`/`_next`), for listings.
pub fn threads() -> Vec<ThreadHandle> {
    let mut v = Vec::new();
    let mut after = 0;
    while let Some(h) = next_live(after) {
        after = h.id();
        v.push(h);
    }
    v
}

/// Threads that exist and have not exited (SPDK's `spdk_thread_get_count`).
pub fn thread_count() -> usize {
    let mut n = 0;
    let mut after = 0;
    while let Some(h) = next_live(after) {
        n += 1;
        after = h.id();
    }
    n
}

/// Runs `f` on every thread that has not exited, one at a time in id
/// order (each on its own thread), then `done` on the calling thread
/// (SPDK's `spdk_for_each_thread`). Threads created during the walk are
/// visited if their id is above the one being visited. Error:
/// [`ThreadError::NoCurrentThread`].
pub fn for_each_thread<F, D>(f: F, done: D) -> Result<(), ThreadError>
where
    F: Fn() + Send + Sync + 'static,
    D: FnOnce() + Send + 'static,
{
    let origin = Thread::current_or_err()?.handle();
    step(Box::new(Walk {
        f: Arc::new(f),
        done: Some(Box::new(done)),
        origin,
        last: 0,
    }));
    Ok(())
}

struct Walk {
    f: Arc<dyn Fn() + Send + Sync>,
    done: Option<Box<dyn FnOnce() + Send>>,
    origin: ThreadHandle,
    last: u64,
}

/// The walk in flight to one thread; if that message is dropped unrun
/// (the thread exited meanwhile), the guard moves the walk on.
struct InFlight(Option<Box<Walk>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            step(w);
        }
    }
}

fn step(mut w: Box<Walk>) {
    match next_live(w.last) {
        Some(target) => {
            w.last = target.id();
            let mut flight = InFlight(Some(w));
            let _ = target.send_internal(move || {
                if let Some(w) = flight.0.take() {
                    (w.f)();
                    step(w);
                }
            });
        }
        None => {
            let done = w.done.take();
            let _ = w.origin.send_internal(move || {
                if let Some(d) = done {
                    d()
                }
            });
        }
    }
}
