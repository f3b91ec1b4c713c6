//! Framework methods: version, the method list, initialisation, the
//! subsystems and their configuration, and `spdk_kill_instance`.

use super::{boxed, no_params, ready};
use crate::event::ctx;
use crate::rpc::{parse_params, Method, MethodFuture, MethodStates, RpcError};
use serde_json::{json, Value};

/// The SPDK release whose methods and wire format this framework follows.
pub const SPDK_VERSION: (u32, u32, u32) = (25, 9, 0);

fn spdk_get_version(params: Value) -> MethodFuture {
    ready(no_params(&params, "spdk_get_version method requires no parameters").map(|()| {
        let (major, minor, patch) = SPDK_VERSION;
        json!({
            "version": format!("SPDK v{major}.{minor:02} (spdk-io {})", env!("CARGO_PKG_VERSION")),
            "fields": {"major": major, "minor": minor, "patch": patch, "suffix": ""},
        })
    }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GetMethods {
    #[serde(default)]
    current: bool,
    #[serde(default)]
    include_aliases: bool,
}

fn rpc_get_methods(params: Value) -> MethodFuture {
    ready((|| {
        let p: GetMethods = parse_params(params)?;
        let _ = p.include_aliases; // this framework registers no aliases
        let c = ctx::get()?;
        let state = c.table.state();
        let names: Vec<Value> = c
            .table
            .methods()
            .iter()
            .filter(|m| !p.current || m.states.contains(state))
            .map(|m| Value::String(m.name.into()))
            .collect();
        Ok(Value::Array(names))
    })())
}

fn framework_start_init(params: Value) -> MethodFuture {
    ready((|| {
        no_params(&params, "framework_start_init requires no parameters")?;
        let c = ctx::get()?;
        c.start_init().map_err(|e| {
            log::error!("{e}");
            RpcError::internal("framework_initialization failed")
        })?;
        Ok(Value::Bool(true))
    })())
}

fn framework_wait_init(params: Value) -> MethodFuture {
    boxed(async move {
        no_params(&params, "framework_wait_init requires no parameters")?;
        let c = ctx::get()?;
        c.wait_init()
            .await
            .map_err(|_| RpcError::internal("framework_initialization failed"))?;
        Ok(Value::Bool(true))
    })
}

fn framework_get_subsystems(params: Value) -> MethodFuture {
    ready((|| {
        no_params(&params, "'framework_get_subsystems' requires no arguments")?;
        let c = ctx::get()?;
        Ok(Value::Array(
            c.subsystems
                .iter()
                .map(|s| json!({"subsystem": s.name, "depends_on": s.depends_on}))
                .collect(),
        ))
    })())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GetConfig {
    name: String,
    /// Sent by current clients; this framework writes no batch entries.
    #[serde(default)]
    #[allow(dead_code)]
    with_batches: bool,
}

fn framework_get_config(params: Value) -> MethodFuture {
    ready((|| {
        let p: GetConfig = parse_params(params)?;
        let c = ctx::get()?;
        let s = c
            .subsystems
            .iter()
            .find(|s| s.name == p.name)
            .ok_or_else(|| RpcError::invalid_params(format!("Subsystem '{}' not found", p.name)))?;
        Ok((s.config)().map_or(Value::Null, Value::Array))
    })())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KillInstance {
    sig_name: String,
}

/// The signals `spdk_kill_instance` accepts, by name or number.
const SIGNALS: &[(&str, nix::sys::signal::Signal)] = &[
    ("SIGINT", nix::sys::signal::Signal::SIGINT),
    ("SIGTERM", nix::sys::signal::Signal::SIGTERM),
    ("SIGQUIT", nix::sys::signal::Signal::SIGQUIT),
    ("SIGHUP", nix::sys::signal::Signal::SIGHUP),
    ("SIGKILL", nix::sys::signal::Signal::SIGKILL),
    ("SIGUSR1", nix::sys::signal::Signal::SIGUSR1),
];

fn spdk_kill_instance(params: Value) -> MethodFuture {
    ready((|| {
        let p: KillInstance = parse_params(params)?;
        let num: Option<i32> = p.sig_name.parse().ok();
        let sig = SIGNALS
            .iter()
            .find(|(n, s)| *n == p.sig_name || num == Some(*s as i32))
            .map(|(_, s)| *s)
            .ok_or_else(|| RpcError::invalid_params("Invalid parameters"))?;
        nix::sys::signal::kill(nix::unistd::getpid(), sig)
            .map_err(|e| RpcError::errno(e as i32))?;
        Ok(Value::Bool(true))
    })())
}

pub(super) fn methods() -> Vec<Method> {
    let both = MethodStates::STARTUP | MethodStates::RUNTIME;
    let rt = MethodStates::RUNTIME;
    vec![
        Method {
            name: "spdk_get_version",
            states: both,
            handler: spdk_get_version,
        },
        Method {
            name: "rpc_get_methods",
            states: both,
            handler: rpc_get_methods,
        },
        Method {
            name: "framework_start_init",
            states: MethodStates::STARTUP,
            handler: framework_start_init,
        },
        Method {
            name: "framework_wait_init",
            states: both,
            handler: framework_wait_init,
        },
        Method {
            name: "framework_get_subsystems",
            states: rt,
            handler: framework_get_subsystems,
        },
        Method {
            name: "framework_get_config",
            states: rt,
            handler: framework_get_config,
        },
        Method {
            name: "spdk_kill_instance",
            states: rt,
            handler: spdk_kill_instance,
        },
    ]
}
