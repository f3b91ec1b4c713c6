//! Which driver `spdk-io setup` binds NVMe functions to: DRIVER_OVERRIDE
//! if it names a PCI driver that is (or can be) loaded, else vfio-pci with
//! an IOMMU and uio_pci_generic without. Module loading failures are
//! reported, and a driver that cannot be had is refused before anything
//! changes.

use std::process::Command;

use spdk_io::pci::Sysfs;

/// Loads kernel module `module`; the error says why it could not.
pub(super) fn modprobe(module: &str) -> Result<(), String> {
    let out = Command::new("modprobe")
        .arg(module)
        .output()
        .map_err(|e| format!("cannot run modprobe: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(if why.is_empty() {
            format!("modprobe {module}: {}", out.status)
        } else {
            why
        })
    }
}

/// The driver `name` asked for (DRIVER_OVERRIDE), loaded if it was not:
/// refused if no PCI driver of that name is there afterwards.
pub(super) fn require(
    sysfs: &Sysfs,
    name: &str,
    load: &dyn Fn(&str) -> Result<(), String>,
) -> Result<String, String> {
    if sysfs.driver_dir(name).exists() {
        return Ok(name.to_string());
    }
    load(name).map_err(|e| {
        format!("DRIVER_OVERRIDE={name}: no such PCI driver is loaded and loading it failed: {e}; nothing was changed")
    })?;
    if !sysfs.driver_dir(name).exists() {
        return Err(format!(
            "DRIVER_OVERRIDE={name}: the module loaded but registered no PCI driver of that name; nothing was changed"
        ));
    }
    println!("driver: {name} loaded");
    Ok(name.to_string())
}

/// vfio-pci when an IOMMU is on and the driver is (or can be) loaded;
/// uio_pci_generic otherwise. Says which and why; fails if neither loads.
pub(super) fn pick(
    sysfs: &Sysfs,
    iommu: bool,
    load: &dyn Fn(&str) -> Result<(), String>,
) -> Result<String, String> {
    let mut why = Vec::new();
    if iommu {
        if sysfs.driver_dir("vfio-pci").exists()
            || load("vfio-pci").is_ok_and(|_| sysfs.driver_dir("vfio-pci").exists())
        {
            println!("driver: vfio-pci (IOMMU present)");
            return Ok("vfio-pci".into());
        }
        why.push("vfio-pci could not be loaded");
    } else {
        why.push("no IOMMU");
    }
    if sysfs.driver_dir("uio_pci_generic").exists() {
        println!("driver: uio_pci_generic ({})", why.join(", "));
        return Ok("uio_pci_generic".into());
    }
    match load("uio_pci_generic") {
        Ok(()) if sysfs.driver_dir("uio_pci_generic").exists() => {
            println!("driver: uio_pci_generic ({})", why.join(", "));
            Ok("uio_pci_generic".into())
        }
        Ok(()) => Err(format!("{}, and uio_pci_generic registered no PCI driver: nothing was changed", why.join(", "))),
        Err(e) => Err(format!("{}, and uio_pci_generic could not be loaded ({e}): no user-space driver for NVMe; nothing was changed", why.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::tests::tree;

    fn no_module(m: &str) -> Result<(), String> {
        Err(format!("modprobe: FATAL: Module {m} not found"))
    }

    #[test]
    fn a_driver_override_that_does_not_exist_is_refused_with_modprobes_reason() {
        let (root, sysfs) = tree("override", &["nvme"]);
        let e = require(&sysfs, "nonexistent", &no_module).unwrap_err();
        let loads_nothing = require(&sysfs, "nonexistent", &|_| Ok(())).unwrap_err();
        let known = require(&sysfs, "nvme", &no_module);
        let _ = std::fs::remove_dir_all(&root);
        assert!(
            e.contains("DRIVER_OVERRIDE=nonexistent") && e.contains("Module nonexistent not found"),
            "{e}"
        );
        assert!(
            loads_nothing.contains("registered no PCI driver"),
            "{loads_nothing}"
        );
        assert_eq!(known.unwrap(), "nvme");
    }

    #[test]
    fn without_iommu_or_loadable_uio_the_driver_choice_fails_saying_why() {
        let (root, sysfs) = tree("pick", &[]);
        let e = pick(&sysfs, false, &no_module).unwrap_err();
        let (root2, with_vfio) = tree("pick-vfio", &["vfio-pci", "uio_pci_generic"]);
        let vfio = pick(&with_vfio, true, &no_module);
        let uio = pick(&with_vfio, false, &no_module);
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&root2);
        assert!(
            e.contains("no IOMMU") && e.contains("uio_pci_generic could not be loaded"),
            "{e}"
        );
        assert_eq!(vfio.unwrap(), "vfio-pci");
        assert_eq!(uio.unwrap(), "uio_pci_generic");
    }
}
