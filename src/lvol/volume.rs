//! The lvol operations of an [`LvolStore`] (SPDK's `spdk_lvol_*`): create
//! thick or thin, snapshot, clone, resize, rename, inflate, decouple from
//! the parent, set read-only, delete; and what a blob looks like now.
//!
//! Names are checked against the store's lvols (and those being created)
//! before anything is written; each operation's blobstore part runs as one
//! call on the metadata thread, so a refused operation changes nothing.

use super::error::{LvolError, Result};
use super::md_ops::{self, BlobOp, Lvol};
use super::store::LvolStore;
use super::xattrs::{self, LVOL_NAME_MAX};
use crate::bdev::IoBuf;
use crate::bdev::Uuid;
use crate::blob::{BlobClearMethod, BlobInfo, Blobstore, BsDev};

/// A future borrowing the blobstore for one step on its metadata thread.
pub(crate) type LocalFut<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>>;

/// Removes a pending name when dropped (the create finished or failed).
struct Pending<'a, D: BsDev + 'static> {
    lvs: &'a LvolStore<D>,
    name: String,
}

impl<D: BsDev + 'static> Drop for Pending<'_, D> {
    fn drop(&mut self) {
        self.lvs.lock().pending.retain(|n| n != &self.name);
    }
}

impl<D: BsDev + 'static> LvolStore<D> {
    /// Looks at the blobstore through `f` on its metadata thread (a
    /// read-only, in-memory step: no device I/O, and no blob's I/O frozen).
    pub(crate) async fn md<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Blobstore<D>) -> Result<R> + Send + 'static,
    {
        self.bs.query(f).await?
    }

    /// Runs the asynchronous step `f` over the blobstore on its metadata
    /// thread, as one operation of its queue.
    pub(crate) async fn md_async<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: for<'a> FnOnce(&'a mut Blobstore<D>) -> LocalFut<'a, Result<R>> + Send + 'static,
    {
        self.bs
            .run_async(move |s| {
                let fut = f(s);
                Box::pin(async move { Ok(fut.await) })
            })
            .await?
    }

    /// Reserves a new lvol name (`lvs_verify_lvol_name`).
    fn reserve_lvol(&self, name: &str) -> Result<Pending<'_, D>> {
        xattrs::check_name("lvol", name, LVOL_NAME_MAX)?;
        let mut st = self.lock();
        if st.closing {
            return Err(LvolError::NotFound {
                what: "lvolstore",
                name: st.name.clone(),
            });
        }
        if st.lvols.iter().any(|l| l.name == name) || st.pending.iter().any(|n| n == name) {
            return Err(LvolError::Exists {
                what: "lvol",
                name: name.to_string(),
            });
        }
        st.pending.push(name.to_string());
        Ok(Pending {
            lvs: self,
            name: name.to_string(),
        })
    }

    fn find(&self, name: &str) -> Result<Lvol> {
        self.lvol(name).ok_or_else(|| LvolError::NotFound {
            what: "lvol",
            name: format!("{}/{name}", self.name()),
        })
    }

    fn add(&self, l: Lvol) -> Lvol {
        self.lock().lvols.push(l.clone());
        l
    }

    /// Creates an lvol of `size` bytes (rounded up to whole clusters),
    /// thin or thick (`spdk_lvol_create`). A thick lvol larger than the
    /// free space is refused with `-ENOSPC`; a name in use with `-EEXIST`.
    pub async fn create_lvol(
        &self,
        name: &str,
        size: u64,
        thin: bool,
        clear: BlobClearMethod,
    ) -> Result<Lvol> {
        let _p = self.reserve_lvol(name)?;
        let uuid = Uuid::random();
        let (lvs, n) = (self.name(), name.to_string());
        let id = self
            .md_async(move |s| {
                Box::pin(
                    async move { md_ops::create_lvol(s, &lvs, &n, &uuid, size, thin, clear).await },
                )
            })
            .await?;
        Ok(self.add(Lvol::new(&self.uuid(), name.to_string(), Some(uuid), id)))
    }

    /// Snapshots lvol `origin` as `snap_name` (`spdk_lvol_create_snapshot`):
    /// the snapshot takes the origin's clusters and the origin becomes its
    /// thin clone.
    pub async fn snapshot(&self, origin: &str, snap_name: &str) -> Result<Lvol> {
        let orig = self.find(origin)?;
        let _p = self.reserve_lvol(snap_name)?;
        let uuid = Uuid::random();
        let xs = xattrs::lvol_xattrs(snap_name, &uuid);
        let id = self
            .md_async(move |s| {
                Box::pin(async move { Ok(s.create_snapshot_async(orig.blob_id, &xs).await?) })
            })
            .await?;
        Ok(self.add(Lvol::new(
            &self.uuid(),
            snap_name.to_string(),
            Some(uuid),
            id,
        )))
    }

    /// Clones snapshot `snap` as `clone_name` (`spdk_lvol_create_clone`);
    /// only a read-only lvol can be cloned (`-EINVAL` otherwise).
    pub async fn clone_lvol(&self, snap: &str, clone_name: &str) -> Result<Lvol> {
        let orig = self.find(snap)?;
        let _p = self.reserve_lvol(clone_name)?;
        let uuid = Uuid::random();
        let xs = xattrs::lvol_xattrs(clone_name, &uuid);
        let id = self
            .md_async(move |s| {
                Box::pin(async move { Ok(s.create_clone_async(orig.blob_id, &xs).await?) })
            })
            .await?;
        Ok(self.add(Lvol::new(
            &self.uuid(),
            clone_name.to_string(),
            Some(uuid),
            id,
        )))
    }

    /// Resizes lvol `name` to `size` bytes rounded up to clusters
    /// (`spdk_lvol_resize`). Growing a thick lvol past the free space is
    /// refused with `-ENOSPC` and changes nothing. Shrinking drops the
    /// clusters past the new end, as SPDK's blobstore does (the lvol bdev
    /// module refuses to shrink a bdev that is open, as SPDK's bdev layer).
    pub async fn resize(&self, name: &str, size: u64) -> Result<()> {
        let l = self.find(name)?;
        let lvs = self.name();
        self.md_async(move |s| {
            Box::pin(async move { md_ops::resize(s, &lvs, l.blob_id, size).await })
        })
        .await
    }

    /// Renames lvol `old` to `new` (`spdk_lvol_rename`): the same name is
    /// a no-op, a name in use `-EEXIST`.
    pub async fn rename_lvol(&self, old: &str, new: &str) -> Result<()> {
        let l = self.find(old)?;
        if old == new {
            return Ok(());
        }
        let _p = self.reserve_lvol(new)?;
        let n = new.to_string();
        self.md_async(move |s| {
            Box::pin(async move { md_ops::rename_lvol(s, l.blob_id, &n).await })
        })
        .await?;
        if let Some(x) = self
            .lock()
            .lvols
            .iter_mut()
            .find(|x| x.blob_id == l.blob_id)
        {
            x.name = new.to_string();
        }
        Ok(())
    }

    async fn blob_op(&self, name: &str, op: BlobOp) -> Result<()> {
        let l = self.find(name)?;
        self.md_async(move |s| Box::pin(md_ops::blob_op(s, l.blob_id, op)))
            .await
    }

    /// Inflates lvol `name` (`spdk_lvol_inflate`): it gets every cluster
    /// of its own, copied from its parents or zero, and no parent.
    pub async fn inflate(&self, name: &str) -> Result<()> {
        self.blob_op(name, BlobOp::Inflate).await
    }

    /// Decouples lvol `name` from its parent (`spdk_lvol_decouple_parent`):
    /// it copies the clusters its parent holds and takes the grandparent.
    pub async fn decouple_parent(&self, name: &str) -> Result<()> {
        self.blob_op(name, BlobOp::Decouple).await
    }

    /// Makes thin lvol `name` a clone of snapshot lvol `parent`
    /// (`spdk_lvol_set_parent`): what it wrote stays, the rest reads
    /// through `parent`.
    pub async fn set_parent(&self, name: &str, parent: &str) -> Result<()> {
        let p = self.find(parent)?;
        self.blob_op(name, BlobOp::SetParent(p.blob_id)).await
    }

    /// Makes lvol `name` read-only (`spdk_lvol_set_read_only`).
    pub async fn set_read_only(&self, name: &str) -> Result<()> {
        self.blob_op(name, BlobOp::ReadOnly).await
    }

    /// Deletes lvol `name` (`spdk_lvol_destroy`): refused with `-EPERM`
    /// for a snapshot with more than one clone, `-EBUSY` while it is open;
    /// a snapshot with one clone is merged into that clone.
    pub async fn delete_lvol(&self, name: &str) -> Result<()> {
        let l = self.find(name)?;
        let n = name.to_string();
        self.md_async(move |s| Box::pin(async move { md_ops::delete(s, &n, l.blob_id).await }))
            .await?;
        self.lock().lvols.retain(|x| x.blob_id != l.blob_id);
        Ok(())
    }

    /// What lvol `name`'s blob looks like now (size, allocation, parent,
    /// clones, flags).
    pub async fn lvol_info(&self, name: &str) -> Result<BlobInfo> {
        let l = self.find(name)?;
        self.md(move |s| Ok(s.blob_info(l.blob_id)?)).await
    }

    /// Every lvol with its blob's state, in one metadata call.
    pub async fn lvol_infos(&self) -> Result<Vec<(Lvol, BlobInfo)>> {
        let lvols = self.lvols();
        let ids: Vec<_> = lvols.iter().map(|l| l.blob_id).collect();
        let infos = self
            .md(move |s| {
                ids.iter()
                    .map(|&i| s.blob_info(i).map_err(LvolError::from))
                    .collect::<Result<Vec<_>>>()
            })
            .await?;
        Ok(lvols.into_iter().zip(infos).collect())
    }

    /// Reads `len` bytes at byte `offset` of lvol `name` on the metadata
    /// thread (for checks and tools; bdev I/O goes through the lvol bdev).
    /// Both must be multiples of the block size.
    pub async fn read_lvol(&self, name: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let l = self.find(name)?;
        let bl = self.block_size() as u64;
        check_aligned(offset, len, bl)?;
        self.md_async(move |s| {
            Box::pin(async move {
                let b = s.open_blob(l.blob_id)?;
                let r = s.read_async(l.blob_id, offset / bl, IoBuf::new(len)).await;
                s.close_blob_async(b).await?;
                Ok(r?.to_vec())
            })
        })
        .await
    }

    /// Writes `data` at byte `offset` of lvol `name` on the metadata
    /// thread (for checks and tools). Block-aligned, as [`Self::read_lvol`].
    pub async fn write_lvol(&self, name: &str, offset: u64, data: Vec<u8>) -> Result<()> {
        let l = self.find(name)?;
        let bl = self.block_size() as u64;
        check_aligned(offset, data.len(), bl)?;
        self.md_async(move |s| {
            Box::pin(async move {
                let b = s.open_blob(l.blob_id)?;
                let r = s
                    .write_async(l.blob_id, offset / bl, IoBuf::from_vec(data))
                    .await;
                s.close_blob_async(b).await?;
                r?;
                Ok(())
            })
        })
        .await
    }
}

fn check_aligned(offset: u64, len: usize, bl: u64) -> Result<()> {
    if offset % bl != 0 || len as u64 % bl != 0 {
        return Err(LvolError::Invalid(format!(
            "offset {offset} and length {len} must be multiples of the block size {bl}"
        )));
    }
    Ok(())
}
