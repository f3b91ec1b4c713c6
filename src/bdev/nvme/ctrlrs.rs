//! The attached controllers by name (SPDK's `nvme_bdev_ctrlr` list):
//! what `bdev_nvme_get_controllers` lists, `bdev_nvme_detach_controller`
//! removes and `bdev_nvme_reset_controller` resets; names reserved by an
//! attach in progress; and the module's fini, which detaches them all.

use super::attach::AttachOpts;
use super::reconnect::{Link, LinkState};
use super::worker;
use crate::bdev::{get_by_name, BdevError, ErrorSource, Result};
use crate::nvme::{Controller, TransportId};
use std::sync::{Arc, Mutex};

/// One attached controller.
#[derive(Clone)]
pub struct AttachedController {
    /// The name given at attach (`Nvme0`).
    pub name: String,
    /// The controller now (a fabrics controller is replaced when it
    /// reconnects), shared with its bdevs.
    pub ctrlr: Arc<Controller>,
    /// Where it was attached, when known.
    pub trid: Option<TransportId>,
    /// Its bdevs (`Nvme0n1`, ...).
    pub bdevs: Vec<String>,
    /// Its state (`enabled`, `resetting`, ...).
    pub state: LinkState,
    /// The options it was attached with (`None`: handed in by
    /// [`register_controller`](super::register_controller)).
    pub attach: Option<AttachOpts>,
}

pub(super) struct Entry {
    pub(super) link: Arc<Link>,
    pub(super) trid: Option<TransportId>,
    /// Its bdevs by NSID.
    pub(super) bdevs: Vec<(u32, String)>,
    /// Being taken out (its bdevs are being unregistered).
    pub(super) deleting: bool,
}

struct List {
    ctrlrs: Vec<Entry>,
    /// Names of attaches in progress.
    reserved: Vec<String>,
}

static CTRLRS: Mutex<List> = Mutex::new(List {
    ctrlrs: Vec::new(),
    reserved: Vec::new(),
});

