//! The controller's PCI configuration space: a type 0 header describing an
//! NVM Express controller (class 01h, subclass 08h, programming interface
//! 02h) with one 64-bit memory BAR. Only the COMMAND register is writable.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::pci::PciError;

/// Size of configuration space (PCIe extended space included, all zero past the header).
pub const CONFIG_SIZE: usize = 4096;
const COMMAND: usize = 0x04;
/// COMMAND bits a host may change: I/O space, memory space, bus master,
/// parity error response, SERR#, interrupt disable.
const COMMAND_WRITABLE: u16 = 0x0001 | 0x0002 | 0x0004 | 0x0040 | 0x0100 | 0x0400;
/// COMMAND.BME (Bus Master Enable).
const BUS_MASTER: u16 = 0x0004;

/// Configuration space plus a lock-free mirror of Bus Master Enable for the worker.
pub struct PciConfig {
    space: Mutex<[u8; CONFIG_SIZE]>,
    bus_master: AtomicBool,
}

impl PciConfig {
    /// A header for `vendor:device` with one 64-bit memory BAR (BAR writes,
    /// such as sizing, are ignored).
    pub fn new(vendor: u16, device: u16) -> Self {
        let mut s = [0u8; CONFIG_SIZE];
        s[0x00..0x02].copy_from_slice(&vendor.to_le_bytes());
        s[0x02..0x04].copy_from_slice(&device.to_le_bytes());
        s[0x08] = 0x02; // revision
        s[0x09] = 0x02; // programming interface: NVM Express
        s[0x0a] = 0x08; // subclass: non-volatile memory controller
        s[0x0b] = 0x01; // class: mass storage
        s[0x0e] = 0x00; // header type 0
        s[0x10] = 0x04; // BAR0: memory, 64-bit, not prefetchable
        s[0x2c..0x2e].copy_from_slice(&vendor.to_le_bytes());
        s[0x2e..0x30].copy_from_slice(&device.to_le_bytes());
        s[0x3d] = 0x01; // interrupt pin INTA#
        Self {
            space: Mutex::new(s),
            bus_master: AtomicBool::new(false),
        }
    }

    fn range(offset: u16, len: usize) -> Result<std::ops::Range<usize>, PciError> {
        let start = offset as usize;
        match start.checked_add(len) {
            Some(end) if end <= CONFIG_SIZE => Ok(start..end),
            _ => Err(PciError::Io {
                what: format!(
                    "config space access of {len} bytes at {offset:#x}: beyond its {CONFIG_SIZE} bytes"
                ),
                source: io::Error::from(io::ErrorKind::InvalidInput),
            }),
        }
    }

    /// Reads bytes of configuration space.
    pub fn read(&self, offset: u16, buf: &mut [u8]) -> Result<(), PciError> {
        let r = Self::range(offset, buf.len())?;
        let s = self.space.lock().unwrap_or_else(|p| p.into_inner());
        buf.copy_from_slice(&s[r]);
        Ok(())
    }

    /// Writes bytes of configuration space; only the COMMAND register's
    /// writable bits take effect, as on a device with nothing else to program.
    pub fn write(&self, offset: u16, data: &[u8]) -> Result<(), PciError> {
        let r = Self::range(offset, data.len())?;
        let mut s = self.space.lock().unwrap_or_else(|p| p.into_inner());
        let mut cmd = [s[COMMAND], s[COMMAND + 1]];
        for (i, b) in r.clone().zip(data) {
            if (COMMAND..COMMAND + 2).contains(&i) {
                cmd[i - COMMAND] = *b;
            }
        }
        let old = u16::from_le_bytes([s[COMMAND], s[COMMAND + 1]]);
        let new = (old & !COMMAND_WRITABLE) | (u16::from_le_bytes(cmd) & COMMAND_WRITABLE);
        s[COMMAND..COMMAND + 2].copy_from_slice(&new.to_le_bytes());
        self.bus_master
            .store(new & BUS_MASTER != 0, Ordering::Release);
        Ok(())
    }

    /// True while COMMAND.BME is set: the device may access host memory.
    pub fn bus_master(&self) -> bool {
        self.bus_master.load(Ordering::Acquire)
    }
}
