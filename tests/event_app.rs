//! The application framework as a library (`spdk_io::event::run`): an
//! embedding program's start callback, its own methods beside the
//! framework's, and stop.

use serde_json::{json, Value};
use spdk_io::event::{self, AppOpts, EventError};
use spdk_io::rpc::{Method, MethodFuture, MethodStates};
use spdk_io::thread::CpuMask;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One app per process: the tests take turns.
static ONE_APP: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn hello(params: Value) -> MethodFuture {
    Box::pin(async move { Ok(json!({"hello": params["name"]})) })
}

fn call(sock: &std::path::Path, method: &str, params: Value) -> Value {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    s.write_all(req.to_string().as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
            return v;
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before a response");
        buf.extend_from_slice(&chunk[..n]);
    }
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
    let e = r.unwrap_err();
    assert!(e.to_string().contains("code 3"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
