//! The handlers of the `nvmf_*` methods.

use super::params::*;
use super::query;
use super::state::{self, target_or_err};
use crate::nvmf::tcp::TcpTransport;
use crate::nvmf::{parse_uuid, ListenAddr, Subsystem, SubsystemOpts, SubsystemType, TransportOpts};
use crate::rpc::{parse_params, Method, MethodFuture, MethodStates, RpcError, RpcResult};
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// A method of the running target (SPDK's `SPDK_RPC_RUNTIME`): a `--json`
/// config runs it once the subsystems are initialised, after the bdevs it
/// names exist and the nvmf subsystem has its target.
fn m(name: &'static str, handler: fn(Value) -> MethodFuture) -> Method {
    Method {
        name,
        states: MethodStates::RUNTIME,
        handler,
    }
}

fn startup(name: &'static str, handler: fn(Value) -> MethodFuture) -> Method {
    Method {
        name,
        states: MethodStates::STARTUP,
        handler,
    }
}

fn accept_settings(p: Value) -> RpcResult {
    if !(p.is_null() || p.is_object()) {
        return Err(RpcError::invalid_params(
            "Invalid parameters: expected an object",
        ));
    }
    Ok(json!(true))
}

/// The methods, for the framework's table.
pub fn methods() -> Vec<Method> {
    vec![
        m("nvmf_create_transport", |p| Box::pin(create_transport(p))),
        m("nvmf_get_transports", |p| {
            Box::pin(async move { get_transports(p) })
        }),
        m("nvmf_create_subsystem", |p| {
            Box::pin(async move { create_subsystem(p) })
        }),
        m("nvmf_delete_subsystem", |p| {
            Box::pin(async move { delete_subsystem(p) })
        }),
        m("nvmf_get_subsystems", |p| {
            Box::pin(async move { get_subsystems(p) })
        }),
        m("nvmf_subsystem_add_listener", |p| {
            Box::pin(async move { add_listener(p) })
        }),
        m("nvmf_subsystem_remove_listener", |p| {
            Box::pin(async move { remove_listener(p) })
        }),
        m("nvmf_subsystem_add_ns", |p| {
            Box::pin(async move { add_ns(p) })
        }),
        m("nvmf_subsystem_remove_ns", |p| {
            Box::pin(async move { remove_ns(p) })
        }),
        m("nvmf_subsystem_add_host", |p| {
            Box::pin(async move { add_host(p) })
        }),
        m("nvmf_subsystem_remove_host", |p| {
            Box::pin(async move { remove_host(p) })
        }),
        m("nvmf_subsystem_allow_any_host", |p| {
            Box::pin(async move { allow_any_host(p) })
        }),
        // Target-wide settings a config saved by SPDK carries: accepted
        // (an object of parameters), this target keeps its defaults.
        startup("nvmf_set_config", |p| {
            Box::pin(async move { accept_settings(p) })
        }),
        startup("nvmf_set_max_subsystems", |p| {
            Box::pin(async move { accept_settings(p) })
        }),
        startup("nvmf_set_crdt", |p| {
            Box::pin(async move { accept_settings(p) })
        }),
        m("nvmf_subsystem_get_controllers", |p| {
            Box::pin(async move { query::get_controllers(p) })
        }),
        m("nvmf_subsystem_get_qpairs", |p| {
            Box::pin(async move { query::get_qpairs(p) })
        }),
        m("nvmf_subsystem_get_listeners", |p| {
            Box::pin(async move { query::get_listeners(p) })
        }),
        m("nvmf_get_stats", |p| {
            Box::pin(async move { query::get_stats(p) })
        }),
        m("nvmf_subsystem_listener_set_ana_state", |p| {
            Box::pin(async move { set_ana_state(p) })
        }),
    ]
}

fn subsystem(nqn: &str) -> Result<Arc<Subsystem>, RpcError> {
    target_or_err()?
        .find(nqn)
        .ok_or_else(|| RpcError::invalid_params(format!("Unable to find subsystem with NQN {nqn}")))
}

