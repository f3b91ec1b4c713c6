//! The bdev layer's JSON-RPC methods, called as the framework calls them:
//! through the handler of each [`Method`] in `bdev::rpc::methods()`, the
//! future run on a lightweight thread.

use crate::thread_support;

use serde_json::{json, Value};
use spdk_io::bdev;
use spdk_io::rpc::{Method, MethodStates, RpcResult};
use std::cell::RefCell;
use std::rc::Rc;
use thread_support::Harness;

fn dma_env() {
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
}

fn method(name: &str) -> Method {
    bdev::rpc::methods()
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no method {name}"))
}

/// Runs a call's future on a thread of its own until it completes, with
/// `meanwhile` run between polls (to change the world while it waits).
fn call_with(name: &str, params: Value, mut meanwhile: impl FnMut(usize)) -> RpcResult {
    let h = Harness::new(1);
    let out: Rc<RefCell<Option<RpcResult>>> = Rc::default();
    let o = out.clone();
    let fut = (method(name).handler)(params);
    h.t(0)
        .spawn_local(async move { *o.borrow_mut() = Some(fut.await) })
        .expect("spawn");
    for i in 0..100_000 {
        h.poll_thread(0);
        if out.borrow().is_some() {
            break;
        }
        meanwhile(i);
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
    let r = out.borrow_mut().take().expect("the call completed");
    h.finish();
    r
}

fn call(name: &str, params: Value) -> RpcResult {
    call_with(name, params, |_| {})
}

fn err(name: &str, params: Value) -> (i32, String) {
    let e = call(name, params).expect_err("the call should fail");
    (e.code, e.message)
}

#[test]
fn malloc_create_returns_the_name_and_a_second_create_is_file_exists() {
    dma_env();
    let p = json!({"name": "RpcM0", "num_blocks": 64, "block_size": 512});
    assert_eq!(
        call("bdev_malloc_create", p.clone()).unwrap(),
        json!("RpcM0")
    );
    assert_eq!(err("bdev_malloc_create", p), (-17, "File exists".into()));
    assert_eq!(
        call("bdev_malloc_delete", json!({"name": "RpcM0"})).unwrap(),
        json!(true)
    );
    assert_eq!(
        err("bdev_malloc_delete", json!({"name": "RpcM0"})),
        (-19, "No such device".into())
    );
}

#[test]
fn methods_are_registered_in_the_states_spdk_registers_them() {
    assert_eq!(method("bdev_set_options").states, MethodStates::STARTUP);
    assert_eq!(
        method("bdev_nvme_set_options").states,
        MethodStates::STARTUP | MethodStates::RUNTIME
    );
    for m in [
        "bdev_malloc_create",
        "bdev_get_bdevs",
        "bdev_wait_for_examine",
        "bdev_set_qos_limit",
    ] {
        assert_eq!(method(m).states, MethodStates::RUNTIME, "{m}");
    }
    let names: Vec<_> = bdev::rpc::methods().iter().map(|m| m.name).collect();
    let mut dedup = names.clone();
    dedup.sort_unstable();
    dedup.dedup();
    assert_eq!(dedup.len(), names.len(), "a method is listed twice");
}

#[test]
fn an_unknown_parameter_is_refused_by_name() {
    let (code, msg) = err(
        "bdev_malloc_create",
        json!({"name": "RpcUnk", "num_blocks": 8, "block_size": 512, "sise": 1}),
    );
    assert_eq!(code, -32602);
    assert!(msg.contains("sise"), "{msg}");
    let (code, msg) = err(
        "bdev_null_create",
        json!({"name": "RpcUnk", "num_blocks": "x", "block_size": 512}),
    );
    assert_eq!(code, -32602);
    assert!(msg.contains("invalid type"), "{msg}");
}

#[test]
fn every_parameter_the_current_client_sends_is_accepted() {
    dma_env();
    // What spdk-rpc 26.9 sends for `bdev_malloc_create -b X 1 512` etc.:
    // store_true flags go as false, unset options are left out.
    let m = json!({"num_blocks": 2048, "block_size": 512, "name": "RpcCli0",
        "md_interleave": false, "dif_is_head_of_md": false});
    assert_eq!(call("bdev_malloc_create", m).unwrap(), json!("RpcCli0"));
    let n = json!({"num_blocks": 2048, "block_size": 512, "physical_block_size": 4096, "name": "RpcCli1",
        "md_size": 0, "dif_type": 0, "dif_is_head_of_md": false, "dif_pi_format": 0,
        "preferred_write_alignment": 0, "preferred_write_granularity": 0, "optimal_write_size": 0,
        "preferred_unmap_alignment": 0, "preferred_unmap_granularity": 0});
    assert_eq!(call("bdev_null_create", n).unwrap(), json!("RpcCli1"));
    let f = tempfile("rpc-cli-aio", 1 << 20);
    let a = json!({"filename": f, "name": "RpcCli2", "block_size": 512,
        "readonly": false, "fallocate": false, "nowait": false});
    assert_eq!(call("bdev_aio_create", a).unwrap(), json!("RpcCli2"));
    let (code, msg) = err(
        "bdev_malloc_create",
        json!({"num_blocks": 8, "block_size": 512, "name": "RpcCli3", "md_size": 8}),
    );
    assert_eq!(code, -22, "{msg}");
    for n in ["RpcCli0", "RpcCli1", "RpcCli2"] {
        let del = ["bdev_malloc_delete", "bdev_null_delete", "bdev_aio_delete"];
        let d = del.iter().find(|d| call(d, json!({"name": n})).is_ok());
        assert!(d.is_some(), "{n} not deleted");
    }
}

fn tempfile(tag: &str, len: u64) -> String {
    let p = std::env::temp_dir().join(format!("{tag}-{}.img", std::process::id()));
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(len).unwrap();
    p.display().to_string()
}

#[test]
fn get_bdevs_objects_have_spdks_shape() {
    dma_env();
    call(
        "bdev_null_create",
        json!({"name": "RpcShape0", "num_blocks": 16, "block_size": 4096}),
    )
    .unwrap();
    let v = call("bdev_get_bdevs", json!({"name": "RpcShape0"})).unwrap();
    let b = &v.as_array().unwrap()[0];
    for k in [
        "name",
        "aliases",
        "product_name",
        "block_size",
        "num_blocks",
        "uuid",
        "assigned_rate_limits",
        "claimed",
        "zoned",
        "supported_io_types",
        "driver_specific",
        "preferred_write_alignment",
        "optimal_write_size",
    ] {
        assert!(b.get(k).is_some(), "missing {k}: {b}");
    }
    assert_eq!(b["block_size"], 4096);
    assert_eq!(b["num_blocks"], 16);
    assert_eq!(b["product_name"], "Null disk");
    assert_eq!(b["claimed"], false);
    assert_eq!(
        b["assigned_rate_limits"],
        json!({"rw_ios_per_sec": 0, "rw_mbytes_per_sec": 0, "r_mbytes_per_sec": 0, "w_mbytes_per_sec": 0})
    );
    let io = b["supported_io_types"].as_object().unwrap();
    assert_eq!(io.len(), 21, "every SPDK I/O type is listed");
    assert_eq!(
        (io["read"].clone(), io["nvme_admin"].clone()),
        (json!(true), json!(false))
    );
    let all = call("bdev_get_bdevs", Value::Null).unwrap();
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["name"] == "RpcShape0"));
    call(
        "bdev_split_create",
        json!({"base_bdev": "RpcShape0", "split_count": 2}),
    )
    .unwrap();
    let v = call("bdev_get_bdevs", json!({"name": "RpcShape0"})).unwrap();
    assert_eq!(
        (v[0]["claimed"].clone(), v[0]["claim_type"].clone()),
        (json!(true), json!("exclusive_write"))
    );
    call("bdev_split_delete", json!({"base_bdev": "RpcShape0"})).unwrap();
    call("bdev_null_delete", json!({"name": "RpcShape0"})).unwrap();
}

