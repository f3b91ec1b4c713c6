//! Bind/unbind round trip in the test guest: the user-space driver -> the
//! kernel nvme driver -> back, and the device still works through pci::open.

mod env_support;

use std::time::{Duration, Instant};

use env_support::raw_nvme::{self, RawController};
use spdk_io::env::{self, DmaBuf, EnvOpts};
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

/// Identify Controller through a raw admin queue; returns the serial.
fn serial_by_dma(addr: PciAddress) -> String {
    let mut c = RawController::bring_up(pci::open(addr).unwrap());
    let page = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    assert_eq!(c.admin(raw_nvme::identify(1, 0, &page, 0)).status, 0);
    c.disable();
    raw_nvme::ascii(&page[4..24])
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn a_process_can_give_a_device_to_the_kernel_and_take_it_back_with_dma_working() {
    let addr: PciAddress = env_support::test_var("SPDK_IO_TEST_NVME_SMALL")
        .parse()
        .unwrap();
    env::init_once(EnvOpts::default()).unwrap();
    let sysfs = Sysfs::default();
    let driver = sysfs
        .function(addr)
        .unwrap()
        .driver
        .expect("bound before the test");
    // memory allocated before, in between and after must all reach the device
    let early = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    assert_eq!(serial_by_dma(addr), "SPDKIOC0003");
    sysfs.bind_kernel(addr, "nvme").unwrap();
    let middle = DmaBuf::alloc_zeroed(8 << 20, 4096).unwrap();
    sysfs.bind(addr, &driver, &system_mounts()).unwrap();
    assert_eq!(
        serial_by_dma(addr),
        "SPDKIOC0003",
        "DMA after taking the device back"
    );
    let mut c = RawController::bring_up(pci::open(addr).unwrap());
    for buf in [&early, &middle] {
        assert_eq!(c.admin(raw_nvme::identify(1, 0, buf, 0)).status, 0);
        assert_eq!(raw_nvme::ascii(&buf[4..24]), "SPDKIOC0003");
    }
    c.disable();
}