fn with<R>(f: impl FnOnce(&mut List) -> R) -> R {
    f(&mut CTRLRS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// True when a controller of that name is attached or being attached.
pub fn exists(name: &str) -> bool {
    with(|l| l.ctrlrs.iter().any(|c| c.link.name == name) || l.reserved.iter().any(|n| n == name))
}

/// A name held for an attach in progress; released on drop.
pub(super) struct Reserved(String);

impl Drop for Reserved {
    fn drop(&mut self) {
        with(|l| l.reserved.retain(|n| *n != self.0));
    }
}

/// Holds `name` while its controller comes up (a second attach of it is
/// refused as existing).
pub(super) fn reserve(name: &str) -> Result<Reserved> {
    with(|l| {
        if l.ctrlrs.iter().any(|c| c.link.name == name) || l.reserved.iter().any(|n| n == name) {
            return Err(BdevError::Exists(name.to_string()));
        }
        l.reserved.push(name.to_string());
        Ok(Reserved(name.to_string()))
    })
}

pub(super) fn insert(e: Entry) {
    with(|l| l.ctrlrs.push(e));
}

/// The link of controller `name`.
pub(super) fn link(name: &str) -> Result<Arc<Link>> {
    with(|l| {
        l.ctrlrs
            .iter()
            .find(|c| c.link.name == name)
            .map(|c| c.link.clone())
    })
    .ok_or_else(|| BdevError::NotFound(name.to_string()))
}

/// Every attached controller, in attach order (or the one named).
pub fn controllers(name: Option<&str>) -> Result<Vec<AttachedController>> {
    let list: Vec<_> = with(|l| {
        l.ctrlrs
            .iter()
            .filter(|c| name.map_or(true, |n| n == c.link.name))
            .filter_map(|c| {
                Some(AttachedController {
                    name: c.link.name.clone(),
                    ctrlr: c.link.controller().ok()?,
                    trid: c.link.active_path().or_else(|| c.trid.clone()),
                    bdevs: c.bdevs.iter().map(|(_, b)| b.clone()).collect(),
                    state: c.link.state(),
                    attach: c.link.attach.clone(),
                })
            })
            .collect()
    });
    match name {
        Some(n) if list.is_empty() => Err(BdevError::NotFound(n.to_string())),
        _ => Ok(list),
    }
}

/// Takes controller `name` out of the list: a recovery in progress stops,
/// its bdevs are unregistered, and only then does it leave the list (as in
/// SPDK, a controller gone from `bdev_nvme_get_controllers` has no bdev
/// left); the link is returned for dropping. A second take of the same
/// controller meanwhile finds nothing.
fn take(name: &str) -> Result<Arc<Link>> {
    let (link, bdevs) = with(|l| {
        let c = l
            .ctrlrs
            .iter_mut()
            .find(|c| c.link.name == name && !c.deleting)?;
        c.deleting = true;
        Some((c.link.clone(), c.bdevs.clone()))
    })
    .ok_or_else(|| BdevError::NotFound(name.to_string()))?;
    link.stop();
    link.join_adminq();
    for b in bdevs.iter().filter_map(|(_, n)| get_by_name(n)) {
        b.unregister();
    }
    with(|l| l.ctrlrs.retain(|c| !Arc::ptr_eq(&c.link, &link)));
    Ok(link)
}

/// The bdevs of `link` by NSID (`None` once it is being taken out).
pub(super) fn bdevs_of(link: &Arc<Link>) -> Option<Vec<(u32, String)>> {
    with(|l| {
        l.ctrlrs
            .iter()
            .find(|c| Arc::ptr_eq(&c.link, link) && !c.deleting)
            .map(|c| c.bdevs.clone())
    })
}

/// Records bdev `name` of namespace `nsid` under `link`; false when the
/// controller is being taken out meanwhile (the caller unregisters it).
pub(super) fn add_bdev(link: &Arc<Link>, nsid: u32, name: &str) -> bool {
    with(|l| {
        let Some(c) = l
            .ctrlrs
            .iter_mut()
            .find(|c| Arc::ptr_eq(&c.link, link) && !c.deleting)
        else {
            return false;
        };
        c.bdevs.push((nsid, name.to_string()));
        true
    })
}

/// Forgets the bdev of namespace `nsid` under `link` (it was removed).
pub(super) fn forget_bdev(link: &Arc<Link>, nsid: u32) {
    with(|l| {
        if let Some(c) = l.ctrlrs.iter_mut().find(|c| Arc::ptr_eq(&c.link, link)) {
            c.bdevs.retain(|(n, _)| *n != nsid);
        }
    })
}

/// Detaches controller `name` (`bdev_nvme_detach_controller`): a recovery
/// in progress stops, its bdevs are unregistered, and the controller shuts
/// down (CC.SHN) when the last of them is closed — here, on the calling
/// thread, if none is open.
pub fn detach_controller(name: &str) -> Result<()> {
    drop(take(name)?);
    Ok(())
}

/// [`detach_controller`] with the shutdown (when this was the last
/// reference) on a worker thread, awaited: the caller's thread keeps
/// serving, and once this resolves the device is free to attach again.
pub async fn detach_controller_async(name: &str) -> Result<()> {
    let link = take(name)?;
    worker::spawn(&format!("nvme-detach-{name}"), move || drop(link))?.await;
    Ok(())
}

/// The recovery's way to delete a controller whose loss timeout passed.
pub(super) fn delete_lost(name: &str) {
    if let Err(e) = detach_controller(name) {
        log::debug!("nvme bdev: deleting lost controller {name}: {e}");
    }
}

fn busy(name: &str) -> BdevError {
    BdevError::Os {
        op: "reset controller",
        path: name.to_string(),
        source: ErrorSource::message("a reset or reconnect is already in progress", libc::EBUSY),
    }
}

fn reset_failed(name: &str, e: crate::nvme::NvmeError) -> BdevError {
    BdevError::Os {
        op: "reset controller",
        path: name.to_string(),
        source: ErrorSource::new(e),
    }
}

/// Resets controller `name` (`bdev_nvme_reset_controller`) on the calling
/// OS thread: a reset over PCIe, a new association over fabrics. Refused
/// (EBUSY) while a reset or reconnect runs.
pub fn reset_controller(name: &str) -> Result<()> {
    let link = link(name)?;
    if link.is_busy() {
        return Err(busy(name));
    }
    link.reset_now().map_err(|e| reset_failed(name, e))
}

/// [`reset_controller`] on a worker thread, awaited without holding the
/// caller's thread (the JSON-RPC method).
pub async fn reset_controller_async(name: &str) -> Result<()> {
    let link = link(name)?;
    if link.is_busy() {
        return Err(busy(name));
    }
    let n = name.to_string();
    let job = worker::spawn(&format!("nvme-reset-{name}"), move || {
        link.reset_now().map_err(|e| reset_failed(&n, e))
    })?;
    job.await
}

/// The module's fini (SPDK's `bdev_nvme_library_fini`): every controller
/// detached, then every worker (bring-up, recovery, shutdown) waited for,
/// so no controller or DMA buffer outlives the module.
pub(super) fn fini() {
    let all = with(|l| std::mem::take(&mut l.ctrlrs));
    for c in all {
        c.link.stop();
        c.link.join_adminq();
        for b in c.bdevs.iter().filter_map(|(_, n)| get_by_name(n)) {
            b.unregister();
        }
        // Taken out of the link: it shuts down now even if a bdev of it
        // is still open (the env, and its DMA memory, go next).
        if let Some(ctrlr) = c.link.shut_down() {
            if Arc::strong_count(&ctrlr) > 1 {
                log::warn!(
                    "nvme bdev fini: controller {} is still referenced; it shuts down when released",
                    c.link.name
                );
            }
            drop(ctrlr);
        }
    }
    worker::join_all();
}
