//! `spdk-io tgt`'s JSON-RPC server on the wire: framing, concurrency,
//! batches, SPDK's errors and states, a second instance, shutdown, core
//! masks, thread and log methods (bad input: `tgt_bad_input`).

use crate::tgt_support;

use serde_json::{json, Value};
use std::io::Write;
use tgt_support::*;

#[test]
fn concatenated_requests_without_framing_are_each_answered() {
    let t = Tgt::start("frames", &[]);
    let mut s = t.connect();
    // A pretty-printed one with tabs, one with a newline, one glued on,
    // and one sent a byte at a time.
    let pretty = "{\n\t\"jsonrpc\": \"2.0\",\n\t\"method\": \"spdk_get_version\",\n\t\"id\": 1\n}";
    let text = format!(
        "{pretty}{}\n{}",
        request(2, "log_get_print_level", None),
        request(3, "rpc_get_methods", None)
    );
    s.write_all(text.as_bytes()).unwrap();
    for b in request(4, "log_get_level", None).to_string().bytes() {
        s.write_all(&[b]).unwrap();
        s.flush().unwrap();
    }
    let mut buf = Vec::new();
    let mut ids: Vec<u64> = (0..4)
        .map(|_| {
            read_value(&mut s, &mut buf).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3, 4]);
}

