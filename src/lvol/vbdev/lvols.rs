//! lvol operations through the module: each changes the store, then keeps
//! the lvol bdevs in step (register a new lvol, unregister a deleted one,
//! new alias after a rename, new size after a resize, writes refused
//! after set read-only) and refreshes what `bdev_get_bdevs` shows.

use super::super::error::{LvolError, Result};
use super::super::md_ops::Lvol;
use super::io::{LvolBdevOps, OpsRef, Shown};
use super::stores::{lvstore, lvstores, LvsSelector, MODULE};
use super::LvsBdev;
use crate::bdev::{self, Bdev, BdevProps};
use crate::blob::BlobClearMethod;
use std::sync::atomic::Ordering;
use std::sync::Arc;

const MIB: u64 = 1 << 20;

/// Seconds an lvol bdev's reset waits for its I/O to drain
/// (`reset_io_drain_timeout`; SPDK's lvols set
/// `SPDK_BDEV_RESET_IO_DRAIN_RECOMMENDED_VALUE`).
pub const RESET_IO_DRAIN_TIMEOUT: u16 = 5;

/// Registers lvol `l`'s bdev: named by its UUID (or `<lvs uuid>_<blob>`),
/// alias `lvs/lvol`, "Logical Volume", as large as its blob.
pub(crate) async fn register_lvol(s: &Arc<LvsBdev>, l: &Lvol) -> Result<Arc<Bdev>> {
    let info = s.lvs.lvol_info(&l.name).await?;
    let cluster = s.lvs.space().await?.cluster_size as u64;
    let bl = s.lvs.block_size();
    let mut props = BdevProps::new(
        l.unique_id.clone(),
        bl,
        info.num_clusters * cluster / bl as u64,
    );
    props.aliases = vec![format!("{}/{}", s.lvs.name(), l.name)];
    props.uuid = l.uuid;
    props.product_name = "Logical Volume".into();
    // As SPDK's lvol bdev: a reset waits this long for the I/O in flight
    // before it reaches the module, so lvols sharing a base do not reset
    // it for nothing.
    props.reset_io_drain_timeout = RESET_IO_DRAIN_TIMEOUT;
    let ops = Arc::new(LvolBdevOps::new(s.clone(), l, info.read_only));
    let blob = s.lvs.blobstore().open_blob(l.blob_id).await?;
    *ops.blob.lock().unwrap_or_else(|e| e.into_inner()) = Some(blob);
    let b = match Bdev::register(props, MODULE, Box::new(OpsRef(ops.clone()))) {
        Ok(b) => b,
        Err(e) => {
            close_blob(s, &ops).await;
            return Err(e.into());
        }
    };
    s.bdevs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(l.blob_id, (b.clone(), ops));
    Ok(b)
}

/// Gives back the blob a registered lvol bdev held open.
async fn close_blob(s: &LvsBdev, ops: &LvolBdevOps) {
    let blob = ops.blob.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(b) = blob {
        if let Err(e) = s.lvs.blobstore().close_blob(b).await {
            log::error!("lvol blob {:#x}: close failed: {e}", ops.blob_id);
        }
    }
}

/// Unregisters an lvol bdev and closes its blob.
pub(crate) async fn drop_bdev(s: &LvsBdev, (b, ops): (Arc<Bdev>, Arc<LvolBdevOps>)) {
    b.unregister();
    close_blob(s, &ops).await;
}

async fn unregister_lvol(s: &LvsBdev, l: &Lvol) {
    let gone = s
        .bdevs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&l.blob_id);
    if let Some(x) = gone {
        drop_bdev(s, x).await;
    }
}

/// Gives lvol `l`'s bdev the alias `<store>/<lvol>` of now in place of the
/// one it had (SPDK's `_vbdev_lvol_change_bdev_alias`): open descriptors
/// stay open.
fn change_alias(s: &LvsBdev, l: &Lvol) -> Result<()> {
    let Some(b) = s.bdev_of(l.blob_id) else {
        return Ok(());
    };
    let new = format!("{}/{}", s.lvs.name(), l.name);
    let old = b.aliases();
    if old.contains(&new) {
        return Ok(());
    }
    b.alias_add(&new)?;
    for a in old {
        b.alias_del(&a)?;
    }
    Ok(())
}

/// Moves every lvol bdev's alias to the store's new name (after the
/// store's rename, as SPDK's `_vbdev_lvs_rename_cb`).
pub(crate) async fn realias_all(s: &Arc<LvsBdev>) -> Result<()> {
    let mut first = Ok(());
    for l in s.lvs.lvols() {
        if let Err(e) = change_alias(s, &l) {
            log::error!("lvol bdev '{}': alias not moved: {e}", l.unique_id);
            first = first.and(Err(e));
        }
    }
    refresh(s).await;
    first
}

