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
