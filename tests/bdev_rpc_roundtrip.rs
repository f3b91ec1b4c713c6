//! `save_config` of the bdev subsystem loads back to the same state: the
//! entries written after creating one bdev of each module (with options,
//! QoS limits and an error bdev), run again method by method after
//! everything was torn down, write the same entries.

use serde_json::{json, Value};
use spdk_io::bdev;

fn call(name: &str, p: Value) -> Value {
    bdev::rpc::call_sync(name, p)
        .unwrap_or_else(|| panic!("no method {name}"))
        .unwrap()
}

#[test]
fn save_config_loads_back_to_the_same_entries() {
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
    let img = std::env::temp_dir().join(format!("rpc-roundtrip-{}.img", std::process::id()));
    std::fs::File::create(&img)
        .unwrap()
        .set_len(4 << 20)
        .unwrap();
    call(
        "bdev_set_options",
        json!({"bdev_io_cache_size": 512, "iobuf_small_cache_size": 64}),
    );
    call(
        "bdev_nvme_set_options",
        json!({"action_on_timeout": "none", "timeout_us": 0}),
    );
    call(
        "bdev_malloc_create",
        json!({"name": "RtMalloc0", "num_blocks": 2048, "block_size": 512}),
    );
    call(
        "bdev_malloc_create",
        json!({"name": "RtMalloc1", "num_blocks": 256, "block_size": 4096, "optimal_io_boundary": 16}),
    );
    call(
        "bdev_null_create",
        json!({"name": "RtNull0", "num_blocks": 1 << 20, "block_size": 512}),
    );
    call(
        "bdev_aio_create",
        json!({"name": "RtAio0", "filename": img.display().to_string(), "block_size": 4096}),
    );
    call(
        "bdev_split_create",
        json!({"base_bdev": "RtMalloc0", "split_count": 4}),
    );
    call(
        "bdev_passthru_create",
        json!({"base_bdev_name": "RtNull0", "name": "RtPt0"}),
    );
    call("bdev_error_create", json!({"base_name": "RtMalloc1"}));
    call(
        "bdev_set_qos_limit",
        json!({"name": "RtPt0", "rw_ios_per_sec": 20000, "r_mbytes_per_sec": 100}),
    );
    let saved = bdev::rpc::config_entries();
    let methods: Vec<&str> = saved
        .iter()
        .map(|e| e["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods.first(), Some(&"bdev_set_options"));
    assert_eq!(methods.last(), Some(&"bdev_wait_for_examine"));
    assert_eq!(saved[0]["params"]["bdev_io_cache_size"], 512);
    assert!(methods.contains(&"bdev_nvme_set_options") && methods.contains(&"bdev_set_qos_limit"));

    bdev::fini();
    assert!(bdev::bdevs().is_empty());
    call(
        "bdev_set_options",
        json!({"bdev_io_cache_size": 1024, "iobuf_small_cache_size": 128}),
    );

    // Through the config loader, as `--json` does.
    let text = serde_json::to_string_pretty(
        &json!({"subsystems": [{"subsystem": "bdev", "config": saved}]}),
    )
    .unwrap();
    bdev::load_config(&text).expect("the saved config loads");
    assert_eq!(bdev::rpc::config_entries(), saved);
    let names: Vec<String> = bdev::bdevs().iter().map(|b| b.name().to_string()).collect();
    for n in ["RtMalloc0p3", "RtPt0", "EE_RtMalloc1", "RtAio0"] {
        assert!(
            names.iter().any(|x| x == n),
            "{n} missing after reload: {names:?}"
        );
    }
    bdev::fini();
    let _ = std::fs::remove_file(img);
}