#[test]
fn requests_in_flight_on_one_connection_are_answered_as_they_complete() {
    let t = Tgt::start("inflight", &["--wait-for-rpc"]);
    let mut s = t.connect();
    let mut buf = Vec::new();
    // framework_wait_init completes only after framework_start_init.
    s.write_all(
        request(1, "framework_wait_init", None)
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    s.write_all(request(2, "spdk_get_version", None).to_string().as_bytes())
        .unwrap();
    let first = read_value(&mut s, &mut buf).unwrap();
    assert_eq!(first["id"], 2, "{first}");
    s.write_all(
        request(3, "framework_start_init", None)
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let mut rest: Vec<Value> = (0..2)
        .map(|_| read_value(&mut s, &mut buf).unwrap())
        .collect();
    rest.sort_by_key(|v| v["id"].as_u64());
    assert_eq!(rest[0], json!({"jsonrpc": "2.0", "id": 1, "result": true}));
    assert_eq!(rest[1], json!({"jsonrpc": "2.0", "id": 3, "result": true}));
}

#[test]
fn a_batch_is_answered_with_an_array_and_notifications_get_no_result() {
    let t = Tgt::start("batch", &[]);
    let mut s = t.connect();
    let batch = json!([
        request(1, "spdk_get_version", None),
        {"jsonrpc": "2.0", "method": "log_get_level"},
        request(2, "no_such_method", None),
        5,
    ]);
    s.write_all(batch.to_string().as_bytes()).unwrap();
    let v = read_value(&mut s, &mut Vec::new()).unwrap();
    let a = v.as_array().unwrap_or_else(|| panic!("not an array: {v}"));
    assert_eq!(a.len(), 3, "{v}");
    assert!(a[0]["result"]["version"].is_string());
    assert_eq!(
        a[1]["error"],
        json!({"code": -32601, "message": "Method not found"})
    );
    assert_eq!(a[2]["error"]["code"], -32600);
    // A lone notification: nothing comes back, the next request is answered.
    s.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_version\"}")
        .unwrap();
    s.write_all(request(9, "spdk_get_version", None).to_string().as_bytes())
        .unwrap();
    assert_eq!(read_value(&mut s, &mut Vec::new()).unwrap()["id"], 9);
}

#[test]
fn invalid_requests_unknown_methods_and_mistyped_params_get_spdk_errors() {
    let t = Tgt::start("errors", &[]);
    let mut s = t.connect();
    let mut buf = Vec::new();
    let mut ask = |text: String| {
        s.write_all(text.as_bytes()).unwrap();
        read_value(&mut s, &mut buf).unwrap()
    };
    let v = ask(r#"{"jsonrpc":"2.0","method":5,"id":1}"#.into());
    assert_eq!(
        v["error"],
        json!({"code": -32600, "message": "Invalid request"})
    );
    let v = ask(request(2, "bdev_frobnicate", None).to_string());
    assert_eq!(
        v["error"],
        json!({"code": -32601, "message": "Method not found"})
    );
    assert_eq!(v["id"], 2);
    let v = ask(request(3, "rpc_get_methods", Some(json!({"current": "yes"}))).to_string());
    assert_eq!(v["error"]["code"], -32602);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid type"),
        "{v}"
    );
    let v = ask(request(4, "rpc_get_methods", Some(json!({"curent": true}))).to_string());
    assert!(
        v["error"]["message"].as_str().unwrap().contains("curent"),
        "{v}"
    );
    let v = ask(request(5, "framework_get_config", Some(json!({"name": "nope"}))).to_string());
    assert_eq!(
        v["error"],
        json!({"code": -32602, "message": "Subsystem 'nope' not found"})
    );
    let v = ask(request(6, "log_set_print_level", Some(json!({"level": "LOUD"}))).to_string());
    assert_eq!(
        v["error"],
        json!({"code": -32602, "message": "invalid log level"})
    );
    t.assert_alive();
}

#[test]
fn methods_are_refused_in_the_wrong_state_with_spdk_messages() {
    let t = Tgt::start("state", &["--wait-for-rpc"]);
    let v = t.call("framework_get_subsystems", None);
    assert_eq!(v["error"]["code"], -1, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("after framework is initialized"));
    let current = t.ok("rpc_get_methods", Some(json!({"current": true})));
    assert!(current
        .as_array()
        .unwrap()
        .contains(&json!("framework_start_init")));
    assert!(!current
        .as_array()
        .unwrap()
        .contains(&json!("framework_get_subsystems")));
    assert_eq!(t.ok("framework_start_init", None), json!(true));
    let v = t.call("framework_start_init", None);
    assert_eq!(v["error"]["code"], -1, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("before framework is initialized"));
    assert_eq!(
        t.ok("framework_get_subsystems", None),
        json!([
            {"subsystem": "bdev", "depends_on": []},
            {"subsystem": "nvmf", "depends_on": ["bdev"]}
        ])
    );
}

#[test]
fn a_second_instance_on_the_same_socket_refuses_to_start() {
    let t = Tgt::start("twice", &[]);
    let mut second = command(&t.sock, &[]).spawn().unwrap();
    let (st, err) = wait_exit(&mut second);
    assert!(!st.success());
    assert!(err.contains("in use"), "{err}");
    assert!(err.contains("spdk.sock.lock"), "{err}");
    t.assert_alive();
}

#[test]
fn spdk_kill_instance_sigterm_shuts_down_cleanly_and_removes_the_socket_and_lock() {
    let mut t = Tgt::start("kill", &[]);
    assert_eq!(
        t.ok("spdk_kill_instance", Some(json!({"sig_name": "SIGTERM"}))),
        json!(true)
    );
    let mut child = t.child.take().unwrap();
    let (st, err) = wait_exit(&mut child);
    assert!(st.success(), "{st}: {err}");
    assert!(!t.sock.exists());
    assert!(!t.dir.join("spdk.sock.lock").exists());
    let v = t.call_if_up();
    assert!(v.is_none());
}

#[test]
fn sigint_shuts_down_cleanly() {
    let mut t = Tgt::start("sigint", &[]);
    let (st, err) = t.stop_with(nix::sys::signal::Signal::SIGINT);
    assert!(st.success(), "{st}: {err}");
}

#[test]
fn thread_and_reactor_listings_show_the_app_thread_and_the_rpc_poller() {
    let t = Tgt::start("threads", &[]);
    let s = t.ok("thread_get_stats", None);
    assert_eq!(s["tick_rate"], 1_000_000_000u64);
    assert_eq!(s["threads"][0]["name"], "app_thread");
    assert_eq!(s["threads"][0]["timed_pollers_count"], 1);
    let p = t.ok("thread_get_pollers", None);
    assert_eq!(
        p["threads"][0]["timed_pollers"][0]["name"],
        "rpc_subsystem_poll_servers"
    );
    assert_eq!(
        s["threads"][0]["cpumask"], "1",
        "hex without 0x, as SPDK writes it"
    );
    assert!(
        p["threads"][0]["timed_pollers"][0]["period_ticks"]
            .as_u64()
            .unwrap()
            > 0
    );
    let c = t.ok("thread_get_io_channels", None);
    assert!(c["threads"][0]["io_channels"].is_array());
    let r = t.ok("framework_get_reactors", None);
    assert_eq!(r["reactors"][0]["lcore"], 0);
    assert_eq!(r["reactors"][0]["lw_threads"][0]["name"], "app_thread");
    // The core's CPU time since the start grows, as /proc/stat counts it
    // (the reactor polls, so its core is busy).
    let cpu = |r: &serde_json::Value| {
        ["usr", "sys", "irq"].map(|k| r["reactors"][0][k].as_u64().unwrap())
    };
    let first = cpu(&r);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = cpu(&t.ok("framework_get_reactors", None));
        assert!(
            now.iter().zip(first).all(|(n, f)| *n >= f),
            "{now:?} < {first:?}"
        );
        if now[0] + now[1] > first[0] + first[1] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "usr and sys stay at {now:?}"
        );
    }
}

