//! PCI functions as sysfs describes them, under a configurable root so
//! tests can point it at a fixture tree.

use std::path::{Path, PathBuf};

use super::{PciAddress, PciError};

/// Class code of an NVMe controller: mass storage (01), NVM (08), NVMe (02).
pub const NVME_CLASS: u32 = 0x010802;

/// A sysfs tree: `/sys` on a live system, a fixture directory in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Self::new("/sys")
    }
}

/// One PCI function and what the kernel says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciFunction {
    /// Its address.
    pub address: PciAddress,
    /// Vendor ID (0x1b36 for QEMU's devices).
    pub vendor_id: u16,
    /// Device ID.
    pub device_id: u16,
    /// Subsystem vendor ID.
    pub subsystem_vendor_id: u16,
    /// Subsystem device ID.
    pub subsystem_device_id: u16,
    /// 24-bit class code (base class, subclass, programming interface).
    pub class: u32,
    /// The bound driver's name, if any.
    pub driver: Option<String>,
    /// NUMA node, if the platform reports one.
    pub numa_node: Option<u32>,
    /// IOMMU group, when an IOMMU (or VFIO no-IOMMU) is present.
    pub iommu_group: Option<u32>,
}

impl PciFunction {
    /// True for NVMe controllers (class 0x010802).
    pub fn is_nvme(&self) -> bool {
        self.class == NVME_CLASS
    }
}

fn read_hex(path: &Path) -> Result<u32, PciError> {
    let s = std::fs::read_to_string(path)
        .map_err(|e| PciError::io(format!("reading {}", path.display()), e))?;
    let t = s.trim();
    u32::from_str_radix(t.trim_start_matches("0x"), 16).map_err(|_| {
        PciError::io(
            format!("parsing {}", path.display()),
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{t:?} is not hex")),
        )
    })
}

/// The last component of the symlink at `path`, if it is one.
fn link_name(path: &Path) -> Option<String> {
    let target = std::fs::read_link(path).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

impl Sysfs {
    /// A tree rooted at `root` (which holds `bus/pci/devices`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `bus/pci/devices/<addr>`.
    pub fn device_dir(&self, addr: PciAddress) -> PathBuf {
        self.root.join("bus/pci/devices").join(addr.to_string())
    }

    /// `bus/pci/drivers/<name>`.
    pub fn driver_dir(&self, name: &str) -> PathBuf {
        self.root.join("bus/pci/drivers").join(name)
    }

    /// Every PCI function, sorted by address.
    pub fn functions(&self) -> Result<Vec<PciFunction>, PciError> {
        let dir = self.root.join("bus/pci/devices");
        let rd = std::fs::read_dir(&dir)
            .map_err(|e| PciError::io(format!("listing {}", dir.display()), e))?;
        let mut out = Vec::new();
        for entry in rd.flatten() {
            let name = entry.file_name();
            let Ok(addr) = name.to_string_lossy().parse::<PciAddress>() else {
                continue;
            };
            out.push(self.function(addr)?);
        }
        out.sort_by_key(|f| f.address);
        Ok(out)
    }

    /// The NVMe functions, sorted by address.
    pub fn nvme_functions(&self) -> Result<Vec<PciFunction>, PciError> {
        Ok(self
            .functions()?
            .into_iter()
            .filter(PciFunction::is_nvme)
            .collect())
    }

    /// One function; [`PciError::NotFound`] if sysfs has no such address.
    pub fn function(&self, addr: PciAddress) -> Result<PciFunction, PciError> {
        let dir = self.device_dir(addr);
        if !dir.exists() {
            return Err(PciError::NotFound {
                address: addr.to_string(),
            });
        }
        let hex = |f: &str| read_hex(&dir.join(f));
        let opt_hex = |f: &str| read_hex(&dir.join(f)).unwrap_or(0) as u16;
        let numa_node = std::fs::read_to_string(dir.join("numa_node"))
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .and_then(|n| u32::try_from(n).ok());
        Ok(PciFunction {
            address: addr,
            vendor_id: hex("vendor")? as u16,
            device_id: hex("device")? as u16,
            subsystem_vendor_id: opt_hex("subsystem_vendor"),
            subsystem_device_id: opt_hex("subsystem_device"),
            class: hex("class")? & 0x00ff_ffff,
            driver: link_name(&dir.join("driver")),
            numa_node,
            iommu_group: link_name(&dir.join("iommu_group")).and_then(|g| g.parse().ok()),
        })
    }

    /// The block devices of an NVMe function bound to the kernel `nvme`
    /// driver (`nvme0n1`, ...), from `nvme/nvme*/nvme*n*`. Multipath path
    /// nodes (`nvme0c0n1`) are reported as the block device (`nvme0n1`).
    pub fn block_devices(&self, addr: PciAddress) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(ctrls) = std::fs::read_dir(self.device_dir(addr).join("nvme")) else {
            return out;
        };
        for ctrl in ctrls.flatten() {
            let Ok(nss) = std::fs::read_dir(ctrl.path()) else {
                continue;
            };
            for ns in nss.flatten() {
                let n = ns.file_name().to_string_lossy().into_owned();
                if let Some(b) = block_name(&n) {
                    out.push(b);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Entries of the `holders` directories of the function's namespaces (and
    /// of the block devices and their partitions), e.g. a device-mapper target.
    pub fn holders(&self, addr: PciAddress) -> Vec<String> {
        let mut dirs = Vec::new();
        if let Ok(ctrls) = std::fs::read_dir(self.device_dir(addr).join("nvme")) {
            for ctrl in ctrls.flatten() {
                for ns in std::fs::read_dir(ctrl.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    if block_name(&ns.file_name().to_string_lossy()).is_some() {
                        dirs.push(ns.path());
                    }
                }
            }
        }
        for b in self.block_devices(addr) {
            dirs.push(self.root.join("block").join(&b));
        }
        let mut out = Vec::new();
        for d in dirs {
            let mut with_parts = vec![d.clone()];
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.path().join("partition").exists() {
                    with_parts.push(e.path());
                }
            }
            for p in with_parts {
                for h in std::fs::read_dir(p.join("holders"))
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    out.push(h.file_name().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// `nvme0n1` -> `nvme0n1`; `nvme0c1n2` -> `nvme0n2`; anything else -> None.
fn block_name(entry: &str) -> Option<String> {
    let rest = entry.strip_prefix("nvme")?;
    let (head, ns) = rest.split_once('n')?;
    if ns.is_empty() || !ns.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let subsys = match head.split_once('c') {
        Some((s, c)) if !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) => s,
        Some(_) => return None,
        None => head,
    };
    if subsys.is_empty() || !subsys.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("nvme{subsys}n{ns}"))
}

#[cfg(test)]
mod tests {
    use super::block_name;

    #[test]
    fn namespace_entries_name_their_block_device() {
        assert_eq!(block_name("nvme0n1").as_deref(), Some("nvme0n1"));
        assert_eq!(block_name("nvme3c12n2").as_deref(), Some("nvme3n2"));
        assert_eq!(block_name("nvme0"), None);
        assert_eq!(block_name("nvme0n"), None);
        assert_eq!(block_name("nvme0n1p1"), None);
        assert_eq!(block_name("ng0n1"), None);
    }
}
