//! The blobstore's operations by name on a [`BlobstoreHandle`], with owned
//! arguments, mirroring [`super::Blobstore`]'s own methods: each one is an
//! `async` call that runs on the metadata thread, serialised with every
//! other operation of the store, and resolves on the caller's thread.
//!
//! Blobs are named by id; a [`Blob`] token (from [`BlobstoreHandle::open_blob`])
//! is `Send` and goes back with [`BlobstoreHandle::close_blob`].

use super::dev::BsDev;
use super::error::Result;
use super::io_map::Freeze;
use super::md::Xattr;
use super::ops::{Blob, BlobInfo, BlobOpts};
use super::service::BlobstoreHandle;
use super::store::Blobstore;
use super::BlobId;

impl<D: BsDev + 'static> BlobstoreHandle<D> {
    async fn op_sync<R, Op>(&self, freeze: Freeze, op: Op) -> Result<R>
    where
        R: Send + 'static,
        Op: FnOnce(&mut Blobstore<D>) -> Result<R> + Send + 'static,
    {
        self.op(freeze, move |bs| Box::pin(std::future::ready(op(bs))))
            .await
    }

    /// Creates a blob and persists it (spdk_bs_create_blob_ext).
    pub async fn create_blob(&self, opts: BlobOpts) -> Result<BlobId> {
        self.op(Freeze::None, move |bs| {
            Box::pin(async move { bs.create_blob_async(&opts).await })
        })
        .await
    }

    /// Opens a blob (spdk_bs_open_blob); opening it again adds a reference.
    pub async fn open_blob(&self, id: BlobId) -> Result<Blob> {
        self.op_sync(Freeze::None, move |bs| bs.open_blob(id)).await
    }

    /// Closes a handle, persisting dirty metadata (spdk_blob_close).
    pub async fn close_blob(&self, blob: Blob) -> Result<()> {
        self.op(Freeze::None, move |bs| Box::pin(bs.close_blob_async(blob)))
            .await
    }

    /// Deletes a closed blob (spdk_bs_delete_blob); see [`super::Blobstore::delete_blob`].
    /// Deleting a snapshot with one clone merges it into the clone, whose
    /// I/O is frozen meanwhile (the blob deleted is closed: it has none).
    /// Should a clone appear between the look and the delete, the merge
    /// only gives the clone clusters it already read from: nothing moves.
    pub async fn delete_blob(&self, id: BlobId) -> Result<()> {
        let clones = self.query(move |bs| bs.clones_of(id)).await?;
        let freeze = match clones.as_slice() {
            [clone] => Freeze::Blob(*clone),
            _ => Freeze::None,
        };
        self.op(freeze, move |bs| Box::pin(bs.delete_blob_async(id)))
            .await
    }

    /// Resizes blob `id` to `num_clusters` (spdk_blob_resize); on disk at the next sync.
    pub async fn resize_blob(&self, id: BlobId, num_clusters: u64) -> Result<()> {
        self.op_sync(Freeze::Blob(id), move |bs| {
            bs.resize_blob(&Blob { id }, num_clusters)
        })
        .await
    }

    /// Persists blob `id`'s metadata changes (spdk_blob_sync_md).
    pub async fn sync_md(&self, id: BlobId) -> Result<()> {
        self.op(Freeze::None, move |bs| {
            Box::pin(async move { bs.sync_md_async(&Blob { id }).await })
        })
        .await
    }

    /// Sets an xattr (spdk_blob_set_xattr); persisted at the next sync.
    pub async fn set_xattr(&self, id: BlobId, name: String, value: Vec<u8>) -> Result<()> {
        self.op_sync(Freeze::None, move |bs| {
            bs.set_xattr(&Blob { id }, &name, &value)
        })
        .await
    }

    /// Removes an xattr (spdk_blob_remove_xattr).
    pub async fn remove_xattr(&self, id: BlobId, name: String) -> Result<()> {
        self.op_sync(Freeze::None, move |bs| bs.remove_xattr(&Blob { id }, &name))
            .await
    }

    /// An xattr's value (spdk_blob_get_xattr_value); `None` when it has none.
    pub async fn get_xattr(&self, id: BlobId, name: String) -> Result<Option<Vec<u8>>> {
        self.op_sync(Freeze::None, move |bs| {
            bs.md(id)?;
            Ok(bs.get_xattr(&Blob { id }, &name))
        })
        .await
    }

    /// The names of a blob's xattrs (spdk_blob_get_xattr_names).
    pub async fn xattr_names(&self, id: BlobId) -> Result<Vec<String>> {
        self.op_sync(Freeze::None, move |bs| {
            bs.md(id)?;
            Ok(bs.xattr_names(&Blob { id }))
        })
        .await
    }

    /// Marks the blob's data read-only (spdk_blob_set_read_only); on disk at the next sync.
    pub async fn set_read_only(&self, id: BlobId) -> Result<()> {
        self.op_sync(Freeze::None, move |bs| bs.set_read_only(&Blob { id }))
            .await
    }

    /// Ids of every loaded blob, ascending (spdk_bs_iter_first/next).
    pub async fn blob_ids(&self) -> Result<Vec<BlobId>> {
        self.op_sync(Freeze::None, |bs| Ok(bs.blob_ids())).await
    }

    /// The clones of a snapshot (spdk_blob_get_clones).
    pub async fn clones_of(&self, id: BlobId) -> Result<Vec<BlobId>> {
        self.op_sync(Freeze::None, move |bs| Ok(bs.clones_of(id)))
            .await
    }

    /// Describes a blob without opening it.
    pub async fn blob_info(&self, id: BlobId) -> Result<BlobInfo> {
        self.op_sync(Freeze::None, move |bs| bs.blob_info(id)).await
    }

    /// Size of blob `id` in clusters (spdk_blob_get_num_clusters).
    pub async fn num_clusters(&self, id: BlobId) -> Result<u64> {
        self.op_sync(Freeze::None, move |bs| Ok(bs.md(id)?.clusters.len() as u64))
            .await
    }

    /// Snapshots blob `id` (spdk_bs_create_snapshot) with `xattrs` on the snapshot.
    pub async fn create_snapshot(&self, id: BlobId, xattrs: Vec<Xattr>) -> Result<BlobId> {
        self.op(Freeze::Blob(id), move |bs| {
            Box::pin(async move { bs.create_snapshot_async(id, &xattrs).await })
        })
        .await
    }

    /// Clones snapshot `snapshot` (spdk_bs_create_clone) with `xattrs` on the clone.
    pub async fn create_clone(&self, snapshot: BlobId, xattrs: Vec<Xattr>) -> Result<BlobId> {
        self.op(Freeze::None, move |bs| {
            Box::pin(async move { bs.create_clone_async(snapshot, &xattrs).await })
        })
        .await
    }

    /// Allocates and copies every cluster blob `id` reads from its parents (spdk_bs_inflate_blob).
    pub async fn inflate_blob(&self, id: BlobId) -> Result<()> {
        self.op(Freeze::Blob(id), move |bs| {
            Box::pin(async move { bs.inflate_blob_async(&Blob { id }).await })
        })
        .await
    }

    /// Copies only the parent's own clusters, re-parenting to the grandparent (spdk_bs_blob_decouple_parent).
    pub async fn decouple_parent(&self, id: BlobId) -> Result<()> {
        self.op(Freeze::Blob(id), move |bs| {
            Box::pin(async move { bs.decouple_parent_async(&Blob { id }).await })
        })
        .await
    }

    /// The clusters blob `id` owns, by index (what a shallow copy copies).
    pub async fn owned_clusters(&self, id: BlobId) -> Result<Vec<u64>> {
        self.op_sync(Freeze::None, move |bs| {
            Ok(bs
                .md(id)?
                .clusters
                .iter()
                .enumerate()
                .filter(|(_, &c)| c != 0)
                .map(|(i, _)| i as u64)
                .collect())
        })
        .await
    }

    /// Makes thin blob `id` a clone of snapshot `snapshot` (spdk_bs_blob_set_parent).
    pub async fn set_parent(&self, id: BlobId, snapshot: BlobId) -> Result<()> {
        self.op(Freeze::Blob(id), move |bs| {
            Box::pin(async move { bs.set_parent_async(&Blob { id }, snapshot).await })
        })
        .await
    }

    /// The super blob (spdk_bs_get_super).
    pub async fn super_blob(&self) -> Result<Option<BlobId>> {
        self.op_sync(Freeze::None, |bs| Ok(bs.super_blob())).await
    }

    /// Sets or clears the super blob (spdk_bs_set_super).
    pub async fn set_super_blob(&self, id: Option<BlobId>) -> Result<()> {
        self.op(Freeze::None, move |bs| {
            Box::pin(bs.set_super_blob_async(id))
        })
        .await
    }

    /// Takes in a device that grew (spdk_bs_grow_live).
    pub async fn grow(&self) -> Result<()> {
        self.op(Freeze::None, |bs| Box::pin(bs.grow_async())).await
    }

    /// Free clusters (spdk_bs_free_cluster_count).
    pub async fn free_cluster_count(&self) -> Result<u64> {
        self.op_sync(Freeze::None, |bs| Ok(bs.free_cluster_count()))
            .await
    }

    /// Clusters on the device (spdk_bs_total_data_cluster_count plus metadata).
    pub async fn total_clusters(&self) -> Result<u64> {
        self.op_sync(Freeze::None, |bs| Ok(bs.total_clusters()))
            .await
    }

    /// Bytes per cluster (spdk_bs_get_cluster_size).
    pub async fn cluster_size(&self) -> Result<u32> {
        self.op_sync(Freeze::None, |bs| Ok(bs.cluster_size())).await
    }

    /// Bytes per io unit (spdk_bs_get_io_unit_size).
    pub async fn io_unit_size(&self) -> Result<u32> {
        self.op_sync(Freeze::None, |bs| Ok(bs.io_unit_size())).await
    }

    /// The store's type tag (spdk_bs_get_bstype).
    pub async fn bstype(&self) -> Result<[u8; 16]> {
        self.op_sync(Freeze::None, |bs| Ok(bs.bstype())).await
    }
}
