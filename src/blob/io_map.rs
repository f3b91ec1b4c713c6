//! The cluster maps blob I/O reads on any thread (SPDK keeps one per blob
//! too, read by every channel): one atomic word per cluster of each open
//! blob, written only by the metadata thread, read lock-free by every
//! [`super::BlobIoChannel`] to turn an offset into a device block on its
//! own thread.
//!
//! A word is `0` (the cluster reads as zeroes) or `(lba + 1) << 1 | owned`:
//! the first device block the cluster reads from, and whether the blob owns
//! it (a write may go there directly) or reads it from a snapshot below.
//!
//! Freeze (SPDK's blob freeze): before an operation that moves clusters
//! under a blob (snapshot, shrink, inflate, decouple, a snapshot's delete
//! into its clone), the metadata thread raises the blob's freeze count and
//! waits for the I/O in flight on it to drain; I/O that arrives meanwhile
//! waits on its channel for the thaw, then reads the new map.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use super::dev::BsDev;
use super::store::Blobstore;
use super::BlobId;

/// One open blob's map and freeze state.
pub(crate) struct BlobMap {
    entries: Box<[AtomicU64]>,
    data_ro: AtomicBool,
    frozen: AtomicU32,
    inflight: AtomicU32,
    /// Replaced (resized) or closed: channels look the blob up again.
    stale: AtomicBool,
    drain: Mutex<Option<Waker>>,
    thaw: Mutex<Vec<Waker>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where a cluster reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// Zeroes.
    Zero,
    /// Device block `lba`; `owned` when the blob itself owns the cluster.
    Dev {
        /// First device block of the cluster.
        lba: u64,
        /// The blob owns it.
        owned: bool,
    },
}

fn encode(e: Entry) -> u64 {
    match e {
        Entry::Zero => 0,
        Entry::Dev { lba, owned } => ((lba + 1) << 1) | owned as u64,
    }
}

impl BlobMap {
    fn new(entries: &[u64], data_ro: bool) -> BlobMap {
        BlobMap {
            entries: entries.iter().map(|&e| AtomicU64::new(e)).collect(),
            data_ro: AtomicBool::new(data_ro),
            frozen: AtomicU32::new(0),
            inflight: AtomicU32::new(0),
            stale: AtomicBool::new(false),
            drain: Mutex::new(None),
            thaw: Mutex::new(Vec::new()),
        }
    }

