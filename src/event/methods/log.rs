//! Log methods (SPDK's `lib/event/log_rpc.c`) over [`crate::event::log`].

use super::{no_params, ready};
use crate::event::log::{self as elog, Level};
use crate::rpc::{Method, MethodFuture, MethodStates, RpcError};
use serde_json::Value;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelParam {
    level: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FlagParam {
    flag: String,
}

/// SPDK answers undecodable params of these methods with -32603.
fn decode<T: serde::de::DeserializeOwned>(params: Value) -> Result<T, RpcError> {
    serde_json::from_value(params)
        .map_err(|e| RpcError::internal(format!("spdk_json_decode_object failed: {e}")))
}

fn level_of(params: Value) -> Result<Level, RpcError> {
    let p: LevelParam = decode(params)?;
    Level::parse(&p.level).ok_or_else(|| RpcError::invalid_params("invalid log level"))
}

fn log_set_level(params: Value) -> MethodFuture {
    ready(level_of(params).map(|l| {
        elog::set_log_level(l);
        Value::Bool(true)
    }))
}

fn log_set_print_level(params: Value) -> MethodFuture {
    ready(level_of(params).map(|l| {
        elog::set_print_level(l);
        Value::Bool(true)
    }))
}

fn log_get_level(params: Value) -> MethodFuture {
    ready(
        no_params(&params, "log_get_level requires no parameters")
            .map(|()| elog::log_level().name().into()),
    )
}

fn log_get_print_level(params: Value) -> MethodFuture {
    ready(
        no_params(&params, "log_get_print_level requires no parameters")
            .map(|()| elog::print_level().name().into()),
    )
}

fn log_set_flag(params: Value) -> MethodFuture {
    ready(decode::<FlagParam>(params).and_then(|p| {
        if elog::set_flag(&p.flag) {
            Ok(Value::Bool(true))
        } else {
            Err(RpcError::invalid_params("invalid log flag"))
        }
    }))
}

fn log_clear_flag(params: Value) -> MethodFuture {
    ready(decode::<FlagParam>(params).and_then(|p| {
        if elog::clear_flag(&p.flag) {
            Ok(Value::Bool(true))
        } else {
            Err(RpcError::invalid_params("invalid log flag"))
        }
    }))
}

fn log_get_flags(params: Value) -> MethodFuture {
    ready(
        no_params(&params, "log_get_flags requires no parameters").map(|()| {
            Value::Object(
                elog::flags()
                    .into_iter()
                    .map(|(f, on)| (f.to_string(), Value::Bool(on)))
                    .collect(),
            )
        }),
    )
}

pub(super) fn methods() -> Vec<Method> {
    let both = MethodStates::STARTUP | MethodStates::RUNTIME;
    vec![
        Method {
            name: "log_set_level",
            states: both,
            handler: log_set_level,
        },
        Method {
            name: "log_get_level",
            states: both,
            handler: log_get_level,
        },
        Method {
            name: "log_set_print_level",
            states: both,
            handler: log_set_print_level,
        },
        Method {
            name: "log_get_print_level",
            states: both,
            handler: log_get_print_level,
        },
        Method {
            name: "log_set_flag",
            states: both,
            handler: log_set_flag,
        },
        Method {
            name: "log_clear_flag",
            states: both,
            handler: log_clear_flag,
        },
        Method {
            name: "log_get_flags",
            states: both,
            handler: log_get_flags,
        },
    ]
}
