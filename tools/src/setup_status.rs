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

/// The whole status report.
pub(super) fn render(sysfs: &Sysfs, sys: &Path) -> Result<String, PciError> {
    let mut out = String::new();
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
