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

#[test]
fn perf_times_the_run_from_when_its_io_queue_is_connected() {
    let t = target::start(TargetOpts {
        // Longer than the whole run: before, the run ended while the
        // worker still waited for its queue, and no I/O was done.
        io_connect_delay: Duration::from_millis(1500),
        ..TargetOpts::default()
    });
    let trid = format!(
        "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{} subnqn:{SUBNQN}",
        t.addr.port()
    );
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
    let trid = format!(
        "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{} subnqn:{SUBNQN}",
        t.addr.port()
    );
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