    /// Clusters in the blob.
    #[inline]
    pub(crate) fn clusters(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Where cluster `i` reads from (`i` < [`Self::clusters`]).
    #[inline(always)]
    pub(crate) fn entry(&self, i: u64) -> Entry {
        match self.entries[i as usize].load(SeqCst) {
            0 => Entry::Zero,
            w => Entry::Dev {
                lba: (w >> 1) - 1,
                owned: w & 1 == 1,
            },
        }
    }

    /// Whether writes are refused.
    #[inline]
    pub(crate) fn data_ro(&self) -> bool {
        self.data_ro.load(SeqCst)
    }

    /// Whether the blob was closed or replaced: look it up again.
    #[inline]
    pub(crate) fn is_stale(&self) -> bool {
        self.stale.load(SeqCst)
    }

    /// Starts an I/O on the channel's thread; `false` while frozen or stale.
    #[inline(always)]
    pub(crate) fn enter(&self) -> bool {
        if self.frozen.load(SeqCst) != 0 || self.is_stale() {
            return false;
        }
        self.inflight.fetch_add(1, SeqCst);
        if self.frozen.load(SeqCst) != 0 {
            self.exit();
            return false;
        }
        true
    }

    /// Ends an I/O started by a successful [`Self::enter`].
    #[inline(always)]
    pub(crate) fn exit(&self) {
        if self.inflight.fetch_sub(1, SeqCst) == 1 && self.frozen.load(SeqCst) != 0 {
            self.wake_drain();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_drain(&self) {
        if let Some(w) = lock(&self.drain).take() {
            w.wake();
        }
    }

    /// Resolves once the blob is not frozen (or is stale).
    pub(crate) async fn thawed(&self) {
        poll_fn(|cx| {
            if self.frozen.load(SeqCst) == 0 || self.is_stale() {
                return Poll::Ready(());
            }
            lock(&self.thaw).push(cx.waker().clone());
            if self.frozen.load(SeqCst) == 0 || self.is_stale() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// On the metadata thread: stops new I/O and resolves when none is in flight.
    async fn freeze(&self) {
        self.frozen.fetch_add(1, SeqCst);
        poll_fn(|cx| {
            if self.inflight.load(SeqCst) == 0 {
                return Poll::Ready(());
            }
            *lock(&self.drain) = Some(cx.waker().clone());
            if self.inflight.load(SeqCst) == 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    fn thaw(&self) {
        if self.frozen.fetch_sub(1, SeqCst) == 1 {
            for w in std::mem::take(&mut *lock(&self.thaw)) {
                w.wake();
            }
        }
    }

    fn retire(&self) {
        self.stale.store(true, SeqCst);
        for w in std::mem::take(&mut *lock(&self.thaw)) {
            w.wake();
        }
    }
}

/// Which blobs an operation freezes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freeze {
    /// None: the operation moves no cluster under an open blob.
    None,
    /// One blob.
    Blob(BlobId),
    /// Every open blob (an arbitrary closure over the store).
    All,
}

/// Which map entries an operation may have changed: what the metadata
/// thread publishes after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// Any: every open blob's map is checked against the store.
    All,
    /// Only clusters given to blobs ([`Blobstore::alloc_log`]): a write's
    /// allocations publish in time proportional to what they allocated,
    /// not to the size of every open blob.
    Logged,
    /// None: a look at the store that changes nothing.
    Nothing,
}

/// The maps of a store's open blobs, shared by its metadata thread and its
/// channels. The lock is taken when a channel first meets a blob (or finds
/// its map stale) and by the metadata thread after an operation, never
/// per I/O.
#[derive(Default)]
pub(crate) struct Maps {
    blobs: Mutex<HashMap<BlobId, Arc<BlobMap>>>,
}

impl Maps {
    /// The current map of open blob `id`.
    pub(crate) fn get(&self, id: BlobId) -> Option<Arc<BlobMap>> {
        lock(&self.blobs).get(&id).cloned()
    }

    /// On the metadata thread: freezes what `f` names and waits for its
    /// I/O to drain; returns the frozen maps for [`Self::thaw`].
    pub(crate) async fn freeze(&self, f: Freeze) -> Vec<Arc<BlobMap>> {
        let frozen: Vec<Arc<BlobMap>> = match f {
            Freeze::None => Vec::new(),
            Freeze::Blob(id) => self.get(id).into_iter().collect(),
            Freeze::All => lock(&self.blobs).values().cloned().collect(),
        };
        for m in &frozen {
            m.freeze().await;
        }
        frozen
    }

    /// The store is going away: every map is retired.
    pub(crate) fn retire_all(&self) {
        for (_, m) in lock(&self.blobs).drain() {
            m.retire();
        }
    }

    /// Ends a freeze.
    pub(crate) fn thaw(frozen: Vec<Arc<BlobMap>>) {
        for m in frozen {
            m.thaw();
        }
    }

    /// On the metadata thread, after an operation: brings the maps in line with the store — new maps for
    /// blobs opened or resized, retired ones for blobs closed.
    pub(crate) fn refresh<D: BsDev>(&self, bs: &Blobstore<D>) {
        let mut maps = lock(&self.blobs);
        let ids: Vec<BlobId> = bs.blobs.keys().chain(maps.keys()).copied().collect();
        let mut words = Vec::new();
        for id in ids {
            let open = bs.blobs.get(&id).filter(|m| m.open_refs > 0);
            let Some(md) = open else {
                if let Some(old) = maps.remove(&id) {
                    old.retire();
                }
                continue;
            };
            words.clear();
            words.extend((0..md.clusters.len() as u64).map(|i| encode(bs.io_entry(id, i))));
            match maps.get(&id) {
                Some(m) if m.entries.len() == words.len() => {
                    for (a, &w) in m.entries.iter().zip(&words) {
                        if a.load(SeqCst) != w {
                            a.store(w, SeqCst);
                        }
                    }
                    m.data_ro.store(md.data_ro(), SeqCst);
                }
                _ => {
                    let new = Arc::new(BlobMap::new(&words, md.data_ro()));
                    if let Some(old) = maps.insert(id, new) {
                        old.retire();
                    }
                }
            }
        }
    }
}

impl Maps {
    /// On the metadata thread, after an operation with [`Refresh::Logged`]:
    /// publishes the entries of the (blob, logical cluster) pairs `log`
    /// names as the store has them now (allocated, or back to what they
    /// were if the operation's commit failed).
    pub(crate) fn refresh_logged<D: BsDev>(&self, bs: &Blobstore<D>, log: &[(BlobId, u64)]) {
        if log.is_empty() {
            return;
        }
        let maps = lock(&self.blobs);
        for &(id, i) in log {
            if let Some(m) = maps.get(&id) {
                if let Some(a) = m.entries.get(i as usize) {
                    a.store(encode(bs.io_entry(id, i)), SeqCst);
                }
            }
        }
    }
}

impl<D: BsDev> Blobstore<D> {
    /// Where logical cluster `i` of blob `id` reads from now.
    pub(crate) fn io_entry(&self, id: BlobId, i: u64) -> Entry {
        let mut owner = id;
        for depth in 0..=self.blobs.len() {
            let Some(m) = self.blobs.get(&owner) else {
                return Entry::Zero;
            };
            match (m.clusters.get(i as usize).copied(), m.parent()) {
                (Some(c), _) if c != 0 => {
                    return Entry::Dev {
                        lba: self.cluster_lba(c),
                        owned: depth == 0,
                    }
                }
                (Some(_), Some(p)) => owner = p,
                _ => return Entry::Zero,
            }
        }
        Entry::Zero
    }
}
