//! The nvme bdev in the QEMU guest (ignored on the host) against a real
//! controller. A test binary of its own, so that the env starts in its
//! default mode (hugepages, IOVA mode chosen by the bound driver) rather than
//! in the no-hugepage mode of the software-controller tests.

#[path = "bdev/common.rs"]
mod common;

use common::*;
use spdk_io::bdev::{self, IoBuf, IoStatus, IoType};
use spdk_io::env::{self, EnvOpts};

fn guest_bdf(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run this test in the QEMU guest (qemu/run-tests)")
    })
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn nvme_bdev_from_spdk_config_verifies_both_namespaces_in_the_guest() {
    // The SPDK-style config is loaded by attach_two_namespaces (once per
    // process: a controller is attached once).
    let [n1, n2] = attach_two_namespaces();
    round_trip(n1, true);
    round_trip(n2, true);
    round_trip(n2, false);
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

/// Attaches controller B (two namespaces) once per test process.
fn attach_two_namespaces() -> [&'static str; 2] {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    env::init_once(EnvOpts::default()).expect("env init (hugepages at /dev/hugepages?)");
    ONCE.call_once(|| {
        let bdf = guest_bdf("SPDK_IO_TEST_NVME_2NS");
        let cfg = format!(
            r#"{{"subsystems":[{{"subsystem":"bdev","config":[
            {{"method":"bdev_nvme_attach_controller","params":{{"name":"NvmeV","trtype":"PCIe","traddr":"{bdf}"}}}}]}}]}}"#
        );
        assert_eq!(
            bdev::load_config(&cfg).expect("attach"),
            vec!["NvmeVn1", "NvmeVn2"]
        );
    });
    ["NvmeVn1", "NvmeVn2"]
}

/// The byte pattern of block `blk` written in pass `pass`.
fn pattern(blk: u64, pass: u8) -> u8 {
    (blk as u8).wrapping_mul(31) ^ pass ^ 0x5a
}

/// bdevperf's verify workload in test form, on both namespaces at once:
/// 32 I/Os in flight per namespace, every block of a 1 MiB region written
/// with a per-block pattern, then read back and compared, twice.
#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn verify_workload_at_queue_depth_32_over_both_namespaces() {
    let names = attach_two_namespaces();
    for name in names {
        let d = bdev::open(name, true).unwrap();
        let ch = d.get_io_channel().unwrap();
        let bs = d.bdev().block_size() as usize;
        let blocks = (1 << 20) / bs as u64;
        for pass in 0..2u8 {
            for write in [true, false] {
                let l = log();
                let mut next = 0u64;
                let mut submitted = 0usize;
                while (l.borrow().len() as u64) < blocks {
                    while next < blocks && submitted - l.borrow().len() < 32 {
                        let r = if write {
                            let mut b = IoBuf::dma(bs, 4096).unwrap();
                            b.fill(pattern(next, pass));
                            d.write_blocks(&ch, b, next, 1, rec(&l))
                        } else {
                            let b = IoBuf::dma(bs, 4096).unwrap();
                            d.read_blocks(&ch, b, next, 1, rec(&l))
                        };
                        r.unwrap_or_else(|e| panic!("{name}: submit: {:?}", e.error));
                        next += 1;
                        submitted += 1;
                    }
                    ch.poll();
                }
                let done = std::mem::take(&mut *l.borrow_mut());
                assert_eq!(done.len() as u64, blocks, "{name}: every I/O once");
                for c in done {
                    assert!(
                        c.success(),
                        "{name} block {}: {:?}",
                        c.offset_blocks,
                        c.status
                    );
                    if !write {
                        let want = pattern(c.offset_blocks, pass);
                        let got = c.data.into_buf().unwrap();
                        assert!(
                            got.iter().all(|&x| x == want),
                            "{name} pass {pass}: block {} read back wrong",
                            c.offset_blocks
                        );
                    }
                }
            }
        }
    }
}

/// A bdev reset with 64 reads and writes in flight resets the controller:
/// every I/O completes exactly once (done or aborted), the reset succeeds,
/// and the namespace works afterwards.
#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn reset_under_load_completes_every_io_once_and_the_bdev_works_after() {
    let [name, _] = attach_two_namespaces();
    let d = bdev::open(name, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let bs = d.bdev().block_size() as usize;
    let l = log();
    for i in 0..64u64 {
        let b = IoBuf::dma(bs, 4096).unwrap();
        let r = if i % 2 == 0 {
            d.write_blocks(&ch, b, 512 + i, 1, rec(&l))
        } else {
            d.read_blocks(&ch, b, 512 + i, 1, rec(&l))
        };
        r.unwrap_or_else(|e| panic!("submit: {:?}", e.error));
    }
    d.reset(&ch, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 65);
    for _ in 0..10_000 {
        ch.poll();
    }
    assert_eq!(l.borrow().len(), 65, "nothing completes twice");
    for c in l.borrow().iter() {
        match c.io_type {
            IoType::Reset => assert_eq!(c.status, IoStatus::Success, "the reset"),
            _ => assert!(
                c.success() || c.status == IoStatus::Aborted,
                "block {}: {:?}",
                c.offset_blocks,
                c.status
            ),
        }
    }
    round_trip(name, true);
}
