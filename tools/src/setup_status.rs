//! `spdk-io setup status`: the NVMe functions and the hugepages, as tables.

use std::fmt::Write;
use std::path::Path;

use spdk_io::pci::{PciError, Sysfs};

/// Reserved and free hugepages of every size under `sys/kernel/mm/hugepages`,
/// then per NUMA node under `sys/devices/system/node`.
fn hugepages(sys: &Path, out: &mut String) {
    let _ = writeln!(out, "Hugepages");
    let _ = writeln!(
        out,
        "{:<8} {:>10} {:>8} / {:<8}",
        "node", "hugesize", "free", "total"
    );
    let read = |p: &Path| -> u64 {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    let mut rows = 0;
    let mut sizes = |node: &str, dir: &Path| {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(size) = name.strip_prefix("hugepages-") else {
                continue;
            };
            let total = read(&e.path().join("nr_hugepages"));
            let free = read(&e.path().join("free_hugepages"));
            let _ = writeln!(out, "{node:<8} {size:>10} {free:>8} / {total:<8}");
            rows += 1;
        }
    };
    sizes("all", &sys.join("kernel/mm/hugepages"));
    let mut nodes: Vec<_> = std::fs::read_dir(sys.join("devices/system/node"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("node"))
        .collect();
    nodes.sort_by_key(|e| e.file_name());
    for n in nodes {
        let name = n.file_name().to_string_lossy().into_owned();
        sizes(&name, &n.path().join("hugepages"));
    }
    if rows == 0 {
        let _ = writeln!(out, "(no hugepage support in this kernel)");
    }
}

/// IOMMU groups under `sys/kernel/iommu_groups`.
pub(super) fn iommu_groups(sys: &Path) -> usize {
    std::fs::read_dir(sys.join("kernel/iommu_groups"))
        .map(|d| d.flatten().count())
        .unwrap_or(0)
}

/// Whether an IOMMU and VFIO are there, and what that leaves a device.
fn iommu_and_vfio(sysfs: &Sysfs, sys: &Path, out: &mut String) {
    let groups = iommu_groups(sys);
    let vfio = sysfs.driver_dir("vfio-pci").exists();
    let noiommu =
        std::fs::read_to_string(sys.join("module/vfio/parameters/enable_unsafe_noiommu_mode"))
            .is_ok_and(|v| v.trim() == "Y");
    let _ = writeln!(
        out,
        "IOMMU: {}",
        if groups > 0 {
            format!("present ({groups} groups)")
        } else {
            "absent (no IOMMU groups): devices can only use uio_pci_generic and physical addresses"
                .into()
        }
    );
    let _ = writeln!(
        out,
        "VFIO:  {}",
        match (vfio, noiommu) {
            (true, true) => "vfio-pci loaded, in unsafe no-IOMMU mode",
            (true, false) => "vfio-pci loaded",
            (false, _) => "vfio-pci not loaded (`spdk-io setup` loads it when an IOMMU is present)",
        }
    );
}

/// The whole status report.
pub(super) fn render(sysfs: &Sysfs, sys: &Path) -> Result<String, PciError> {
    let mut out = String::new();
    iommu_and_vfio(sysfs, sys, &mut out);
    let _ = writeln!(out);
    hugepages(sys, &mut out);
    let _ = writeln!(out);
    let _ = writeln!(out, "NVMe devices");
    let _ = writeln!(
        out,
        "{:<5} {:<13} {:<6} {:<6} {:<5} {:<16} {:<6} Block devices",
        "Type", "BDF", "Vendor", "Device", "NUMA", "Driver", "Group"
    );
    let fns = sysfs.nvme_functions()?;
    if fns.is_empty() {
        let _ = writeln!(out, "(none)");
    }
    for f in fns {
        let opt = |v: Option<u32>| v.map_or("-".to_string(), |n| n.to_string());
        let blocks = if f.driver.as_deref() == Some("nvme") {
            let b = sysfs.block_devices(f.address);
            if b.is_empty() {
                "-".to_string()
            } else {
                b.join(" ")
            }
        } else {
            "-".to_string()
        };
        let _ = writeln!(
            out,
            "{:<5} {:<13} {:<6} {:<6} {:<5} {:<16} {:<6} {}",
            "NVMe",
            f.address.to_string(),
            format!("{:04x}", f.vendor_id),
            format!("{:04x}", f.device_id),
            opt(f.numa_node),
            f.driver.as_deref().unwrap_or("-"),
            opt(f.iommu_group),
            blocks
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn put(p: &Path, s: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    }

    #[test]
    fn status_lists_nvme_functions_and_hugepages_per_size_and_node() {
        let root = std::env::temp_dir().join(format!("spdk-io-status-{}", std::process::id()));
        let dev = root.join("devices/pci0000:00/0000:00:04.0");
        for (f, v) in [
            ("vendor", "0x1b36"),
            ("device", "0x0010"),
            ("class", "0x010802"),
            ("numa_node", "0"),
        ] {
            put(&dev.join(f), v);
        }
        std::fs::create_dir_all(dev.join("nvme/nvme0/nvme0n1")).unwrap();
        std::fs::create_dir_all(root.join("bus/pci/drivers/nvme")).unwrap();
        symlink(root.join("bus/pci/drivers/nvme"), dev.join("driver")).unwrap();
        std::fs::create_dir_all(root.join("kernel/iommu_groups/7")).unwrap();
        symlink(root.join("kernel/iommu_groups/7"), dev.join("iommu_group")).unwrap();
        std::fs::create_dir_all(root.join("bus/pci/devices")).unwrap();
        symlink(&dev, root.join("bus/pci/devices/0000:00:04.0")).unwrap();
        let hp = root.join("kernel/mm/hugepages/hugepages-2048kB");
        put(&hp.join("nr_hugepages"), "512");
        put(&hp.join("free_hugepages"), "500");
        let node = root.join("devices/system/node/node0/hugepages/hugepages-2048kB");
        put(&node.join("nr_hugepages"), "512");
        put(&node.join("free_hugepages"), "500");

        let out = render(&Sysfs::new(&root), &root).unwrap();
        let _ = std::fs::remove_dir_all(&root);
        assert!(out.contains("IOMMU: present (1 groups)"), "{out}");
        assert!(out.contains("VFIO:  vfio-pci not loaded"), "{out}");
        let row = out
            .lines()
            .find(|l| l.contains("0000:00:04.0"))
            .expect("the NVMe row");
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "NVMe",
                "0000:00:04.0",
                "1b36",
                "0010",
                "0",
                "nvme",
                "7",
                "nvme0n1"
            ]
        );
        let hp_rows: Vec<Vec<&str>> = out
            .lines()
            .filter(|l| l.contains("2048kB"))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            hp_rows,
            [
                ["all", "2048kB", "500", "/", "512"],
                ["node0", "2048kB", "500", "/", "512"]
            ]
        );
    }

    #[test]
    fn status_says_when_there_is_no_iommu_and_when_vfio_is_loaded() {
        let root = std::env::temp_dir().join(format!("spdk-io-status-vfio-{}", std::process::id()));
        std::fs::create_dir_all(root.join("bus/pci/devices")).unwrap();
        std::fs::create_dir_all(root.join("bus/pci/drivers/vfio-pci")).unwrap();
        put(
            &root.join("module/vfio/parameters/enable_unsafe_noiommu_mode"),
            "Y\n",
        );
        let out = render(&Sysfs::new(&root), &root).unwrap();
        let _ = std::fs::remove_dir_all(&root);
        assert!(out.contains("IOMMU: absent"), "{out}");
        assert!(
            out.contains("VFIO:  vfio-pci loaded, in unsafe no-IOMMU mode"),
            "{out}"
        );
    }
}
