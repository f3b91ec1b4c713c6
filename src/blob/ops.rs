//! Blob lifecycle and metadata operations: create, open/close (reference
//! counted), delete, resize, sync_md, xattrs, read-only, iteration and
//! per-blob queries.

use super::dev::BsDev;
use super::error::{BlobError, Result};
use super::md::{
    xattr_fits, BlobMd, Xattr, BLOB_EXTENT_TABLE, BLOB_READ_ONLY, BLOB_THIN_PROV, MAX_BLOB_CLUSTERS,
};
use super::store::{page_to_blobid, Blobstore};
use super::BlobId;

/// How a blob's clusters are cleared when released (stored in md_ro_flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlobClearMethod {
    /// The blobstore's default (unmap).
    #[default]
    Default = 0,
    /// Leave released clusters as they are.
    None = 1,
    /// Unmap released clusters.
    Unmap = 2,
    /// Write zeroes over released clusters.
    WriteZeroes = 3,
}

/// Options of [`Blobstore::create_blob`] (spdk_blob_opts).
#[derive(Debug, Clone)]
pub struct BlobOpts {
    /// Size in clusters.
    pub num_clusters: u64,
    /// Allocate clusters on first write instead of now.
    pub thin_provision: bool,
    /// Initial xattrs.
    pub xattrs: Vec<Xattr>,
    /// How released clusters are cleared.
    pub clear_method: BlobClearMethod,
    /// Extent table + extent pages (SPDK's default) rather than RLE extents.
    pub use_extent_table: bool,
}

impl Default for BlobOpts {
    fn default() -> Self {
        BlobOpts {
            num_clusters: 0,
            thin_provision: false,
            xattrs: Vec::new(),
            clear_method: BlobClearMethod::Default,
            use_extent_table: true,
        }
    }
}

/// An open blob (SPDK's `struct spdk_blob *`): give it back with
/// [`Blobstore::close_blob`].
#[derive(Debug)]
#[must_use = "an open blob holds a reference: give it back with Blobstore::close_blob"]
pub struct Blob {
    pub(crate) id: BlobId,
}

impl Blob {
    /// The blob id.
    pub fn id(&self) -> BlobId {
        self.id
    }
}

/// What a blob looks like, for listing without opening it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The id.
    pub id: BlobId,
    /// Size in clusters.
    pub num_clusters: u64,
    /// Clusters it owns.
    pub num_allocated_clusters: u64,
    /// Thin provisioned.
    pub thin_provisioned: bool,
    /// Data read-only.
    pub read_only: bool,
    /// Has clones (spdk_blob_is_snapshot).
    pub is_snapshot: bool,
    /// Parent snapshot.
    pub parent: Option<BlobId>,
    /// Clones of this blob.
    pub clones: Vec<BlobId>,
    /// User xattrs.
    pub xattrs: Vec<Xattr>,
    /// Internal xattrs.
    pub xattrs_internal: Vec<Xattr>,
    /// The three flag words (invalid, data_ro, md_ro).
    pub flags: (u64, u64, u64),
}

impl<D: BsDev> Blobstore<D> {
    pub(crate) fn md(&self, id: BlobId) -> Result<&BlobMd> {
        if let Some(e) = self.bad_blobs.get(&id) {
            // The same error again, not wrapped in another "metadata is corrupt".
            return Err(match e {
                BlobError::CorruptBlob { reason, .. } => BlobError::CorruptBlob {
                    id,
                    reason: reason.clone(),
                },
                BlobError::UnknownInvalidFlags { flags, .. } => {
                    BlobError::UnknownInvalidFlags { id, flags: *flags }
                }
                other => BlobError::CorruptBlob {
                    id,
                    reason: other.to_string(),
                },
            });
        }
        self.blobs.get(&id).ok_or(BlobError::NoSuchBlob(id))
    }

    pub(crate) fn md_mut(&mut self, id: BlobId) -> Result<&mut BlobMd> {
        self.md(id)?;
        Ok(self.blobs.get_mut(&id).expect("checked"))
    }

    fn md_writable(&mut self, id: BlobId) -> Result<&mut BlobMd> {
        let md = self.md_mut(id)?;
        if md.md_ro() {
            return Err(BlobError::MdReadOnly(id));
        }
        Ok(md)
    }

