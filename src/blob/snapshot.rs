//! Snapshots and clones: create a snapshot (the original becomes a thin
//! clone of it), create a clone of a snapshot, inflate, decouple from the
//! parent, set a new parent, and delete a snapshot that has one clone.
//!
//! Multi-blob operations mark their progress in internal xattrs, as SPDK
//! does, so a load after a crash rolls them forward or back: "SNAPTMP" on a
//! snapshot being created, "SNAPRM" on a snapshot being deleted.

use super::dev::BsDev;
use super::error::{BlobError, Result};
use super::md::{
    BlobMd, Xattr, BLOB_INTERNAL_XATTR, BLOB_READ_ONLY, BLOB_THIN_PROV, XATTR_SNAPSHOT_IN_PROGRESS,
    XATTR_SNAPSHOT_PENDING_REMOVAL,
};
use super::ops::{Blob, BlobOpts};
use super::store::{page_to_blobid, Blobstore};
use super::BlobId;

impl<D: BsDev> Blobstore<D> {
    /// Snapshots blob `id` (spdk_bs_create_snapshot): the new read-only
    /// snapshot takes over the blob's clusters and the blob becomes a thin
    /// clone of it. Returns the snapshot's id.
    pub async fn create_snapshot_async(&mut self, id: BlobId, xattrs: &[Xattr]) -> Result<BlobId> {
        self.check_writable()?;
        let orig = self.md(id)?;
        if orig.md_ro() {
            return Err(BlobError::MdReadOnly(id));
        }
        if orig.data_ro() {
            return Err(BlobError::InvalidArgument(format!(
                "blob {id:#x} is read-only; snapshot a writable blob"
            )));
        }
        if orig.dirty {
            self.persist(id).await?;
        }
        let orig = self.md(id)?.clone();
        let page = self.find_free_root_page()?;
        self.used_md_pages.set(page);
        self.used_blobids.set(page);
        let snap_id = page_to_blobid(page);
        let mut snap = BlobMd {
            id: snap_id,
            invalid_flags: orig.invalid_flags & !BLOB_INTERNAL_XATTR,
            data_ro_flags: BLOB_READ_ONLY,
            xattrs: xattrs.to_vec(),
            clusters: orig.clusters.clone(),
            use_extent_table: orig.use_extent_table,
            extent_pages: orig.extent_pages.clone(),
            disk_clusters: orig.disk_clusters.clone(),
            disk_extent_pages: orig.disk_extent_pages.clone(),
            dirty: true,
            ..Default::default()
        };
        snap.set_parent(orig.parent());
        snap.set_xattr(true, XATTR_SNAPSHOT_IN_PROGRESS, &id.to_le_bytes());
        self.blobs.insert(snap_id, snap);
        self.persist(snap_id).await?;

        let o = self.md_mut(id)?;
        let n = o.clusters.len();
        o.clusters = vec![0; n];
        o.disk_clusters = vec![0; n];
        o.extent_pages.iter_mut().for_each(|p| *p = 0);
        o.disk_extent_pages.iter_mut().for_each(|p| *p = 0);
        o.invalid_flags |= BLOB_THIN_PROV;
        o.set_parent(Some(snap_id));
        self.persist(id).await?;

        // Committed: the blob is the snapshot's clone. Clearing the
        // in-progress marker is tidying; if it cannot be written, the next
        // load clears it, and the snapshot is reported made, as it is.
        self.md_mut(snap_id)?
            .remove_xattr(true, XATTR_SNAPSHOT_IN_PROGRESS);
        if let Err(e) = self.persist(snap_id).await {
            log::warn!(
                "snapshot {snap_id:#x} of blob {id:#x} is made; clearing its in-progress marker failed ({e}): the next load clears it"
            );
        }
        Ok(snap_id)
    }

    /// Clones a read-only snapshot (spdk_bs_create_clone): a thin blob of the
    /// same size that reads through to it.
    pub async fn create_clone_async(
        &mut self,
        snapshot: BlobId,
        xattrs: &[Xattr],
    ) -> Result<BlobId> {
        self.check_writable()?;
        let snap = self.md(snapshot)?;
        if !snap.data_ro() {
            return Err(BlobError::InvalidArgument(format!(
                "blob {snapshot:#x} is not read-only: clone a snapshot (or set the blob read-only first)"
            )));
        }
        let opts = BlobOpts {
            num_clusters: snap.clusters.len() as u64,
            thin_provision: true,
            xattrs: xattrs.to_vec(),
            use_extent_table: snap.use_extent_table,
            ..Default::default()
        };
        // The parent is set before the first persist, so the clone is born whole.
        self.create_blob_with(&opts, |md| md.set_parent(Some(snapshot)))
            .await
    }

    async fn create_blob_with(
        &mut self,
        opts: &BlobOpts,
        f: impl FnOnce(&mut BlobMd),
    ) -> Result<BlobId> {
        let page = self.find_free_root_page()?;
        let id = page_to_blobid(page);
        let mut md = BlobMd {
            id,
            invalid_flags: if opts.use_extent_table {
                super::md::BLOB_EXTENT_TABLE
            } else {
                0
            } | BLOB_THIN_PROV,
            xattrs: opts.xattrs.clone(),
            use_extent_table: opts.use_extent_table,
            clusters: vec![0; opts.num_clusters as usize],
            dirty: true,
            ..Default::default()
        };
        f(&mut md);
        self.used_md_pages.set(page);
        self.used_blobids.set(page);
        self.blobs.insert(id, md);
        if let Err(e) = self.persist(id).await {
            self.blobs.remove(&id);
            return Err(e);
        }
        Ok(id)
    }