#[test]
fn log_levels_and_flags_are_set_and_read_back() {
    let t = Tgt::start("log", &[]);
    assert_eq!(
        t.ok("log_set_print_level", Some(json!({"level": "debug"}))),
        json!(true)
    );
    assert_eq!(t.ok("log_get_print_level", None), json!("DEBUG"));
    assert_eq!(
        t.ok("log_set_level", Some(json!({"level": "ERROR"}))),
        json!(true)
    );
    assert_eq!(t.ok("log_get_level", None), json!("ERROR"));
    assert_eq!(
        t.ok("log_set_flag", Some(json!({"flag": "bdev"}))),
        json!(true)
    );
    assert_eq!(t.ok("log_get_flags", None)["bdev"], json!(true));
    assert_eq!(
        t.ok("log_clear_flag", Some(json!({"flag": "bdev"}))),
        json!(true)
    );
    assert_eq!(t.ok("log_get_flags", None)["bdev"], json!(false));
    let v = t.call("log_set_flag", Some(json!({"flag": "nonesuch"})));
    assert_eq!(
        v["error"],
        json!({"code": -32602, "message": "invalid log flag"})
    );
}

/// The first two cores this process may run on, if it may run on two.
fn two_cores() -> Option<(usize, usize)> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok()?;
    let mut it = (0..nix::sched::CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false));
    Some((it.next()?, it.next()?))
}

#[test]
fn a_two_core_mask_runs_a_reactor_per_core_with_the_app_thread_on_the_first() {
    let Some((a, b)) = two_cores() else {
        // One core (the test guest): a mask naming a core the process may
        // not run on is refused at start, naming the core.
        let dir = scratch("onecore");
        let mut child = command(&dir.join("s.sock"), &["-m", "[0,1]"])
            .spawn()
            .unwrap();
        let (st, err) = wait_exit(&mut child);
        assert!(!st.success());
        assert!(err.contains("core 1"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let mask = format!("[{a},{b}]");
    let t = Tgt::start("twocores", &["-m", &mask]);
    let r = t.ok("framework_get_reactors", None);
    let reactors = r["reactors"].as_array().unwrap();
    assert_eq!(reactors.len(), 2, "{r}");
    assert_eq!(reactors[0]["lcore"], a);
    assert_eq!(reactors[1]["lcore"], b);
    assert_eq!(reactors[0]["lw_threads"][0]["name"], "app_thread");
}

/// The poll groups' idle waits and the first reactor's idle ticks.
fn idle_waits_and_ticks(t: &Tgt) -> (u64, u64) {
    let s = t.ok("nvmf_get_stats", None);
    let waits = s["poll_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["idle_waits"].as_u64().unwrap())
        .sum();
    let r = t.ok("framework_get_reactors", None);
    (waits, r["reactors"][0]["idle"].as_u64().unwrap())
}

/// Waits (bounded) until the target's poll groups have waited.
fn until_poll_groups_wait(t: &Tgt) {
    let deadline = std::time::Instant::now() + WAIT;
    while idle_waits_and_ticks(t).0 == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no idle poll group ever waited"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn with_busy_poll_no_poll_group_ever_waits() {
    let t = Tgt::start("busy-poll", &["--busy-poll"]);
    let r = t.ok("framework_get_reactors", None);
    assert_eq!(r["reactors"][0]["in_interrupt"], false);
    t.ok("nvmf_create_transport", Some(json!({"trtype": "TCP"})));
    // 50 ms of idle reactor time: far past the idle spell after which a
    // poll group allowed to wait would have waited.
    let (_, idle0) = idle_waits_and_ticks(&t);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (waits, idle) = idle_waits_and_ticks(&t);
        assert_eq!(waits, 0, "a poll group waited on a busy-polling reactor");
        if idle > idle0 + 50_000_000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reactor never idled"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn by_default_idle_poll_groups_wait_for_their_sockets_and_reactors_never_sleep() {
    let t = Tgt::start("idle-default", &[]);
    let r = t.ok("framework_get_reactors", None);
    assert_eq!(r["reactors"][0]["in_interrupt"], false);
    t.ok("nvmf_create_transport", Some(json!({"trtype": "TCP"})));
    until_poll_groups_wait(&t);
}

#[test]
fn interrupt_mode_is_reported_and_idle_poll_groups_wait() {
    let t = Tgt::start("interrupt-mode", &["--interrupt-mode"]);
    let r = t.ok("framework_get_reactors", None);
    assert_eq!(r["reactors"][0]["in_interrupt"], true);
    t.ok("nvmf_create_transport", Some(json!({"trtype": "TCP"})));
    until_poll_groups_wait(&t);
}
