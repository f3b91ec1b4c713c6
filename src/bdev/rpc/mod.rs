//! The bdev layer's JSON-RPC methods (SPDK's `lib/bdev/bdev_rpc.c` and the
//! `module/bdev/*/bdev_*_rpc.c` files) as a list the application framework
//! registers into its method table, and the `bdev` subsystem's part of
//! `save_config`.
//!
//! Nothing here knows sockets or the JSON-RPC wire: a method is a name, the
//! states it may run in and a handler turning `params` into a future of the
//! result (see [`crate::rpc`]). The same functions serve `--json` config
//! loading in this layer ([`call_sync`]), so a config entry and an RPC call
//! behave alike.
//!
//! | item | job |
//! |---|---|
//! | [`methods`] | every bdev method, with SPDK's names and states |
//! | [`config_entries`] | the `config` array of the `bdev` subsystem |
//! | [`call_sync`] | one method called directly (config loading) |
//! | `core` | bdev_get_bdevs, iostat, options, examine, QoS |
//! | `modules` | create / delete of malloc, null, aio, uring, split, passthru, error |
//! | `nvme` | bdev_nvme_* but attach |
//! | `nvme_attach` | bdev_nvme_attach_controller |
//! | `info`, `errors` | result objects; failures as SPDK's error objects |

mod core;
mod errors;
mod info;
mod modules;
mod nvme;
mod nvme_attach;

pub use errors::{errno_of, to_rpc_error, Failure};

use crate::bdev::BdevError;
use crate::rpc::{parse_params, Method, MethodFuture, MethodStates};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// Decodes `params`, unknown or mistyped fields named (`-32602`).
fn params<T: DeserializeOwned>(p: Value) -> Result<T, Failure> {
    parse_params(p).map_err(|e| Failure::Params(e.message))
}

type SyncFn = fn(Value) -> Result<Value, Failure>;

const RT: MethodStates = MethodStates::RUNTIME;
const BOTH: MethodStates = MethodStates::STARTUP.union(MethodStates::RUNTIME);
const STARTUP: MethodStates = MethodStates::STARTUP;

macro_rules! sync_methods {
    ($($name:literal => $f:path, $states:expr;)*) => {
        /// Methods that finish inside the call, by name (config loading
        /// calls them all so; the JSON-RPC table takes the awaited form of
        /// those in [`ASYNC`]).
        const SYNC: &[(&str, SyncFn)] = &[$(($name, $f)),*];

        fn sync_methods() -> Vec<Method> {
            vec![$({
                fn handler(p: Value) -> MethodFuture {
                    Box::pin(std::future::ready($f(p).map_err(|e| e.into_rpc($name))))
                }
                Method { name: $name, states: $states, handler }
            }),*]
        }
    };
}

macro_rules! async_methods {
    ($($name:literal => $f:path, $states:expr;)*) => {
        /// Methods that wait for a device or the network: their JSON-RPC
        /// handlers await the work without holding the app thread.
        fn async_methods() -> Vec<Method> {
            vec![$({
                fn handler(p: Value) -> MethodFuture {
                    Box::pin(async move { $f(p).await.map_err(|e| e.into_rpc($name)) })
                }
                Method { name: $name, states: $states, handler }
            }),*]
        }
    };
}

async_methods! {
    "bdev_nvme_attach_controller" => nvme_attach::attach, RT;
    "bdev_nvme_reset_controller" => nvme::reset, RT;
    "bdev_nvme_detach_controller" => nvme::detach, RT;
    "bdev_get_iostat" => core::get_iostat_async, RT;
}

sync_methods! {
    "bdev_set_options" => core::set_options, STARTUP;
    "bdev_wait_for_examine" => core::wait_for_examine, RT;
    "bdev_examine" => core::examine, RT;
    "bdev_get_iostat" => core::get_iostat, RT;
    "bdev_reset_iostat" => core::reset_iostat, RT;
    "bdev_set_qos_limit" => core::set_qos_limit, RT;
    "bdev_malloc_create" => modules::malloc_create, RT;
    "bdev_malloc_delete" => modules::malloc_delete, RT;
    "bdev_null_create" => modules::null_create, RT;
    "bdev_null_delete" => modules::null_delete, RT;
    "bdev_aio_create" => modules::aio_create, RT;
    "bdev_aio_delete" => modules::file_delete, RT;
    "bdev_uring_create" => modules::uring_create, RT;
    "bdev_uring_delete" => modules::file_delete, RT;
    "bdev_split_create" => modules::split_create, RT;
    "bdev_split_delete" => modules::split_delete, RT;
    "bdev_passthru_create" => modules::passthru_create, RT;
    "bdev_passthru_delete" => modules::passthru_delete, RT;
    "bdev_error_create" => modules::error_create, RT;
    "bdev_error_delete" => modules::error_delete, RT;
    "bdev_error_inject_error" => modules::error_inject, RT;
    "bdev_nvme_attach_controller" => nvme_attach::attach_sync, RT;
    "bdev_nvme_detach_controller" => nvme::detach_sync, RT;
    "bdev_nvme_get_controllers" => nvme::get_controllers, RT;
    "bdev_nvme_reset_controller" => nvme::reset_sync, RT;
    "bdev_nvme_set_options" => nvme::set_options, BOTH;
    "bdev_nvme_set_hotplug" => nvme::set_hotplug, RT;
}

fn get_bdevs_handler(p: Value) -> MethodFuture {
    Box::pin(async move {
        core::get_bdevs(p)
            .await
            .map_err(|e| e.into_rpc("bdev_get_bdevs"))
    })
}

/// Every bdev method, as SPDK registers it (name and allowed states).
pub fn methods() -> Vec<Method> {
    let mut v = sync_methods();
    for a in async_methods() {
        match v.iter_mut().find(|m| m.name == a.name) {
            Some(m) => *m = a,
            None => v.push(a),
        }
    }
    v.push(Method {
        name: "bdev_get_bdevs",
        states: RT,
        handler: get_bdevs_handler,
    });
    v
}

/// Calls method `name` directly, as config loading does; `None` when
/// this layer has no such method that finishes inside the call.
pub fn call_sync(name: &str, params: Value) -> Option<Result<Value, BdevError>> {
    let (_, f) = SYNC.iter().find(|(n, _)| *n == name)?;
    Some(f(params).map_err(|e| e.into_bdev(name)))
}

/// The `config` array of the `bdev` subsystem for `save_config`, in
/// SPDK's order: `bdev_set_options`, `bdev_examine` of each name given,
/// the modules' options, each bdev a method created (then its QoS limits),
/// and `bdev_wait_for_examine` last.
pub fn config_entries() -> Vec<Value> {
    let mut v = vec![core::options_entry()];
    for n in crate::bdev::examine_allowlist() {
        v.push(json!({"method": "bdev_examine", "params": {"name": n}}));
    }
    v.extend(nvme::options_entry());
    v.extend(nvme::controller_entries());
    for b in crate::bdev::bdevs() {
        v.extend(b.ops.write_config_json().map(without_nulls));
        v.extend(core::qos_entry(&b));
    }
    v.push(json!({"method": "bdev_wait_for_examine"}));
    v
}

/// An entry without its `null` params: SPDK writes an unset option by
/// leaving it out, and its decoders refuse `null` (`"uuid": null`).
fn without_nulls(mut e: Value) -> Value {
    if let Some(p) = e.get_mut("params").and_then(Value::as_object_mut) {
        p.retain(|_, v| !v.is_null());
    }
    e
}
