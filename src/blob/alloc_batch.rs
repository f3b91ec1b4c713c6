//! The metadata thread's half of first writes through a channel: one
//! operation gives a whole batch of clusters to their blobs — each zeroed
//! (or copied from the snapshot below) before the commit — and commits
//! each blob's metadata once for the batch, not once per cluster. The
//! writes themselves then go from their channels straight to the device,
//! with their own buffers.
//!
//! SPDK allocates one cluster at a time per channel and writes an extent
//! page per cluster (`bs_allocate_and_copy_cluster`, its channel's
//! `need_cluster_alloc` queue); batching keeps the same commit protocol
//! (`persist`) and makes a burst of first writes cost one sync.

use super::dev::BsDev;
use super::error::{BlobError, Result};
use super::stats::BlobStats;
use super::store::Blobstore;
use super::BlobId;

/// Clusters a write needs: its blob and its first and last logical cluster.
pub(crate) type Need = (BlobId, u64, u64);

impl<D: BsDev> Blobstore<D> {
    /// Gives every cluster `needs` names that its blob does not own yet a
    /// cluster of its own, then commits each blob that got one (one
    /// metadata sync per blob). Clusters owned meanwhile are skipped. On an
    /// error (out of space, a device error) the clusters given before it
    /// are still committed, and the first error is returned.
    pub(crate) async fn alloc_batch_async(&mut self, needs: &[Need]) -> Result<()> {
        self.counters.alloc_batches += 1;
        self.check_writable()?;
        let mut ids: Vec<BlobId> = needs.iter().map(|n| n.0).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut first_err = None;
        for id in ids {
            if let Err(e) = self.alloc_for_blob(id, needs).await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn alloc_for_blob(&mut self, id: BlobId, needs: &[Need]) -> Result<()> {
        let md = self.md(id)?;
        if md.data_ro() {
            return Err(BlobError::ReadOnly(id));
        }
        let n = md.clusters.len() as u64;
        let mut want: Vec<u64> = needs
            .iter()
            .filter(|x| x.0 == id)
            .flat_map(|&(_, first, last)| first..=last.min(n.saturating_sub(1)))
            .collect();
        want.sort_unstable();
        want.dedup();
        let mut r = Ok(());
        let mut given = 0;
        for k in want {
            if self.md(id)?.clusters[k as usize] != 0 {
                continue;
            }
            match self.allocate_cluster(id, k as usize, None).await {
                Ok(_) => given += 1,
                Err(e) => {
                    r = Err(e);
                    break;
                }
            }
        }
        if given > 0 {
            self.persist(id).await?;
        }
        r
    }

    /// What the store counted since it was made or loaded (`alloc_waits`
    /// counts channel writes: see [`super::BlobstoreHandle::stats`]).
    pub fn stats(&self) -> BlobStats {
        let c = &self.counters;
        BlobStats {
            md_syncs: c.md_syncs,
            clusters_allocated: c.clusters_allocated,
            alloc_batches: c.alloc_batches,
            alloc_waits: 0,
        }
    }
}
