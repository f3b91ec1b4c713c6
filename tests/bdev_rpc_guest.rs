//! `bdev_nvme_attach_controller` through the method table on QEMU's NVMe
//! (ignored on the host): attach, I/O through the bdev, the controller
//! listed and reset, detach, attach again. A binary of its own so the env
//! starts in its default mode (hugepages, IOVA mode of the bound driver).

use serde_json::{json, Value};
use spdk_io::bdev::{self, IoBuf, IoCompletion};
use spdk_io::env::{self, EnvOpts};
use spdk_io::rpc::RpcResult;
use std::cell::RefCell;
use std::rc::Rc;

/// Runs a method to its answer on a lightweight thread (attach, reset and
/// detach wait for the device on a worker thread).
fn call(name: &str, params: Value) -> RpcResult {
    let m = bdev::rpc::methods()
        .into_iter()
        .find(|m| m.name == name)
        .unwrap();
    let t = spdk_io::thread::Thread::new("rpc_guest_app");
    let r = t.block_on((m.handler)(params)).expect("block_on");
    t.shutdown().expect("thread shutdown");
    r
}

/// Writes a pattern and reads it back through bdev `name`.
fn write_read(name: &str, pattern: u8) {
    let d = bdev::open(name, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let done: Rc<RefCell<Vec<IoCompletion>>> = Rc::default();
    let rec = || {
        let l = done.clone();
        Box::new(move |c: IoCompletion| l.borrow_mut().push(c)) as Box<dyn bdev::IoDone>
    };
    let poll = |n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while done.borrow().len() < n {
            ch.poll();
            assert!(std::time::Instant::now() < deadline, "I/O did not complete");
        }
    };
    let mut w = IoBuf::dma(4096, 4096).unwrap();
    w.fill(pattern);
    let blocks = 4096 / u64::from(d.bdev().block_size());
    d.write_blocks(&ch, w, 128, blocks, rec()).unwrap();
    poll(1);
    d.read_blocks(&ch, IoBuf::dma(4096, 4096).unwrap(), 128, blocks, rec())
        .unwrap();
    poll(2);
    let mut got = done.borrow_mut();
    assert!(got.iter().all(|c| c.success()));
    let data = got.pop().unwrap().data.into_buf().unwrap();
    assert!(data.iter().all(|&b| b == pattern));
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn a_controller_attached_through_rpc_does_io_detaches_and_attaches_again() {
    env::init_once(EnvOpts::default()).expect("env init (hugepages at /dev/hugepages?)");
    let bdf = std::env::var("SPDK_IO_TEST_NVME")
        .expect("SPDK_IO_TEST_NVME is not set: run this test in the QEMU guest (qemu/run-tests)");
    // What spdk-rpc 26.9 sends for `bdev_nvme_attach_controller -b NvmeR -t PCIe -a BDF`.
    let attach = json!({"name": "NvmeR", "trtype": "PCIe", "traddr": bdf,
        "prchk_reftag": false, "prchk_guard": false, "hdgst": false, "ddgst": false,
        "allow_unrecognized_csi": false, "disable_sq_flow_control": false});
    for round in 0..2u8 {
        let names = call("bdev_nvme_attach_controller", attach.clone()).expect("attach");
        assert_eq!(names[0], "NvmeRn1", "round {round}: {names}");
        let e = call("bdev_nvme_attach_controller", attach.clone()).unwrap_err();
        assert_eq!(e.code, -17, "a second attach under the name: {e}");
        let c = call("bdev_nvme_get_controllers", json!({"name": "NvmeR"})).unwrap();
        assert_eq!(c[0]["ctrlrs"][0]["trid"]["traddr"], json!(bdf));
        write_read("NvmeRn1", 0x5a ^ round);
        assert_eq!(
            call("bdev_nvme_reset_controller", json!({"name": "NvmeR"})).unwrap(),
            json!(true)
        );
        write_read("NvmeRn1", 0xc3 ^ round);
        let stat = call("bdev_get_iostat", json!({"name": "NvmeRn1"})).unwrap();
        assert!(stat["bdevs"][0]["num_write_ops"].as_u64().unwrap() >= 2);
        assert_eq!(
            call("bdev_nvme_detach_controller", json!({"name": "NvmeR"})).unwrap(),
            json!(true)
        );
        assert!(bdev::get_by_name("NvmeRn1").is_none());
        assert_eq!(
            call("bdev_nvme_get_controllers", Value::Null).unwrap(),
            json!([])
        );
    }
}
