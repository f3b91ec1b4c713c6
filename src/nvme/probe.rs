//! Finding and attaching controllers: SPDK's `spdk_nvme_probe` (every NVMe
//! bound to a user-space driver) and `spdk_nvme_connect` (one transport ID).

use super::{Controller, ControllerOpts, NvmeError, TransportId};
use crate::pci::{self, Sysfs};

/// Transport IDs of every NVMe controller bound to vfio-pci, uio_pci_generic
/// or igb_uio (SPDK's probe without a filter), in PCI address order.
pub fn probe() -> Result<Vec<TransportId>, NvmeError> {
    let mut v: Vec<TransportId> = Sysfs::default()
        .nvme_functions()?
        .into_iter()
        .filter(|f| f.driver.as_deref().is_some_and(pci::is_userspace_driver))
        .map(|f| TransportId::pcie(f.address))
        .collect();
    v.sort_by(|a, b| a.traddr.cmp(&b.traddr));
    Ok(v)
}

/// Attaches the controller named by `trid`: opens the PCI device, or
/// connects over NVMe/TCP (`trtype:TCP traddr:... trsvcid:... subnqn:...`).
pub fn connect(trid: &TransportId, opts: &ControllerOpts) -> Result<Controller, NvmeError> {
    if trid.trtype == crate::pci::TransportType::Tcp {
        return super::tcp::attach(trid, opts.clone());
    }
    let dev = pci::open(trid.pci_address()?)?;
    Controller::attach(dev, opts.clone())
}

/// Connects every controller in `trids`, or every one [`probe`] finds when
/// `trids` is empty. Needs the env initialised (`env::init`).
pub fn connect_all(
    trids: &[TransportId],
    opts: &ControllerOpts,
) -> Result<Vec<Controller>, NvmeError> {
    let list = if trids.is_empty() {
        probe()?
    } else {
        trids.to_vec()
    };
    list.iter().map(|t| connect(t, opts)).collect()
}
