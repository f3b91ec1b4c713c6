//! Writing a blob's metadata power-fail safely, as SPDK's blob_persist:
//! changed extent pages and every non-root page of the chain go to fresh md
//! pages first, then the root page is written in place — the commit point —
//! and only then are the old pages zeroed and released and freed clusters
//! returned. A crash before the root write leaves the old metadata intact;
//! after it, the new.

use super::dev::BsDev;
use super::error::{BlobError, Result};
use super::format::{MdPage, EXTENTS_PER_EP, INVALID_MD_PAGE, PAGE_SIZE};
use super::md::{BlobMd, BLOB_CLEAR_METHOD};
use super::store::{blobid_to_page, io_err, Blobstore};
use super::BlobId;

impl<D: BsDev> Blobstore<D> {
    /// Persists blob `id`'s metadata (the body of spdk_blob_sync_md).
    ///
    /// When it fails, the blob in memory goes back to what its metadata on
    /// disk says (the change is reported failed and not kept pending, so a
    /// later sync or unload does not fail on it again); md pages or
    /// clusters the failed attempt claimed stay claimed until the next
    /// recovery.
    pub(crate) async fn persist(&mut self, id: BlobId) -> Result<()> {
        self.counters.md_syncs += 1;
        let mut md = self.blobs.remove(&id).ok_or(BlobError::NoSuchBlob(id))?;
        let r = self.persist_md(&mut md).await;
        if r.is_err() && !md.chain.is_empty() {
            if let Ok(mut on_disk) = self.load_blob(id).await {
                on_disk.open_refs = md.open_refs;
                md = on_disk;
            }
        }
        self.blobs.insert(id, md);
        r
    }

