//! `spdk-io tgt` on QEMU's NVMe in the test guest (ignored on the host):
//! `bdev_nvme_attach_controller` over JSON-RPC with trtype PCIe, I/O
//! through the bdev it made, `bdev_nvme_detach_controller`, attach again,
//! I/O again, `spdk_kill_instance` exits 0.
//!
//! The I/O goes through the daemon: the bdev is exported by the same
//! daemon's NVMe-oF target over TCP on 127.0.0.1, and this test writes and
//! reads it with spdk-io's NVMe/TCP initiator. Data written before the
//! detach is read back after the attach again, so it went to the device.

mod tgt_support;

use serde_json::json;
use spdk_io::env::{self, DmaBuf, EnvOpts};
use spdk_io::nvme::{self, ControllerOpts, IoCompletion, Namespace, QPair, QPairOpts};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;
use tgt_support::*;

const NQN: &str = "nqn.2016-06.io.spdk-io:tgt-nvme-guest";
const NEEDS: &str =
    "SPDK_IO_TEST_NVME is not set: run this test in the QEMU guest (qemu/run-tests --only tgt_nvme_guest)";

/// Where the test data sits on the namespace: 1 MiB in, 64 KiB long.
const OFFSET: u64 = 1 << 20;
const LEN: usize = 64 << 10;

/// xorshift64: reproducible bytes, different per seed.
fn pattern(seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Exports bdev `Nvme0n1` as `NQN` on 127.0.0.1:`port`.
fn export(t: &Tgt, port: u16) {
    t.export(NQN, "Nvme0n1", port, Some("SPDKIOGUEST1"));
}

type Done = Rc<RefCell<Vec<IoCompletion>>>;

/// Polls `qp` until one I/O completed (bounded by WAIT); its completion.
fn complete_one(qp: &mut QPair, done: &Done) -> IoCompletion {
    let start = Instant::now();
    while done.borrow().is_empty() {
        qp.process_completions(0)
            .expect("polling the TCP queue pair");
        assert!(
            start.elapsed() < WAIT,
            "an I/O did not complete in {WAIT:?}"
        );
    }
    let c = done.borrow_mut().pop().unwrap();
    c
}

fn write(qp: &mut QPair, ns: &Namespace, data: &[u8]) {
    let done: Done = Rc::default();
    let mut buf = DmaBuf::alloc(data.len(), 4096).unwrap();
    buf.copy_from_slice(data);
    let bs = ns.block_size() as u64;
    let d = done.clone();
    qp.write(
        ns,
        buf,
        OFFSET / bs,
        (data.len() as u64 / bs) as u32,
        move |_, c| d.borrow_mut().push(c),
    )
    .map_err(|e| e.error)
    .expect("submit a write");
    complete_one(qp, &done).result.expect("the write");
}

fn read(qp: &mut QPair, ns: &Namespace) -> Vec<u8> {
    let done: Done = Rc::default();
    let bs = ns.block_size() as u64;
    let d = done.clone();
    qp.read(
        ns,
        DmaBuf::alloc_zeroed(LEN, 4096).unwrap(),
        OFFSET / bs,
        (LEN as u64 / bs) as u32,
        move |_, c| d.borrow_mut().push(c),
    )
    .map_err(|e| e.error)
    .expect("submit a read");
    let c = complete_one(qp, &done);
    c.result.expect("the read");
    c.buf.into_dma_buf().expect("the read's buffer").to_vec()
}

/// Connects to the export; reads what is there, writes `data`, reads it
/// back. Returns what was there before.
fn io_through_the_export(port: u16, data: &[u8]) -> Vec<u8> {
    let trid = format!("trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{NQN}")
        .parse()
        .unwrap();
    let c = nvme::connect(&trid, &ControllerOpts::default())
        .unwrap_or_else(|e| panic!("connecting to the export: {e}"));
    let ns = c.namespace(1).expect("namespace 1 of the export");
    let mut qp = c
        .alloc_io_qpair(QPairOpts {
            io_queue_size: 16,
            ..QPairOpts::default()
        })
        .expect("an I/O queue pair");
    let before = read(&mut qp, &ns);
    write(&mut qp, &ns, data);
    assert!(read(&mut qp, &ns) == data, "the data written reads back");
    before
}

fn ops(t: &Tgt, key: &str) -> u64 {
    let s = t.ok("bdev_get_iostat", Some(json!({"name": "Nvme0n1"})));
    s["bdevs"][0][key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {s}"))
}

#[test]
#[ignore = "needs a vfio- or uio-bound NVMe: run in the guest (qemu/run-tests --only tgt_nvme_guest)"]
fn tgt_attaches_over_rpc_does_io_detaches_attaches_again_and_exits_0() {
    let bdf = std::env::var("SPDK_IO_TEST_NVME").expect(NEEDS);
    env::init_once(EnvOpts::no_huge()).expect("env for the NVMe/TCP initiator");
    let dir = scratch("nvme-guest");
    let sock = dir.join("spdk.sock");
    let mut t = Tgt::spawn(dir, sock.clone(), command_hugepages(&sock, &[]));
    t.ok("nvmf_create_transport", Some(json!({"trtype": "TCP"})));
    let port = free_port();
    let attach = json!({"name": "Nvme0", "trtype": "PCIe", "traddr": bdf});
    let mut last = pattern(0);
    for round in 1..=2u64 {
        assert_eq!(
            t.ok("bdev_nvme_attach_controller", Some(attach.clone())),
            json!(["Nvme0n1"]),
            "round {round}"
        );
        let c = t.ok("bdev_nvme_get_controllers", Some(json!({"name": "Nvme0"})));
        assert_eq!(c[0]["ctrlrs"][0]["trid"]["traddr"], bdf, "{c}");
        assert_eq!(c[0]["ctrlrs"][0]["trid"]["trtype"], "PCIe", "{c}");
        let (r0, w0) = (ops(&t, "num_read_ops"), ops(&t, "num_write_ops"));
        export(&t, port);
        let data = pattern(round);
        let before = io_through_the_export(port, &data);
        if round == 2 {
            assert!(
                before == last,
                "what round 1 wrote is on the device after the detach and attach"
            );
        }
        last = data;
        // The I/O went through the daemon's nvme bdev.
        assert!(ops(&t, "num_read_ops") >= r0 + 2, "round {round}: reads");
        assert!(ops(&t, "num_write_ops") > w0, "round {round}: writes");
        t.ok("nvmf_delete_subsystem", Some(json!({"nqn": NQN})));
        assert_eq!(
            t.ok(
                "bdev_nvme_detach_controller",
                Some(json!({"name": "Nvme0"}))
            ),
            json!(true),
            "round {round}"
        );
        assert_eq!(t.ok("bdev_nvme_get_controllers", None), json!([]));
        let e = t.call("bdev_get_bdevs", Some(json!({"name": "Nvme0n1"})));
        assert_eq!(e["error"]["code"], -19, "the bdev is gone: {e}");
    }
    t.assert_alive();
    assert_eq!(
        t.ok("spdk_kill_instance", Some(json!({"sig_name": "SIGTERM"}))),
        json!(true)
    );
    let mut child = t.child.take().unwrap();
    let (st, err) = wait_exit(&mut child);
    assert!(st.success(), "spdk-io tgt exited {st}: {err}");
}
