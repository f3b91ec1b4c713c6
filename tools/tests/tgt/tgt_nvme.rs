//! `bdev_nvme_*` on `spdk-io tgt` over NVMe/TCP, on 127.0.0.1: an attach
//! in progress does not hold the daemon; a controller attached from
//! another `spdk-io tgt`'s NVMe-oF export is listed, saved, reloaded and
//! detached as SPDK does; `spdk-io bdevperf` verifies through a `--json`
//! config with `trtype: "TCP"`.

use crate::tgt_support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tgt_support::*;

const NQN: &str = "nqn.2016-06.io.spdk-io:tgt-nvme";

/// A target process exporting a 32 MiB malloc bdev as `NQN` over TCP on
/// 127.0.0.1; its port.
fn exporter(tag: &str) -> (Tgt, u16) {
    let t = Tgt::start(tag, &[]);
    let port = free_port();
    t.ok(
        "bdev_malloc_create",
        Some(json!({"name": "Exported0", "num_blocks": 65536, "block_size": 512})),
    );
    t.ok("nvmf_create_transport", Some(json!({"trtype": "TCP"})));
    t.export(NQN, "Exported0", port, None);
    (t, port)
}

fn attach_params(name: &str, port: u16) -> Value {
    json!({"name": name, "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1",
        "trsvcid": port.to_string(), "subnqn": NQN,
        "hostnqn": "nqn.2014-08.org.nvmexpress:uuid:0b6a4fb8-4c7e-4d7e-8a4b-6f8b1e2d3c4a"})
}

#[test]
fn an_attach_in_progress_does_not_hold_the_daemon_and_fails_at_its_timeout() {
    // A listener that accepts and never answers ICReq.
    let mute = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = mute.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in mute.incoming().flatten() {
            a.fetch_add(1, Ordering::SeqCst);
            held.push(s);
            if held.len() > 8 {
                break;
            }
        }
    });
    let t = Tgt::start("attach-mute", &[]);
    let mut slow = t.connect();
    let mut p = attach_params("Mute0", port);
    p["fabrics_connect_timeout_us"] = json!(3_000_000);
    slow.write_all(
        request(7, "bdev_nvme_attach_controller", Some(p))
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let start = Instant::now();
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < WAIT, "the attach never connected");
        std::thread::sleep(Duration::from_millis(5));
    }
    // While the controller comes up, everyone else is answered.
    t.assert_alive();
    assert_eq!(t.ok("bdev_get_bdevs", None), json!([]));
    let e = t.call(
        "bdev_nvme_attach_controller",
        Some(attach_params("Mute0", port)),
    );
    assert_eq!(e["error"]["code"], -17, "the name is taken meanwhile: {e}");
    slow.set_nonblocking(true).unwrap();
    let mut b = [0u8; 16];
    assert!(
        matches!(slow.read(&mut b), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the attach has not answered yet"
    );
    slow.set_nonblocking(false).unwrap();
    // Then it fails with SPDK's timeout error, and the daemon goes on.
    let r = read_value(&mut slow, &mut Vec::new()).expect("an answer");
    assert_eq!(r["id"], 7);
    assert_eq!(
        (r["error"]["code"].clone(), r["error"]["message"].clone()),
        (json!(-110), json!("Connection timed out")),
        "{r}"
    );
    t.assert_alive();
    assert_eq!(t.ok("bdev_nvme_get_controllers", None), json!([]));
    // The name is free again: an attach to a closed port fails at once.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = t.call(
        "bdev_nvme_attach_controller",
        Some(attach_params("Mute0", closed)),
    );
    assert_eq!(e["error"]["code"], -111, "{e}");
    t.assert_alive();
}

