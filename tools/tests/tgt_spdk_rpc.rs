//! `spdk-io tgt` driven by SPDK's own, unmodified JSON-RPC client: the
//! PyPI `spdk` package's `spdk-rpc` (pinned in scripts/spdk-rpc-env, which
//! installs it into a throwaway virtual environment under target/).
//!
//! Runs on the host (`cargo test`, so `scripts/test`). The test guest has
//! no Python: there each test says so and returns.

mod tgt_support;

use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use tgt_support::*;

// The test guest has no Python: qemu/run-tests leaves this binary out
// (HOST_ONLY_TESTS in qemu/lib/tests.sh) rather than let it pass there.

/// The `spdk-rpc` command, installed once per test binary.
fn spdk_rpc() -> &'static Path {
    static RPC: OnceLock<PathBuf> = OnceLock::new();
    RPC.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let out = Command::new(repo.join("scripts/spdk-rpc-env"))
            .output()
            .expect("run scripts/spdk-rpc-env");
        assert!(
            out.status.success(),
            "scripts/spdk-rpc-env failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// Runs `spdk-rpc -s SOCK args...` (stdin from `input`); its stdout, or a
/// panic with its stderr.
fn rpc_in(sock: &Path, args: &[&str], input: Option<&str>) -> String {
    let mut c = Command::new(spdk_rpc());
    c.arg("-s").arg(sock).args(args);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn spdk-rpc");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.unwrap_or("").as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "spdk-rpc {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn rpc(sock: &Path, args: &[&str]) -> String {
    rpc_in(sock, args, None)
}

fn rpc_json(sock: &Path, args: &[&str]) -> Value {
    let out = rpc(sock, args);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("spdk-rpc {args:?}: not JSON ({e}): {out}"))
}

#[test]
fn spdk_rpc_drives_the_framework_thread_and_log_methods() {
    let t = Tgt::start("pyrpc-fw", &[]);
    let s = t.sock.as_path();
    let v = rpc_json(s, &["spdk_get_version"]);
    assert_eq!(v["fields"]["major"], 25);
    let methods = rpc_json(s, &["rpc_get_methods", "--current"]);
    for m in [
        "framework_get_config",
        "thread_get_stats",
        "log_set_flag",
        "spdk_kill_instance",
    ] {
        assert!(
            methods.as_array().unwrap().contains(&json!(m)),
            "{m} missing: {methods}"
        );
    }
    assert_eq!(
        rpc_json(s, &["framework_get_subsystems"])[0]["subsystem"],
        "bdev"
    );
    assert_eq!(
        rpc_json(s, &["framework_get_reactors"])["reactors"][0]["lcore"],
        0
    );
    assert_eq!(
        rpc_json(s, &["thread_get_stats"])["threads"][0]["name"],
        "app_thread"
    );
    assert!(rpc_json(s, &["thread_get_pollers"])["threads"][0]["timed_pollers"].is_array());
    assert!(rpc_json(s, &["thread_get_io_channels"])["threads"].is_array());
    rpc(s, &["log_set_flag", "bdev"]);
    assert_eq!(rpc_json(s, &["log_get_flags"])["bdev"], true);
    rpc(s, &["log_clear_flag", "bdev"]);
    rpc(s, &["log_set_print_level", "WARNING"]);
    assert_eq!(rpc_json(s, &["log_get_print_level"]), "WARNING");
    rpc(s, &["log_set_level", "INFO"]);
    assert_eq!(rpc_json(s, &["log_get_level"]), "INFO");
    let saved = rpc_json(s, &["save_config"]);
    assert_eq!(saved["subsystems"][0]["subsystem"], "bdev");
    let sub = rpc_json(s, &["save_subsystem_config", "-n", "bdev"]);
    assert_eq!(sub["config"], saved["subsystems"][0]["config"]);
}

#[test]
fn spdk_rpc_load_config_initialises_a_waiting_target_and_kill_instance_exits_0() {
    let config = json!({"subsystems": [{"subsystem": "bdev", "config": [
        {"method": "bdev_set_options", "params": {"bdev_io_pool_size": 65535}},
        {"method": "bdev_wait_for_examine"},
    ]}]});
    let mut t = Tgt::start("pyrpc-load", &["--wait-for-rpc"]);
    let s = t.sock.clone();
    // load_config sends the startup entries, framework_start_init, then the
    // runtime ones, asking rpc_get_methods --current between rounds.
    rpc_in(&s, &["load_config"], Some(&config.to_string()));
    rpc(&s, &["framework_wait_init"]);
    assert!(rpc_json(&s, &["framework_get_config", "bdev"]).is_array());
    let out = rpc(&s, &["spdk_kill_instance", "SIGTERM"]);
    let mut child = t.child.take().unwrap();
    let (st, err) = wait_exit(&mut child);
    assert!(st.success(), "{st}: {out} {err}");
    assert!(!s.exists(), "the socket is removed at exit");
}

#[test]
fn spdk_rpc_creates_lists_and_deletes_bdevs_and_save_config_restores_them() {
    let mut t = Tgt::start("pyrpc-bdev", &[]);
    let s = t.sock.clone();
    let img = t.dir.join("aio.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let img = img.to_str().unwrap();
    let uimg = t.dir.join("uring.img");
    std::fs::File::create(&uimg)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let uimg = uimg.to_str().unwrap();
    rpc(&s, &["bdev_malloc_create", "-b", "Malloc0", "8", "512"]);
    rpc(&s, &["bdev_malloc_create", "-b", "Malloc1", "8", "512"]);
    rpc(&s, &["bdev_null_create", "Null0", "8", "512"]);
    rpc(&s, &["bdev_aio_create", img, "Aio0", "512"]);
    rpc(&s, &["bdev_uring_create", uimg, "Uring0", "512"]);
    rpc(&s, &["bdev_split_create", "Null0", "2"]);
    rpc(&s, &["bdev_passthru_create", "-b", "Malloc0", "-p", "PT0"]);
    rpc(&s, &["bdev_error_create", "Malloc1"]);
    let bdevs = rpc_json(&s, &["bdev_get_bdevs"]);
    let names: Vec<&str> = bdevs
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    for n in [
        "Malloc0",
        "Malloc1",
        "Null0p0",
        "Null0p1",
        "Aio0",
        "Uring0",
        "PT0",
        "EE_Malloc1",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let one = rpc_json(&s, &["bdev_get_bdevs", "-b", "Aio0"]);
    assert_eq!(one[0]["block_size"], 512);
    let stat = rpc_json(&s, &["bdev_get_iostat", "--names", "Malloc0"]);
    assert!(stat["bdevs"][0]["num_read_ops"].is_u64(), "{stat}");

    let saved = rpc_json(&s, &["framework_get_config", "bdev"]);
    let cfg = json!({"subsystems": [{"subsystem": "bdev", "config": saved}]});
    let cfg_path = t.dir.join("saved.json");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    // The restored target opens the same image files, which the first one
    // holds locked for writing (one owner per file): stop the first one
    // (its directory, with the images and the config, stays), then go on
    // with the restored one.
    let (st, err) = t.stop_with(nix::sys::signal::Signal::SIGTERM);
    assert!(st.success(), "{st}: {err}");
    let restored = Tgt::start("pyrpc-bdev-2", &["--json", cfg_path.to_str().unwrap()]);
    let s = restored.sock.clone();
    assert_eq!(rpc_json(&s, &["framework_get_config", "bdev"]), saved);

    rpc(&s, &["bdev_error_delete", "EE_Malloc1"]);
    rpc(&s, &["bdev_passthru_delete", "PT0"]);
    rpc(&s, &["bdev_split_delete", "Null0"]);
    rpc(&s, &["bdev_uring_delete", "Uring0"]);
    rpc(&s, &["bdev_aio_delete", "Aio0"]);
    rpc(&s, &["bdev_null_delete", "Null0"]);
    rpc(&s, &["bdev_malloc_delete", "Malloc1"]);
    rpc(&s, &["bdev_malloc_delete", "Malloc0"]);
    assert_eq!(rpc_json(&s, &["bdev_get_bdevs"]), json!([]));
}

/// A TCP port on 127.0.0.1 that nothing listens on just now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn spdk_rpc_reads_iostat_while_an_nvme_tcp_host_runs_io_through_the_target() {
    let t = Tgt::start("pyrpc-iostat", &[]);
    let s = t.sock.clone();
    let nqn = "nqn.2016-06.io.spdk:iostat";
    let port = free_port().to_string();
    rpc(&s, &["bdev_malloc_create", "-b", "Malloc0", "16", "512"]);
    rpc(&s, &["nvmf_create_transport", "-t", "TCP"]);
    rpc(
        &s,
        &[
            "nvmf_create_subsystem",
            nqn,
            "-a",
            "-s",
            "SPDKIO00000000000001",
        ],
    );
    rpc(&s, &["nvmf_subsystem_add_ns", nqn, "Malloc0"]);
    rpc(
        &s,
        &[
            "nvmf_subsystem_add_listener",
            nqn,
            "-t",
            "tcp",
            "-f",
            "ipv4",
            "-a",
            "127.0.0.1",
            "-s",
            &port,
        ],
    );
    let reads = |v: &Value| {
        v["bdevs"][0]["num_read_ops"]
            .as_u64()
            .expect("num_read_ops")
    };
    let before = reads(&rpc_json(&s, &["bdev_get_iostat", "--names", "Malloc0"]));

    // A host: spdk-io perf over NVMe/TCP to the target, 6 s of random reads.
    let trid = format!("trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{nqn}");
    let mut perf = Command::new(env!("CARGO_BIN_EXE_spdk-io"))
        .args([
            "perf", "-q", "8", "-o", "4096", "-w", "randread", "-t", "6", "-r", &trid,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn spdk-io perf");
    // Two readings while the I/O runs (bounded: 60 s), each seeing more reads.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut seen = vec![before];
    while seen.len() < 3 {
        std::thread::sleep(std::time::Duration::from_millis(500));
        if let Some(st) = perf.try_wait().unwrap() {
            let out = perf.wait_with_output().unwrap();
            panic!(
                "perf ended ({st}) after {} readings {seen:?}: {}{}",
                seen.len(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no I/O seen: {seen:?}"
        );
        let n = reads(&rpc_json(&s, &["bdev_get_iostat", "--names", "Malloc0"]));
        if n > *seen.last().unwrap() {
            seen.push(n);
        }
    }
    let out = perf.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "perf over TCP failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let after = reads(&rpc_json(&s, &["bdev_get_iostat", "--names", "Malloc0"]));
    assert!(
        after > seen[2],
        "reads went on after the readings: {seen:?} then {after}"
    );
}
