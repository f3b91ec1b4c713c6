//! `pci::open`: the one way in, picking VFIO or uio by the bound driver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::{PciAddress, PciDevice, PciError, Sysfs, UioDevice, VfioDevice};
use crate::env::{self, IovaMode};

static OPEN: Mutex<Option<HashMap<PciAddress, Weak<dyn PciDevice>>>> = Mutex::new(None);

/// Opens the function at `addr` for a user-space driver: through VFIO when it
/// is bound to vfio-pci, through sysfs when bound to uio_pci_generic (or
/// igb_uio). A function opened twice in one process is the same device.
///
/// Errors name the fix: an unknown address, a function bound to no user-space
/// driver ("run `spdk-io setup`"), a function outside the env's
/// `pci_allowed`, or an access path that needs physical addresses while the
/// env uses IOVA = VA (or the reverse).
pub fn open(addr: PciAddress) -> Result<Arc<dyn PciDevice>, PciError> {
    let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    let open = open.get_or_insert_with(HashMap::new);
    if let Some(d) = open.get(&addr).and_then(Weak::upgrade) {
        return Ok(d);
    }
    let dev = open_new(&Sysfs::default(), addr)?;
    open.insert(addr, Arc::downgrade(&dev));
    Ok(dev)
}

fn open_new(sysfs: &Sysfs, addr: PciAddress) -> Result<Arc<dyn PciDevice>, PciError> {
    let f = sysfs.function(addr)?;
    if let Some(o) = env::opts() {
        let allowed = o
            .pci_allowed
            .iter()
            .any(|a| a.parse::<PciAddress>().is_ok_and(|p| p == addr));
        if !o.pci_allowed.is_empty() && !allowed {
            return Err(PciError::NotAllowed {
                address: addr.to_string(),
            });
        }
    }
    super::claim::claim_in(std::path::Path::new(super::claim::LOCK_DIR), addr)?;
    let mode_err = |reason: &str| PciError::IovaMode {
        address: addr.to_string(),
        reason: reason.to_string(),
    };
    match f.driver.as_deref() {
        Some("vfio-pci") => {
            let group = f.iommu_group.ok_or_else(|| {
                mode_err("bound to vfio-pci but has no IOMMU group: enable the IOMMU (intel_iommu=on) or use uio_pci_generic (`DRIVER_OVERRIDE=uio_pci_generic spdk-io setup`)")
            })?;
            let dev = VfioDevice::open(addr, group)?;
            if dev.is_noiommu() && env::iova_mode() != IovaMode::Pa {
                return Err(mode_err("VFIO no-IOMMU mode needs physical addresses: init the env with iova_mode PA (the automatic choice without an IOMMU)"));
            }
            Ok(Arc::new(dev))
        }
        Some("uio_pci_generic") | Some("igb_uio") => {
            if env::iova_mode() != IovaMode::Pa {
                return Err(mode_err("bound to uio, which has no IOMMU, but the env uses IOVA = VA: init the env with iova_mode PA and hugepages, or bind to vfio-pci (`spdk-io setup`)"));
            }
            Ok(Arc::new(UioDevice::open(sysfs, addr)?))
        }
        other => Err(PciError::NoUserspaceDriver {
            address: addr.to_string(),
            driver: other.unwrap_or("no driver").to_string(),
        }),
    }
}
