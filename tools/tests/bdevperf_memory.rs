//! What one bdevperf job costs in memory: with thousands of bdevs at
//! queue depth 1, the latency histogram, the job thread's message ring and
//! the channel's request pool are sized for the job, not for the worst
//! case (each was hundreds of KiB; 10,000 null bdevs took 6.8 GB).
//! Alone in its test binary: it reads the peak RSS of its only child.

use nix::sys::resource::{getrusage, UsageWho};
use std::process::Command;

#[test]
fn two_thousand_jobs_at_depth_one_fit_in_a_few_hundred_mib() {
    let jobs = 2000;
    let cfg =
        std::env::temp_dir().join(format!("spdk-io-bdevperf-mem-{}.json", std::process::id()));
    let entries: Vec<_> = (0..jobs)
        .map(|i| {
            serde_json::json!({"method": "bdev_null_create",
            "params": {"name": format!("N{i}"), "num_blocks": 1024, "block_size": 4096}})
        })
        .collect();
    let c = serde_json::json!({"subsystems": [{"subsystem": "bdev", "config": entries}]});
    std::fs::write(&cfg, c.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_spdk-io"))
        .args(["bdevperf", "--no-huge", "--json"])
        .arg(&cfg)
        .args(["-q", "1", "-t", "1", "--output-format", "json"])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&cfg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), jobs);
    // ru_maxrss is in KiB on Linux.
    let peak_kib = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss() as u64;
    let per_job = peak_kib * 1024 / jobs as u64;
    assert!(
        peak_kib < 300 * 1024,
        "{jobs} jobs peaked at {} MiB ({} KiB per job)",
        peak_kib / 1024,
        per_job / 1024
    );
}
