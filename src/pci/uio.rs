//! A PCI function bound to uio_pci_generic (no IOMMU): BARs through sysfs
//! `resourceN`, config space through sysfs `config`, DMA by physical address.

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Mutex;

use super::{mmio, Bar, PciAddress, PciDevice, PciError, Sysfs};

/// A PCI function driven through sysfs files while uio_pci_generic holds it.
pub struct UioDevice {
    addr: PciAddress,
    dir: PathBuf,
    config: File,
    config_size: u64,
    bars: Mutex<[Option<Bar>; 6]>,
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
            bars: Mutex::new(Default::default()),
        })
    }

    fn check_cfg(&self, offset: u16, len: usize) -> Result<(), PciError> {
        if offset as u64 + len as u64 > self.config_size {
            return Err(PciError::ConfigRange {
                address: self.addr.to_string(),
                offset,
                len,
            });
        }
        Ok(())
    }
}

impl PciDevice for UioDevice {
    fn address(&self) -> PciAddress {
        self.addr
    }

    fn map_bar(&self, index: u8) -> Result<Bar, PciError> {
        let no_bar = || PciError::NoSuchBar {
            device: self.addr.to_string(),
            index,
        };
        if index > 5 {
            return Err(no_bar());
        }
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = &bars[index as usize] {
            return Ok(b.clone());
        }
        let path = self.dir.join(format!("resource{index}"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_SYNC)
            .open(&path)
            .map_err(|_| no_bar())?;
        let len = file
            .metadata()
            .map_err(|e| PciError::io(format!("stat {}", path.display()), e))?
            .len() as usize;
        if len == 0 {
            return Err(no_bar());
        }
        let bar = mmio::map_bar(file.as_fd(), 0, len, &path.display().to_string())?;
        bars[index as usize] = Some(bar.clone());
        Ok(bar)
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
