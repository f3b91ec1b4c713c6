//! `spdk-io bdevperf` end to end on a malloc bdev from an SPDK JSON config:
//! the verify workload while the request pool runs dry, and JSON output.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// A config file with one malloc bdev whose optimal I/O boundary is one
/// block, so every multi-block I/O is split into one child per block.
fn config(tag: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "spdk-io-bdevperf-cli-{tag}-{}.json",
        std::process::id()
    ));
    let cfg = serde_json::json!({"subsystems": [{"subsystem": "bdev", "config": [
        {"method": "bdev_malloc_create", "params": {"name": "Malloc0", "num_blocks": 16384,
            "block_size": 4096, "optimal_io_boundary": 1}}
    ]}]});
    std::fs::write(&path, cfg.to_string()).unwrap();
    path
}

/// 256 verify tasks of 16 KiB, split into 4 pieces each, want more
/// requests than the channel's pool of 1024 holds, so submissions are
/// refused with NOMEM and retried from the io_wait queue with the buffers
/// they handed back (dozens of times a second). Every pattern must still
/// read back intact. Two seconds: an emulated CPU running a debug build
/// needs them to finish a first verify pair.
#[test]
fn verify_passes_while_the_request_pool_runs_dry() {
    let cfg = config("verify");
    let out = Command::new(env!("CARGO_BIN_EXE_spdk-io"))
        .args(["bdevperf", "--no-huge", "--json"])
        .arg(&cfg)
        .args(["-q", "256", "-o", "16384", "-w", "verify", "-t", "2"])
        .args(["--output-format", "json"])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&cfg);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "bdevperf failed: {stderr}");
    assert!(!stderr.contains("MISMATCH"), "verify mismatch: {stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let total = &v["total"];
    assert_eq!(total["status"], "finished", "{stdout}");
    assert_eq!(total["miscompares"], 0, "{stdout}");
    assert_eq!(total["io_failed"], 0, "{stdout}");
    assert!(total["iops"].as_f64().unwrap() > 0.0, "{stdout}");
}
