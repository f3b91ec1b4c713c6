//! The six BARs of an opened function, each mapped on first use and shared
//! by every later caller, and the bounds check of config-space accesses:
//! what the VFIO and uio backends have in common.

use std::sync::Mutex;

use super::{Bar, PciAddress, PciError};

/// The BARs of one function mapped so far.
pub(crate) struct BarSlots {
    addr: PciAddress,
    slots: Mutex<[Option<Bar>; 6]>,
}

impl BarSlots {
    /// No BAR of `addr` mapped yet.
    pub(crate) fn new(addr: PciAddress) -> Self {
        Self {
            addr,
            slots: Mutex::new(Default::default()),
        }
    }

    /// The error for a BAR the function does not have (or cannot map).
    pub(crate) fn absent(&self, index: u8) -> PciError {
        PciError::NoSuchBar {
            device: self.addr.to_string(),
            index,
        }
    }

    /// BAR `index` (0 to 5), mapped by `map` the first time it is asked for.
    pub(crate) fn get_or_map(
        &self,
        index: u8,
        map: impl FnOnce() -> Result<Bar, PciError>,
    ) -> Result<Bar, PciError> {
        if index > 5 {
            return Err(self.absent(index));
        }
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = &slots[index as usize] {
            return Ok(b.clone());
        }
        let bar = map()?;
        slots[index as usize] = Some(bar.clone());
        Ok(bar)
    }
}

/// Checks that `len` bytes at `offset` lie inside the `size` bytes of
/// `addr`'s config space.
pub(crate) fn check_config_range(
    addr: PciAddress,
    size: u64,
    offset: u16,
    len: usize,
) -> Result<(), PciError> {
    if offset as u64 + len as u64 > size {
        return Err(PciError::ConfigRange {
            address: addr.to_string(),
            offset,
            len,
        });
    }
    Ok(())
}
