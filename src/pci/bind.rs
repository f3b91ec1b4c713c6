//! Binding functions to drivers through sysfs, as SPDK's setup.sh does:
//! `driver_override`, the old driver's `unbind`, then `drivers_probe`.

use std::path::Path;

use super::{PciAddress, PciError, Sysfs};

/// The user-space drivers spdk-io can drive a device through.
pub const USERSPACE_DRIVERS: [&str; 3] = ["vfio-pci", "uio_pci_generic", "igb_uio"];

/// True when `driver` is a user-space driver spdk-io can use.
pub fn is_userspace_driver(driver: &str) -> bool {
    USERSPACE_DRIVERS.contains(&driver)
}

fn write(path: &Path, data: &str) -> Result<(), PciError> {
    std::fs::write(path, data)
        .map_err(|e| PciError::io(format!("writing {data:?} to {}", path.display()), e))
}

/// Whether `mounts` (the text of /proc/mounts or /proc/swaps) uses block
/// device `bdev` or one of its partitions; returns the mount line's target.
pub fn mounted_in(mounts: &str, bdev: &str) -> Option<String> {
    let dev = format!("/dev/{bdev}");
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let source = f.next()?;
        let rest = source.strip_prefix(&dev)?;
        let part = rest.strip_prefix('p').unwrap_or(rest);
        (rest.is_empty()
            || (rest.starts_with('p')
                && !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_digit())))
        .then(|| format!("{source} on {}", f.next().unwrap_or("?")))
    })
}

impl Sysfs {
    /// Refuses a function whose namespaces are mounted, swapped on, or held by
    /// another block device (device-mapper, md). `mounts` is [`system_mounts`].
    pub fn check_not_in_use(&self, addr: PciAddress, mounts: &str) -> Result<(), PciError> {
        let in_use = |reason: String| PciError::InUse {
            address: addr.to_string(),
            reason,
        };
        for b in self.block_devices(addr) {
            if let Some(m) = mounted_in(mounts, &b) {
                return Err(in_use(format!("mounted: {m}")));
            }
        }
        let holders = self.holders(addr);
        if !holders.is_empty() {
            return Err(in_use(format!("held by {}", holders.join(", "))));
        }
        Ok(())
    }

    /// Sets (or with `None` clears) the function's `driver_override`.
    pub fn set_driver_override(
        &self,
        addr: PciAddress,
        driver: Option<&str>,
    ) -> Result<(), PciError> {
        write(
            &self.device_dir(addr).join("driver_override"),
            &format!("{}\n", driver.unwrap_or("")),
        )
    }

    /// Detaches the function from its driver, if it has one.
    pub fn unbind(&self, addr: PciAddress) -> Result<(), PciError> {
        match self.function(addr)?.driver {
            Some(d) => write(&self.driver_dir(&d).join("unbind"), &addr.to_string()),
            None => Ok(()),
        }
    }

    /// Binds the function to `driver` (vfio-pci, uio_pci_generic, nvme, ...):
    /// checks it is not in use when a kernel driver holds it, sets
    /// driver_override, unbinds, and asks the kernel to probe it again.
    /// `mounts` is [`system_mounts`] (or a fixture in tests).
    pub fn bind(&self, addr: PciAddress, driver: &str, mounts: &str) -> Result<(), PciError> {
        let f = self.function(addr)?;
        if f.driver.as_deref() == Some(driver) {
            return Ok(());
        }
        let bind_err = |reason: String| PciError::Bind {
            address: addr.to_string(),
            driver: driver.to_string(),
            reason,
        };
        if !self.driver_dir(driver).exists() {
            return Err(bind_err(format!(
                "driver {driver} is not loaded: modprobe {driver} (or pick another with DRIVER_OVERRIDE)"
            )));
        }
        if f.driver.as_deref().is_some_and(|d| !is_userspace_driver(d)) {
            self.check_not_in_use(addr, mounts)?;
        }
        self.set_driver_override(addr, Some(driver))?;
        self.unbind(addr)?;
        self.probe(addr);
        let now = self.function(addr)?.driver;
        if now.as_deref() != Some(driver) {
            return Err(bind_err(format!(
                "after drivers_probe the function is bound to {}; check dmesg (for vfio-pci: is the IOMMU on? intel_iommu=on)",
                now.as_deref().unwrap_or("no driver")
            )));
        }
        Ok(())
    }

    /// Asks the kernel to match a driver to the function. A refusal shows up
    /// as the wrong (or no) driver afterwards, which the callers report.
    fn probe(&self, addr: PciAddress) {
        if let Err(e) = write(
            &self.root().join("bus/pci/drivers_probe"),
            &addr.to_string(),
        ) {
            log::debug!("{e}");
        }
    }

    /// Gives the function back to a kernel driver (normally `nvme`): clears
    /// driver_override so the kernel's own match applies again.
    pub fn bind_kernel(&self, addr: PciAddress, driver: &str) -> Result<(), PciError> {
        let f = self.function(addr)?;
        if f.driver.as_deref() == Some(driver) {
            return self.set_driver_override(addr, None);
        }
        self.set_driver_override(addr, Some(driver))?;
        self.unbind(addr)?;
        self.probe(addr);
        self.set_driver_override(addr, None)?;
        let now = self.function(addr)?.driver;
        if now.as_deref() != Some(driver) {
            return Err(PciError::Bind {
                address: addr.to_string(),
                driver: driver.to_string(),
                reason: format!(
                    "after drivers_probe the function is bound to {}; is the {driver} module loaded (modprobe {driver})?",
                    now.as_deref().unwrap_or("no driver")
                ),
            });
        }
        Ok(())
    }
}

/// The text of /proc/mounts, with each active swap device of /proc/swaps
/// added as a mount on `[swap]`, for the in-use checks.
pub fn system_mounts() -> String {
    let mut s = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    for dev in swaps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
    {
        s.push_str(&format!("{dev} [swap] swap sw 0 0\n"));
    }
    s
}
