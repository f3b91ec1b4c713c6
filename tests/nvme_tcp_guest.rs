//! The NVMe/TCP initiator against Linux's kernel target (nvmet-tcp) in the
//! test guest, on 127.0.0.1: identify as configured, random data written
//! and read back at 512 B and 4 KiB blocks (and seen by the target's own
//! backing device), I/O larger than the in-capsule size and than
//! MAXH2CDATA, 128 I/Os in flight, two queue pairs on two threads,
//! digests on and off; the port removed mid-I/O and restored, and an
//! asynchronous event (`nvme_tcp_guest/recovery.rs`); a namespace added
//! while the nvme bdev module is attached becoming a bdev
//! (`nvme_tcp_guest/bdev_ns.rs`). Ignored on the host:
//! run `qemu/run-tests --only nvme_tcp_guest --mode vfio`.

#[path = "nvme_tcp_guest/bdev_ns.rs"]
mod bdev_ns;
mod nvmf_common;
#[path = "nvme_tcp_guest/recovery.rs"]
mod recovery;

// Reproducible bytes: the same seed gives the same data.
use nvmf_common::xorshift as random;
use nvmf_common::{wait, write_read, Done};
use spdk_io::env::{self, DmaBuf, EnvOpts};
use spdk_io::nvme::{self, Controller, ControllerOpts, QPairOpts, TransportId};
use std::cell::RefCell;
use std::process::Command;
use std::rc::Rc;

const NEEDS: &str = "needs Linux's nvmet-tcp: qemu/run-tests --only nvme_tcp_guest --mode vfio";

/// A kernel NVMe/TCP subsystem, removed again on drop.
struct Nvmet {
    nqn: String,
    port: u16,
}

