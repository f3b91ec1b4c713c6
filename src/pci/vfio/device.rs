//! A PCI function opened through VFIO: BARs and config space as regions of
//! the device fd.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use vfio_bindings::bindings::vfio::{VFIO_PCI_CONFIG_REGION_INDEX, VFIO_REGION_INFO_FLAG_MMAP};

use super::container::{container, Group};
use super::ioctl;
use crate::pci::bars::{check_config_range, BarSlots};
use crate::pci::{mmio, Bar, PciAddress, PciDevice, PciError};

/// A PCI function bound to vfio-pci.
pub struct VfioDevice {
    addr: PciAddress,
    file: File,
    group: Arc<Group>,
    config_offset: u64,
    config_size: u64,
    bars: BarSlots,
}

impl VfioDevice {
    /// Opens `addr`, a member of IOMMU group `group`, through the process's container.
    pub(crate) fn open(addr: PciAddress, group: u32) -> Result<Self, PciError> {
        let group = container()?.group(group)?;
        let name = addr.to_string();
        let fd = ioctl::group_get_device_fd(group.file.as_fd(), &name).map_err(|source| {
            PciError::Vfio {
                op: "GROUP_GET_DEVICE_FD",
                device: name.clone(),
                source,
            }
        })?;
        let file = File::from(fd);
        let cfg =
            ioctl::region_info(file.as_fd(), VFIO_PCI_CONFIG_REGION_INDEX).map_err(|source| {
                PciError::Vfio {
                    op: "DEVICE_GET_REGION_INFO (config)",
                    device: name.clone(),
                    source,
                }
            })?;
        Ok(Self {
            addr,
            file,
            group,
            config_offset: cfg.offset,
            config_size: cfg.size,
            bars: BarSlots::new(addr),
        })
    }

    /// True when the group uses VFIO's no-IOMMU mode (DMA by physical address).
    pub fn is_noiommu(&self) -> bool {
        self.group.noiommu
    }

    /// The IOMMU group number.
    pub fn iommu_group(&self) -> u32 {
        self.group.number
    }

    fn check_cfg(&self, offset: u16, len: usize) -> Result<u64, PciError> {
        check_config_range(self.addr, self.config_size, offset, len)?;
        Ok(self.config_offset + offset as u64)
    }
}

impl PciDevice for VfioDevice {
    fn address(&self) -> PciAddress {
        self.addr
    }

    fn map_bar(&self, index: u8) -> Result<Bar, PciError> {
        self.bars.get_or_map(index, || {
            let info = ioctl::region_info(self.file.as_fd(), index as u32).map_err(|source| {
                PciError::Vfio {
                    op: "DEVICE_GET_REGION_INFO",
                    device: self.addr.to_string(),
                    source,
                }
            })?;
            if info.size == 0 || info.flags & VFIO_REGION_INFO_FLAG_MMAP == 0 {
                return Err(self.bars.absent(index));
            }
            mmio::map_bar(
                self.file.as_fd(),
                info.offset,
                info.size as usize,
                &format!("{} BAR {index} through VFIO", self.addr),
            )
        })
    }

    fn cfg_read(&self, offset: u16, buf: &mut [u8]) -> Result<(), PciError> {
        let at = self.check_cfg(offset, buf.len())?;
        self.file.read_exact_at(buf, at).map_err(|e| {
            PciError::io(
                format!("{}: reading config space at {offset:#x}", self.addr),
                e,
            )
        })
    }

    fn cfg_write(&self, offset: u16, data: &[u8]) -> Result<(), PciError> {
        let at = self.check_cfg(offset, data.len())?;
        self.file.write_all_at(data, at).map_err(|e| {
            PciError::io(
                format!("{}: writing config space at {offset:#x}", self.addr),
                e,
            )
        })
    }
}

impl std::fmt::Debug for VfioDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VfioDevice")
            .field("addr", &self.addr)
            .field("group", &self.group.number)
            .field("noiommu", &self.group.noiommu)
            .finish()
    }
}
