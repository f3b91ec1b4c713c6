//! The `nvmf_*` methods on an app thread: a transport, a subsystem with a
//! namespace, a host and a listener made through them serve spdk-io's
//! initiator on 127.0.0.1; `nvmf_get_subsystems` has SPDK's shape; the
//! saved configuration, replayed into a fresh target, rebuilds the same
//! state, and the data written before is read back through it.

use crate::nvmf_common;

use nvmf_common::{malloc, opts, qp_opts, random, read, write_read};
use serde_json::{json, Value};
use spdk_io::nvme;
use spdk_io::nvmf::rpc;
use spdk_io::rpc::RpcResult;
use spdk_io::thread::{spawn_local, Thread};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NQN: &str = "nqn.2016-06.io.spdk-io:rpc";
const HOST: &str = "nqn.2024-01.io.spdk-io:rpc-host";

async fn call(name: &str, params: Value) -> RpcResult {
    let m = rpc::methods()
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no method {name}"));
    (m.handler)(params).await
}

enum Step {
    Built {
        subsystems: Value,
        saved: Vec<Value>,
    },
    Rebuilt {
        same: bool,
        again: Vec<Value>,
    },
}

/// Runs `f` on the app thread and waits for it.
fn on_app(to_app: &mpsc::Sender<Box<dyn FnOnce() + Send>>, f: impl FnOnce() + Send + 'static) {
    to_app.send(Box::new(f)).unwrap();
}

