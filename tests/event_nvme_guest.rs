//! The framework over a real controller in the QEMU guest (ignored on the
//! host): `bdev_nvme_attach_controller` over JSON-RPC on QEMU's NVMe, I/O
//! through the bdev it made, detach, attach again. The I/O is done by a
//! method of the embedding test itself, on the app thread, as a program
//! built on `spdk_io::event` would.

mod rpc_client;

use rpc_client::call;
use serde_json::{json, Value};
use spdk_io::bdev::{self, IoBuf};
use spdk_io::event::{self, AppOpts};
use spdk_io::rpc::{Method, MethodFuture, MethodStates, RpcError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Writes a pattern at 4 KiB and reads it back through bdev `name`.
fn test_write_read(params: Value) -> MethodFuture {
    Box::pin(async move {
        let name = params["name"].as_str().unwrap_or_default().to_string();
        let fail = |e: String| RpcError::internal(format!("{name}: {e}"));
        let d = bdev::open(&name, true).map_err(|e| fail(e.to_string()))?;
        let ch = d.get_io_channel().map_err(|e| fail(e.to_string()))?;
        let mut w = IoBuf::dma(4096, 4096).map_err(|e| fail(e.to_string()))?;
        w.iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (i % 251) as u8);
        let w = d
            .write_async(&ch, w, 4096)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let r = IoBuf::dma(4096, 4096).map_err(|e| fail(e.to_string()))?;
        let r = d
            .read_async(&ch, r, 4096)
            .await
            .map_err(|e| fail(e.to_string()))?;
        if r[..] != w[..] {
            return Err(fail("read back differs from what was written".into()));
        }
        Ok(Value::Bool(true))
    })
}

fn ok(sock: &std::path::Path, method: &str, params: Value) -> Value {
    let v = call(sock, method, params);
    v.get("result")
        .cloned()
        .unwrap_or_else(|| panic!("{method}: {v}"))
}

static STARTED: AtomicBool = AtomicBool::new(false);

/// The client side: attach, I/O, detach, twice.
fn drive(sock: &std::path::Path, bdf: String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !STARTED.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the app did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    let attach = json!({"name": "Nvme0", "trtype": "PCIe", "traddr": bdf});
    for round in 0..2 {
        let names = ok(sock, "bdev_nvme_attach_controller", attach.clone());
        assert_eq!(names, json!(["Nvme0n1"]), "round {round}");
        assert_eq!(
            ok(sock, "test_write_read", json!({"name": "Nvme0n1"})),
            json!(true)
        );
        assert_eq!(
            ok(
                sock,
                "bdev_nvme_detach_controller",
                json!({"name": "Nvme0"})
            ),
            json!(true)
        );
        let gone = call(sock, "test_write_read", json!({"name": "Nvme0n1"}));
        assert!(gone.get("error").is_some(), "round {round}: {gone}");
    }
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn a_controller_attached_over_rpc_does_io_detaches_and_attaches_again() {
    let bdf = std::env::var("SPDK_IO_TEST_NVME")
        .expect("SPDK_IO_TEST_NVME is not set: run this test in the QEMU guest (qemu/run-tests)");
    let dir = std::env::temp_dir().join(format!("spdk-io-event-nvme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("tgt.sock");
    let client = {
        let sock = sock.clone();
        std::thread::spawn(move || {
            // Whatever happens, the app is stopped, so run() returns.
            let res = std::panic::catch_unwind(move || drive(&sock, bdf));
            event::stop(if res.is_ok() { 0 } else { 1 });
            if let Err(p) = res {
                std::panic::resume_unwind(p);
            }
        })
    };
    let opts = AppOpts {
        name: "event_nvme_guest".into(),
        rpc_socket: Some(sock.clone()),
        extra_methods: vec![Method {
            name: "test_write_read",
            states: MethodStates::RUNTIME,
            handler: test_write_read,
        }],
        ..AppOpts::default()
    };
    let r = event::run(opts, || STARTED.store(true, Ordering::SeqCst));
    let joined = client.join();
    joined.unwrap();
    assert!(r.is_ok(), "{r:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