#[test]
fn a_tcp_controller_is_listed_saved_reloaded_and_detached_as_spdk_does() {
    let (exp, port) = exporter("exporter-1");
    let dir = scratch("initiator");
    let t = Tgt::start_at(dir.clone(), dir.join("spdk.sock"), &[]);
    let mut p = attach_params("Nvme0", port);
    p["ctrlr_loss_timeout_sec"] = json!(10);
    p["reconnect_delay_sec"] = json!(2);
    p["fast_io_fail_timeout_sec"] = json!(4);
    assert_eq!(
        t.ok("bdev_nvme_attach_controller", Some(p.clone())),
        json!(["Nvme0n1"])
    );
    let b = t.ok("bdev_get_bdevs", Some(json!({"name": "Nvme0n1"})));
    assert_eq!(b[0]["num_blocks"], 65536);
    let c = t.ok("bdev_nvme_get_controllers", None);
    assert_eq!(c[0]["name"], "Nvme0");
    let ctrlr = &c[0]["ctrlrs"][0];
    assert_eq!(ctrlr["state"], "enabled");
    assert_eq!(
        ctrlr["trid"],
        json!({"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1",
            "trsvcid": port.to_string(), "subnqn": NQN})
    );
    assert_eq!(ctrlr["host"]["nqn"], p["hostnqn"]);
    // SPDK's parameter checks.
    let mut bad = attach_params("Nvme1", port);
    bad["ctrlr_loss_timeout_sec"] = json!(5);
    bad["reconnect_delay_sec"] = json!(10);
    let e = t.call("bdev_nvme_attach_controller", Some(bad));
    assert_eq!(e["error"]["code"], -22, "{e}");
    let e = t.call("bdev_nvme_attach_controller", Some(p.clone()));
    assert_eq!(e["error"]["code"], -17, "{e}");

    // save_config writes the attach as SPDK does; it loads back the same.
    let cfg = t.ok("framework_get_config", Some(json!({"name": "bdev"})));
    let entry = cfg
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["method"] == "bdev_nvme_attach_controller")
        .expect("an attach entry")
        .clone();
    assert_eq!(
        entry["params"],
        json!({"name": "Nvme0", "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1",
            "trsvcid": port.to_string(), "subnqn": NQN, "prchk_reftag": false,
            "prchk_guard": false, "ctrlr_loss_timeout_sec": 10, "reconnect_delay_sec": 2,
            "fast_io_fail_timeout_sec": 4, "hostnqn": p["hostnqn"], "hdgst": false,
            "ddgst": false})
    );
    let dir2 = scratch("initiator-2");
    let saved = dir2.join("saved.json");
    // rpc.py's save_config: framework_get_config of each subsystem.
    let whole = json!({"subsystems": [{"subsystem": "bdev", "config": cfg}]});
    std::fs::write(&saved, serde_json::to_string_pretty(&whole).unwrap()).unwrap();
    assert_eq!(
        t.ok(
            "bdev_nvme_detach_controller",
            Some(json!({"name": "Nvme0"}))
        ),
        json!(true)
    );
    assert_eq!(t.ok("bdev_get_bdevs", None), json!([]));
    drop(t);
    let t2 = Tgt::start_at(
        dir2.clone(),
        dir2.join("spdk.sock"),
        &["--json", saved.to_str().unwrap()],
    );
    // The config's attach runs on a worker; the init is done after it.
    t2.ok("framework_wait_init", None);
    assert_eq!(
        t2.ok("framework_get_config", Some(json!({"name": "bdev"}))),
        cfg
    );
    assert_eq!(
        t2.ok("bdev_nvme_get_controllers", None)[0]["ctrlrs"][0]["trid"],
        ctrlr["trid"]
    );
    drop(t2);
    exp.assert_alive();
}

#[test]
fn bdevperf_verifies_a_tcp_attached_namespace_from_a_json_config() {
    let (exp, port) = exporter("exporter-2");
    let dir = scratch("bdevperf-tcp");
    let cfg = dir.join("tcp.json");
    let c = json!({"subsystems": [{"subsystem": "bdev", "config": [
        {"method": "bdev_nvme_attach_controller", "params": attach_params("Nvme0", port)}]}]});
    std::fs::write(&cfg, serde_json::to_string_pretty(&c).unwrap()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spdk-io"))
        .args([
            "bdevperf",
            "--no-huge",
            "-q",
            "16",
            "-o",
            "4096",
            "-w",
            "verify",
            "-t",
            "2",
        ])
        .arg("--json")
        .arg(&cfg)
        .output()
        .expect("run bdevperf");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bdevperf failed: {stdout}\n{stderr}");
    assert!(stdout.contains("Nvme0n1"), "{stdout}");
    let iostat = exp.ok("bdev_get_iostat", Some(json!({"name": "Exported0"})));
    let reads = iostat["bdevs"][0]["num_read_ops"].as_u64().unwrap();
    assert!(reads > 0, "the verify read through the export: {iostat}");
    let _ = std::fs::remove_dir_all(&dir);
}
