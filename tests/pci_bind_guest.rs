//! Bind/unbind round trip in the test guest: the user-space driver -> the
//! kernel nvme driver -> back, and the device still works through pci::open.

mod env_support;

use std::time::{Duration, Instant};

use spdk_io::env::{self, EnvOpts};
use spdk_io::pci::{self, system_mounts, PciAddress, PciError, Sysfs};

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn rebinding_to_the_kernel_and_back_keeps_the_device_usable() {
    let addr: PciAddress = env_support::test_var("SPDK_IO_TEST_NVME_SMALL")
        .parse()
        .unwrap();
    env::init_once(EnvOpts::default()).unwrap();
    let sysfs = Sysfs::default();
    let before = sysfs
        .function(addr)
        .unwrap()
        .driver
        .expect("bound before the test");
    assert!(
        pci::is_userspace_driver(&before),
        "{addr} starts on {before}"
    );

    sysfs.bind_kernel(addr, "nvme").unwrap();
    assert_eq!(
        sysfs.function(addr).unwrap().driver.as_deref(),
        Some("nvme")
    );
    let e = pci::open(addr)
        .err()
        .expect("open of a kernel-bound device");
    assert!(matches!(e, PciError::NoUserspaceDriver { .. }), "{e}");
    // The kernel probes asynchronously; its namespace appears under nvme/.
    let t = Instant::now();
    while sysfs.block_devices(addr).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no namespace appeared under {addr}/nvme"
        );
        std::thread::yield_now();
    }

    sysfs.bind(addr, &before, &system_mounts()).unwrap();
    let f = sysfs.function(addr).unwrap();
    assert_eq!(f.driver.as_deref(), Some(before.as_str()));
    assert!(sysfs.block_devices(addr).is_empty(), "the kernel let go");

    let dev = pci::open(addr).unwrap();
    let bar = dev.map_bar(0).unwrap();
    assert_eq!(
        bar.read32(0x08),
        0x0001_0400,
        "VS readable after the round trip"
    );
}
