//! Enumeration, binding and in-use checks against fixture sysfs trees built
//! in a temp dir, shaped like the kernel's.

use crate::env_support;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use spdk_io::pci::{mounted_in, PciAddress, PciError, Sysfs};

struct Fixture {
    root: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn put(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

impl Fixture {
    fn new() -> Self {
        let root = env_support::temp_dir("sysfs");
        for d in [
            "bus/pci/devices",
            "bus/pci/drivers/nvme",
            "bus/pci/drivers/vfio-pci",
            "kernel/iommu_groups",
            "devices/pci0000:00",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        put(&root.join("bus/pci/drivers_probe"), "");
        Fixture { root }
    }

    fn sysfs(&self) -> Sysfs {
        Sysfs::new(&self.root)
    }

    /// A function the way the kernel lays it out: a real dir under devices/,
    /// a link in bus/pci/devices, driver and iommu_group links.
    fn add(
        &self,
        bdf: &str,
        (vendor, device, class): (&str, &str, &str),
        driver: Option<&str>,
        numa: &str,
        group: Option<u32>,
    ) -> PathBuf {
        let real = self.root.join("devices/pci0000:00").join(bdf);
        std::fs::create_dir_all(&real).unwrap();
        put(&real.join("vendor"), &format!("{vendor}\n"));
        put(&real.join("device"), &format!("{device}\n"));
        put(&real.join("subsystem_vendor"), "0x1af4\n");
        put(&real.join("subsystem_device"), "0x1100\n");
        put(&real.join("class"), &format!("{class}\n"));
        put(&real.join("numa_node"), &format!("{numa}\n"));
        put(&real.join("driver_override"), "(null)\n");
        if let Some(d) = driver {
            symlink(
                self.root.join("bus/pci/drivers").join(d),
                real.join("driver"),
            )
            .unwrap();
            put(
                &self.root.join("bus/pci/drivers").join(d).join("unbind"),
                "",
            );
        }
        if let Some(g) = group {
            let gd = self.root.join("kernel/iommu_groups").join(g.to_string());
            std::fs::create_dir_all(&gd).unwrap();
            symlink(&gd, real.join("iommu_group")).unwrap();
        }
        symlink(&real, self.root.join("bus/pci/devices").join(bdf)).unwrap();
        real
    }

    /// QEMU's NVMe controller (1b36:0010, class 010802) at `bdf` on NUMA
    /// node 0, bound to `driver`, in IOMMU group `group`.
    fn add_qemu_nvme(&self, bdf: &str, driver: Option<&str>, group: Option<u32>) -> PathBuf {
        self.add(bdf, ("0x1b36", "0x0010", "0x010802"), driver, "0", group)
    }

    /// A kernel nvme controller with namespace `nvme{c}n1` (and a partition).
    fn add_namespace(&self, dev: &Path, c: u32, holder: Option<&str>) {
        let ns = dev.join(format!("nvme/nvme{c}/nvme{c}n1"));
        std::fs::create_dir_all(ns.join("holders")).unwrap();
        put(&ns.join(format!("nvme{c}n1p1/partition")), "1\n");
        std::fs::create_dir_all(ns.join(format!("nvme{c}n1p1/holders"))).unwrap();
        if let Some(h) = holder {
            std::fs::create_dir_all(ns.join(format!("nvme{c}n1p1/holders/{h}"))).unwrap();
        }
    }
}

fn a(s: &str) -> PciAddress {
    s.parse().unwrap()
}

#[test]
fn enumeration_reads_ids_class_driver_numa_and_group() {
    let fx = Fixture::new();
    fx.add_qemu_nvme("0000:00:04.0", Some("vfio-pci"), Some(3));
    fx.add(
        "0000:00:02.0",
        ("0x8086", "0x10d3", "0x020000"),
        None,
        "-1",
        None,
    );
    fx.add(
        "0000:01:00.0",
        ("0x1b36", "0x0010", "0x010802"),
        Some("nvme"),
        "1",
        None,
    );
    std::fs::create_dir_all(fx.root.join("bus/pci/devices/not-an-address")).unwrap();
    let all = fx.sysfs().functions().unwrap();
    let addrs: Vec<String> = all.iter().map(|f| f.address.to_string()).collect();
    assert_eq!(addrs, ["0000:00:02.0", "0000:00:04.0", "0000:01:00.0"]);
    let f = &all[1];
    assert_eq!(
        (f.vendor_id, f.device_id, f.class),
        (0x1b36, 0x0010, 0x010802)
    );
    assert_eq!(
        (f.subsystem_vendor_id, f.subsystem_device_id),
        (0x1af4, 0x1100)
    );
    assert_eq!(f.driver.as_deref(), Some("vfio-pci"));
    assert_eq!((f.numa_node, f.iommu_group), (Some(0), Some(3)));
    assert!(f.is_nvme());
    assert_eq!(all[0].numa_node, None, "numa_node -1 means unknown");
    assert_eq!(all[0].driver, None);
    let nvme = fx.sysfs().nvme_functions().unwrap();
    assert_eq!(nvme.len(), 2);
    assert_eq!(nvme[1].driver.as_deref(), Some("nvme"));
}

#[test]
fn an_unknown_address_is_not_found_with_a_hint() {
    let fx = Fixture::new();
    let e = fx.sysfs().function(a("0000:00:09.0")).unwrap_err();
    assert!(matches!(e, PciError::NotFound { .. }));
    assert!(e.to_string().contains("spdk-io setup status"), "{e}");
}

#[test]
fn a_corrupt_sysfs_file_is_an_error_naming_it() {
    let fx = Fixture::new();
    let d = fx.add_qemu_nvme("0000:00:04.0", None, None);
    put(&d.join("vendor"), "garbage\n");
    let e = fx.sysfs().function(a("0000:00:04.0")).unwrap_err();
    assert!(e.to_string().contains("vendor"), "{e}");
}

#[test]
fn block_devices_of_a_kernel_bound_controller_are_listed() {
    let fx = Fixture::new();
    let d = fx.add_qemu_nvme("0000:00:04.0", Some("nvme"), None);
    fx.add_namespace(&d, 0, None);
    // a multipath path node names the same block device
    std::fs::create_dir_all(d.join("nvme/nvme0/nvme0c0n2")).unwrap();
    std::fs::create_dir_all(d.join("nvme/nvme0/power")).unwrap();
    assert_eq!(
        fx.sysfs().block_devices(a("0000:00:04.0")),
        ["nvme0n1", "nvme0n2"]
    );
}

#[test]
fn mounted_namespaces_and_partitions_are_detected() {
    let mounts = "/dev/nvme0n1p2 /data ext4 rw 0 0\n/dev/nvme10n1 /x xfs rw 0 0\n";
    assert_eq!(
        mounted_in(mounts, "nvme0n1").as_deref(),
        Some("/dev/nvme0n1p2 on /data")
    );
    assert_eq!(
        mounted_in(mounts, "nvme1n1"),
        None,
        "nvme10n1 is another device"
    );
    assert!(mounted_in(mounts, "nvme10n1").is_some());
    assert_eq!(mounted_in("/dev/nvme0n10 /y ext4 rw 0 0", "nvme0n1"), None);
}

#[test]
fn binding_refuses_a_mounted_or_held_device() {
    let fx = Fixture::new();
    let d = fx.add_qemu_nvme("0000:00:04.0", Some("nvme"), None);
    fx.add_namespace(&d, 0, None);
    let s = fx.sysfs();
    let e = s
        .bind(
            a("0000:00:04.0"),
            "vfio-pci",
            "/dev/nvme0n1p1 /mnt ext4 rw 0 0\n",
        )
        .unwrap_err();
    assert!(matches!(e, PciError::InUse { .. }), "{e}");
    assert!(e.to_string().contains("/mnt"), "{e}");

    let d2 = fx.add_qemu_nvme("0000:00:05.0", Some("nvme"), None);
    fx.add_namespace(&d2, 1, Some("dm-0"));
    let e = s.bind(a("0000:00:05.0"), "vfio-pci", "").unwrap_err();
    assert!(e.to_string().contains("held by dm-0"), "{e}");
    // nothing was touched
    assert_eq!(
        std::fs::read_to_string(d2.join("driver_override")).unwrap(),
        "(null)\n"
    );
}

#[test]
fn binding_writes_override_unbind_and_probe_and_checks_the_result() {
    let fx = Fixture::new();
    let d = fx.add_qemu_nvme("0000:00:04.0", Some("nvme"), None);
    let s = fx.sysfs();
    // The fixture has no kernel behind it, so the driver does not change: bind reports that.
    let e = s.bind(a("0000:00:04.0"), "vfio-pci", "").unwrap_err();
    assert!(matches!(e, PciError::Bind { .. }), "{e}");
    assert!(e.to_string().contains("bound to nvme"), "{e}");
    assert_eq!(
        std::fs::read_to_string(d.join("driver_override")).unwrap(),
        "vfio-pci\n"
    );
    assert_eq!(
        std::fs::read_to_string(fx.root.join("bus/pci/drivers/nvme/unbind")).unwrap(),
        "0000:00:04.0"
    );
    assert_eq!(
        std::fs::read_to_string(fx.root.join("bus/pci/drivers_probe")).unwrap(),
        "0000:00:04.0"
    );
}

#[test]
fn binding_to_a_driver_that_is_not_loaded_says_to_load_it() {
    let fx = Fixture::new();
    fx.add_qemu_nvme("0000:00:04.0", Some("nvme"), None);
    let e = fx
        .sysfs()
        .bind(a("0000:00:04.0"), "uio_pci_generic", "")
        .unwrap_err();
    assert!(e.to_string().contains("modprobe uio_pci_generic"), "{e}");
}

#[test]
fn binding_to_the_current_driver_does_nothing() {
    let fx = Fixture::new();
    let d = fx.add_qemu_nvme("0000:00:04.0", Some("vfio-pci"), Some(1));
    fx.sysfs().bind(a("0000:00:04.0"), "vfio-pci", "").unwrap();
    assert_eq!(
        std::fs::read_to_string(d.join("driver_override")).unwrap(),
        "(null)\n"
    );
}
