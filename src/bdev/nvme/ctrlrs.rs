//! The attached controllers by name (SPDK's `nvme_bdev_ctrlr` list):
//! what `bdev_nvme_get_controllers` lists, `bdev_nvme_detach_controller`
//! removes and `bdev_nvme_reset_controller` resets.

use crate::bdev::{get_by_name, BdevError, Result};
use crate::nvme::{Controller, TransportId};
use std::sync::{Arc, Mutex};

/// One attached controller.
#[derive(Clone)]
pub struct AttachedController {
    /// The name given at attach (`Nvme0`).
    pub name: String,
    /// The controller, shared with its bdevs.
    pub ctrlr: Arc<Controller>,
    /// Where it was attached, when known.
    pub trid: Option<TransportId>,
    /// Its bdevs (`Nvme0n1`, ...).
    pub bdevs: Vec<String>,
}

static CTRLRS: Mutex<Vec<AttachedController>> = Mutex::new(Vec::new());

fn with<R>(f: impl FnOnce(&mut Vec<AttachedController>) -> R) -> R {
    f(&mut CTRLRS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// True when a controller of that name is attached.
pub fn exists(name: &str) -> bool {
    with(|v| v.iter().any(|c| c.name == name))
}

pub(crate) fn insert(c: AttachedController) {
    with(|v| v.push(c));
}

/// Every attached controller, in attach order (or the one named).
pub fn controllers(name: Option<&str>) -> Result<Vec<AttachedController>> {
    let list: Vec<_> = with(|v| {
        v.iter()
            .filter(|c| name.map_or(true, |n| n == c.name))
            .cloned()
            .collect()
    });
    match name {
        Some(n) if list.is_empty() => Err(BdevError::NotFound(n.to_string())),
        _ => Ok(list),
    }
}

/// Detaches controller `name` (`bdev_nvme_detach_controller`): its bdevs
/// are unregistered; the controller shuts down when the last of them is
/// closed.
pub fn detach_controller(name: &str) -> Result<()> {
    let c = with(|v| {
        let i = v.iter().position(|c| c.name == name)?;
        Some(v.remove(i))
    })
    .ok_or_else(|| BdevError::NotFound(name.to_string()))?;
    for b in c.bdevs.iter().filter_map(|n| get_by_name(n)) {
        b.unregister();
    }
    Ok(())
}

/// Resets controller `name` (`bdev_nvme_reset_controller`).
pub fn reset_controller(name: &str) -> Result<()> {
    let c = controllers(Some(name))?;
    c[0].ctrlr.reset().map_err(|e| BdevError::Os {
        op: "reset controller",
        path: name.to_string(),
        msg: e.to_string(),
    })
}
