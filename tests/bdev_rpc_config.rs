//! Config loading as the bdev methods see it: line numbers stay right in
//! large configs and are not shifted by keys inside `params`; sizes that
//! overflow are refused.

use spdk_io::bdev::{self, BdevError};

fn err(text: &str) -> String {
    match bdev::load_config(text) {
        Err(BdevError::Config(m)) => m,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn a_bad_entry_after_twenty_thousand_others_is_reported_at_its_own_line() {
    let mut t = String::from("{\"subsystems\": [\n{\"subsystem\": \"accel\", \"config\": [\n");
    for i in 0..20_000 {
        t.push_str(&format!(
            "{{\"method\": \"accel_set_options\", \"params\": {{\"method\": \"x\", \"n\": {i}}}}},\n"
        ));
    }
    t.push_str("{\"method\": \"accel_set_options\"}]},\n");
    t.push_str("{\"subsystem\": \"bdev\", \"config\": [\n");
    t.push_str("{\"method\": \"bdev_null_create\", \"params\": {\"name\": \"RpcCfgBig0\", \"num_blocks\": 8, \"block_size\": 512}},\n");
    t.push_str("{\"method\": \"bdev_null_create\", \"params\": {\"name\": \"RpcCfgBig1\", \"num_blocks\": 8}}\n]}]}\n");
    // Line 1 opens, line 2 the accel subsystem, 20,000 lines of entries,
    // its last entry, the bdev subsystem, the good entry, the bad one.
    let bad_line = 2 + 20_000 + 1 + 1 + 1 + 1;
    let m = err(&t);
    assert!(
        m.contains(&format!("line {bad_line},"))
            && m.contains("config[1]")
            && m.contains("block_size"),
        "{m}"
    );
}

#[test]
fn a_method_key_inside_params_does_not_shift_the_reported_line() {
    // The first entry's params hold a "method" key; the old scan counted
    // it as an entry of its own and reported the next error a line early.
    let m = err(r#"{"subsystems":[{"subsystem":"iscsi","config":[
        {"method":"iscsi_set_options",
         "params":{"method":"x"}}]},
        {"subsystem":"bdev","config":[
        {"method":"bdev_frobnicate_create","params":{}}]}]}"#);
    assert!(
        m.contains("line 5") && m.contains("config[0]") && m.contains("bdev_frobnicate_create"),
        "{m}"
    );
}

#[test]
fn a_null_bdev_whose_size_overflows_64_bits_is_refused() {
    let m = err(r#"{"subsystems":[{"subsystem":"bdev","config":[
        {"method":"bdev_null_create","params":{"name":"RpcCfgHuge","num_blocks":18446744073709551615,"block_size":4096}}]}]}"#);
    assert!(m.contains("RpcCfgHuge") && m.contains("2^64"), "{m}");
    assert!(bdev::get_by_name("RpcCfgHuge").is_none());
}