#[test]
fn methods_build_a_target_the_initiator_uses_and_save_config_rebuilds_it() {
    malloc("NvmfRpcMalloc0", 2048, 512);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (to_app, jobs) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
    let (tx, steps) = mpsc::channel::<Step>();
    let app = std::thread::spawn(move || {
        let t = Thread::new("app");
        t.enter(|| rpc::init().unwrap());
        let start = Instant::now();
        loop {
            match jobs.try_recv() {
                Ok(job) => t.enter(job),
                Err(mpsc::TryRecvError::Disconnected) => break,
                Err(mpsc::TryRecvError::Empty) => {}
            }
            if !t.poll(0) {
                std::thread::yield_now();
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "app thread ran too long"
            );
        }
        t.enter(rpc::fini);
        for _ in 0..1000 {
            t.poll(0);
        }
        t.exit();
        let s = Instant::now();
        while !t.is_exited() && s.elapsed() < Duration::from_secs(5) {
            t.poll(0);
        }
        let _ = t.destroy();
    });

    let tx1 = tx.clone();
    on_app(&to_app, move || {
        spawn_local(async move {
            // A pool that holds no whole I/O is refused by name.
            let e = call("nvmf_create_transport", json!({"trtype": "TCP", "num_shared_buffers": 0}))
                .await
                .unwrap_err();
            assert_eq!(e.code, -32602, "{e}");
            assert!(e.message.contains("num_shared_buffers"), "{e}");
            call("nvmf_create_transport", json!({"trtype": "TCP", "max_queue_depth": 64, "in_capsule_data_size": 8192, "num_shared_buffers": 64, "buf_cache_size": 4}))
                .await
                .unwrap();
            let e = call("nvmf_create_transport", json!({"trtype": "TCP"})).await.unwrap_err();
            assert_eq!(e.code, -17, "a second TCP transport: {e}");
            call("nvmf_create_subsystem", json!({"nqn": NQN, "serial_number": "SPDKIO0001", "model_number": "rpc model", "max_namespaces": 8}))
                .await
                .unwrap();
            let nsid = call("nvmf_subsystem_add_ns", json!({"nqn": NQN, "namespace": {"bdev_name": "NvmfRpcMalloc0", "nsid": 3, "nguid": "00112233445566778899AABBCCDDEEFF"}}))
                .await
                .unwrap();
            assert_eq!(nsid, json!(3));
            let e = call("nvmf_subsystem_add_ns", json!({"nqn": NQN, "namespace": {"bdev_name": "NoSuchBdev"}}))
                .await
                .unwrap_err();
            assert!(e.message.contains("NoSuchBdev"), "{e}");
            call("nvmf_subsystem_add_host", json!({"nqn": NQN, "host": HOST})).await.unwrap();
            call("nvmf_subsystem_add_listener", json!({"nqn": NQN, "listen_address": {"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": port.to_string()}}))
                .await
                .unwrap();
            let e = call("nvmf_subsystem_add_ns", json!({"nqn": NQN, "namespace": {"bdev_name": "x"}, "bogus": 1}))
                .await
                .unwrap_err();
            assert!(e.message.contains("bogus"), "unknown parameters refused by name: {e}");
            // What SPDK's own save_config writes first in its nvmf section.
            for (m, p) in [
                ("nvmf_set_config", json!({"discovery_filter": "match_any", "admin_cmd_passthru": {"identify_ctrlr": false}})),
                ("nvmf_set_max_subsystems", json!({"max_subsystems": 1024})),
                ("nvmf_set_crdt", json!({"crdt1": 0, "crdt2": 0, "crdt3": 0})),
            ] {
                assert_eq!(call(m, p).await.unwrap(), json!(true), "{m}");
            }
            let subsystems = call("nvmf_get_subsystems", Value::Null).await.unwrap();
            tx1.send(Step::Built { subsystems, saved: rpc::config_entries() }).unwrap();
        })
        .unwrap();
    });
    let Step::Built { subsystems, saved } = steps.recv_timeout(Duration::from_secs(60)).unwrap()
    else {
        panic!("expected the built target");
    };
    assert_eq!(subsystems[0]["subtype"], "Discovery");
    let s = &subsystems[1];
    assert_eq!(s["nqn"], NQN);
    assert_eq!(s["subtype"], "NVMe");
    assert_eq!(s["serial_number"], "SPDKIO0001");
    assert_eq!(s["allow_any_host"], false);
    assert_eq!(s["hosts"], json!([{"nqn": HOST}]));
    assert_eq!(
        s["listen_addresses"],
        json!([{"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": port.to_string()}])
    );
    assert_eq!(s["namespaces"][0]["nsid"], 3);
    assert_eq!(s["namespaces"][0]["bdev_name"], "NvmfRpcMalloc0");
    assert_eq!(
        s["namespaces"][0]["nguid"],
        "00112233445566778899AABBCCDDEEFF"
    );

    let trid: nvme::TransportId = format!(
        "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{NQN} hostnqn:{HOST}"
    )
    .parse()
    .unwrap();
    let data = random(65536, 77);
    {
        let c = nvme::connect(&trid, &opts(false)).unwrap();
        assert_eq!(c.namespace_ids(), vec![3]);
        let ns = c.namespace(3).unwrap();
        let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
        write_read(&mut qp, &ns, 128, &data);
        let (tx3, got) = mpsc::channel();
        on_app(&to_app, move || {
            spawn_local(async move {
                let v = call("nvmf_subsystem_get_controllers", json!({"nqn": NQN})).await;
                tx3.send(v.unwrap()).unwrap();
            })
            .unwrap();
        });
        let ctrlrs = got.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(ctrlrs[0]["cntlid"], 1);
        assert_eq!(ctrlrs[0]["cntrltype"], "io");
        assert_eq!(ctrlrs[0]["hostnqn"], HOST);
        assert_eq!(ctrlrs[0]["num_io_qpairs"], 1);
        let q = query(&to_app, "nvmf_subsystem_get_qpairs", json!({"nqn": NQN}));
        let qids: Vec<u64> = q
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["qid"].as_u64().unwrap())
            .collect();
        assert_eq!(qids, [0, 1], "{q}");
        for x in q.as_array().unwrap() {
            assert_eq!(x["cntlid"], 1);
            assert_eq!(x["state"], "enabled");
            assert_eq!(x["hostnqn"], HOST);
            assert_eq!(
                x["listen_address"],
                json!({"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": port.to_string()})
            );
            assert_eq!(x["peer_address"]["traddr"], "127.0.0.1");
            assert!(x["thread"].is_string());
        }
        let l = query(&to_app, "nvmf_subsystem_get_listeners", json!({"nqn": NQN}));
        assert_eq!(
            l,
            json!([{"address": {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": port.to_string()}}]),
            "no ana_states without ANA reporting"
        );
        let st = query(&to_app, "nvmf_get_stats", Value::Null);
        assert!(st["tick_rate"].as_u64().unwrap() > 0);
        let g = &st["poll_groups"].as_array().unwrap();
        let sum = |k: &str| g.iter().map(|x| x[k].as_u64().unwrap()).sum::<u64>();
        assert_eq!(
            (sum("current_admin_qpairs"), sum("current_io_qpairs")),
            (1, 1),
            "{st}"
        );
        assert!(
            sum("completed_nvme_io") >= 2,
            "a write and a read at least: {st}"
        );
        assert_eq!(
            g[0]["transports"],
            json!([{"trtype": "TCP", "pending_data_buffer": 0}])
        );
        let e = query_err(
            &to_app,
            "nvmf_subsystem_get_qpairs",
            json!({"nqn": "nqn.2016-06.io.spdk-io:none"}),
        );
        assert_eq!(e.code, -32602, "{e}");
    }
    let ana_listeners = ana(&to_app, port);
    assert!(
        saved
            .iter()
            .all(|e| e["params"]["nqn"] != "nqn.2016-06.io.spdk-io:rpc-ana"),
        "saved before the ANA subsystem was made"
    );
    let (tx4, got) = mpsc::channel();
    on_app(&to_app, move || tx4.send(rpc::config_entries()).unwrap());
    let saved: Vec<Value> = got.recv_timeout(Duration::from_secs(30)).unwrap();
    let methods: Vec<&str> = saved
        .iter()
        .map(|e| e["method"].as_str().unwrap())
        .collect();
    let tr = saved
        .iter()
        .find(|e| e["method"] == "nvmf_create_transport")
        .unwrap();
    assert_eq!(
        (
            &tr["params"]["num_shared_buffers"],
            &tr["params"]["buf_cache_size"]
        ),
        (&json!(64), &json!(4)),
        "{tr}"
    );
    for m in [
        "nvmf_create_transport",
        "nvmf_create_subsystem",
        "nvmf_subsystem_add_ns",
        "nvmf_subsystem_add_host",
        "nvmf_subsystem_add_listener",
        "nvmf_subsystem_listener_set_ana_state",
    ] {
        assert!(methods.contains(&m), "save_config has {m}: {methods:?}");
    }

    // Tear the target down and replay what save_config wrote.
    let tx2 = tx.clone();
    let replay = saved.clone();
    on_app(&to_app, move || {
        rpc::fini();
        rpc::init().unwrap();
        spawn_local(async move {
            for e in &replay {
                let m = e["method"].as_str().unwrap();
                call(m, e["params"].clone())
                    .await
                    .unwrap_or_else(|err| panic!("{m}: {err}"));
            }
            let again = rpc::config_entries();
            tx2.send(Step::Rebuilt {
                same: again == replay,
                again,
            })
            .unwrap();
        })
        .unwrap();
    });
    let Step::Rebuilt { same, again } = steps.recv_timeout(Duration::from_secs(60)).unwrap() else {
        panic!("expected the rebuilt target");
    };
    assert!(same, "saved {saved:#?}\nrebuilt {again:#?}");
    let subsystems_again = query(&to_app, "nvmf_get_subsystems", Value::Null);
    assert_eq!(
        subsystems_again[1], subsystems[1],
        "the first subsystem as it was"
    );
    assert_eq!(
        subsystems_again.as_array().unwrap().len(),
        3,
        "discovery and two"
    );
    assert_eq!(
        query(
            &to_app,
            "nvmf_subsystem_get_listeners",
            json!({"nqn": "nqn.2016-06.io.spdk-io:rpc-ana"}),
        ),
        ana_listeners,
        "each listener's ANA state per group as before the restart"
    );
    let c = nvme::connect(&trid, &opts(false)).unwrap();
    let ns = c.namespace(3).unwrap();
    let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
    assert!(
        read(&mut qp, &ns, 128, data.len()) == data,
        "data written before reads back"
    );
    drop(qp);
    drop(c);
    drop(to_app);
    app.join().unwrap();
}

fn query_result(
    to_app: &mpsc::Sender<Box<dyn FnOnce() + Send>>,
    name: &'static str,
    params: Value,
) -> RpcResult {
    let (tx, got) = mpsc::channel();
    on_app(to_app, move || {
        spawn_local(async move {
            tx.send(call(name, params).await).unwrap();
        })
        .unwrap();
    });
    got.recv_timeout(Duration::from_secs(30)).unwrap()
}

/// Calls `name` on the app thread; its result.
fn query(
    to_app: &mpsc::Sender<Box<dyn FnOnce() + Send>>,
    name: &'static str,
    params: Value,
) -> Value {
    query_result(to_app, name, params).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Calls `name` on the app thread; its error.
fn query_err(
    to_app: &mpsc::Sender<Box<dyn FnOnce() + Send>>,
    name: &'static str,
    params: Value,
) -> spdk_io::rpc::RpcError {
    query_result(to_app, name, params).expect_err(name)
}

/// A subsystem reporting ANA: the listener's state shows in
/// nvmf_subsystem_get_listeners and the ANA log page, an inaccessible
/// group fails I/O with ANA Inaccessible, and optimized serves it again;
/// a second listener added with `ana_state` starts in that state. Returns
/// what nvmf_subsystem_get_listeners says at the end.
fn ana(to_app: &mpsc::Sender<Box<dyn FnOnce() + Send>>, port: u16) -> Value {
    const ANA_NQN: &str = "nqn.2016-06.io.spdk-io:rpc-ana";
    malloc("NvmfRpcAnaMalloc", 1024, 512);
    let addr = json!({"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": port.to_string()});
    query(
        to_app,
        "nvmf_create_subsystem",
        json!({"nqn": ANA_NQN, "allow_any_host": true, "ana_reporting": true, "max_namespaces": 2}),
    );
    query(
        to_app,
        "nvmf_subsystem_add_ns",
        json!({"nqn": ANA_NQN, "namespace": {"bdev_name": "NvmfRpcAnaMalloc"}}),
    );
    query(
        to_app,
        "nvmf_subsystem_add_listener",
        json!({"nqn": ANA_NQN, "listen_address": addr}),
    );
    let e = query_err(
        to_app,
        "nvmf_subsystem_listener_set_ana_state",
        json!({"nqn": NQN, "listen_address": addr, "ana_state": "inaccessible"}),
    );
    assert!(e.message.contains("ana_reporting"), "{e}");
    let e = query_err(
        to_app,
        "nvmf_subsystem_listener_set_ana_state",
        json!({"nqn": ANA_NQN, "listen_address": addr, "ana_state": "sideways"}),
    );
    assert_eq!(e.code, -32602, "{e}");
    let trid: nvme::TransportId = format!(
        "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{ANA_NQN} hostnqn:{HOST}"
    )
    .parse()
    .unwrap();
    let c = nvme::connect(&trid, &opts(false)).unwrap();
    assert_ne!(c.data().cmic & (1 << 3), 0, "CMIC: ANA reporting");
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
    write_read(&mut qp, &ns, 0, &random(4096, 8));
    query(
        to_app,
        "nvmf_subsystem_listener_set_ana_state",
        json!({"nqn": ANA_NQN, "listen_address": addr, "ana_state": "inaccessible"}),
    );
    let l = query(
        to_app,
        "nvmf_subsystem_get_listeners",
        json!({"nqn": ANA_NQN}),
    );
    assert_eq!(
        l[0]["ana_states"][0],
        json!({"ana_group": 1, "ana_state": "inaccessible"})
    );
    assert_eq!(
        l[0]["ana_states"].as_array().unwrap().len(),
        2,
        "one per group (max_namespaces)"
    );
    let log = c.get_log_page(0x0c, 0, 4096).unwrap();
    assert_eq!(
        u16::from_le_bytes([log[8], log[9]]),
        1,
        "one group with namespaces"
    );
    assert_eq!(
        u32::from_le_bytes(log[16..20].try_into().unwrap()),
        1,
        "ANAGRPID 1"
    );
    assert_eq!(log[32], 3, "ANA inaccessible");
    assert_eq!(
        u32::from_le_bytes(log[48..52].try_into().unwrap()),
        1,
        "NSID 1"
    );
    let done: nvmf_common::Done = Default::default();
    let d = done.clone();
    qp.read(
        &ns,
        spdk_io::env::DmaBuf::alloc(4096, 4096).unwrap(),
        0,
        8,
        move |_, c| d.borrow_mut().push(c),
    )
    .map_err(|e| e.error)
    .unwrap();
    nvmf_common::wait(&mut qp, &done, 1);
    let e = done.borrow_mut().pop().unwrap().result.unwrap_err();
    let s = e.status().expect("an NVMe status");
    assert_eq!((s.sct.raw(), s.sc), (3, 0x02), "ANA Inaccessible: {e}");
    query(
        to_app,
        "nvmf_subsystem_listener_set_ana_state",
        json!({"nqn": ANA_NQN, "listen_address": addr, "ana_state": "optimized", "anagrpid": 1}),
    );
    write_read(&mut qp, &ns, 8, &random(4096, 9));
    let log = c.get_log_page(0x0c, 0, 4096).unwrap();
    assert_eq!(log[32], 1, "ANA optimized");

    let port2 = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr2 = json!({"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": port2.to_string()});
    let e = query_err(
        to_app,
        "nvmf_subsystem_add_listener",
        json!({"nqn": ANA_NQN, "listen_address": addr2, "ana_state": "sideways"}),
    );
    assert_eq!(e.code, -32602, "{e}");
    query(
        to_app,
        "nvmf_subsystem_add_listener",
        json!({"nqn": ANA_NQN, "listen_address": addr2, "ana_state": "non_optimized"}),
    );
    let l = query(
        to_app,
        "nvmf_subsystem_get_listeners",
        json!({"nqn": ANA_NQN}),
    );
    assert_eq!(
        l[0]["ana_states"],
        json!([{"ana_group": 1, "ana_state": "optimized"}, {"ana_group": 2, "ana_state": "inaccessible"}]),
        "{l}"
    );
    assert_eq!(
        l[1]["ana_states"],
        json!([{"ana_group": 1, "ana_state": "non_optimized"}, {"ana_group": 2, "ana_state": "non_optimized"}]),
        "{l}"
    );
    l
}
