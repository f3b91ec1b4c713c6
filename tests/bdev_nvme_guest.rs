//! The nvme bdev in the QEMU guest (ignored on the host) against a real
//! controller. A test binary of its own, so that the env starts in its
//! default mode (hugepages, IOVA mode chosen by the bound driver) rather than
//! in the no-hugepage mode of the software-controller tests.

#[path = "bdev_common.rs"]
mod common;

use common::*;
use spdk_io::bdev::{self, IoBuf};
use spdk_io::env::{self, EnvOpts};

fn guest_bdf(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run this test in the QEMU guest (qemu/run-tests)")
    })
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn nvme_bdev_from_spdk_config_verifies_both_namespaces_in_the_guest() {
    env::init_once(EnvOpts::default()).expect("env init (hugepages at /dev/hugepages?)");
    let bdf = guest_bdf("SPDK_IO_TEST_NVME_2NS");
    let cfg = format!(
        r#"{{"subsystems":[{{"subsystem":"bdev","config":[
        {{"method":"bdev_nvme_attach_controller","params":{{"name":"Nvme0","trtype":"PCIe","traddr":"{bdf}"}}}}]}}]}}"#
    );
    let made = bdev::load_config(&cfg).expect("attach");
    assert_eq!(made, vec!["Nvme0n1", "Nvme0n2"]);
    round_trip("Nvme0n1", true);
    round_trip("Nvme0n2", true);
    round_trip("Nvme0n2", false);
}

/// Closing a channel deletes its queue pair and frees its queue ID; the next
/// channel gets the same ID and must not inherit the old queue's shadow
/// doorbell state (a stale EventIdx once kept its first command from ever
/// reaching the controller).
#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn a_channel_reopened_on_a_freed_queue_id_still_completes_io() {
    env::init_once(EnvOpts::default()).expect("env init (hugepages at /dev/hugepages?)");
    let bdf = guest_bdf("SPDK_IO_TEST_NVME");
    let cfg = format!(
        r#"{{"subsystems":[{{"subsystem":"bdev","config":[
        {{"method":"bdev_nvme_attach_controller","params":{{"name":"NvmeA","trtype":"PCIe","traddr":"{bdf}"}}}}]}}]}}"#
    );
    assert_eq!(bdev::load_config(&cfg).expect("attach"), vec!["NvmeAn1"]);
    for round in 0..3u8 {
        let d = bdev::open("NvmeAn1", true).unwrap();
        let ch = d.get_io_channel().unwrap();
        let l = log();
        let pattern = round ^ 0xa5;
        let mut w = IoBuf::dma(4096, 4096).unwrap();
        w.fill(pattern);
        d.write_blocks(&ch, w, 64, 8, rec(&l)).unwrap();
        poll_until(&ch, || l.borrow().len() == 1);
        let r = IoBuf::dma(4096, 4096).unwrap();
        d.read_blocks(&ch, r, 64, 8, rec(&l)).unwrap();
        poll_until(&ch, || l.borrow().len() == 2);
        assert!(
            l.borrow().iter().all(|c| c.success()),
            "round {round}: {:?}",
            statuses(&l)
        );
        let got = l.borrow_mut().pop().unwrap().data.into_buf().unwrap();
        assert!(
            got.iter().all(|&b| b == pattern),
            "round {round}: data read back differs"
        );
    }
}
