//! Output to a closed pipe (`spdk-io ... | head -1`) ends the tool quietly,
//! as it ends Unix tools: killed by SIGPIPE or exiting normally, never a
//! panic ("failed printing to stdout") with exit code 101.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Runs `spdk-io args` with stdout a pipe whose reader has already gone,
/// and returns (exit status, stderr).
fn run_into_closed_pipe(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spdk-io"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader leaves before the tool prints anything.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_quiet(args: &[&str]) {
    let (status, stderr) = run_into_closed_pipe(args);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "spdk-io {args:?} complained about the closed pipe: {stderr}"
    );
    assert!(
        status.success() || status.signal() == Some(13),
        "spdk-io {args:?} ended with {status} instead of quietly: {stderr}"
    );
}

#[test]
fn thread_bench_into_a_closed_pipe_ends_quietly() {
    assert_quiet(&[
        "thread-bench",
        "--only",
        "io_channel_get_put",
        "--iterations",
        "1000",
        "--repeat",
        "1",
        "--cores",
        "0x3",
        "--no-pin",
    ]);
}

#[test]
fn bdevperf_into_a_closed_pipe_ends_quietly() {
    let cfg: PathBuf =
        std::env::temp_dir().join(format!("spdk-io-closed-pipe-{}.json", std::process::id()));
    let c = serde_json::json!({"subsystems": [{"subsystem": "bdev", "config": [
        {"method": "bdev_null_create", "params": {"name": "Null0", "num_blocks": 1024, "block_size": 4096}}
    ]}]});
    std::fs::write(&cfg, c.to_string()).unwrap();
    let path = cfg.to_str().unwrap().to_string();
    assert_quiet(&[
        "bdevperf",
        "--no-huge",
        "--json",
        &path,
        "-q",
        "4",
        "-t",
        "1",
    ]);
    let _ = std::fs::remove_file(&cfg);
}

#[test]
fn blob_list_into_a_closed_pipe_ends_quietly() {
    let dir = std::env::temp_dir().join(format!("spdk-io-closed-pipe-blob-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("disk.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    let cfg = dir.join("cfg.json");
    let c = serde_json::json!({"subsystems": [{"subsystem": "bdev", "config": [
        {"method": "bdev_aio_create", "params": {"name": "Aio0", "filename": img, "block_size": 4096}}
    ]}]});
    std::fs::write(&cfg, c.to_string()).unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    let base = ["blob", "--json", &cfg, "-b", "Aio0"];
    let init = Command::new(env!("CARGO_BIN_EXE_spdk-io"))
        .args(base)
        .arg("init")
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    for _ in 0..3 {
        let create = Command::new(env!("CARGO_BIN_EXE_spdk-io"))
            .args(base)
            .args(["create", "--clusters", "1"])
            .output()
            .unwrap();
        assert!(
            create.status.success(),
            "{}",
            String::from_utf8_lossy(&create.stderr)
        );
    }
    let mut args = base.to_vec();
    args.push("list");
    assert_quiet(&args);
    let _ = std::fs::remove_dir_all(&dir);
}