    /// Allocates every cluster the blob does not own, copying what it reads
    /// there now, and drops the parent: the blob becomes thick and
    /// independent (spdk_bs_inflate_blob).
    pub async fn inflate_blob_async(&mut self, blob: &Blob) -> Result<()> {
        self.check_writable()?;
        self.copy_up(blob.id, true).await
    }

    /// Copies the clusters the parent snapshot owns and re-parents the blob
    /// to the parent's parent (spdk_bs_blob_decouple_parent).
    pub async fn decouple_parent_async(&mut self, blob: &Blob) -> Result<()> {
        self.check_writable()?;
        if self.md(blob.id)?.parent().is_none() {
            return Err(BlobError::InvalidArgument(format!(
                "blob {:#x} has no parent to decouple from",
                blob.id
            )));
        }
        self.copy_up(blob.id, false).await
    }

    /// Makes thin-provisioned blob `blob` a clone of snapshot `snapshot`
    /// (spdk_bs_blob_set_parent): the clusters it owns stay its own, the
    /// others read through the snapshot from now on. Refused when the
    /// snapshot is the blob itself, already its parent
    /// ([`BlobError::AlreadyParent`]), not a snapshot (it has no clones),
    /// of another size in clusters, or a descendant of the blob (a cycle),
    /// and when the blob is not thin-provisioned.
    pub async fn set_parent_async(&mut self, blob: &Blob, snapshot: BlobId) -> Result<()> {
        self.check_writable()?;
        let id = blob.id;
        let bad = |m: String| Err(BlobError::InvalidArgument(m));
        if id == snapshot {
            return bad(format!("blob {id:#x} cannot be its own parent"));
        }
        let md = self.md(id)?;
        if md.parent() == Some(snapshot) {
            return Err(BlobError::AlreadyParent { id, snapshot });
        }
        if md.invalid_flags & BLOB_THIN_PROV == 0 {
            return bad(format!("blob {id:#x} is not thin-provisioned"));
        }
        if md.md_ro() {
            return Err(BlobError::MdReadOnly(id));
        }
        let n = md.clusters.len();
        let s = self.md(snapshot)?;
        if self.clones_of(snapshot).is_empty() {
            return bad(format!("blob {snapshot:#x} is not a snapshot"));
        }
        if s.clusters.len() != n {
            return bad(format!(
                "snapshot {snapshot:#x} has {} clusters and blob {id:#x} {n}: they must match",
                s.clusters.len()
            ));
        }
        let mut up = Some(snapshot);
        for _ in 0..=self.blobs.len() {
            match up {
                Some(a) if a == id => {
                    return bad(format!(
                        "snapshot {snapshot:#x} descends from blob {id:#x}: the parent would be its own ancestor"
                    ))
                }
                Some(a) => up = self.md(a)?.parent(),
                None => break,
            }
        }
        let md = self.md_mut(id)?;
        md.set_parent(Some(snapshot));
        md.dirty = true;
        self.persist(id).await
    }

    async fn copy_up(&mut self, id: BlobId, inflate: bool) -> Result<()> {
        let md = self.md(id)?;
        if md.md_ro() {
            return Err(BlobError::MdReadOnly(id));
        }
        if md.data_ro() {
            return Err(BlobError::ReadOnly(id));
        }
        let parent = md.parent();
        let parent_clusters = match parent {
            Some(p) => self.md(p)?.clusters.clone(),
            None => Vec::new(),
        };
        let n = md.clusters.len();
        for i in 0..n {
            if self.md(id)?.clusters[i] != 0 {
                continue;
            }
            let parent_owns = parent_clusters.get(i).is_some_and(|&c| c != 0);
            if inflate || parent_owns {
                self.allocate_cluster(id, i, None).await?;
            }
        }
        let new_parent = match (inflate, parent) {
            (false, Some(p)) => self.md(p)?.parent(),
            _ => None,
        };
        let md = self.md_mut(id)?;
        md.set_parent(new_parent);
        if inflate {
            md.invalid_flags &= !BLOB_THIN_PROV;
        }
        md.dirty = true;
        self.persist(id).await
    }

    /// Deletes a snapshot that has exactly one clone: the clone takes the
    /// snapshot's clusters it does not own and the snapshot's parent.
    pub(crate) async fn delete_snapshot_into_clone(
        &mut self,
        snap: BlobId,
        clone: BlobId,
    ) -> Result<()> {
        if self.md(clone)?.md_ro() {
            return Err(BlobError::MdReadOnly(clone));
        }
        self.md_mut(snap)?
            .set_xattr(true, XATTR_SNAPSHOT_PENDING_REMOVAL, &clone.to_le_bytes());
        self.persist(snap).await?;
        let (snap_clusters, grandparent) = {
            let s = self.md(snap)?;
            (s.clusters.clone(), s.parent())
        };
        let c = self.md_mut(clone)?;
        for (i, own) in c.clusters.iter_mut().enumerate() {
            if *own == 0 {
                *own = snap_clusters.get(i).copied().unwrap_or(0);
            }
        }
        c.set_parent(grandparent);
        self.persist(clone).await?;
        let md = self.blobs.remove(&snap).expect("snapshot is loaded");
        self.remove_blob_md(&md).await
    }
}