    /// Creates a blob and persists it (spdk_bs_create_blob_ext).
    pub async fn create_blob_async(&mut self, opts: &BlobOpts) -> Result<BlobId> {
        self.check_writable()?;
        for (n, v) in &opts.xattrs {
            if !xattr_fits(n, v) {
                return Err(BlobError::InvalidArgument(format!(
                    "xattr {n:?} of {} bytes does not fit a metadata page",
                    v.len()
                )));
            }
        }
        let page = self.find_free_root_page()?;
        let id = page_to_blobid(page);
        let mut md = BlobMd {
            id,
            invalid_flags: if opts.use_extent_table {
                BLOB_EXTENT_TABLE
            } else {
                0
            } | if opts.thin_provision {
                BLOB_THIN_PROV
            } else {
                0
            },
            md_ro_flags: opts.clear_method as u64,
            xattrs: opts.xattrs.clone(),
            use_extent_table: opts.use_extent_table,
            dirty: true,
            ..Default::default()
        };
        self.used_md_pages.set(page);
        self.used_blobids.set(page);
        if let Err(e) = self.resize_md(&mut md, opts.num_clusters) {
            self.used_md_pages.clear(page);
            self.used_blobids.clear(page);
            return Err(e);
        }
        self.blobs.insert(id, md);
        if let Err(e) = self.persist(id).await {
            self.blobs.remove(&id);
            return Err(e);
        }
        Ok(id)
    }

    /// Opens a blob (spdk_bs_open_blob); opening it again adds a reference.
    pub fn open_blob(&mut self, id: BlobId) -> Result<Blob> {
        self.md_mut(id)?.open_refs += 1;
        Ok(Blob { id })
    }

    /// Closes a handle, persisting dirty metadata (spdk_blob_close).
    pub async fn close_blob_async(&mut self, blob: Blob) -> Result<()> {
        let md = self.md_mut(blob.id)?;
        md.open_refs = md.open_refs.saturating_sub(1);
        if md.dirty && !md.md_ro() {
            self.persist(blob.id).await?;
        }
        Ok(())
    }

    /// Deletes a closed blob (spdk_bs_delete_blob). A snapshot with one
    /// clone is merged into the clone first; with more clones it is busy.
    pub async fn delete_blob_async(&mut self, id: BlobId) -> Result<()> {
        self.check_writable()?;
        let md = self.md(id)?;
        if md.open_refs > 0 {
            return Err(BlobError::Busy {
                id,
                reason: "it is open; close it before deleting".into(),
            });
        }
        if md.md_ro() {
            return Err(BlobError::MdReadOnly(id));
        }
        // Only read-only blobs (snapshots) can have clones.
        let clones = if md.data_ro() {
            self.clones_of(id)
        } else {
            Vec::new()
        };
        match clones.as_slice() {
            [] => {
                let md = self.blobs.remove(&id).expect("checked");
                let r = self.remove_blob_md(&md).await;
                if r.is_err() {
                    // Not committed: the blob is still there.
                    self.blobs.insert(id, md);
                }
                r
            }
            [clone] => self.delete_snapshot_into_clone(id, *clone).await,
            many => Err(BlobError::Busy {
                id,
                reason: format!("it is a snapshot with {} clones", many.len()),
            }),
        }
    }

    /// Resizes to `num_clusters` (spdk_blob_resize); takes effect on disk at the next sync.
    pub fn resize_blob(&mut self, blob: &Blob, num_clusters: u64) -> Result<()> {
        self.check_writable()?;
        let md = self.md_writable(blob.id)?;
        if md.data_ro() {
            return Err(BlobError::ReadOnly(blob.id));
        }
        let mut md = self.blobs.remove(&blob.id).expect("checked");
        let r = self.resize_md(&mut md, num_clusters);
        self.blobs.insert(blob.id, md);
        r
    }

    pub(crate) fn resize_md(&mut self, md: &mut BlobMd, n: u64) -> Result<()> {
        if n > MAX_BLOB_CLUSTERS {
            return Err(BlobError::InvalidArgument(format!(
                "{n} clusters is more than the supported {MAX_BLOB_CLUSTERS}"
            )));
        }
        let n = n as usize;
        let old = md.clusters.len();
        if n > old {
            if !md.is_thin() && (n - old) as u64 > self.free_cluster_count() {
                return Err(BlobError::NoSpace("clusters"));
            }
            md.clusters.resize(n, 0);
            if !md.is_thin() {
                for i in old..n {
                    md.clusters[i] = self.alloc_cluster()?;
                }
            }
        } else {
            let freed: Vec<u32> = md.clusters.drain(n..).filter(|&c| c != 0).collect();
            md.free_after_sync.extend(freed);
        }
        md.dirty |= n != old;
        Ok(())
    }

