//! `spdk-io thread-bench` arguments: counts of zero are refused by name
//! rather than measured as NaN.

use std::process::Command;

fn thread_bench(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_spdk-io"))
        .arg("thread-bench")
        .args(args)
        .args(["--cores", "0x3", "--no-pin", "--repeat", "1"])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn zero_messages_are_refused_with_the_flag_named() {
    let (ok, out, err) = thread_bench(&["--messages", "0", "--only", "msg_rate_one_reactor"]);
    assert!(!ok, "--messages 0 was accepted: {out}");
    assert!(!out.contains("NaN"), "{out}");
    assert!(
        err.contains("--messages"),
        "the error does not name the flag: {err}"
    );
}

#[test]
fn few_iterations_still_measure_every_benchmark() {
    // 5 iterations: the benchmarks that run a tenth or a twentieth of them
    // still run one, so no figure is NaN or infinite.
    let (ok, out, err) = thread_bench(&["--iterations", "5", "--messages", "1", "--json"]);
    assert!(ok, "thread-bench failed: {err}");
    assert!(!out.contains("NaN") && !out.contains("inf"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for f in v["results"].as_array().unwrap() {
        assert!(f["ops"].as_u64().unwrap() >= 1, "{f}");
        assert!(f["ns_per_op"].as_f64().is_some(), "not a number: {f}");
    }
}
