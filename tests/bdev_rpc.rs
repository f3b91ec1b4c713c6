//! The bdev layer's JSON-RPC methods, called as the framework calls them:
//! through the handler of each [`Method`] in `bdev::rpc::methods()`.

use serde_json::{json, Value};
use spdk_io::bdev;
use spdk_io::rpc::{Method, MethodStates, RpcResult};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

struct NoWake;
impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

fn dma_env() {
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
}

fn method(name: &str) -> Method {
    bdev::rpc::methods()
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no method {name}"))
}

/// Runs a call whose future completes without waiting on another thread.
fn call(name: &str, params: Value) -> RpcResult {
    let mut f = (method(name).handler)(params);
    let waker = Waker::from(Arc::new(NoWake));
    let mut cx = Context::from_waker(&waker);
    for _ in 0..1000 {
        if let Poll::Ready(r) = f.as_mut().poll(&mut cx) {
            return r;
        }
    }
    panic!("{name} did not complete");
}

#[test]
fn malloc_create_returns_the_name_and_a_second_create_is_file_exists() {
    dma_env();
    let p = json!({"name": "RpcM0", "num_blocks": 64, "block_size": 512});
    assert_eq!(
        call("bdev_malloc_create", p.clone()).unwrap(),
        json!("RpcM0")
    );
    let e = call("bdev_malloc_create", p).unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (-17, "File exists"));
    assert_eq!(
        call("bdev_malloc_delete", json!({"name": "RpcM0"})).unwrap(),
        json!(true)
    );
}

#[test]
fn options_methods_are_startup_only_and_creates_runtime() {
    assert_eq!(method("bdev_set_options").states, MethodStates::STARTUP);
    assert_eq!(
        method("bdev_nvme_set_options").states,
        MethodStates::STARTUP
    );
    assert_eq!(method("bdev_malloc_create").states, MethodStates::RUNTIME);
}

#[test]
fn config_entries_end_with_wait_for_examine() {
    let e = bdev::rpc::config_entries();
    assert_eq!(e.last().unwrap()["method"], "bdev_wait_for_examine");
}