    /// Persists a blob's metadata changes (spdk_blob_sync_md).
    pub async fn sync_md_async(&mut self, blob: &Blob) -> Result<()> {
        let md = self.md(blob.id)?;
        if !md.dirty {
            return Ok(());
        }
        if md.md_ro() {
            return Err(BlobError::MdReadOnly(blob.id));
        }
        self.persist(blob.id).await
    }

    /// Sets an xattr (spdk_blob_set_xattr); persisted at the next sync.
    pub fn set_xattr(&mut self, blob: &Blob, name: &str, value: &[u8]) -> Result<()> {
        self.check_writable()?;
        if !xattr_fits(name, value) {
            return Err(BlobError::InvalidArgument(format!(
                "xattr {name:?} of {} bytes does not fit a metadata page",
                value.len()
            )));
        }
        self.md_writable(blob.id)?.set_xattr(false, name, value);
        Ok(())
    }

    /// Removes an xattr (spdk_blob_remove_xattr).
    pub fn remove_xattr(&mut self, blob: &Blob, name: &str) -> Result<()> {
        self.check_writable()?;
        if self.md_writable(blob.id)?.remove_xattr(false, name) {
            Ok(())
        } else {
            Err(BlobError::InvalidArgument(format!(
                "blob {:#x} has no xattr {name:?}",
                blob.id
            )))
        }
    }

    /// An xattr's value (spdk_blob_get_xattr_value); internal xattrs are hidden.
    pub fn get_xattr(&self, blob: &Blob, name: &str) -> Option<Vec<u8>> {
        let md = self.md(blob.id).ok()?;
        md.xattrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    /// The names of a blob's xattrs (spdk_blob_get_xattr_names).
    pub fn xattr_names(&self, blob: &Blob) -> Vec<String> {
        self.md(blob.id)
            .map(|m| m.xattrs.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default()
    }

    /// Marks the blob's data read-only (spdk_blob_set_read_only); persisted at the next sync.
    pub fn set_read_only(&mut self, blob: &Blob) -> Result<()> {
        self.check_writable()?;
        let md = self.md_writable(blob.id)?;
        md.data_ro_flags |= BLOB_READ_ONLY;
        md.dirty = true;
        Ok(())
    }

    /// Ids of every loaded blob, ascending (spdk_bs_iter_first/next).
    pub fn blob_ids(&self) -> Vec<BlobId> {
        self.blobs.keys().copied().collect()
    }

    /// The clones of a snapshot (spdk_blob_get_clones).
    pub fn clones_of(&self, id: BlobId) -> Vec<BlobId> {
        self.blobs
            .values()
            .filter(|b| b.parent() == Some(id))
            .map(|b| b.id)
            .collect()
    }

    /// Whether logical cluster `cluster` of the blob reads device data (it
    /// is allocated in the blob or in a snapshot below it) rather than
    /// zeroes. Lets a copy skip what reads as zeroes without reading it.
    pub fn cluster_has_data(&self, blob: &Blob, cluster: u64) -> Result<bool> {
        let mut id = blob.id;
        for _ in 0..=self.blobs.len() {
            let md = self.md(id)?;
            match (md.clusters.get(cluster as usize).copied(), md.parent()) {
                (Some(c), _) if c != 0 => return Ok(true),
                (Some(_), Some(parent)) => id = parent,
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Describes a blob without opening it.
    pub fn blob_info(&self, id: BlobId) -> Result<BlobInfo> {
        let md = self.md(id)?;
        let clones = self.clones_of(id);
        Ok(BlobInfo {
            id,
            num_clusters: md.clusters.len() as u64,
            num_allocated_clusters: md.clusters.iter().filter(|&&c| c != 0).count() as u64,
            thin_provisioned: md.is_thin(),
            read_only: md.data_ro(),
            is_snapshot: !clones.is_empty(),
            parent: md.parent(),
            clones,
            xattrs: md.xattrs.clone(),
            xattrs_internal: md.xattrs_internal.clone(),
            flags: (md.invalid_flags, md.data_ro_flags, md.md_ro_flags),
        })
    }

    /// Size in clusters (spdk_blob_get_num_clusters).
    pub fn num_clusters(&self, blob: &Blob) -> u64 {
        self.md(blob.id)
            .map(|m| m.clusters.len() as u64)
            .unwrap_or(0)
    }

    /// Size in io units (spdk_blob_get_num_io_units).
    pub fn num_io_units(&self, blob: &Blob) -> u64 {
        self.num_clusters(blob) * self.io_units_per_cluster()
    }

    /// Whether the blob has unsynced metadata changes.
    pub fn is_dirty(&self, blob: &Blob) -> bool {
        self.md(blob.id).map(|m| m.dirty).unwrap_or(false)
    }
}
