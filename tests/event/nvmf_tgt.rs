//! The target inside the application framework (`spdk-io tgt` as a
//! library): the nvmf methods are in the table, a target configured over
//! JSON-RPC on two reactors (one where there is one CPU) serves spdk-io's initiator on 127.0.0.1, so
//! does a subsystem made by the --json config at start, and the "nvmf"
//! subsystem's configuration lists what was made.

use crate::nvmf_common;

use crate::rpc_client;

use nvmf_common::{opts, qp_opts, random, write_read};
use rpc_client::call;
use serde_json::{json, Value};
use spdk_io::event::{self, AppOpts};
use spdk_io::nvme;
use spdk_io::thread::CpuMask;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn ok(sock: &std::path::Path, method: &str, params: Value) -> Value {
    let v = call(sock, method, params);
    assert!(v.get("error").is_none(), "{method}: {v}");
    v["result"].clone()
}

#[test]
fn a_target_configured_over_json_rpc_serves_the_initiator() {
    let _one = crate::ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("spdk-io-nvmf-tgt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("tgt.sock");
    // Two reactors where the machine has two CPUs (the test guest has one).
    let mut mask = CpuMask::single(0);
    if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        mask.set(1);
    }
    static STARTED: AtomicBool = AtomicBool::new(false);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A second subsystem comes from a --json config at start (SPDK's
    // format): its nvmf entries run once the nvmf subsystem is up.
    let cfg_nqn = "nqn.2016-06.io.spdk-io:tgt-config";
    let config = dir.join("tgt.json");
    std::fs::write(
        &config,
        json!({"subsystems": [
            {"subsystem": "bdev", "config": [
                {"method": "bdev_malloc_create", "params": {"name": "TgtCfgMalloc0", "num_blocks": 2048, "block_size": 512}}]},
            {"subsystem": "nvmf", "config": [
                {"method": "nvmf_create_transport", "params": {"trtype": "TCP"}},
                {"method": "nvmf_create_subsystem", "params": {"nqn": cfg_nqn, "allow_any_host": true}},
                {"method": "nvmf_subsystem_add_ns", "params": {"nqn": cfg_nqn, "namespace": {"bdev_name": "TgtCfgMalloc0"}}},
                {"method": "nvmf_subsystem_add_listener", "params": {"nqn": cfg_nqn, "listen_address":
                    {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": port.to_string()}}}]}]})
        .to_string(),
    )
    .unwrap();
    let opts_app = AppOpts {
        name: "nvmf_tgt".into(),
        cpumask: mask,
        rpc_socket: Some(sock.clone()),
        json_config: Some(config),
        no_huge: true,
        ..AppOpts::default()
    };
    let client = {
        let sock = sock.clone();
        std::thread::spawn(move || {
            // Whatever happens, stop the app so the test cannot hang.
            struct StopOnDrop;
            impl Drop for StopOnDrop {
                fn drop(&mut self) {
                    event::stop(if std::thread::panicking() { 1 } else { 0 });
                }
            }
            let _stop = StopOnDrop;
            let deadline = Instant::now() + Duration::from_secs(30);
            while !STARTED.load(Ordering::SeqCst) {
                assert!(Instant::now() < deadline, "the app did not start");
                std::thread::sleep(Duration::from_millis(5));
            }
            let m = ok(&sock, "rpc_get_methods", Value::Null);
            for name in [
                "nvmf_create_transport",
                "nvmf_subsystem_add_ns",
                "nvmf_get_subsystems",
            ] {
                assert!(m.as_array().unwrap().contains(&json!(name)), "{name}");
            }
            let nqn = "nqn.2016-06.io.spdk-io:tgt";
            ok(
                &sock,
                "bdev_malloc_create",
                json!({"name": "TgtMalloc0", "num_blocks": 4096, "block_size": 512}),
            );
            ok(
                &sock,
                "nvmf_create_subsystem",
                json!({"nqn": nqn, "allow_any_host": true}),
            );
            ok(
                &sock,
                "nvmf_subsystem_add_ns",
                json!({"nqn": nqn, "namespace": {"bdev_name": "TgtMalloc0"}}),
            );
            ok(
                &sock,
                "nvmf_subsystem_add_listener",
                json!({"nqn": nqn, "listen_address": {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": port.to_string()}}),
            );
            let t = ok(&sock, "nvmf_get_transports", Value::Null);
            assert_eq!(t[0]["trtype"], "TCP");
            assert_eq!(t[0]["max_queue_depth"], 128);
            // SPDK's defaults for the shared buffers: 511, the cache computed.
            assert_eq!(t[0]["num_shared_buffers"], 511);
            assert_eq!(t[0]["buf_cache_size"], u32::MAX);
            let trid: nvme::TransportId = format!(
                "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{nqn} hostnqn:nqn.2024-01.io.spdk-io:tgt-host"
            )
            .parse()
            .unwrap();
            {
                let c = nvme::connect(&trid, &opts(false)).unwrap();
                let ns = c.namespace(1).unwrap();
                assert_eq!(ns.num_blocks(), 4096);
                // Two I/O queues one after the other (connections go round robin
                // to the poll groups of the two reactors; not asserted here).
                for seed in 0..2u64 {
                    let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
                    write_read(&mut qp, &ns, seed * 256, &random(131072, seed));
                }
            }
            {
                let trid: nvme::TransportId = format!(
                    "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{cfg_nqn} hostnqn:nqn.2024-01.io.spdk-io:tgt-host"
                )
                .parse()
                .unwrap();
                let c = nvme::connect(&trid, &opts(false)).unwrap();
                let ns = c.namespace(1).unwrap();
                assert_eq!(ns.num_blocks(), 2048, "the config's namespace");
                let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
                write_read(&mut qp, &ns, 8, &random(4096, 3));
            }
            let cfg = ok(&sock, "framework_get_config", json!({"name": "nvmf"}));
            let methods: Vec<&str> = cfg
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["method"].as_str().unwrap())
                .collect();
            assert_eq!(
                methods,
                [
                    "nvmf_create_transport",
                    "nvmf_create_subsystem",
                    "nvmf_subsystem_add_ns",
                    "nvmf_subsystem_add_listener",
                    "nvmf_create_subsystem",
                    "nvmf_subsystem_add_ns",
                    "nvmf_subsystem_add_listener"
                ]
            );
        })
    };
    let r = event::run(opts_app, || STARTED.store(true, Ordering::SeqCst));
    client.join().unwrap();
    assert!(r.is_ok(), "{r:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
