//! `spdk-io tgt --json`: SPDK's config loaded at start through the method
//! table (startup entries, then init, then runtime entries), its errors,
//! and the save_config round trip.

use crate::tgt_support;

use serde_json::{json, Value};
use tgt_support::*;

fn write_config(dir: &std::path::Path, name: &str, bdev_config: Value) -> String {
    let p = dir.join(name);
    let cfg = json!({"subsystems": [{"subsystem": "bdev", "config": bdev_config}]});
    std::fs::write(&p, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    p.display().to_string()
}

#[test]
fn a_config_loads_at_start_and_its_saved_form_loads_back_to_the_same_state() {
    let dir = scratch("roundtrip-cfg");
    // bdev_set_options (startup only) after a runtime entry: the startup
    // round runs it first, as SPDK does.
    let cfg = write_config(
        &dir,
        "in.json",
        json!([
            {"method": "bdev_malloc_create", "params": {"name": "Malloc0", "num_blocks": 2048, "block_size": 512}},
            {"method": "bdev_set_options", "params": {"bdev_io_pool_size": 65535}},
            {"method": "bdev_null_create", "params": {"name": "Null0", "num_blocks": 4096, "block_size": 4096}},
            {"method": "bdev_wait_for_examine"},
        ]),
    );
    let t = Tgt::start("roundtrip-1", &["--json", &cfg]);
    let saved = t.ok("framework_get_config", Some(json!({"name": "bdev"})));
    let methods: Vec<&str> = saved
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["method"].as_str().unwrap())
        .collect();
    assert!(methods.contains(&"bdev_malloc_create"), "{saved}");
    assert!(methods.contains(&"bdev_null_create"), "{saved}");
    assert_eq!(methods.last(), Some(&"bdev_wait_for_examine"));
    let again = write_config(&dir, "saved.json", saved.clone());
    drop(t);
    let t = Tgt::start("roundtrip-2", &["--json", &again]);
    assert_eq!(
        t.ok("framework_get_config", Some(json!({"name": "bdev"}))),
        saved
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failing_entry_stops_the_start_naming_its_line_and_method() {
    let dir = scratch("bad-cfg");
    let cfg = write_config(
        &dir,
        "bad.json",
        json!([
            {"method": "bdev_null_create", "params": {"name": "Null0", "num_blocks": 8, "block_size": 512}},
            {"method": "bdev_null_create", "params": {"name": "Null0", "num_blocks": 8, "block_size": 512}},
        ]),
    );
    let mut child = command(&dir.join("s.sock"), &["--json", &cfg])
        .spawn()
        .unwrap();
    let (st, err) = wait_exit(&mut child);
    assert!(!st.success());
    assert!(err.contains("subsystems[0].config[1]"), "{err}");
    assert!(err.contains("config line"), "{err}");
    assert!(err.contains("bdev_null_create"), "{err}");
    assert!(
        !dir.join("s.sock").exists(),
        "the socket is removed after a failed start"
    );
    let unknown = write_config(
        &dir,
        "unknown.json",
        json!([{"method": "bdev_frob_create"}]),
    );
    let mut child = command(&dir.join("s.sock"), &["--json", &unknown])
        .spawn()
        .unwrap();
    let (st, err) = wait_exit(&mut child);
    assert!(!st.success());
    assert!(
        err.contains("Method 'bdev_frob_create' was not found"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_ignore_init_errors_goes_on_past_a_failed_entry() {
    let dir = scratch("ignore-cfg");
    let cfg = write_config(
        &dir,
        "c.json",
        json!([
            {"method": "bdev_frob_create"},
            {"method": "bdev_null_create", "params": {"name": "Null1", "num_blocks": 8, "block_size": 512}},
        ]),
    );
    let t = Tgt::start_at(
        dir.clone(),
        dir.join("s.sock"),
        &["--json", &cfg, "--json-ignore-init-errors"],
    );
    let saved = t.ok("framework_get_config", Some(json!({"name": "bdev"})));
    assert!(saved.to_string().contains("Null1"), "{saved}");
}

#[test]
fn a_config_that_is_not_json_is_refused_at_start() {
    let dir = scratch("notjson-cfg");
    let p = dir.join("c.json");
    std::fs::write(&p, "{\"subsystems\": [").unwrap();
    let mut child = command(&dir.join("s.sock"), &["--json", p.to_str().unwrap()])
        .spawn()
        .unwrap();
    let (st, err) = wait_exit(&mut child);
    assert!(!st.success());
    assert!(err.contains("Parsing JSON configuration failed"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn with_wait_for_rpc_a_configs_runtime_entries_load_after_framework_start_init() {
    let dir = scratch("wait-cfg");
    let cfg = write_config(
        &dir,
        "c.json",
        json!([
            {"method": "bdev_set_options", "params": {"bdev_io_pool_size": 65535}},
            {"method": "bdev_null_create", "params": {"name": "Null7", "num_blocks": 8, "block_size": 512}},
        ]),
    );
    let t = Tgt::start_at(
        dir.clone(),
        dir.join("s.sock"),
        &["--json", &cfg, "--wait-for-rpc"],
    );
    let v = t.call("framework_get_config", Some(json!({"name": "bdev"})));
    assert_eq!(
        v["error"]["code"], -1,
        "still waiting for framework_start_init: {v}"
    );
    assert_eq!(t.ok("framework_start_init", None), json!(true));
    assert_eq!(t.ok("framework_wait_init", None), json!(true));
    let saved = t.ok("framework_get_config", Some(json!({"name": "bdev"})));
    assert!(saved.to_string().contains("Null7"), "{saved}");
}

#[test]
fn a_target_waiting_for_rpc_stops_cleanly_on_sigterm_answering_its_waiters() {
    let dir = scratch("wait-stop");
    let cfg = write_config(&dir, "c.json", json!([]));
    let mut t = Tgt::start_at(
        dir.clone(),
        dir.join("s.sock"),
        &["--json", &cfg, "--wait-for-rpc"],
    );
    let mut waiter = t.connect();
    use std::io::Write;
    waiter
        .write_all(
            request(1, "framework_wait_init", None)
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let (st, err) = t.stop_with(nix::sys::signal::Signal::SIGTERM);
    assert!(st.success(), "{st}: {err}");
    let v =
        read_value(&mut waiter, &mut Vec::new()).expect("the waiter is answered before the close");
    assert_eq!(v["error"]["code"], -32603, "{v}");
}