/// Updates what each lvol bdev of `s` shows (allocation, snapshot and
/// clone relations, read-only).
pub(crate) async fn refresh(s: &LvsBdev) {
    let Ok(infos) = s.lvs.lvol_infos().await else {
        return;
    };
    let name_of = |id| {
        infos
            .iter()
            .find(|(l, _)| l.blob_id == id)
            .map(|(l, _)| l.name.clone())
    };
    let map = s.bdevs.lock().unwrap_or_else(|e| e.into_inner());
    for (l, i) in &infos {
        if let Some((_, ops)) = map.get(&l.blob_id) {
            ops.read_only.store(i.read_only, Ordering::Relaxed);
            *ops.shown.lock().unwrap_or_else(|e| e.into_inner()) = Shown {
                thin: i.thin_provisioned,
                allocated: i.num_allocated_clusters,
                snapshot: i.is_snapshot,
                clone: i.parent.is_some(),
                base_snapshot: i.parent.and_then(name_of),
                clones: i.clones.iter().filter_map(|&c| name_of(c)).collect(),
            };
        }
    }
}

/// The lvol named by a bdev name, alias (`lvs/lvol`) or UUID, as SPDK's
/// methods find it (`spdk_bdev_get_by_name` then the lvol of that bdev).
pub fn find_lvol(name: &str) -> Result<(Arc<LvsBdev>, Lvol)> {
    let not_found = || LvolError::NotFound {
        what: "lvol",
        name: name.to_string(),
    };
    let b = bdev::get_by_name(name).ok_or_else(not_found)?;
    for s in lvstores() {
        let id = s
            .bdevs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(_, (x, _))| Arc::ptr_eq(x, &b))
            .map(|(id, _)| *id);
        if let Some(l) = id.and_then(|id| s.lvs.lvol_by_blob(id)) {
            return Ok((s, l));
        }
    }
    Err(not_found())
}

/// `bdev_lvol_create`: a new lvol of `size_in_mib` MiB in the store named
/// by `sel`, and its bdev. Returns the bdev's name (the lvol's UUID).
pub async fn create(
    sel: &LvsSelector,
    name: &str,
    size_in_mib: u64,
    thin: bool,
    clear: BlobClearMethod,
) -> Result<String> {
    let s = lvstore(sel)?;
    let size = size_in_mib
        .checked_mul(MIB)
        .ok_or_else(|| LvolError::Invalid(format!("size_in_mib {size_in_mib} is too large")))?;
    let l = s.lvs.create_lvol(name, size, thin, clear).await?;
    register_lvol(&s, &l).await?;
    refresh(&s).await;
    Ok(l.unique_id)
}

/// `bdev_lvol_snapshot`: snapshots the lvol named `lvol_name` (bdev name or
/// alias) as `snapshot_name`; returns the snapshot bdev's name.
pub async fn snapshot(lvol_name: &str, snapshot_name: &str) -> Result<String> {
    let (s, l) = find_lvol(lvol_name)?;
    let snap = s.lvs.snapshot(&l.name, snapshot_name).await?;
    register_lvol(&s, &snap).await?;
    refresh(&s).await;
    Ok(snap.unique_id)
}

/// `bdev_lvol_clone`: clones the snapshot named `snapshot_name`; returns the
/// clone bdev's name.
pub async fn clone(snapshot_name: &str, clone_name: &str) -> Result<String> {
    let (s, l) = find_lvol(snapshot_name)?;
    let c = s.lvs.clone_lvol(&l.name, clone_name).await?;
    register_lvol(&s, &c).await?;
    refresh(&s).await;
    Ok(c.unique_id)
}

/// `bdev_lvol_rename`: the lvol named `old` (bdev name or alias) gets the
/// name `new_name` in its store, and its bdev the alias `lvs/new_name` in
/// place of the old one, open or not (its descriptors stay open).
pub async fn rename(old: &str, new_name: &str) -> Result<()> {
    let (s, l) = find_lvol(old)?;
    if l.name == new_name {
        return Ok(());
    }
    let alias = format!("{}/{}", s.lvs.name(), new_name);
    if let Some(other) = bdev::get_by_name(&alias) {
        if s.bdev_of(l.blob_id)
            .map_or(true, |b| !Arc::ptr_eq(&b, &other))
        {
            return Err(LvolError::Bdev(bdev::BdevError::Exists(alias)));
        }
    }
    s.lvs.rename_lvol(&l.name, new_name).await?;
    let renamed = s.lvs.lvol_by_blob(l.blob_id).unwrap_or(l.clone());
    if let Err(e) = change_alias(&s, &renamed) {
        // Someone took the alias meanwhile: the store goes back to the old name.
        if let Err(e2) = s.lvs.rename_lvol(new_name, &l.name).await {
            log::error!(
                "lvol {}: renamed back to '{}' failed: {e2}",
                l.unique_id,
                l.name
            );
        }
        return Err(e);
    }
    refresh(&s).await;
    Ok(())
}

