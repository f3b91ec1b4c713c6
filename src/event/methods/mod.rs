//! The framework's own methods (SPDK's `lib/event/app_rpc.c`,
//! `lib/event/log_rpc.c`, `lib/init/subsystem_rpc.c`, `lib/rpc/rpc.c`).
//!
//! | file | methods |
//! |---|---|
//! | `framework` | `spdk_get_version`, `rpc_get_methods`, `framework_start_init`, `framework_wait_init`, `framework_get_subsystems`, `framework_get_config`, `spdk_kill_instance` |
//! | `reactors` | `framework_get_reactors`, `thread_get_stats`, `thread_get_pollers`, `thread_get_io_channels` |
//! | `proc_stat` | per-core CPU time for `framework_get_reactors` |
//! | `log` | `log_set_level`, `log_get_level`, `log_set_print_level`, `log_get_print_level`, `log_set_flag`, `log_clear_flag`, `log_get_flags` |

mod framework;
mod log;
mod proc_stat;
mod reactors;

pub(crate) use proc_stat::record_start as record_cpu_times;

use crate::rpc::{Method, MethodFuture, RpcError, RpcResult};
use serde_json::Value;
use std::future::Future;

/// Every framework method.
pub fn methods() -> Vec<Method> {
    let mut v = framework::methods();
    v.extend(reactors::methods());
    v.extend(log::methods());
    v
}

fn boxed(f: impl Future<Output = RpcResult> + 'static) -> MethodFuture {
    Box::pin(f)
}

fn ready(r: RpcResult) -> MethodFuture {
    Box::pin(std::future::ready(r))
}

/// SPDK's refusal of params for a method that takes none: any `params`
/// but `null` (an empty object too) is `-32602` with the method's message.
fn no_params(params: &Value, message: &str) -> Result<(), RpcError> {
    if params.is_null() {
        Ok(())
    } else {
        Err(RpcError::invalid_params(message))
    }
}
