//! The `bdev_lvol_*` JSON-RPC methods (SPDK's
//! `module/bdev/lvol/vbdev_lvol_rpc.c`), with SPDK's parameters, results
//! and errors, as a list the application framework registers with the
//! bdev subsystem's methods. They are `--json` config methods as well.
//!
//! Errors follow SPDK: a check that fails before the operation starts
//! answers `-errno` and `strerror` ("File exists"); an operation that
//! fails on the way answers `-32602` (`-32603` for `bdev_lvol_delete`)
//! with `strerror`'s text. lvols write nothing to `save_config`: they live
//! on their base bdev and come back by examine.
//!
//! | file | job |
//! |---|---|
//! | `lvs` | the lvstore methods |
//! | `lvol` | the lvol methods |
//! | here | error shapes, [`methods`], [`call`], `bdev_wait_for_examine` |

mod lvol;
mod lvs;

use super::error::LvolError;
use super::vbdev;
use crate::rpc::{parse_params, strerror, Method, MethodFuture, MethodStates, RpcError};
use serde_json::Value;

pub(super) type Res = Result<Value, RpcError>;

pub(super) fn params<T: serde::de::DeserializeOwned>(p: Value) -> Result<T, RpcError> {
    parse_params(p)
}

/// An error found before the operation started: `-errno`, `strerror`.
pub(super) fn early(e: LvolError) -> RpcError {
    log::error!("{e}");
    RpcError::errno(e.errno())
}

/// An error of the operation itself: `code`, `strerror(errno)`.
pub(super) fn late(code: i32) -> impl Fn(LvolError) -> RpcError {
    move |e| {
        log::error!("{e}");
        RpcError::new(code, strerror(e.errno()))
    }
}

pub(super) const LATE: i32 = crate::rpc::INVALID_PARAMS;

fn is_early(e: &LvolError) -> bool {
    !matches!(
        e,
        LvolError::Blob(_) | LvolError::NoSpace { .. } | LvolError::Busy(_)
    )
}

/// Early or late by kind (for calls whose checks and operation are one).
pub(super) fn by_kind(e: LvolError) -> RpcError {
    if is_early(&e) {
        early(e)
    } else {
        late(LATE)(e)
    }
}

/// The lvol named by a bdev name or alias, or `-ENODEV` "No such device".
pub(super) fn lvol_of(name: &str) -> Result<(), RpcError> {
    vbdev::find_lvol(name)
        .map(drop)
        .map_err(|_| RpcError::errno(libc::ENODEV))
}

/// `bdev_wait_for_examine`, waiting for the lvol module's examines too
/// (it replaces the bdev layer's, which has no asynchronous examine).
async fn wait_for_examine(p: Value) -> Res {
    match &p {
        Value::Null => {}
        Value::Object(o) if o.is_empty() => {}
        _ => {
            return Err(RpcError::invalid_params(
                "bdev_wait_for_examine requires no parameters",
            ))
        }
    }
    vbdev::examined().await;
    Ok(true.into())
}

/// Calls lvol method `name` directly (a program's own config loading, such
/// as bdevperf's); `None` when `name` is not an lvol method. Run it on the
/// thread that is to be the stores' metadata thread.
pub async fn call(name: &str, params: Value) -> Option<Res> {
    let m = methods().into_iter().find(|m| m.name == name)?;
    Some((m.handler)(params).await)
}

macro_rules! methods {
    ($($name:literal => $f:path;)*) => {
        /// Every lvol method, as SPDK registers it (all at runtime), and
        /// `bdev_wait_for_examine` waiting for lvol examine.
        pub fn methods() -> Vec<Method> {
            vec![$({
                fn handler(p: Value) -> MethodFuture {
                    Box::pin($f(p))
                }
                Method { name: $name, states: MethodStates::RUNTIME, handler }
            }),*]
        }
    };
}

methods! {
    "bdev_lvol_create_lvstore" => lvs::create_lvstore;
    "bdev_lvol_delete_lvstore" => lvs::delete_lvstore;
    "bdev_lvol_get_lvstores" => lvs::get_lvstores;
    "bdev_lvol_rename_lvstore" => lvs::rename_lvstore;
    "bdev_lvol_grow_lvstore" => lvs::grow_lvstore;
    "bdev_lvol_create" => lvol::create;
    "bdev_lvol_delete" => lvol::delete;
    "bdev_lvol_get_lvols" => lvol::get_lvols;
    "bdev_lvol_snapshot" => lvol::snapshot;
    "bdev_lvol_clone" => lvol::clone;
    "bdev_lvol_resize" => lvol::resize;
    "bdev_lvol_rename" => lvol::rename;
    "bdev_lvol_inflate" => lvol::inflate;
    "bdev_lvol_decouple_parent" => lvol::decouple_parent;
    "bdev_lvol_set_read_only" => lvol::set_read_only;
    "bdev_lvol_set_parent" => lvol::set_parent;
    "bdev_lvol_start_shallow_copy" => lvol::start_shallow_copy;
    "bdev_lvol_check_shallow_copy" => lvol::check_shallow_copy;
    "bdev_wait_for_examine" => wait_for_examine;
}
