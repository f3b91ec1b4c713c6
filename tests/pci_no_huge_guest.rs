//! Ordinary (no_huge) memory with IOVA = VA in the test guest: a device
//! behind the IOMMU (vfio mode) reaches it by DMA; a uio device, which has no
//! IOMMU, is refused with the fix in the message; so is a function outside
//! the env's pci_allowed list.

mod env_support;

use env_support::raw_nvme::{self, RawController};
use spdk_io::env::{self, DmaBuf, EnvOpts, IovaMode};
use spdk_io::pci::{self, PciAddress, PciError};

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn no_huge_memory_works_behind_an_iommu_and_is_refused_without_one_and_pci_allowed_holds() {
    let addr: PciAddress = env_support::test_var("SPDK_IO_TEST_NVME").parse().unwrap();
    let mode = env_support::test_var("SPDK_IO_TEST_MODE");
    let other: PciAddress = env_support::test_var("SPDK_IO_TEST_NVME_2NS")
        .parse()
        .unwrap();
    env::init(EnvOpts {
        pci_allowed: vec![addr.to_string()],
        ..EnvOpts::no_huge()
    })
    .unwrap();
    assert_eq!(env::iova_mode(), IovaMode::Va);
    let e = pci::open(other)
        .err()
        .expect("a function outside pci_allowed");
    assert!(matches!(e, PciError::NotAllowed { .. }), "{e}");
    match mode.as_str() {
        "vfio" => {
            let mut c = RawController::bring_up(pci::open(addr).unwrap());
            let page = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
            assert_eq!(c.admin(raw_nvme::identify(1, 0, &page, 0)).status, 0);
            assert_eq!(raw_nvme::ascii(&page[4..24]), "SPDKIOA0001");
            c.disable();
        }
        "uio" => {
            let e = pci::open(addr)
                .err()
                .expect("uio with IOVA = VA must be refused");
            assert!(matches!(e, PciError::IovaMode { .. }), "{e}");
            assert!(e.to_string().contains("PA"), "{e}");
        }
        other => panic!("SPDK_IO_TEST_MODE={other}: expected vfio or uio"),
    }
}
