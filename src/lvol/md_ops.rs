//! The steps of each lvstore and lvol operation that run on the blobstore's
//! metadata thread, each as one asynchronous call over the store (so no
//! other metadata operation interleaves): checks first, then one committing
//! write where the blobstore allows it, so a refused operation leaves the
//! disk as it was.

use super::error::{LvolError, Result};
use super::xattrs::{self, LVOL_NAME_MAX, LVS_NAME_MAX};
use crate::bdev::Uuid;
use crate::blob::{BlobClearMethod, BlobError, BlobId, BlobOpts, Blobstore, BsDev};

/// One lvol as the store lists it (SPDK's `struct spdk_lvol`, the parts
/// kept in memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lvol {
    /// Its name inside the store.
    pub name: String,
    /// Its UUID; `None` when the blob carries none (SPDK then names the
    /// bdev `<lvs uuid>_<blob id>`).
    pub uuid: Option<Uuid>,
    /// The bdev name: the UUID, or `<lvs uuid>_<blob id>`.
    pub unique_id: String,
    /// The blob behind it.
    pub blob_id: BlobId,
}

impl Lvol {
    pub(crate) fn new(lvs_uuid: &Uuid, name: String, uuid: Option<Uuid>, blob_id: BlobId) -> Lvol {
        let unique_id = match &uuid {
            Some(u) => u.to_string(),
            None => format!("{lvs_uuid}_{blob_id}"),
        };
        Lvol {
            name,
            uuid,
            unique_id,
            blob_id,
        }
    }
}

/// What a load finds on the device.
pub(crate) struct Found {
    pub name: String,
    pub uuid: Uuid,
    pub super_blob: BlobId,
    pub lvols: Vec<Lvol>,
}

fn corrupt(what: impl Into<String>) -> LvolError {
    LvolError::NotAnLvstore {
        bdev: String::new(),
        reason: what.into(),
    }
}

/// Writes a new lvstore's super blob (`spdk_lvs_init`): create, set as
/// super, then its `uuid` and `name` in one metadata write.
pub(crate) async fn init_super<D: BsDev>(
    bs: &mut Blobstore<D>,
    name: &str,
    uuid: &Uuid,
) -> Result<BlobId> {
    let id = bs.create_blob_async(&BlobOpts::default()).await?;
    bs.set_super_blob_async(Some(id)).await?;
    let v = [
        (xattrs::UUID, xattrs::uuid_value(uuid)),
        (xattrs::NAME, xattrs::name_value(name)),
    ];
    set_xattrs(bs, id, &v).await?;
    Ok(id)
}

/// Reads an lvstore from a loaded blobstore (`lvs_load_cb` and
/// `load_next_lvol`): the super blob's `uuid` and `name`, then each
/// other blob's `name` (required) and `uuid` (optional).
pub(crate) fn read_store<D: BsDev>(bs: &Blobstore<D>) -> Result<Found> {
    let super_blob = bs
        .super_blob()
        .ok_or_else(|| corrupt("the blobstore has no super blob"))?;
    let info = bs.blob_info(super_blob)?;
    let get = |xs: &[(String, Vec<u8>)], n: &str| -> Option<Vec<u8>> {
        xs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
    };
    let uuid = xattrs::parse_uuid(get(&info.xattrs, xattrs::UUID).as_deref())
        .ok_or_else(|| corrupt("the super blob's uuid xattr is missing or not a UUID"))?;
    let name = xattrs::parse_name(get(&info.xattrs, xattrs::NAME).as_deref(), LVS_NAME_MAX)
        .ok_or_else(|| corrupt("the super blob's name xattr is missing or invalid"))?;
    let mut ids = bs.blob_ids();
    ids.sort_unstable();
    let mut lvols = Vec::new();
    for id in ids.into_iter().filter(|&i| i != super_blob) {
        let info = bs.blob_info(id)?;
        let lname = xattrs::parse_name(get(&info.xattrs, xattrs::NAME).as_deref(), LVOL_NAME_MAX)
            .ok_or_else(|| corrupt(format!("blob {id:#x} has no valid lvol name xattr")))?;
        let luuid = xattrs::parse_uuid(get(&info.xattrs, xattrs::UUID).as_deref());
        lvols.push(Lvol::new(&uuid, lname, luuid, id));
    }
    Ok(Found {
        name,
        uuid,
        super_blob,
        lvols,
    })
}

/// Renames the store: the super blob's `name`, one metadata write.
pub(crate) async fn rename_store<D: BsDev>(
    bs: &mut Blobstore<D>,
    super_blob: BlobId,
    name: &str,
) -> Result<()> {
    set_xattrs(bs, super_blob, &[(xattrs::NAME, xattrs::name_value(name))]).await
}

/// Sets xattrs of blob `id` and commits them in one metadata write.
async fn set_xattrs<D: BsDev>(
    bs: &mut Blobstore<D>,
    id: BlobId,
    xs: &[(&str, Vec<u8>)],
) -> Result<()> {
    let b = bs.open_blob(id)?;
    let mut r = Ok(());
    for (n, v) in xs {
        r = r.and_then(|_| bs.set_xattr(&b, n, v));
    }
    if r.is_ok() {
        r = bs.sync_md_async(&b).await;
    }
    let c = bs.close_blob_async(b).await;
    r?;
    c?;
    Ok(())
}