/// `bdev_lvol_resize`: the lvol becomes `size_in_mib` MiB (rounded up to
/// clusters) and its bdev as large, in place: its open descriptors get a
/// resize event. Shrinking an lvol whose bdev is open is refused
/// (`-EBUSY`, as SPDK's bdev layer refuses it), before anything changes.
pub async fn resize(name: &str, size_in_mib: u64) -> Result<()> {
    let (s, l) = find_lvol(name)?;
    let size = size_in_mib
        .checked_mul(MIB)
        .ok_or_else(|| LvolError::Invalid(format!("size_in_mib {size_in_mib} is too large")))?;
    let cluster = s.lvs.space().await?.cluster_size as u64;
    let now = s.lvs.lvol_info(&l.name).await?.num_clusters;
    let clusters = size.div_ceil(cluster);
    if clusters == now {
        return Ok(());
    }
    let b = s.bdev_of(l.blob_id);
    let blocks = clusters * cluster / s.lvs.block_size() as u64;
    if let Some(b) = &b {
        if blocks < b.num_blocks() && b.open_descs() > 0 {
            return Err(LvolError::Busy(format!(
                "lvol bdev '{}' is open ({} descriptor(s)): close it before you shrink it",
                b.name(),
                b.open_descs()
            )));
        }
    }
    s.lvs.resize(&l.name, size).await?;
    if let Some(b) = b {
        b.notify_blockcnt_change(blocks)?;
    }
    refresh(&s).await;
    Ok(())
}

/// `bdev_lvol_inflate`.
pub async fn inflate(name: &str) -> Result<()> {
    let (s, l) = find_lvol(name)?;
    s.lvs.inflate(&l.name).await?;
    refresh(&s).await;
    Ok(())
}

/// `bdev_lvol_decouple_parent`.
pub async fn decouple_parent(name: &str) -> Result<()> {
    let (s, l) = find_lvol(name)?;
    s.lvs.decouple_parent(&l.name).await?;
    refresh(&s).await;
    Ok(())
}

/// `bdev_lvol_set_parent`: thin lvol `name` becomes a clone of snapshot
/// `parent_name` (both bdev names or aliases, in the same store).
pub async fn set_parent(name: &str, parent_name: &str) -> Result<()> {
    let (s, l) = find_lvol(name)?;
    let (ps, p) = find_lvol(parent_name)?;
    if !Arc::ptr_eq(&s, &ps) {
        return Err(LvolError::Invalid(format!(
            "lvol '{name}' is in lvstore '{}' and snapshot '{parent_name}' in '{}': a parent must be in the same store",
            s.lvs.name(),
            ps.lvs.name()
        )));
    }
    s.lvs.set_parent(&l.name, &p.name).await?;
    refresh(&s).await;
    Ok(())
}

/// `bdev_lvol_set_read_only`: the lvol's data becomes read-only, and its
/// bdev stops taking writes.
pub async fn set_read_only(name: &str) -> Result<()> {
    let (s, l) = find_lvol(name)?;
    s.lvs.set_read_only(&l.name).await?;
    refresh(&s).await;
    Ok(())
}

/// `bdev_lvol_delete`: the lvol's bdev is unregistered and the lvol
/// deleted; a snapshot with more than one clone is refused (`-EPERM`)
/// and keeps its bdev.
pub async fn delete(name: &str) -> Result<()> {
    let (s, l) = find_lvol(name)?;
    let clones = s.lvs.lvol_info(&l.name).await?.clones.len();
    if clones > 1 {
        return Err(LvolError::HasClones {
            name: l.name.clone(),
            clones,
        });
    }
    unregister_lvol(&s, &l).await;
    if let Err(e) = s.lvs.delete_lvol(&l.name).await {
        if let Err(e2) = register_lvol(&s, &l).await {
            log::error!(
                "lvol {}: delete failed and its bdev could not come back: {e2}",
                l.unique_id
            );
        }
        return Err(e);
    }
    refresh(&s).await;
    Ok(())
}