impl Nvmet {
    fn start(port: u16, size_mb: u32, bs: u32) -> Nvmet {
        let _ = NEEDS;
        let nqn = format!("nqn.2024-01.io.spdk-io:guest{port}");
        let out = Command::new("spdk-io-guest-nvmet")
            .args(["start", "--nqn", &nqn, "--port", &port.to_string()])
            .args([
                "--size-mb",
                &size_mb.to_string(),
                "--block-size",
                &bs.to_string(),
            ])
            .args(["--serial", &format!("SPDKIOTCP{port}")])
            .output()
            .expect("spdk-io-guest-nvmet (this test runs in the qemu guest)");
        assert!(
            out.status.success(),
            "starting nvmet: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Nvmet { nqn, port }
    }

    /// Removes (`port-down`) or restores (`port-up`) the subsystem's port.
    fn port(&self, cmd: &str) {
        let out = Command::new("spdk-io-guest-nvmet")
            .args([cmd, "--nqn", &self.nqn, "--port", &self.port.to_string()])
            .output()
            .expect("spdk-io-guest-nvmet");
        assert!(
            out.status.success(),
            "nvmet {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn trid(&self) -> TransportId {
        format!(
            "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{} subnqn:{}",
            self.port, self.nqn
        )
        .parse()
        .unwrap()
    }

    fn connect(&self, opts: &ControllerOpts) -> Controller {
        env::init_once(EnvOpts::default()).expect("env init (hugepages at /dev/hugepages?)");
        nvme::connect(&self.trid(), opts)
            .unwrap_or_else(|e| panic!("connecting {}: {e}", self.trid()))
    }

    /// The block device behind namespace 1, as the target has it.
    fn backing_device(&self) -> String {
        let p = format!(
            "/sys/kernel/config/nvmet/subsystems/{}/namespaces/1/device_path",
            self.nqn
        );
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .trim()
            .to_string()
    }
}

impl Drop for Nvmet {
    fn drop(&mut self) {
        let _ = Command::new("spdk-io-guest-nvmet")
            .args(["stop", "--nqn", &self.nqn, "--port", &self.port.to_string()])
            .status();
    }
}

#[test]
#[ignore = "needs Linux's nvmet-tcp: qemu/run-tests --only nvme_tcp_guest --mode vfio"]
fn identify_over_tcp_reports_the_configured_subsystem() {
    let t = Nvmet::start(4420, 64, 512);
    let c = t.connect(&ControllerOpts::default());
    assert_eq!(c.data().serial(), "SPDKIOTCP4420");
    assert_eq!(c.data().model(), "spdk-io nvmet");
    assert_eq!(c.namespace_ids(), vec![1]);
    let ns = c.namespace(1).unwrap();
    assert_eq!((ns.size_bytes(), ns.block_size()), (64 << 20, 512));
    assert!(c.max_io_qpairs() >= 1);
}

#[test]
#[ignore = "needs Linux's nvmet-tcp: qemu/run-tests --only nvme_tcp_guest --mode vfio"]
fn random_data_reads_back_at_512_and_4096_byte_blocks_and_reaches_the_backing_device() {
    for (port, bs) in [(4421u16, 512u32), (4422, 4096)] {
        let t = Nvmet::start(port, 32, bs);
        let c = t.connect(&ControllerOpts::default());
        let ns = c.namespace(1).unwrap();
        assert_eq!(ns.block_size(), bs);
        let mut qp = c
            .alloc_io_qpair(QPairOpts {
                io_queue_size: 64,
                ..QPairOpts::default()
            })
            .unwrap();
        let data = random(64 * 1024, port as u64);
        let lba = (1 << 20) / bs as u64;
        write_read(&mut qp, &ns, lba, &data);
        drop(qp);
        drop(c);
        let disk = std::fs::read(t.backing_device()).unwrap();
        assert!(
            disk[1 << 20..(1 << 20) + data.len()] == data[..],
            "the target's device holds the data"
        );
    }
}

#[test]
#[ignore = "needs Linux's nvmet-tcp: qemu/run-tests --only nvme_tcp_guest --mode vfio"]
fn io_larger_than_the_capsule_and_maxh2cdata_moves_whole_with_digests_on_and_off() {
    for (port, digests) in [(4423u16, false), (4424, true)] {
        let t = Nvmet::start(port, 64, 512);
        let c = t.connect(&ControllerOpts {
            header_digest: digests,
            data_digest: digests,
            ..ControllerOpts::default()
        });
        let ns = c.namespace(1).unwrap();
        let mut qp = c
            .alloc_io_qpair(QPairOpts {
                io_queue_size: 64,
                ..QPairOpts::default()
            })
            .unwrap();
        for (i, len) in [4096usize, 16384, 131072, 1 << 20].into_iter().enumerate() {
            write_read(
                &mut qp,
                &ns,
                (i as u64) << 12,
                &random(len, (port as u64) << 8 | i as u64),
            );
        }
    }
}

#[test]
#[ignore = "needs Linux's nvmet-tcp: qemu/run-tests --only nvme_tcp_guest --mode vfio"]
fn thirty_two_writes_in_flight_then_thirty_two_reads_all_complete_and_match() {
    let t = Nvmet::start(4425, 64, 512);
    let c = t.connect(&ControllerOpts::default());
    let ns = c.namespace(1).unwrap();
    let mut qp = c
        .alloc_io_qpair(QPairOpts {
            io_queue_size: 128,
            ..QPairOpts::default()
        })
        .unwrap();
    let done: Done = Rc::new(RefCell::new(Vec::new()));
    let len = 16384;
    for i in 0..32u64 {
        let mut buf = DmaBuf::alloc(len, 4096).unwrap();
        buf.copy_from_slice(&random(len, 1000 + i));
        let d = done.clone();
        qp.write(&ns, buf, i * 32, 32, move |_, c| d.borrow_mut().push(c))
            .map_err(|e| e.error)
            .unwrap();
    }
    wait(&mut qp, &done, 32);
    assert!(done.borrow().iter().all(|c| c.result.is_ok()));
    done.borrow_mut().clear();
    for i in 0..32u64 {
        let d = done.clone();
        qp.read(
            &ns,
            DmaBuf::alloc_zeroed(len, 4096).unwrap(),
            i * 32,
            32,
            move |_, c| d.borrow_mut().push(c),
        )
        .map_err(|e| e.error)
        .unwrap();
    }
    wait(&mut qp, &done, 32);
    let mut seen = 0;
    for c in done.borrow_mut().drain(..) {
        c.result.unwrap();
        let b = c.buf.into_dma_buf().unwrap();
        let i = (0..32u64).find(|&i| b[..] == random(len, 1000 + i)[..]);
        assert!(i.is_some(), "a read returned data no write wrote");
        seen += 1;
    }
    assert_eq!(seen, 32);
}

#[test]
#[ignore = "needs Linux's nvmet-tcp: qemu/run-tests --only nvme_tcp_guest --mode vfio"]
fn the_kernel_discovery_controller_lists_the_subsystem_and_its_entry_connects() {
    let t = Nvmet::start(4426, 16, 512);
    env::init_once(EnvOpts::default()).expect("env init");
    let d: TransportId = "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4426"
        .parse()
        .unwrap();
    let dc = nvme::connect(&d, &ControllerOpts::default()).unwrap();
    let log = dc.discovery_log().unwrap();
    let e = log
        .iter()
        .find(|e| e.subnqn == t.nqn)
        .unwrap_or_else(|| panic!("{} not in the discovery log {log:?}", t.nqn));
    assert_eq!(
        (e.trtype, e.adrfam, e.trsvcid.as_str(), e.traddr.as_str()),
        (3, 1, "4426", "127.0.0.1")
    );
    let c = nvme::connect(&e.trid().unwrap(), &ControllerOpts::default()).unwrap();
    assert_eq!(c.data().serial(), "SPDKIOTCP4426");
}

#[test]
#[ignore = "needs Linux's nvmet-tcp: qemu/run-tests --only nvme_tcp_guest --mode vfio"]
fn one_hundred_twenty_eight_ios_in_flight_write_then_read_back_equal() {
    let t = Nvmet::start(4427, 64, 4096);
    let c = t.connect(&ControllerOpts::default());
    let ns = c.namespace(1).unwrap();
    let mut qp = c
        .alloc_io_qpair(QPairOpts {
            io_queue_size: 256,
            ..QPairOpts::default()
        })
        .unwrap();
    let done: Done = Rc::new(RefCell::new(Vec::new()));
    for i in 0..128u64 {
        let mut buf = DmaBuf::alloc(4096, 4096).unwrap();
        buf.copy_from_slice(&random(4096, 5000 + i));
        let d = done.clone();
        qp.write(&ns, buf, i * 3, 1, move |_, c| d.borrow_mut().push(c))
            .map_err(|e| e.error)
            .unwrap();
    }
    assert_eq!(qp.outstanding(), 128);
    wait(&mut qp, &done, 128);
    assert!(done.borrow().iter().all(|c| c.result.is_ok()));
    done.borrow_mut().clear();
    let order: Rc<RefCell<Vec<u64>>> = Rc::default();
    for i in 0..128u64 {
        let (d, o) = (done.clone(), order.clone());
        qp.read(
            &ns,
            DmaBuf::alloc_zeroed(4096, 4096).unwrap(),
            i * 3,
            1,
            move |_, c| {
                o.borrow_mut().push(i);
                d.borrow_mut().push(c)
            },
        )
        .map_err(|e| e.error)
        .unwrap();
    }
    assert_eq!(qp.outstanding(), 128);
    wait(&mut qp, &done, 128);
    for (c, i) in done.borrow_mut().drain(..).zip(order.borrow().iter()) {
        c.result.unwrap();
        assert!(c.buf.into_dma_buf().unwrap()[..] == random(4096, 5000 + i)[..]);
    }
}

#[test]
#[ignore = "needs Linux's nvmet-tcp: qemu/run-tests --only nvme_tcp_guest --mode vfio"]
fn two_queue_pairs_on_two_threads_each_read_back_their_own_data() {
    let t = Nvmet::start(4428, 64, 512);
    let c = t.connect(&ControllerOpts::default());
    let ns = c.namespace(1).unwrap();
    std::thread::scope(|s| {
        for k in 0..2u64 {
            let (c, ns) = (&c, ns.clone());
            s.spawn(move || {
                let mut qp = c
                    .alloc_io_qpair(QPairOpts {
                        io_queue_size: 64,
                        ..QPairOpts::default()
                    })
                    .unwrap();
                for i in 0..32u64 {
                    let lba = k * 65536 + i * 64;
                    write_read(&mut qp, &ns, lba, &random(32768, k << 32 | i));
                }
            });
        }
    });
    assert!(c.max_io_qpairs() >= 2);
}
