//! `spdk-io perf` over NVMe/TCP against a scripted controller on
//! 127.0.0.1: the run time counts from when every worker's queue pair is
//! connected, as in SPDK's spdk_nvme_perf, so a controller slow to accept
//! an I/O queue still gets the whole run of I/O; `-P` queue pairs share
//! the `-q` I/Os in flight.

#[path = "../../../tests/nvme_tcp_common/mod.rs"]
mod nvme_tcp_common;

use nvme_tcp_common::target::{self, TargetOpts, SUBNQN};
use std::process::Command;
use std::time::Duration;

/// The transport ID of the scripted controller listening on `port`.
fn trid(port: u16) -> String {
    format!("trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{SUBNQN}")
}

#[test]
fn perf_times_the_run_from_when_its_io_queue_is_connected() {
    let t = target::start(TargetOpts {
        // Longer than the whole run: before, the run ended while the
        // worker still waited for its queue, and no I/O was done.
        io_connect_delay: Duration::from_millis(1500),
        ..TargetOpts::default()
    });
    let trid = trid(t.addr.port());
    let out = Command::new(env!("CARGO_BIN_EXE_spdk-io"))
        .args(["perf", "-q", "4", "-o", "4096", "-w", "randread", "-t", "1"])
        .args(["--output-format", "json", "-r", &trid])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ios = v["total"]["ios"].as_u64().unwrap();
    assert!(ios > 0, "no I/O completed: {v}\n{stderr}");
    // The admin queue and the I/O queue connected.
    assert!(t.connects.load(std::sync::atomic::Ordering::Acquire) >= 2);
}

#[test]
fn perf_spreads_its_io_depth_over_the_queue_pairs_of_dash_p() {
    let t = target::start(TargetOpts::default());
    let trid = trid(t.addr.port());
    let run = |q: &str, p: &str| {
        Command::new(env!("CARGO_BIN_EXE_spdk-io"))
            .args(["perf", "-q", q, "-P", p, "-o", "4096", "-w", "randread"])
            .args(["-t", "1", "--output-format", "json", "-r", &trid])
            .output()
            .unwrap()
    };
    // More queue pairs than I/Os in flight: refused before connecting.
    let out = run("2", "3");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("-P 3"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run("4", "2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["total"]["ios"].as_u64().unwrap() > 0, "{v}\n{stderr}");
    // The admin queue and two I/O queues connected.
    assert!(t.connects.load(std::sync::atomic::Ordering::Acquire) >= 3);
}

#[test]
fn perf_timeline_reports_each_queue_pairs_batches_and_the_last_dash_p_counts() {
    let t = target::start(TargetOpts::default());
    let trid = trid(t.addr.port());
    // -P twice: the last one counts, as in spdk_nvme_perf.
    let out = Command::new(env!("CARGO_BIN_EXE_spdk-io"))
        .args(["perf", "-q", "4", "-P", "2", "-P", "1", "-o", "4096"])
        .args(["-w", "randread", "-t", "1", "--timeline"])
        .args(["--output-format", "json", "-r", &trid])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ns = v["namespaces"].as_array().unwrap();
    assert_eq!(ns.len(), 1, "one queue pair: {v}");
    let tl = &ns[0]["timeline"];
    let batches = tl["batches"].as_u64().unwrap();
    assert!(batches > 0, "no batch timed: {tl}");
    // Every timed batch reaped between 1 and the 4 I/Os in flight.
    let per = tl["completions_per_batch"].as_f64().unwrap();
    assert!((1.0..=4.0).contains(&per), "{tl}");
    // The batches reaped at least the I/Os counted (the drain is not timed).
    let reaped = per * batches as f64;
    assert!(reaped + 0.5 >= ns[0]["ios"].as_f64().unwrap(), "{v}");
    let share = tl["guest_share"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&share), "{tl}");
    for span in ["reap_us", "build_us", "doorbell_us", "controller_us"] {
        let s = &tl[span];
        assert!(
            s["p50"].as_f64().unwrap() <= s["p99"].as_f64().unwrap(),
            "{span}: {tl}"
        );
        assert!(s["mean"].as_f64().unwrap() >= 0.0, "{span}: {tl}");
    }
    // Without the flag, no timeline.
    let out = Command::new(env!("CARGO_BIN_EXE_spdk-io"))
        .args(["perf", "-q", "2", "-o", "4096", "-w", "randread", "-t", "1"])
        .args(["--output-format", "json", "-r", &trid])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["namespaces"][0].get("timeline").is_none(), "{v}");
}
