//! The synchronous blobstore: each operation that touches the device is an
//! `async fn` (`*_async`, for any device, on the thread layer's executor);
//! here are its synchronous forms, for devices that complete inline (RAM,
//! file, power-cut). On a device that completes asynchronously (a bdev)
//! they return [`BlobError::NotInline`](super::BlobError::NotInline) before
//! doing anything.

use super::dev::BsDev;
use super::error::Result;
use super::inline::{check, now};
use super::load::LoadOpts;
use super::md::Xattr;
use super::ops::{Blob, BlobOpts};
use super::store::{Blobstore, BsOpts};
use super::BlobId;

impl<D: BsDev> Blobstore<D> {
    fn inline(&self, op: &'static str) -> Result<()> {
        check(self.dev.completes_inline(), op)
    }

    /// Makes a new, empty blobstore on `dev` (spdk_bs_init), leaving it
    /// loaded; see [`Self::init_async`].
    pub fn init(dev: D, opts: &BsOpts) -> Result<Self> {
        check(dev.completes_inline(), "init")?;
        now("init", Self::init_async(dev, opts))
    }

    /// Loads the blobstore on `dev`, recovering it if it was not unloaded
    /// cleanly (spdk_bs_load); see [`Self::load_async`].
    pub fn load(dev: D, opts: &LoadOpts) -> Result<Self> {
        check(dev.completes_inline(), "load")?;
        now("load", Self::load_async(dev, opts))
    }

    /// Persists the masks, marks the store clean and returns the device
    /// (spdk_bs_unload); see [`Self::unload_async`].
    pub fn unload(self) -> Result<D> {
        self.inline("unload")?;
        now("unload", self.unload_async())
    }

    /// Creates a blob and persists it (spdk_bs_create_blob_ext).
    pub fn create_blob(&mut self, opts: &BlobOpts) -> Result<BlobId> {
        self.inline("create_blob")?;
        now("create_blob", self.create_blob_async(opts))
    }

    /// Closes a handle, persisting dirty metadata (spdk_blob_close).
    pub fn close_blob(&mut self, blob: Blob) -> Result<()> {
        self.inline("close_blob")?;
        now("close_blob", self.close_blob_async(blob))
    }

    /// Deletes a closed blob (spdk_bs_delete_blob); see [`Self::delete_blob_async`].
    pub fn delete_blob(&mut self, id: BlobId) -> Result<()> {
        self.inline("delete_blob")?;
        now("delete_blob", self.delete_blob_async(id))
    }

    /// Persists a blob's metadata changes (spdk_blob_sync_md).
    pub fn sync_md(&mut self, blob: &Blob) -> Result<()> {
        self.inline("sync_md")?;
        now("sync_md", self.sync_md_async(blob))
    }

    /// Snapshots blob `id` (spdk_bs_create_snapshot); see [`Self::create_snapshot_async`].
    pub fn create_snapshot(&mut self, id: BlobId, xattrs: &[Xattr]) -> Result<BlobId> {
        self.inline("create_snapshot")?;
        now("create_snapshot", self.create_snapshot_async(id, xattrs))
    }

    /// Clones a read-only snapshot (spdk_bs_create_clone).
    pub fn create_clone(&mut self, snapshot: BlobId, xattrs: &[Xattr]) -> Result<BlobId> {
        self.inline("create_clone")?;
        now("create_clone", self.create_clone_async(snapshot, xattrs))
    }

    /// Makes the blob thick and independent (spdk_bs_inflate_blob).
    pub fn inflate_blob(&mut self, blob: &Blob) -> Result<()> {
        self.inline("inflate_blob")?;
        now("inflate_blob", self.inflate_blob_async(blob))
    }

    /// Re-parents the blob to its grandparent (spdk_bs_blob_decouple_parent).
    pub fn decouple_parent(&mut self, blob: &Blob) -> Result<()> {
        self.inline("decouple_parent")?;
        now("decouple_parent", self.decouple_parent_async(blob))
    }

    /// Sets (or clears) the super blob and writes the super block (spdk_bs_set_super).
    pub fn set_super_blob(&mut self, id: Option<BlobId>) -> Result<()> {
        self.inline("set_super_blob")?;
        now("set_super_blob", self.set_super_blob_async(id))
    }

    /// Grows the store to the device's current size (spdk_bs_grow_live).
    pub fn grow(&mut self) -> Result<()> {
        self.inline("grow")?;
        now("grow", self.grow_async())
    }
}