fn bad(e: impl std::fmt::Display) -> RpcError {
    RpcError::invalid_params(e.to_string())
}

async fn create_transport(p: Value) -> RpcResult {
    let p: CreateTransport = parse_params(p)?;
    if !p.trtype.eq_ignore_ascii_case("tcp") {
        return Err(RpcError::invalid_params(format!(
            "Transport type '{}' is not supported: only TCP",
            p.trtype
        )));
    }
    let d = TransportOpts::default();
    let opts = TransportOpts {
        max_queue_depth: p.max_queue_depth.unwrap_or(d.max_queue_depth),
        max_aq_depth: p.max_aq_depth.unwrap_or(d.max_aq_depth),
        max_qpairs_per_ctrlr: p
            .max_io_qpairs_per_ctrlr
            .map_or(d.max_qpairs_per_ctrlr, |n| n.saturating_add(1)),
        in_capsule_data_size: p.in_capsule_data_size.unwrap_or(d.in_capsule_data_size),
        max_io_size: p.max_io_size.unwrap_or(d.max_io_size),
        io_unit_size: p.io_unit_size.unwrap_or(d.io_unit_size),
        c2h_success: p.c2h_success.unwrap_or(d.c2h_success),
        sock_priority: p.sock_priority.unwrap_or(d.sock_priority),
        num_shared_buffers: p.num_shared_buffers.unwrap_or(d.num_shared_buffers),
        buf_cache_size: p.buf_cache_size.unwrap_or(d.buf_cache_size),
    };
    state::create_transport(opts).await?;
    Ok(json!(true))
}

/// A transport as `nvmf_get_transports` and `save_config` write it.
pub(super) fn transport_json(o: &TransportOpts) -> Value {
    json!({
        "trtype": "TCP",
        "max_queue_depth": o.max_queue_depth,
        "max_io_qpairs_per_ctrlr": o.max_qpairs_per_ctrlr - 1,
        "in_capsule_data_size": o.in_capsule_data_size,
        "max_io_size": o.max_io_size,
        "io_unit_size": o.io_unit_size,
        "max_aq_depth": o.max_aq_depth,
        "num_shared_buffers": o.num_shared_buffers,
        "buf_cache_size": o.buf_cache_size,
        "c2h_success": o.c2h_success,
        "sock_priority": o.sock_priority,
    })
}

fn get_transports(p: Value) -> RpcResult {
    let _: Get = parse_params(p)?;
    if !state::has_transport() {
        return Ok(json!([]));
    }
    Ok(json!([transport_json(&target_or_err()?.opts())]))
}

fn create_subsystem(p: Value) -> RpcResult {
    let p: CreateSubsystem = parse_params(p)?;
    let d = SubsystemOpts::default();
    let opts = SubsystemOpts {
        serial_number: p.serial_number.unwrap_or(d.serial_number),
        model_number: p.model_number.unwrap_or(d.model_number),
        allow_any_host: p.allow_any_host,
        max_namespaces: p.max_namespaces.unwrap_or(0),
        ana_reporting: p.ana_reporting.unwrap_or(false),
    };
    target_or_err()?
        .create_subsystem(&p.nqn, opts)
        .map_err(|e| {
            RpcError::invalid_params(format!("Unable to create subsystem {}: {e}", p.nqn))
        })?;
    Ok(json!(true))
}

