//! The application framework as a library (`spdk_io::event::run`): an
//! embedding program's start callback, its own methods beside the
//! framework's, and stop.

use crate::rpc_client;

use rpc_client::call;
use serde_json::{json, Value};
use spdk_io::event::{self, AppOpts, EventError};
use spdk_io::rpc::{Method, MethodFuture, MethodStates};
use spdk_io::thread::CpuMask;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::ONE_APP;

fn hello(params: Value) -> MethodFuture {
    Box::pin(async move { Ok(json!({"hello": params["name"]})) })
}

#[test]
fn an_embedding_program_serves_its_own_methods_and_stops_the_app() {
    let _one = ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("spdk-io-event-app-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("app.sock");
    let opts = AppOpts {
        name: "embed".into(),
        cpumask: CpuMask::single(0),
        rpc_socket: Some(sock.clone()),
        no_huge: true,
        extra_methods: vec![Method {
            name: "my_hello",
            states: MethodStates::RUNTIME,
            handler: hello,
        }],
        ..AppOpts::default()
    };
    static STARTED: AtomicBool = AtomicBool::new(false);
    let client = {
        let sock = sock.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !STARTED.load(Ordering::SeqCst) {
                assert!(Instant::now() < deadline, "the app did not start");
                std::thread::sleep(Duration::from_millis(5));
            }
            let v = call(&sock, "my_hello", json!({"name": "spdk"}));
            assert_eq!(v["result"], json!({"hello": "spdk"}));
            let m = call(&sock, "rpc_get_methods", Value::Null);
            assert!(m["result"].as_array().unwrap().contains(&json!("my_hello")));
            event::stop(0);
        })
    };
    let r = event::run(opts, || STARTED.store(true, Ordering::SeqCst));
    client.join().unwrap();
    assert!(r.is_ok(), "{r:?}");
    assert!(!sock.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_non_zero_stop_is_an_error_and_a_second_app_in_the_process_is_refused() {
    let _one = ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("spdk-io-event-app2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let opts = AppOpts {
        rpc_socket: Some(dir.join("a.sock")),
        no_huge: true,
        ..AppOpts::default()
    };
    let o2 = opts.clone();
    let r = event::run(opts, move || {
        // Inside the running app, a second one is refused at once.
        let second = event::run(o2, || {});
        assert!(
            matches!(second, Err(EventError::AlreadyRunning)),
            "{second:?}"
        );
        event::stop(3);
    });
    assert!(matches!(r, Err(EventError::Stopped(3))), "{r:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

static COMPLETED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Reads a null bdev in a loop on the app thread, counting completions.
async fn io_loop() {
    let Ok(d) = spdk_io::bdev::open("NullIo", false) else {
        return;
    };
    let Ok(ch) = d.get_io_channel() else { return };
    let mut buf = spdk_io::bdev::IoBuf::new(4096);
    while !STOP_IO.load(Ordering::SeqCst) {
        match d.read_async(&ch, buf, 0).await {
            Ok(b) => buf = b,
            Err(_) => return,
        }
        COMPLETED.fetch_add(1, Ordering::SeqCst);
    }
}

static STOP_IO: AtomicBool = AtomicBool::new(false);

#[test]
fn io_on_the_app_thread_goes_on_while_a_client_floods_the_server() {
    let _one = ONE_APP.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("spdk-io-event-app3-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("a.sock");
    let cfg = dir.join("c.json");
    std::fs::write(
        &cfg,
        r#"{"subsystems":[{"subsystem":"bdev","config":[{"method":"bdev_null_create","params":{"name":"NullIo","num_blocks":1024,"block_size":4096}}]}]}"#,
    )
    .unwrap();
    let opts = AppOpts {
        rpc_socket: Some(sock.clone()),
        json_config: Some(cfg),
        no_huge: true,
        ..AppOpts::default()
    };
    static UP: AtomicBool = AtomicBool::new(false);
    let client = std::thread::spawn(move || {
        let res = std::panic::catch_unwind(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !UP.load(Ordering::SeqCst) {
                assert!(Instant::now() < deadline, "the app did not start");
                std::thread::sleep(Duration::from_millis(5));
            }
            // A client sends 64 MiB that never completes a request, and
            // another sends requests without reading the answers.
            let mut big = UnixStream::connect(&sock).unwrap();
            let mut noread = UnixStream::connect(&sock).unwrap();
            noread.set_nonblocking(true).unwrap();
            let flood = std::thread::spawn(move || {
                let chunk = vec![b' '; 1 << 20];
                let _ = big.write_all(b"{\"method\":\"x\",\"params\":\"");
                for _ in 0..64 {
                    if big.write_all(&chunk).is_err() {
                        break;
                    }
                }
            });
            let req = json!({"jsonrpc": "2.0", "id": 1, "method": "rpc_get_methods"}).to_string();
            for _ in 0..1000 {
                let _ = noread.write(req.as_bytes());
            }
            // While both are connected, the I/O keeps completing (a bounded
            // wait for progress, not a speed claim).
            let before = COMPLETED.load(Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(20);
            while COMPLETED.load(Ordering::SeqCst) < before + 1000 {
                assert!(
                    Instant::now() < deadline,
                    "I/O on the app thread stalled during the flood"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            flood.join().unwrap();
            let v = call(&sock, "spdk_get_version", Value::Null);
            assert!(v["result"]["version"].is_string(), "{v}");
        });
        STOP_IO.store(true, Ordering::SeqCst);
        event::stop(if res.is_ok() { 0 } else { 1 });
        if let Err(p) = res {
            std::panic::resume_unwind(p);
        }
    });
    let r = event::run(opts, || {
        let _ = spdk_io::thread::spawn_local(io_loop());
        UP.store(true, Ordering::SeqCst);
    });
    client.join().unwrap();
    assert!(r.is_ok(), "{r:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
