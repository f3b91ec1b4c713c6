//! What a blobstore counts about its allocations, so a test or an operator
//! can see how first writes were served: metadata syncs, clusters given
//! out, the batches they came in and the writes that waited for one.
//!
//! The metadata thread keeps its counts in the store ([`Counters`]) and
//! publishes them after each operation; channels count their waits
//! straight into the shared half. Either is read from any thread through
//! [`super::BlobstoreHandle::stats`] without a message.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counts of a blobstore's metadata work and of the writes that waited on
/// it (a snapshot of the counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobStats {
    /// Metadata syncs (one commit of a blob's metadata each).
    pub md_syncs: u64,
    /// Clusters given to blobs by first writes, copy-on-write, inflate.
    pub clusters_allocated: u64,
    /// Allocation batches run on the metadata thread for channel writes
    /// (each one metadata sync per blob it allocated in).
    pub alloc_batches: u64,
    /// Writes through a channel that waited for an allocation batch.
    pub alloc_waits: u64,
}

/// The metadata thread's counts, kept in the store.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    pub md_syncs: u64,
    pub clusters_allocated: u64,
    pub alloc_batches: u64,
}

/// The counters shared by the metadata thread and the channels.
#[derive(Debug, Default)]
pub(crate) struct SharedStats {
    md_syncs: AtomicU64,
    clusters_allocated: AtomicU64,
    alloc_batches: AtomicU64,
    alloc_waits: AtomicU64,
}

impl SharedStats {
    /// On the metadata thread, after an operation: the store's counts.
    pub(crate) fn publish(&self, c: &Counters) {
        self.md_syncs.store(c.md_syncs, Relaxed);
        self.clusters_allocated.store(c.clusters_allocated, Relaxed);
        self.alloc_batches.store(c.alloc_batches, Relaxed);
    }

    /// On a channel's thread: one more write waits for a batch.
    pub(crate) fn count_wait(&self) {
        self.alloc_waits.fetch_add(1, Relaxed);
    }

    /// The counts now.
    pub(crate) fn snapshot(&self) -> BlobStats {
        BlobStats {
            md_syncs: self.md_syncs.load(Relaxed),
            clusters_allocated: self.clusters_allocated.load(Relaxed),
            alloc_batches: self.alloc_batches.load(Relaxed),
            alloc_waits: self.alloc_waits.load(Relaxed),
        }
    }
}
