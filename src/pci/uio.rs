//! A PCI function bound to uio_pci_generic (no IOMMU): BARs through sysfs
//! `resourceN`, config space through sysfs `config`, DMA by physical address.

use super::bars::{check_config_range, BarSlots};
use super::{mmio, Bar, PciAddress, PciDevice, PciError, Sysfs};
use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;

/// A PCI function driven through sysfs files while uio_pci_generic holds it.
pub struct UioDevice {
    addr: PciAddress,
    dir: PathBuf,
    config: File,
    config_size: u64,
    bars: BarSlots,
}

impl UioDevice {
    /// Opens `addr` through the sysfs files under `sysfs`.
    pub fn open(sysfs: &Sysfs, addr: PciAddress) -> Result<Self, PciError> {
        let dir = sysfs.device_dir(addr);
        let path = dir.join("config");
        let config = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| PciError::io(format!("opening {} (needs root)", path.display()), e))?;
        let config_size = config
            .metadata()
            .map_err(|e| PciError::io(format!("stat {}", path.display()), e))?
            .len();
        Ok(Self {
            addr,
            dir,
            config,
            config_size,
            bars: BarSlots::new(addr),
        })
    }

    fn check_cfg(&self, offset: u16, len: usize) -> Result<(), PciError> {
        check_config_range(self.addr, self.config_size, offset, len)
    }
}

impl PciDevice for UioDevice {
    fn address(&self) -> PciAddress {
        self.addr
    }

    fn map_bar(&self, index: u8) -> Result<Bar, PciError> {
        self.bars.get_or_map(index, || {
            let path = self.dir.join(format!("resource{index}"));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_SYNC)
                .open(&path)
                .map_err(|_| self.bars.absent(index))?;
            let len = file
                .metadata()
                .map_err(|e| PciError::io(format!("stat {}", path.display()), e))?
                .len() as usize;
            if len == 0 {
                return Err(self.bars.absent(index));
            }
            mmio::map_bar(file.as_fd(), 0, len, &path.display().to_string())
        })
    }

    fn cfg_read(&self, offset: u16, buf: &mut [u8]) -> Result<(), PciError> {
        self.check_cfg(offset, buf.len())?;
        self.config
            .read_exact_at(buf, offset as u64)
            .map_err(|e| PciError::io(format!("{}: reading config at {offset:#x}", self.addr), e))
    }

    fn cfg_write(&self, offset: u16, data: &[u8]) -> Result<(), PciError> {
        self.check_cfg(offset, data.len())?;
        self.config
            .write_all_at(data, offset as u64)
            .map_err(|e| PciError::io(format!("{}: writing config at {offset:#x}", self.addr), e))
    }
}

impl std::fmt::Debug for UioDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UioDevice")
            .field("addr", &self.addr)
            .finish()
    }
}
