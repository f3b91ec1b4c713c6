//! The `nvmf_*` methods on an app thread: a transport, a subsystem with a
//! namespace, a host and a listener made through them serve spdk-io's
//! initiator on 127.0.0.1; `nvmf_get_subsystems` has SPDK's shape; the
//! saved configuration, replayed into a fresh target, rebuilds the same
//! state, and the data written before is read back through it.

mod nvmf_common;

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
            call("nvmf_create_transport", json!({"trtype": "TCP", "max_queue_depth": 64, "in_capsule_data_size": 8192}))
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
        assert_eq!(ctrlrs[0]["hostnqn"], HOST);
        assert_eq!(ctrlrs[0]["num_io_qpairs"], 1);
    }

    // Tear the subsystem down and replay what save_config wrote.
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