#[test]
fn get_bdevs_of_a_missing_name_is_no_such_device() {
    assert_eq!(
        err("bdev_get_bdevs", json!({"name": "RpcNobody"})),
        (-19, "No such device".into())
    );
}

#[test]
fn get_bdevs_with_a_timeout_waits_for_the_bdev_to_appear() {
    let r = call_with(
        "bdev_get_bdevs",
        json!({"name": "RpcLate0", "timeout": 20_000}),
        |i| {
            if i == 20 {
                bdev::null::create(bdev::null::NullOpts::new("RpcLate0", 8, 512)).unwrap();
            }
        },
    );
    assert_eq!(r.unwrap()[0]["name"], "RpcLate0");
    call("bdev_null_delete", json!({"name": "RpcLate0"})).unwrap();
}

#[test]
fn wait_for_examine_takes_no_params_and_examine_needs_auto_examine_off() {
    assert_eq!(
        call("bdev_wait_for_examine", Value::Null).unwrap(),
        json!(true)
    );
    let (code, msg) = err("bdev_wait_for_examine", json!({"x": 1}));
    assert_eq!(
        (code, msg.as_str()),
        (-32602, "bdev_wait_for_examine requires no parameters")
    );
    assert_eq!(
        err("bdev_examine", json!({"name": "RpcAny"})),
        (-22, "Invalid argument".into())
    );
}

#[test]
fn qos_limit_needs_a_limit_and_an_existing_bdev_and_is_shown_rounded() {
    call(
        "bdev_null_create",
        json!({"name": "RpcQos0", "num_blocks": 64, "block_size": 512}),
    )
    .unwrap();
    assert_eq!(
        err("bdev_set_qos_limit", json!({"name": "RpcQos0"})),
        (-22, "No rate limits specified".into())
    );
    assert_eq!(
        err(
            "bdev_set_qos_limit",
            json!({"name": "RpcQosNone", "rw_ios_per_sec": 1000})
        ),
        (-19, "No such device".into())
    );
    call(
        "bdev_set_qos_limit",
        json!({"name": "RpcQos0", "rw_ios_per_sec": 1500, "w_mbytes_per_sec": 7}),
    )
    .unwrap();
    let v = call("bdev_get_bdevs", json!({"name": "RpcQos0"})).unwrap();
    assert_eq!(
        v[0]["assigned_rate_limits"],
        json!({"rw_ios_per_sec": 2000, "rw_mbytes_per_sec": 0, "r_mbytes_per_sec": 0, "w_mbytes_per_sec": 7})
    );
    let cfg = bdev::rpc::config_entries();
    let at = cfg
        .iter()
        .position(|e| e["params"]["name"] == "RpcQos0")
        .unwrap();
    assert_eq!(
        cfg[at + 1],
        json!({"method": "bdev_set_qos_limit", "params": {"name": "RpcQos0", "rw_ios_per_sec": 2000, "w_mbytes_per_sec": 7}})
    );
    call("bdev_null_delete", json!({"name": "RpcQos0"})).unwrap();
}

