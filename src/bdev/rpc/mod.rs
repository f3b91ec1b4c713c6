//! The bdev layer's JSON-RPC methods (SPDK's `lib/bdev/bdev_rpc.c` and the
//! `module/bdev/*/bdev_*_rpc.c` files) as a list the application framework
//! registers into its method table, and the `bdev` subsystem's part of
//! `save_config`.
//!
//! Nothing here knows sockets or the JSON-RPC wire: a method is a name, the
//! states it may run in and a handler turning `params` into a future of the
//! result (see [`crate::rpc`]).
//!
//! | item | job |
//! |---|---|
//! | [`methods`] | every bdev method, with SPDK's names and states |
//! | [`config_entries`] | the `config` array of the `bdev` subsystem |
//! | `errors` | a [`BdevError`](super::BdevError) as the error SPDK sends |

mod errors;

pub use errors::to_rpc_error;

use crate::rpc::{Method, MethodFuture, MethodStates};
use serde_json::Value;

/// Runs one method through the bdev layer's config dispatcher.
fn call(name: &str, params: Value) -> MethodFuture {
    let r = super::config::call_method(name, &params).map_err(to_rpc_error);
    Box::pin(std::future::ready(r))
}

/// A [`Method`] whose handler runs `call` with its own name.
macro_rules! method {
    ($name:literal, $states:expr) => {{
        fn handler(params: Value) -> MethodFuture {
            call($name, params)
        }
        Method {
            name: $name,
            states: $states,
            handler,
        }
    }};
}

/// Every bdev method, as SPDK registers it (name and allowed states).
pub fn methods() -> Vec<Method> {
    let rt = MethodStates::RUNTIME;
    let both = MethodStates::STARTUP | MethodStates::RUNTIME;
    let startup = MethodStates::STARTUP;
    vec![
        method!("bdev_set_options", startup),
        method!("bdev_wait_for_examine", both),
        method!("bdev_malloc_create", rt),
        method!("bdev_malloc_delete", rt),
        method!("bdev_null_create", rt),
        method!("bdev_null_delete", rt),
        method!("bdev_aio_create", rt),
        method!("bdev_aio_delete", rt),
        method!("bdev_uring_create", rt),
        method!("bdev_uring_delete", rt),
        method!("bdev_split_create", rt),
        method!("bdev_split_delete", rt),
        method!("bdev_passthru_create", rt),
        method!("bdev_passthru_delete", rt),
        method!("bdev_error_create", rt),
        method!("bdev_error_delete", rt),
        method!("bdev_nvme_attach_controller", rt),
        method!("bdev_nvme_set_options", startup),
        method!("bdev_nvme_set_hotplug", both),
        method!("bdev_aio_set_options", startup),
    ]
}

/// The `config` array of the `bdev` subsystem for `save_config`: one
/// `{"method", "params"}` entry per bdev that a method created, in creation
/// order, ending with `bdev_wait_for_examine` as SPDK writes it.
pub fn config_entries() -> Vec<Value> {
    match super::config::save_config()["subsystems"][0]["config"].take() {
        Value::Array(a) => a,
        _ => vec![serde_json::json!({"method": "bdev_wait_for_examine"})],
    }
}
