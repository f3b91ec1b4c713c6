//! `spdk-io tgt` driven by SPDK's own, unmodified JSON-RPC client: the
//! PyPI `spdk` package's `spdk-rpc` (pinned in scripts/spdk-rpc-env, which
//! installs it into a throwaway virtual environment under target/).
//!
//! Runs on the host (`cargo test`, so `scripts/test`). The test guest has
//! no Python: there each test says so and returns.

use crate::tgt_support;

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

    // A host: spdk-io perf over NVMe/TCP to the target, 8 s of random reads.
    let trid = format!("trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{nqn}");
    let mut perf = Command::new(env!("CARGO_BIN_EXE_spdk-io"))
        .args([
            "perf", "-q", "8", "-o", "4096", "-w", "randread", "-t", "8", "-r", &trid,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn spdk-io perf");
    // Two readings while the I/O runs (bounded: 60 s), each seeing more reads.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut seen = vec![before];
    let mut per_channel_seen = false;
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
        if seen.len() == 2 && !per_channel_seen {
            per_channel_seen = true;
            // Per channel, while the I/O runs: each channel read on its own
            // thread, named by the id thread_get_stats lists.
            let per = rpc_json(&s, &["bdev_get_iostat", "--names", "Malloc0", "-c"]);
            assert_eq!(per["name"], "Malloc0", "{per}");
            let chans = per["channels"].as_array().expect("channels");
            assert!(!chans.is_empty(), "no channel of Malloc0: {per}");
            let threads: Vec<u64> = rpc_json(&s, &["thread_get_stats"])["threads"]
                .as_array()
                .expect("threads")
                .iter()
                .map(|t| t["id"].as_u64().expect("thread id"))
                .collect();
            for c in chans {
                let id = c["thread_id"].as_u64().expect("thread_id");
                assert!(
                    threads.contains(&id),
                    "thread {id} not in {threads:?}: {per}"
                );
            }
            let per_reads: u64 = chans
                .iter()
                .map(|c| c["num_read_ops"].as_u64().expect("num_read_ops"))
                .sum();
            assert!(per_reads > 0, "no reads on any channel: {per}");
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

/// Runs `spdk-rpc` expecting a failure; its stdout and stderr.
fn rpc_fail(sock: &Path, args: &[&str]) -> String {
    let out = Command::new(spdk_rpc())
        .arg("-s")
        .arg(sock)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn spdk-rpc");
    assert!(
        !out.status.success(),
        "spdk-rpc {args:?} should have failed"
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn lvol_names(s: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = rpc_json(s, &["bdev_lvol_get_lvols"])
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["alias"].as_str().unwrap().to_string(),
                l["uuid"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn spdk_rpc_drives_every_lvol_method_and_save_config_brings_the_lvols_back_by_examine() {
    let mut t = Tgt::start("pyrpc-lvol", &[]);
    let s = t.sock.clone();
    let img = t.dir.join("lvs.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    let img = img.to_str().unwrap();
    rpc(&s, &["bdev_aio_create", img, "Aio0", "4096"]);
    // String results are printed bare.
    let uuid = rpc(
        &s,
        &["bdev_lvol_create_lvstore", "Aio0", "lvs0", "-c", "1048576"],
    );
    let uuid = uuid.trim().to_string();
    let stores = rpc_json(&s, &["bdev_lvol_get_lvstores"]);
    assert_eq!(
        stores,
        json!([{"uuid": uuid, "name": "lvs0", "base_bdev": "Aio0", "total_data_clusters": 31,
                "free_clusters": 31, "block_size": 4096, "cluster_size": 1048576}])
    );
    let thick = rpc(&s, &["bdev_lvol_create", "-l", "lvs0", "thick0", "4"]);
    let thick = thick.trim();
    let thin = rpc(&s, &["bdev_lvol_create", "-u", &uuid, "-t", "thin0", "8"]);
    let thin = thin.trim();
    let b = rpc_json(&s, &["bdev_get_bdevs", "-b", "lvs0/thick0"]);
    assert_eq!(b[0]["name"], thick);
    assert_eq!(b[0]["aliases"], json!(["lvs0/thick0"]));
    assert_eq!(b[0]["product_name"], "Logical Volume");
    assert_eq!(b[0]["num_blocks"], 1024);
    assert_eq!(b[0]["driver_specific"]["lvol"]["base_bdev"], "Aio0");
    // A name in use: SPDK's -EEXIST.
    let e = rpc_fail(&s, &["bdev_lvol_create", "-l", "lvs0", "thick0", "4"]);
    assert!(e.contains("File exists"), "{e}");
    // A thick lvol larger than the free space.
    let e = rpc_fail(&s, &["bdev_lvol_create", "-l", "lvs0", "big", "64"]);
    assert!(e.contains("No space left on device"), "{e}");
    rpc(&s, &["bdev_lvol_rename", "lvs0/thick0", "thick1"]);
    let snap = rpc(&s, &["bdev_lvol_snapshot", "lvs0/thin0", "snap0"]);
    let snap = snap.trim();
    rpc(&s, &["bdev_lvol_clone", "lvs0/snap0", "clone0"]);
    // bdev_lvol_set_parent: a thin lvol of snap0's size becomes its clone.
    rpc(&s, &["bdev_lvol_create", "-l", "lvs0", "-t", "orphan", "8"]);
    rpc(&s, &["bdev_lvol_set_parent", "lvs0/orphan", "lvs0/snap0"]);
    let b = rpc_json(&s, &["bdev_get_bdevs", "-b", "lvs0/orphan"]);
    assert_eq!(b[0]["driver_specific"]["lvol"]["base_snapshot"], "snap0");
    let e = rpc_fail(&s, &["bdev_lvol_set_parent", "lvs0/orphan", "lvs0/snap0"]);
    assert!(e.contains("File exists"), "{e}");
    let e = rpc_fail(&s, &["bdev_lvol_set_parent", "lvs0/orphan", "nope"]);
    assert!(e.contains("No such device"), "{e}");
    rpc(&s, &["bdev_lvol_delete", "lvs0/orphan"]);
    // A snapshot with two clones cannot be deleted.
    let e = rpc_fail(&s, &["bdev_lvol_delete", "lvs0/snap0"]);
    assert!(e.contains("Operation not permitted"), "{e}");
    rpc(&s, &["bdev_lvol_resize", "lvs0/clone0", "12"]);
    rpc(&s, &["bdev_lvol_inflate", "lvs0/clone0"]);
    rpc(&s, &["bdev_lvol_set_read_only", "lvs0/thick1"]);
    // Shallow copy of the read-only lvol to a malloc bdev, checked by id.
    rpc(&s, &["bdev_malloc_create", "-b", "Copy0", "8", "4096"]);
    let op = rpc_json(
        &s,
        &["bdev_lvol_start_shallow_copy", "lvs0/thick1", "Copy0"],
    );
    let id = op["operation_id"]
        .as_u64()
        .expect("operation_id")
        .to_string();
    let mut st = Value::Null;
    for _ in 0..100 {
        st = rpc_json(&s, &["bdev_lvol_check_shallow_copy", &id]);
        if st["state"] != "in progress" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        st,
        json!({"copied_clusters": 4, "total_clusters": 4, "state": "complete"})
    );
    let e = rpc_fail(&s, &["bdev_lvol_check_shallow_copy", &id]);
    assert!(e.contains("No such device"), "{e}");
    rpc(&s, &["bdev_malloc_delete", "Copy0"]);
    let lvols = rpc_json(&s, &["bdev_lvol_get_lvols", "-l", "lvs0"]);
    let clone0 = lvols
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "clone0")
        .unwrap();
    assert_eq!(clone0["is_clone"], false);
    assert_eq!(clone0["num_allocated_clusters"], 12);
    assert_eq!(clone0["lvs"], json!({"name": "lvs0", "uuid": uuid}));
    rpc(&s, &["bdev_lvol_decouple_parent", "lvs0/thin0"]);
    rpc(&s, &["bdev_lvol_delete", "lvs0/snap0"]);
    assert!(rpc_json(&s, &["bdev_get_bdevs"])
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["name"] != snap));
    rpc(&s, &["bdev_lvol_rename_lvstore", "lvs0", "lvs1"]);
    rpc(&s, &["bdev_lvol_grow_lvstore", "-l", "lvs1"]);
    let e = rpc_fail(&s, &["bdev_lvol_rename_lvstore", "nope", "x"]);
    assert!(e.contains("Lvol store nope not found"), "{e}");
    let before = lvol_names(&s);
    assert_eq!(
        before.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        ["lvs1/clone0", "lvs1/thick1", "lvs1/thin0"]
    );
    assert!(before.iter().any(|(_, u)| u == thin));

    // save_config has the base bdev only; the lvols come back by examine.
    let saved = rpc_json(&s, &["framework_get_config", "bdev"]);
    assert!(!saved.to_string().contains("bdev_lvol"), "{saved}");
    let cfg = json!({"subsystems": [{"subsystem": "bdev", "config": saved}]});
    let cfg_path = t.dir.join("saved.json");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let (st, err) = t.stop_with(nix::sys::signal::Signal::SIGTERM);
    assert!(st.success(), "{st}: {err}");
    // The shutdown unloaded the store cleanly: the super block's clean flag.
    let sb = std::fs::read(img).unwrap();
    assert_eq!(&sb[..8], b"SPDKBLOB");
    assert_eq!(
        u32::from_le_bytes(sb[16..20].try_into().unwrap()),
        1,
        "clean flag"
    );
    let restored = Tgt::start("pyrpc-lvol-2", &["--json", cfg_path.to_str().unwrap()]);
    let s = restored.sock.clone();
    assert_eq!(lvol_names(&s), before);
    let stores = rpc_json(&s, &["bdev_lvol_get_lvstores", "-l", "lvs1"]);
    assert_eq!(stores[0]["uuid"], uuid);
    let b = rpc_json(&s, &["bdev_get_bdevs", "-b", "lvs1/clone0"]);
    assert_eq!(b[0]["num_blocks"], 3072);
    rpc(&s, &["bdev_lvol_delete_lvstore", "-l", "lvs1"]);
    assert_eq!(rpc_json(&s, &["bdev_lvol_get_lvstores"]), json!([]));
}

/// The target attaches its own NVMe-oF export over 127.0.0.1 with
/// spdk-rpc's `bdev_nvme_attach_controller -t tcp ...`: the bring-up runs
/// off the app thread, which keeps serving the target side meanwhile (on
/// one reactor a blocking attach could never be answered).
#[test]
fn spdk_rpc_attaches_lists_resets_and_detaches_a_tcp_controller() {
    let t = Tgt::start("pyrpc-nvme-tcp", &[]);
    let s = t.sock.clone();
    let nqn = "nqn.2016-06.io.spdk:self";
    let port = free_port().to_string();
    rpc(&s, &["bdev_malloc_create", "-b", "Malloc0", "16", "512"]);
    rpc(&s, &["nvmf_create_transport", "-t", "TCP"]);
    rpc(&s, &["nvmf_create_subsystem", nqn, "-a"]);
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
    // spdk-rpc prints the bdev names one per line.
    let names = rpc(
        &s,
        &[
            "bdev_nvme_attach_controller",
            "-b",
            "Nvme0",
            "-t",
            "tcp",
            "-a",
            "127.0.0.1",
            "-f",
            "ipv4",
            "-s",
            &port,
            "-n",
            nqn,
            "-l",
            "-1",
            "-o",
            "1",
        ],
    );
    assert_eq!(names.trim(), "Nvme0n1");
    let c = rpc_json(&s, &["bdev_nvme_get_controllers", "-n", "Nvme0"]);
    assert_eq!(
        c[0]["ctrlrs"][0]["trid"],
        serde_json::json!({"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1",
            "trsvcid": port, "subnqn": nqn})
    );
    let b = rpc_json(&s, &["bdev_get_bdevs", "-b", "Nvme0n1"]);
    assert_eq!(b[0]["num_blocks"], 32768);
    rpc(&s, &["bdev_nvme_reset_controller", "Nvme0"]);
    assert_eq!(
        rpc_json(&s, &["bdev_nvme_get_controllers"])[0]["ctrlrs"][0]["state"],
        "enabled"
    );
    let saved = rpc_json(&s, &["save_config"]);
    let bdev = saved["subsystems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["subsystem"] == "bdev")
        .unwrap();
    let attach = bdev["config"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["method"] == "bdev_nvme_attach_controller")
        .expect("the attach in save_config");
    assert_eq!(attach["params"]["ctrlr_loss_timeout_sec"], -1);
    assert_eq!(attach["params"]["reconnect_delay_sec"], 1);
    rpc(&s, &["bdev_nvme_detach_controller", "Nvme0"]);
    assert_eq!(
        rpc_json(&s, &["bdev_nvme_get_controllers"]),
        serde_json::json!([])
    );
    t.assert_alive();
}
