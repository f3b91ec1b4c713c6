//! Shallow copy (SPDK's `vbdev_lvol_shallow_copy` and the
//! `bdev_lvol_start_shallow_copy` / `_check_shallow_copy` status list):
//! the clusters a read-only lvol owns (not those it reads through its
//! parents) are copied to another bdev at the same offsets, in the
//! background on the calling (metadata) thread, while the destination is
//! claimed by the lvol module. Each copy has an operation id whose status
//! (copied and total clusters, the result) is kept until it is checked
//! once finished.

use super::super::error::{LvolError, Result};
use super::lvols::find_lvol;
use super::stores::MODULE;
use crate::bdev::{self, IoBuf};
use crate::thread::spawn_local;
use std::sync::Mutex;

/// Where a shallow copy stands (`rpc_shallow_copy_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyStatus {
    /// The operation id.
    pub operation_id: u32,
    /// Clusters copied so far.
    pub copied_clusters: u64,
    /// Clusters the lvol owns (to copy).
    pub total_clusters: u64,
    /// 0 while running or once done; `-errno` if it failed.
    pub result: i32,
}

static COPIES: Mutex<(u32, Vec<CopyStatus>)> = Mutex::new((0, Vec::new()));

fn with<R>(f: impl FnOnce(&mut (u32, Vec<CopyStatus>)) -> R) -> R {
    f(&mut COPIES.lock().unwrap_or_else(|e| e.into_inner()))
}

fn update(id: u32, f: impl FnOnce(&mut CopyStatus)) {
    with(|(_, list)| {
        if let Some(s) = list.iter_mut().find(|s| s.operation_id == id) {
            f(s)
        }
    })
}

/// Starts copying the clusters lvol `src` (bdev name or alias) owns to bdev
/// `dst`; returns the operation id. Fails at once (`-ENODEV`) for an unknown
/// lvol or destination and (`-EPERM`, SPDK's claim error) for a destination
/// another module claimed; the copy's own failures (the lvol not
/// read-only: `-EPERM`; a destination smaller than the lvol or of an
/// incompatible block size: `-EINVAL`; I/O errors) show in its status.
pub async fn start_shallow_copy(src: &str, dst: &str) -> Result<u32> {
    let (s, l) = find_lvol(src)?;
    let d = bdev::open(dst, true).map_err(|e| match e {
        bdev::BdevError::NotFound(_) => LvolError::NotFound {
            what: "bdev",
            name: dst.to_string(),
        },
        e => e.into(),
    })?;
    d.claim(MODULE)?;
    let info = s.lvs.lvol_info(&l.name).await?;
    let owned = s.lvs.blobstore().owned_clusters(l.blob_id).await?;
    let cluster = s.lvs.space().await?.cluster_size as u64;
    let id = with(|(n, list)| {
        *n += 1;
        list.push(CopyStatus {
            operation_id: *n,
            copied_clusters: 0,
            total_clusters: owned.len() as u64,
            result: 0,
        });
        *n
    });
    let name = l.unique_id.clone();
    let task = async move {
        let r = copy(
            &name,
            &d,
            info.read_only,
            info.num_clusters,
            cluster,
            &owned,
            id,
        )
        .await;
        if let Err(e) = r {
            log::error!(
                "lvol {name}: shallow copy to '{}' failed: {e}",
                d.bdev().name()
            );
            update(id, |st| st.result = -e.errno());
        }
    };
    if let Err(e) = spawn_local(task) {
        with(|(_, list)| list.retain(|x| x.operation_id != id));
        return Err(LvolError::Invalid(format!(
            "shallow copy needs an spdk-io thread to run on: {e}"
        )));
    }
    Ok(id)
}

async fn copy(
    lvol: &str,
    d: &bdev::Desc,
    read_only: bool,
    num_clusters: u64,
    cluster: u64,
    owned: &[u64],
    id: u32,
) -> Result<()> {
    if !read_only {
        return Err(LvolError::NotPermitted(format!(
            "lvol {lvol} must be read-only for a shallow copy: bdev_lvol_set_read_only it first"
        )));
    }
    let dst = d.bdev();
    let (dbl, dblocks) = (dst.block_size() as u64, dst.num_blocks());
    let src = bdev::open(lvol, false)?;
    let sbl = src.bdev().block_size() as u64;
    if num_clusters * cluster > dblocks * dbl {
        return Err(LvolError::Invalid(format!(
            "'{}' has {} bytes; lvol {lvol} needs {}",
            dst.name(),
            dblocks * dbl,
            num_clusters * cluster
        )));
    }
    if sbl % dbl != 0 {
        return Err(LvolError::Invalid(format!(
            "'{}' has {dbl}-byte blocks, not a divisor of the lvol's {sbl}",
            dst.name()
        )));
    }
    let (sch, dch) = (src.get_io_channel()?, d.get_io_channel()?);
    let mut buf = IoBuf::new(cluster as usize);
    for (n, &i) in owned.iter().enumerate() {
        let off = i * cluster;
        buf = src
            .read_blocks_async(&sch, buf, off / sbl, cluster / sbl)
            .await
            .map_err(|e| LvolError::Bdev(e.error))?;
        buf = d
            .write_blocks_async(&dch, buf, off / dbl, cluster / dbl)
            .await
            .map_err(|e| LvolError::Bdev(e.error))?;
        update(id, |st| st.copied_clusters = n as u64 + 1);
    }
    Ok(())
}

/// The status of shallow copy `operation_id` (`bdev_lvol_check_shallow_copy`);
/// a finished one (complete or failed) is forgotten once reported. `None`
/// for an unknown id.
pub fn check_shallow_copy(operation_id: u32) -> Option<CopyStatus> {
    with(|(_, list)| {
        let i = list.iter().position(|s| s.operation_id == operation_id)?;
        let s = list[i];
        if s.result != 0 || s.copied_clusters == s.total_clusters {
            list.remove(i);
        }
        Some(s)
    })
}