    async fn persist_md(&mut self, md: &mut BlobMd) -> Result<()> {
        let root = blobid_to_page(md.id).ok_or(BlobError::NoSuchBlob(md.id))?;
        self.mark_dirty().await?;
        // 1. Changed extent pages, each to a fresh md page.
        if md.use_extent_table {
            let n = md.num_extent_pages();
            md.extent_pages.resize(n, 0);
            for slot in 0..n {
                let start = slot * EXTENTS_PER_EP;
                let range = start..(start + EXTENTS_PER_EP).min(md.clusters.len());
                let disk_range = start..(start + EXTENTS_PER_EP).min(md.disk_clusters.len());
                let on_disk = md.disk_extent_pages.get(slot).copied().unwrap_or(0);
                let unchanged = on_disk != 0
                    && md.extent_pages[slot] == on_disk
                    && md.disk_clusters.get(disk_range) == Some(&md.clusters[range.clone()]);
                if unchanged {
                    continue;
                }
                if md.clusters[range.clone()].iter().all(|&c| c == 0) {
                    md.extent_pages[slot] = 0;
                    continue;
                }
                let p = self.alloc_md_page(1)?;
                let page = MdPage {
                    id: md.id,
                    sequence_num: 0,
                    descriptors: vec![md.extent_page_descriptor(slot)],
                    next: INVALID_MD_PAGE,
                };
                self.write_md(p, &page).await?;
                md.extent_pages[slot] = p;
            }
        }
        // 2. The root chain: non-root pages to fresh md pages, then the root in place.
        let descs = md.serialize();
        let mut idxs = vec![root];
        for _ in 1..descs.len() {
            idxs.push(self.alloc_md_page(0)?);
        }
        let pages: Vec<MdPage> = descs
            .into_iter()
            .enumerate()
            .map(|(i, descriptors)| MdPage {
                id: md.id,
                sequence_num: i as u32,
                descriptors,
                next: idxs.get(i + 1).copied().unwrap_or(INVALID_MD_PAGE),
            })
            .collect();
        for i in (1..pages.len()).rev() {
            self.write_md(idxs[i], &pages[i]).await?;
        }
        self.flush().await?;
        self.write_md(root, &pages[0]).await?;
        self.flush().await?;
        // 3. Committed: release what the old metadata used.
        let old_pages: Vec<u32> = md
            .chain
            .iter()
            .skip(1)
            .copied()
            .chain(
                md.disk_extent_pages
                    .iter()
                    .copied()
                    .filter(|p| *p != 0 && !md.extent_pages.contains(p)),
            )
            .collect();
        md.chain = idxs;
        md.disk_clusters = md.clusters.clone();
        md.disk_extent_pages = md.extent_pages.clone();
        md.dirty = false;
        for p in old_pages {
            self.write_md_page(p, &[0u8; PAGE_SIZE]).await?;
            self.used_md_pages.clear(p);
        }
        let freed = std::mem::take(&mut md.free_after_sync);
        for c in freed {
            self.release_cluster(c, md.md_ro_flags & BLOB_CLEAR_METHOD)
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn write_md(&mut self, idx: u32, page: &MdPage) -> Result<()> {
        let bytes = page.encode().map_err(|e| BlobError::CorruptBlob {
            id: page.id,
            reason: e.to_string(),
        })?;
        self.write_md_page(idx, &bytes).await
    }

    /// Clears a cluster by the blob's clear method (0 default = unmap,
    /// 1 none, 2 unmap, 3 write zeroes) and returns it to the free pool.
    pub(crate) async fn release_cluster(&mut self, c: u32, clear_method: u64) -> Result<()> {
        self.check_writable()?;
        let lba = self.cluster_lba(c);
        let n = (self.sb.cluster_size / self.dev.block_len()) as u64;
        match clear_method {
            1 => {}
            3 => {
                self.dev
                    .write_zeroes_async(lba, n)
                    .await
                    .map_err(io_err("write_zeroes", lba, n))?
            }
            _ => self
                .dev
                .unmap_async(lba, n)
                .await
                .map_err(io_err("unmap", lba, n))?,
        }
        self.used_clusters.clear(c);
        Ok(())
    }

    /// Removes a blob from disk: its root page is zeroed first (the commit
    /// point of a delete), then its other pages; pages and clusters no other
    /// blob references are released. An error means the delete did not
    /// commit; a failure after the commit only leaks space until the next
    /// recovery, and is logged, not reported: the blob is gone.
    pub(crate) async fn remove_blob_md(&mut self, md: &BlobMd) -> Result<()> {
        let root = blobid_to_page(md.id).ok_or(BlobError::NoSuchBlob(md.id))?;
        self.mark_dirty().await?;
        self.write_md_page(root, &[0u8; PAGE_SIZE]).await?;
        self.flush().await?;
        self.used_md_pages.clear(root);
        self.used_blobids.clear(root);
        let was_super = self.sb.super_blob == md.id;
        if was_super {
            self.sb.super_blob = super::format::super_block::BLOBID_INVALID;
        }
        let mut tidy = self.release_blob_space(md).await;
        if tidy.is_ok() && was_super {
            tidy = self.write_super().await;
        }
        if let Err(e) = tidy {
            log::warn!(
                "blob {:#x} is deleted; releasing its space failed ({e}): it stays claimed until the store is recovered",
                md.id
            );
        }
        Ok(())
    }

    async fn release_blob_space(&mut self, md: &BlobMd) -> Result<()> {
        let shared_page = |bs: &Self, p: u32| {
            bs.all_md()
                .any(|b| b.disk_extent_pages.contains(&p) || b.chain.contains(&p))
        };
        let pages: Vec<u32> = md
            .chain
            .iter()
            .skip(1)
            .copied()
            .chain(md.disk_extent_pages.iter().copied().filter(|&p| p != 0))
            .collect();
        for p in pages {
            if !shared_page(self, p) {
                self.write_md_page(p, &[0u8; PAGE_SIZE]).await?;
                self.used_md_pages.clear(p);
            }
        }
        let mut clusters: Vec<u32> = md
            .clusters
            .iter()
            .chain(md.free_after_sync.iter())
            .copied()
            .filter(|&c| c != 0)
            .collect();
        clusters.sort_unstable();
        clusters.dedup();
        for c in clusters {
            if !self.all_md().any(|b| b.clusters.contains(&c)) {
                self.release_cluster(c, md.md_ro_flags & BLOB_CLEAR_METHOD)
                    .await?;
            }
        }
        Ok(())
    }
}