#[test]
fn error_bdev_create_answers_true_and_injected_errors_can_be_cleared() {
    dma_env();
    call(
        "bdev_malloc_create",
        json!({"name": "RpcErrBase", "num_blocks": 64, "block_size": 512}),
    )
    .unwrap();
    assert_eq!(
        call("bdev_error_create", json!({"base_name": "RpcErrBase"})).unwrap(),
        json!(true)
    );
    let p = json!({"name": "EE_RpcErrBase", "io_type": "read", "error_type": "failure", "num": 2});
    assert_eq!(call("bdev_error_inject_error", p).unwrap(), json!(true));
    let (code, msg) = err(
        "bdev_error_inject_error",
        json!({"name": "EE_RpcErrBase", "io_type": "trim", "error_type": "failure"}),
    );
    assert_eq!(code, -32602);
    assert!(msg.contains("trim"), "{msg}");
    assert_eq!(
        err(
            "bdev_error_inject_error",
            json!({"name": "RpcErrBase", "io_type": "all", "error_type": "failure"})
        ),
        (-19, "No such device".into())
    );
    let d = bdev::open("EE_RpcErrBase", false).unwrap();
    let ch = d.get_io_channel().unwrap();
    let read = || {
        let st: Rc<RefCell<Option<bdev::IoStatus>>> = Rc::default();
        let s = st.clone();
        d.read_blocks(
            &ch,
            bdev::IoBuf::new(512),
            0,
            1,
            Box::new(move |c: bdev::IoCompletion| *s.borrow_mut() = Some(c.status)),
        )
        .unwrap();
        for _ in 0..1000 {
            ch.poll();
            if let Some(x) = *st.borrow() {
                return x;
            }
        }
        panic!("read did not complete");
    };
    assert_eq!(read(), bdev::IoStatus::Failed);
    let p = json!({"name": "EE_RpcErrBase", "io_type": "clear", "error_type": "failure"});
    call("bdev_error_inject_error", p).unwrap();
    assert_eq!(
        read(),
        bdev::IoStatus::Success,
        "the second injected failure was cleared"
    );
    drop(ch);
    d.close();
    call("bdev_error_delete", json!({"name": "EE_RpcErrBase"})).unwrap();
    call("bdev_malloc_delete", json!({"name": "RpcErrBase"})).unwrap();
}

#[test]
fn split_and_passthru_answer_their_names() {
    call(
        "bdev_null_create",
        json!({"name": "RpcVb0", "num_blocks": 64, "block_size": 512}),
    )
    .unwrap();
    assert_eq!(
        call(
            "bdev_split_create",
            json!({"base_bdev": "RpcVb0", "split_count": 2})
        )
        .unwrap(),
        json!(["RpcVb0p0", "RpcVb0p1"])
    );
    assert_eq!(
        call(
            "bdev_passthru_create",
            json!({"base_bdev_name": "RpcVb0p1", "name": "RpcPt0"})
        )
        .unwrap(),
        json!("RpcPt0")
    );
    assert_eq!(
        call("bdev_passthru_delete", json!({"name": "RpcPt0"})).unwrap(),
        json!(true)
    );
    assert_eq!(
        call("bdev_split_delete", json!({"base_bdev": "RpcVb0"})).unwrap(),
        json!(true)
    );
    assert_eq!(
        err("bdev_split_delete", json!({"base_bdev": "RpcVb0"})),
        (-32602, "No such file or directory".into()),
        "SPDK's answer for a base with no split"
    );
    let later = json!({"base_bdev": "RpcVbLater", "split_count": 2});
    assert_eq!(call("bdev_split_create", later.clone()).unwrap(), json!([]));
    assert_eq!(
        err("bdev_split_create", later),
        (
            -32602,
            "Failed to create 2 split bdevs from 'RpcVbLater': File exists".into()
        )
    );
    assert_eq!(
        call("bdev_split_delete", json!({"base_bdev": "RpcVbLater"})).unwrap(),
        json!(true),
        "a split waiting for its base is deleted too"
    );
    assert_eq!(
        err("bdev_passthru_delete", json!({"name": "RpcVb0"})),
        (-19, "No such device".into()),
        "a delete of another module's bdev is refused"
    );
    call("bdev_null_delete", json!({"name": "RpcVb0"})).unwrap();
}