#[test]
fn a_config_saved_by_spdk_tgt_loads_with_virtual_bdevs_before_their_bases() {
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
    // The bdev subsystem as SPDK v25.09's spdk_tgt saved it (module
    // configs, the error and split bdevs among them, before the bases).
    let cfg = r#"{"subsystems":[{"subsystem":"bdev","config":[
{"method": "bdev_set_options", "params": {"bdev_io_pool_size": 65535, "bdev_io_cache_size": 1024, "bdev_auto_examine": true, "iobuf_small_cache_size": 128, "iobuf_large_cache_size": 16}},
{"method": "bdev_split_create", "params": {"base_bdev": "SpMalloc0", "split_count": 4, "split_size_mb": 0}},
{"method": "bdev_error_create", "params": {"base_name": "SpMalloc1"}},
{"method": "bdev_raid_set_options", "params": {"process_window_size_kb": 1024, "process_max_bandwidth_mb_sec": 0}},
{"method": "bdev_passthru_create", "params": {"base_bdev_name": "SpNull0", "name": "SpPt0", "uuid": "6df3a4f0-1080-5ef3-84e6-90ba87753d48"}},
{"method": "bdev_nvme_set_options", "params": {"action_on_timeout": "none", "timeout_us": 0, "timeout_admin_us": 0, "keep_alive_timeout_ms": 10000, "arbitration_burst": 0, "low_priority_weight": 0, "medium_priority_weight": 0, "high_priority_weight": 0, "nvme_adminq_poll_period_us": 10000, "nvme_ioq_poll_period_us": 0, "io_queue_requests": 0, "delay_cmd_submit": true, "transport_retry_count": 4, "bdev_retry_count": 3, "transport_ack_timeout": 0, "ctrlr_loss_timeout_sec": 0, "reconnect_delay_sec": 0, "fast_io_fail_timeout_sec": 0, "disable_auto_failback": false, "generate_uuids": false, "transport_tos": 0, "nvme_error_stat": false, "rdma_srq_size": 0, "io_path_stat": false, "allow_accel_sequence": false, "rdma_max_cq_size": 0, "rdma_cm_event_timeout_ms": 0, "dhchap_digests": ["sha256", "sha384", "sha512"], "dhchap_dhgroups": ["null", "ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192"], "rdma_umr_per_io": false, "tcp_connect_timeout_ms": 0, "enable_flush": false}},
{"method": "bdev_nvme_set_hotplug", "params": {"period_us": 100000, "enable": false}},
{"method": "bdev_malloc_create", "params": {"name": "SpMalloc0", "num_blocks": 2048, "block_size": 512, "physical_block_size": 512, "uuid": "b55c5072-9eec-4eaa-a37c-2bb9cc87eaf1", "optimal_io_boundary": 0, "md_size": 0, "dif_type": 0, "dif_is_head_of_md": false, "dif_pi_format": 0}},
{"method": "bdev_malloc_create", "params": {"name": "SpMalloc1", "num_blocks": 256, "block_size": 4096, "physical_block_size": 4096, "uuid": "7309c835-a743-45da-ac4b-930cd838bffa", "optimal_io_boundary": 16, "md_size": 0, "dif_type": 0, "dif_is_head_of_md": false, "dif_pi_format": 0}},
{"method": "bdev_null_create", "params": {"name": "SpNull0", "num_blocks": 1048576, "block_size": 512, "physical_block_size": 512, "md_size": 0, "dif_type": 0, "dif_is_head_of_md": false, "dif_pi_format": 0, "uuid": "9ddc46a7-2a68-4030-956f-964701ea1784", "preferred_write_granularity": 0, "preferred_write_alignment": 0, "optimal_write_size": 0, "preferred_unmap_granularity": 0, "preferred_unmap_alignment": 0}},
{"method": "bdev_set_qos_limit", "params": {"name": "SpPt0", "rw_ios_per_sec": 20000, "r_mbytes_per_sec": 100}},
{"method": "bdev_wait_for_examine"}
]}]}"#;
    bdev::load_config(cfg).expect("SPDK's saved config loads");
    for n in ["SpMalloc0p3", "EE_SpMalloc1", "SpPt0", "SpNull0"] {
        assert!(bdev::get_by_name(n).is_some(), "{n} missing");
    }
    let pt = bdev::get_by_name("SpPt0").unwrap();
    assert_eq!(pt.qos_limits().rw_ios_per_sec, 20000);
    assert_eq!(pt.qos_limits().r_mbytes_per_sec, 100);
}

/// Measures (prints, asserts no time) loading configs of 10,000 and
/// 100,000 null bdevs; checks every bdev is there. Run it in release:
/// `cargo test --release --test bdev_rpc_config -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
fn loading_ten_and_a_hundred_thousand_entries_is_measured() {
    for (tag, n) in [("A", 10_000u32), ("B", 100_000)] {
        let mut t = String::from("{\"subsystems\": [{\"subsystem\": \"bdev\", \"config\": [\n");
        for i in 0..n {
            t.push_str(&format!(
                "  {{\"method\": \"bdev_null_create\", \"params\": {{\"name\": \"Big{tag}{i}\", \"num_blocks\": 8, \"block_size\": 512}}}},\n"
            ));
        }
        t.push_str("  {\"method\": \"bdev_wait_for_examine\"}\n]}]}\n");
        let start = std::time::Instant::now();
        let created = bdev::load_config(&t).expect("loads");
        let took = start.elapsed();
        assert_eq!(created.len(), n as usize);
        println!(
            "config of {n} bdev_null_create entries ({} bytes): loaded in {took:?}",
            t.len()
        );
        let start = std::time::Instant::now();
        for i in 0..n {
            bdev::get_by_name(&format!("Big{tag}{i}"))
                .expect("created")
                .unregister();
        }
        println!("  and unregistered in {:?}", start.elapsed());
    }
}
