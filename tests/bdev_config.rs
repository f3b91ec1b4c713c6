//! SPDK JSON configuration: an SPDK-style file loads unchanged; bad files
//! are clear errors naming the line, entry, method and field.

use spdk_io::bdev::{self, BdevError};

/// DMA memory for the malloc bdevs the configs create.
fn dma_env() {
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
}

fn err(text: &str) -> String {
    dma_env();
    match bdev::load_config(text) {
        Err(BdevError::Config(m)) => m,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn spdk_style_config_with_malloc_null_split_and_passthru_loads_unchanged() {
    dma_env();
    // As SPDK's save_config writes it: other subsystems, option methods,
    // the examine barrier, and a passthru declared before its base.
    let cfg = r#"{
  "subsystems": [
    { "subsystem": "accel", "config": [ { "method": "accel_set_options", "params": { "small_cache_size": 128 } } ] },
    {
      "subsystem": "bdev",
      "config": [
        { "method": "bdev_set_options", "params": { "bdev_io_pool_size": 65535, "bdev_io_cache_size": 256, "bdev_auto_examine": true } },
        { "method": "bdev_nvme_set_options", "params": { "action_on_timeout": "none" } },
        { "method": "bdev_passthru_create", "params": { "base_bdev_name": "CfgMalloc1", "name": "CfgPT0" } },
        { "method": "bdev_malloc_create", "params": { "name": "CfgMalloc0", "num_blocks": 2048, "block_size": 512,
            "uuid": "1b1c9d0e-5c2f-4b7a-9d8e-0123456789ab" } },
        { "method": "bdev_malloc_create", "params": { "name": "CfgMalloc1", "num_blocks": 1024, "block_size": 4096 } },
        { "method": "bdev_null_create", "params": { "name": "CfgNull0", "num_blocks": 262144, "block_size": 512 } },
        { "method": "bdev_split_create", "params": { "base_bdev": "CfgMalloc0", "split_count": 2 } },
        { "method": "bdev_wait_for_examine" }
      ]
    }
  ]
}"#;
    let created = bdev::load_config(cfg).unwrap();
    assert_eq!(
        created,
        vec![
            "CfgPT0",
            "CfgMalloc0",
            "CfgMalloc1",
            "CfgNull0",
            "CfgMalloc0p0",
            "CfgMalloc0p1"
        ]
    );
    let pt = bdev::get_by_name("CfgPT0").unwrap();
    assert_eq!((pt.block_size(), pt.num_blocks()), (4096, 1024));
    assert_eq!(
        bdev::get_by_name("CfgMalloc0p1").unwrap().num_blocks(),
        1024
    );
    assert_eq!(
        bdev::get_by_name("CfgMalloc0").unwrap().uuid().to_string(),
        "1b1c9d0e-5c2f-4b7a-9d8e-0123456789ab"
    );
    // save_config writes what load_config reads.
    let saved = bdev::save_config();
    let methods: Vec<String> = saved["subsystems"][0]["config"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["method"].as_str().unwrap().to_string())
        .collect();
    assert!(methods.contains(&"bdev_split_create".to_string()));
    assert!(methods.contains(&"bdev_passthru_create".to_string()));
    assert_eq!(
        bdev::get_by_name("CfgNull0").unwrap().info_json()["product_name"],
        "Null disk"
    );
}

#[test]
fn malformed_json_names_line_and_column() {
    dma_env();
    let m = err("{\n  \"subsystems\": [\n    { \"subsystem\": \"bdev\", \"config\": [ }\n  ]\n}");
    assert!(m.contains("malformed JSON") && m.contains("line 3"), "{m}");
}

#[test]
fn unknown_method_is_named_with_its_line() {
    dma_env();
    let m = err(r#"{"subsystems":[{"subsystem":"bdev","config":[
        {"method":"bdev_null_create","params":{"name":"CfgUnk0","num_blocks":8,"block_size":512}},
        {"method":"bdev_frobnicate_create","params":{}}]}]}"#);
    assert!(
        m.contains("bdev_frobnicate_create") && m.contains("line 3") && m.contains("config[1]"),
        "{m}"
    );
}

#[test]
fn missing_and_unknown_fields_are_named() {
    dma_env();
    let m = err(r#"{"subsystems":[{"subsystem":"bdev","config":[
        {"method":"bdev_malloc_create","params":{"name":"CfgBad0","block_size":512}}]}]}"#);
    assert!(
        m.contains("line 2") && m.contains("bdev_malloc_create") && m.contains("num_blocks"),
        "{m}"
    );
    let m = err(r#"{"subsystems":[{"subsystem":"bdev","config":[
        {"method":"bdev_null_create","params":{"name":"CfgBad1","num_blocks":8,"block_size":512,"blok_size":1}}]}]}"#);
    assert!(m.contains("blok_size"), "{m}");
    let m = err(r#"{"subsystems":[{"subsystem":"bdev","config":[
        {"method":"bdev_null_create","params":{"name":"CfgBad2","num_blocks":"many","block_size":512}}]}]}"#);
    assert!(m.contains("invalid type"), "{m}");
    let m = err(r#"{"subsystem":"bdev"}"#);
    assert!(m.contains("subsystems"), "{m}");
}

#[test]
fn file_bdev_on_a_missing_path_is_a_clear_error() {
    dma_env();
    let m = err(r#"{"subsystems":[{"subsystem":"bdev","config":[
        {"method":"bdev_aio_create","params":{"name":"CfgAio0","filename":"/nonexistent/dir/disk.img","block_size":512}}]}]}"#);
    assert!(
        m.contains("/nonexistent/dir/disk.img") && m.contains("No such file"),
        "{m}"
    );
}

#[test]
fn creating_a_bdev_with_bad_geometry_is_an_error() {
    dma_env();
    let m = err(r#"{"subsystems":[{"subsystem":"bdev","config":[
        {"method":"bdev_malloc_create","params":{"name":"CfgGeo0","num_blocks":0,"block_size":512}}]}]}"#);
    assert!(m.contains("num_blocks"), "{m}");
    let m = err(r#"{"subsystems":[{"subsystem":"bdev","config":[
        {"method":"bdev_malloc_create","params":{"name":"CfgGeo1","num_blocks":8,"block_size":100}}]}]}"#);
    assert!(m.contains("block_size"), "{m}");
}