fn delete_subsystem(p: Value) -> RpcResult {
    let p: Nqn = parse_params(p)?;
    target_or_err()?.delete_subsystem(&p.nqn).map_err(bad)?;
    Ok(json!(true))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn uuid_str(b: &[u8; 16]) -> String {
    crate::bdev::Uuid(*b).to_string()
}

fn listen_json(l: &ListenAddr) -> Value {
    json!({"trtype": l.trtype, "adrfam": l.adrfam, "traddr": l.traddr, "trsvcid": l.trsvcid})
}

/// A subsystem as `nvmf_get_subsystems` writes it.
pub(super) fn subsystem_json(s: &Subsystem) -> Value {
    let st = s.lock();
    let mut v = json!({
        "nqn": s.nqn(),
        "subtype": if s.subtype() == SubsystemType::Discovery { "Discovery" } else { "NVMe" },
        "listen_addresses": st.listeners.iter().map(listen_json).collect::<Vec<_>>(),
        "allow_any_host": st.allow_any_host,
        "hosts": st.hosts.iter().map(|h| json!({"nqn": h})).collect::<Vec<_>>(),
    });
    if s.subtype() == SubsystemType::Nvme {
        let o = v.as_object_mut().expect("an object");
        o.insert("serial_number".into(), json!(st.serial_number));
        o.insert("model_number".into(), json!(st.model_number));
        o.insert("max_namespaces".into(), json!(st.max_namespaces));
        o.insert("ana_reporting".into(), json!(st.ana_reporting));
        o.insert("min_cntlid".into(), json!(1));
        o.insert("max_cntlid".into(), json!(0xffef));
        let ns: Vec<Value> = st
            .namespaces
            .values()
            .map(|n| {
                json!({
                    "nsid": n.nsid,
                    "bdev_name": n.bdev_name,
                    "name": n.bdev_name,
                    "nguid": hex(&n.nguid),
                    "uuid": uuid_str(&n.uuid),
                })
            })
            .collect();
        o.insert("namespaces".into(), json!(ns));
    }
    v
}

fn get_subsystems(p: Value) -> RpcResult {
    let p: Get = parse_params(p)?;
    let _ = p.tgt_name;
    let t = target_or_err()?;
    let mut out = vec![subsystem_json(
        &t.find(crate::nvmf::DISCOVERY_NQN).expect("discovery"),
    )];
    out.extend(t.subsystems().iter().map(|s| subsystem_json(s)));
    Ok(Value::Array(out))
}

fn socket_addr(a: &ListenAddress) -> Result<(SocketAddr, ListenAddr), RpcError> {
    if let Some(t) = &a.trtype {
        if !t.eq_ignore_ascii_case("tcp") {
            return Err(RpcError::invalid_params(format!(
                "trtype '{t}' is not supported: only TCP"
            )));
        }
    }
    let ip: IpAddr = a.traddr.parse().map_err(|_| {
        RpcError::invalid_params(format!("traddr '{}' is not an IP address", a.traddr))
    })?;
    let port: u16 = a
        .trsvcid
        .as_deref()
        .unwrap_or("4420")
        .parse()
        .map_err(|_| {
            RpcError::invalid_params(format!("trsvcid '{:?}' is not a port", a.trsvcid))
        })?;
    let addr = SocketAddr::new(ip, port);
    Ok((addr, TcpTransport::listen_addr(addr)))
}

fn add_listener(p: Value) -> RpcResult {
    let p: Listener = parse_params(p)?;
    let s = subsystem(&p.nqn)?;
    let (addr, l) = socket_addr(&p.listen_address)?;
    // The listener's initial ANA state, for every ANA group.
    let ana = match &p.ana_state {
        None => None,
        Some(v) => Some(
            v.as_str()
                .and_then(crate::nvmf::AnaState::parse)
                .ok_or_else(|| RpcError::invalid_params("Invalid parameters"))?,
        ),
    };
    let r = state::with_transport(|t| t.listen(addr)).ok_or_else(|| {
        RpcError::invalid_params("Unable to find TCP transport: run nvmf_create_transport first")
    })?;
    r.map_err(|e| RpcError::internal(e.to_string()))?;
    s.add_listener(l.clone());
    if let Some(state) = ana {
        s.set_ana_state(&l, None, state).map_err(bad)?;
    }
    target_or_err()?.bump_genctr();
    Ok(json!(true))
}

fn remove_listener(p: Value) -> RpcResult {
    let p: Listener = parse_params(p)?;
    let s = subsystem(&p.nqn)?;
    let (addr, l) = socket_addr(&p.listen_address)?;
    let mut st = s.lock();
    let before = st.listeners.len();
    st.listeners.retain(|x| *x != l);
    if st.listeners.len() == before {
        return Err(RpcError::invalid_params(format!(
            "Unable to find listener {addr} on {}",
            p.nqn
        )));
    }
    st.ana.forget(&l);
    drop(st);
    let t = target_or_err()?;
    let still_used = t
        .subsystems()
        .iter()
        .any(|x| x.lock().listeners.contains(&l));
    if !still_used {
        state::with_transport(|tr| tr.stop_listening(addr));
    }
    t.bump_genctr();
    Ok(json!(true))
}

fn id16(name: &'static str, v: &Option<String>) -> Result<Option<[u8; 16]>, RpcError> {
    v.as_deref()
        .map(|s| {
            parse_uuid(s).ok_or_else(|| RpcError::invalid_params(format!("Invalid {name} '{s}'")))
        })
        .transpose()
}

fn add_ns(p: Value) -> RpcResult {
    let p: AddNs = parse_params(p)?;
    let s = subsystem(&p.nqn)?;
    let uuid = id16("uuid", &p.namespace.uuid)?;
    let nguid = id16("nguid", &p.namespace.nguid)?;
    let nsid = s
        .add_ns(&p.namespace.bdev_name, p.namespace.nsid, uuid, nguid)
        .map_err(|e| RpcError::invalid_params(format!("Unable to add namespace: {e}")))?;
    if let Some(g) = p.namespace.anagrpid.filter(|&g| g != 0) {
        let mut st = s.lock();
        if g > st.max_namespaces {
            drop(st);
            let _ = s.remove_ns(nsid);
            return Err(RpcError::invalid_params(format!(
                "Unable to add namespace: anagrpid {g} is above max_namespaces"
            )));
        }
        if let Some(ns) = st.namespaces.get_mut(&nsid) {
            ns.anagrpid = g;
        }
    }
    Ok(json!(nsid))
}

fn remove_ns(p: Value) -> RpcResult {
    let p: RemoveNs = parse_params(p)?;
    subsystem(&p.nqn)?.remove_ns(p.nsid).map_err(bad)?;
    Ok(json!(true))
}

fn add_host(p: Value) -> RpcResult {
    let p: Host = parse_params(p)?;
    subsystem(&p.nqn)?.add_host(&p.host).map_err(bad)?;
    Ok(json!(true))
}

fn remove_host(p: Value) -> RpcResult {
    let p: Host = parse_params(p)?;
    subsystem(&p.nqn)?.remove_host(&p.host).map_err(bad)?;
    Ok(json!(true))
}

fn allow_any_host(p: Value) -> RpcResult {
    let p: AllowAnyHost = parse_params(p)?;
    let s = subsystem(&p.nqn)?;
    if s.subtype() == SubsystemType::Discovery {
        return Err(bad(crate::nvmf::NvmfError::Discovery(p.nqn)));
    }
    s.lock().allow_any_host = p.allow_any_host;
    Ok(json!(true))
}

/// `nvmf_subsystem_listener_set_ana_state`: the ANA state of one group
/// (or all) at one listener of a subsystem that reports ANA.
fn set_ana_state(p: Value) -> RpcResult {
    let p: SetAnaState = parse_params(p)?;
    let s = subsystem(&p.nqn)?;
    let (_, l) = socket_addr(&p.listen_address)?;
    let state = crate::nvmf::AnaState::parse(&p.ana_state)
        .ok_or_else(|| RpcError::invalid_params("Invalid parameters"))?;
    if !s.lock().ana_reporting {
        return Err(RpcError::invalid_params(format!(
            "Subsystem {} does not report ANA: create it with ana_reporting",
            p.nqn
        )));
    }
    s.set_ana_state(&l, p.anagrpid, state).map_err(bad)?;
    Ok(json!(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nvmf_methods_run_at_runtime_and_only_the_target_settings_at_startup() {
        for m in methods() {
            let startup = matches!(
                m.name,
                "nvmf_set_config" | "nvmf_set_max_subsystems" | "nvmf_set_crdt"
            );
            let want = if startup {
                MethodStates::STARTUP
            } else {
                MethodStates::RUNTIME
            };
            assert_eq!(m.states, want, "{}", m.name);
        }
    }
}
