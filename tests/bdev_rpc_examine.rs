//! `bdev_set_options bdev_auto_examine=false` and `bdev_examine`: with
//! auto examine off, a virtual bdev configured on a base appears only once
//! the base is named by `bdev_examine` (a binary of its own: the switch is
//! process-wide).

use serde_json::{json, Value};
use spdk_io::bdev;

fn call(name: &str, p: Value) -> Result<Value, bdev::BdevError> {
    bdev::rpc::call_sync(name, p).unwrap_or_else(|| panic!("no method {name}"))
}

#[test]
fn with_auto_examine_off_only_bdevs_named_by_bdev_examine_are_examined() {
    call("bdev_set_options", json!({"bdev_auto_examine": false})).unwrap();
    call(
        "bdev_passthru_create",
        json!({"base_bdev_name": "ExBase0", "name": "ExPt0"}),
    )
    .unwrap();
    call(
        "bdev_null_create",
        json!({"name": "ExBase0", "num_blocks": 64, "block_size": 512}),
    )
    .unwrap();
    assert!(
        bdev::get_by_name("ExPt0").is_none(),
        "not examined: no passthru yet"
    );
    call("bdev_examine", json!({"name": "ExBase0"})).unwrap();
    assert!(
        bdev::get_by_name("ExPt0").is_some(),
        "examined on bdev_examine"
    );
    let again = call("bdev_examine", json!({"name": "ExBase0"})).unwrap_err();
    assert_eq!(bdev::rpc::errno_of(&again), libc::EEXIST);
    let cfg = bdev::rpc::config_entries();
    assert_eq!(cfg[0]["params"]["bdev_auto_examine"], false);
    assert_eq!(
        cfg[1],
        json!({"method": "bdev_examine", "params": {"name": "ExBase0"}})
    );
    call("bdev_set_options", json!({"bdev_auto_examine": true})).unwrap();
    let on = call("bdev_examine", json!({"name": "ExOther"})).unwrap_err();
    assert_eq!(
        bdev::rpc::errno_of(&on),
        libc::EINVAL,
        "manual examine refused while auto examine is on"
    );
}