/// Creates an lvol's blob (`spdk_lvol_create`): `size` rounded up to
/// whole clusters; a thick one must fit the free clusters.
pub(crate) async fn create_lvol<D: BsDev>(
    bs: &mut Blobstore<D>,
    lvs_name: &str,
    name: &str,
    uuid: &Uuid,
    size: u64,
    thin: bool,
    clear: BlobClearMethod,
) -> Result<BlobId> {
    let clusters = size.div_ceil(bs.cluster_size() as u64);
    if !thin && clusters > bs.free_cluster_count() {
        return Err(LvolError::NoSpace {
            lvs: lvs_name.to_string(),
            free: bs.free_cluster_count(),
            need: clusters,
        });
    }
    let opts = BlobOpts {
        num_clusters: clusters,
        thin_provision: thin,
        xattrs: xattrs::lvol_xattrs(name, uuid),
        clear_method: clear,
        ..Default::default()
    };
    Ok(bs.create_blob_async(&opts).await?)
}

/// Resizes an lvol's blob to `size` bytes rounded up to clusters
/// (`spdk_lvol_resize`: resize, then sync the metadata).
pub(crate) async fn resize<D: BsDev>(
    bs: &mut Blobstore<D>,
    lvs_name: &str,
    id: BlobId,
    size: u64,
) -> Result<()> {
    let clusters = size.div_ceil(bs.cluster_size() as u64);
    let info = bs.blob_info(id)?;
    if !info.thin_provisioned && clusters > info.num_clusters {
        let need = clusters - info.num_clusters;
        if need > bs.free_cluster_count() {
            return Err(LvolError::NoSpace {
                lvs: lvs_name.to_string(),
                free: bs.free_cluster_count(),
                need,
            });
        }
    }
    let b = bs.open_blob(id)?;
    let r = match bs.resize_blob(&b, clusters) {
        Ok(()) => bs.sync_md_async(&b).await,
        Err(e) => Err(e),
    };
    let c = bs.close_blob_async(b).await;
    r?;
    c?;
    Ok(())
}

/// Renames an lvol: its `name` xattr, the name and one NUL
/// (`spdk_lvol_rename`).
pub(crate) async fn rename_lvol<D: BsDev>(
    bs: &mut Blobstore<D>,
    id: BlobId,
    name: &str,
) -> Result<()> {
    set_xattrs(bs, id, &[(xattrs::NAME, xattrs::name_value(name))]).await
}

/// Which whole-blob operation to run on an open lvol.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BlobOp {
    Inflate,
    Decouple,
    ReadOnly,
    /// A new parent snapshot (by blob id).
    SetParent(BlobId),
}

/// Inflates, decouples, sets read-only or sets the parent of an lvol.
pub(crate) async fn blob_op<D: BsDev>(bs: &mut Blobstore<D>, id: BlobId, op: BlobOp) -> Result<()> {
    let b = bs.open_blob(id)?;
    let r = match op {
        BlobOp::Inflate => bs.inflate_blob_async(&b).await,
        BlobOp::Decouple => bs.decouple_parent_async(&b).await,
        BlobOp::SetParent(p) => bs.set_parent_async(&b, p).await,
        BlobOp::ReadOnly => match bs.set_read_only(&b) {
            Ok(()) => bs.sync_md_async(&b).await,
            Err(e) => Err(e),
        },
    };
    let c = bs.close_blob_async(b).await;
    r?;
    c?;
    Ok(())
}

/// Deletes an lvol's blob (`spdk_lvol_destroy`): refused with `-EPERM`
/// for a snapshot with more than one clone (as `_vbdev_lvol_destroy`); a
/// snapshot with one clone is merged into it by the blobstore.
pub(crate) async fn delete<D: BsDev>(bs: &mut Blobstore<D>, name: &str, id: BlobId) -> Result<()> {
    let clones = bs.clones_of(id);
    if clones.len() > 1 {
        return Err(LvolError::HasClones {
            name: name.to_string(),
            clones: clones.len(),
        });
    }
    bs.delete_blob_async(id).await.map_err(|e| match e {
        BlobError::Busy { reason, .. } => LvolError::Busy(format!("lvol '{name}': {reason}")),
        e => e.into(),
    })
}

/// Deletes every lvol (clones before their snapshots) and the super blob
/// (`vbdev_lvs_destruct` then `spdk_lvs_destroy`).
pub(crate) async fn destroy<D: BsDev>(bs: &mut Blobstore<D>, super_blob: BlobId) -> Result<()> {
    loop {
        let mut ids: Vec<BlobId> = bs
            .blob_ids()
            .into_iter()
            .filter(|&i| i != super_blob)
            .collect();
        if ids.is_empty() {
            break;
        }
        ids.sort_unstable();
        // Leaves first: a blob nobody is a clone of.
        let leaf = ids
            .iter()
            .copied()
            .find(|&i| bs.clones_of(i).is_empty())
            .ok_or_else(|| LvolError::Busy("lvols form a cycle of clones".into()))?;
        bs.delete_blob_async(leaf).await?;
    }
    bs.set_super_blob_async(None).await?;
    bs.delete_blob_async(super_blob).await?;
    Ok(())
}
