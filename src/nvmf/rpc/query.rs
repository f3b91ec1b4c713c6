//! The read-only `nvmf_*` methods that report what hosts made and how the
//! poll groups are doing: `nvmf_subsystem_get_controllers`,
//! `nvmf_subsystem_get_qpairs`, `nvmf_subsystem_get_listeners` and
//! `nvmf_get_stats`, with SPDK's result shapes.

use super::params::{Get, Nqn};
use super::state::{self, target_or_err};
use crate::nvmf::{Subsystem, SubsystemType};
use crate::rpc::{parse_params, RpcError, RpcResult};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Subsystem `nqn`, or SPDK's error for a query naming an unknown one.
fn subsystem(nqn: &str) -> Result<Arc<Subsystem>, RpcError> {
    target_or_err()?
        .find(nqn)
        .ok_or_else(|| RpcError::invalid_params(format!("Unable to find subsystem with NQN {nqn}")))
}

/// A transport address as SPDK's `nvmf_transport_listen_dump_trid` writes it.
pub(super) fn trid_json(a: &SocketAddr) -> Value {
    json!({
        "trtype": "TCP",
        "adrfam": if a.is_ipv4() { "IPv4" } else { "IPv6" },
        "traddr": a.ip().to_string(),
        "trsvcid": a.port().to_string(),
    })
}

/// `nvmf_subsystem_get_controllers`: each controller's ID, type, host and I/O queues.
pub(super) fn get_controllers(p: Value) -> RpcResult {
    let p: Nqn = parse_params(p)?;
    let s = subsystem(&p.nqn)?;
    let ctrlrs = s.lock().controllers.clone();
    let kind = match s.subtype() {
        SubsystemType::Nvme => "io",
        SubsystemType::Discovery => "discovery",
    };
    let out: Vec<Value> = ctrlrs
        .iter()
        .map(|c| {
            json!({
                "cntlid": c.cntlid(),
                "cntrltype": kind,
                "hostnqn": c.hostnqn(),
                "hostid": crate::bdev::Uuid(c.hostid()).to_string(),
                "num_io_qpairs": c.num_io_qpairs(),
            })
        })
        .collect();
    Ok(Value::Array(out))
}

/// `nvmf_subsystem_get_qpairs`: every queue pair of the subsystem's
/// controllers with its state, thread, listener and peer.
pub(super) fn get_qpairs(p: Value) -> RpcResult {
    let p: Nqn = parse_params(p)?;
    let s = subsystem(&p.nqn)?;
    let ctrlrs = s.lock().controllers.clone();
    let mut out = Vec::new();
    for c in ctrlrs {
        let qpairs = c.lock().qpairs.clone();
        for (qid, o) in qpairs {
            out.push(json!({
                "cntlid": c.cntlid(),
                "qid": qid,
                "state": "enabled",
                "thread": o.thread,
                "hostnqn": c.hostnqn(),
                "listen_address": trid_json(&o.listen),
                "peer_address": trid_json(&o.peer),
            }));
        }
    }
    Ok(Value::Array(out))
}

/// `nvmf_subsystem_get_listeners`: each listen address, with the ANA
/// state of every group when the subsystem reports ANA.
pub(super) fn get_listeners(p: Value) -> RpcResult {
    let p: Nqn = parse_params(p)?;
    let s = subsystem(&p.nqn)?;
    let st = s.lock();
    let out: Vec<Value> = st
        .listeners
        .iter()
        .map(|l| {
            let mut v = json!({"address": {
                "trtype": l.trtype, "adrfam": l.adrfam, "traddr": l.traddr, "trsvcid": l.trsvcid,
            }});
            if st.ana_reporting {
                let states: Vec<Value> = (1..=st.max_namespaces)
                    .map(|g| json!({"ana_group": g, "ana_state": st.ana_state(l, g).name()}))
                    .collect();
                v["ana_states"] = json!(states);
            }
            v
        })
        .collect();
    Ok(Value::Array(out))
}

/// `nvmf_get_stats`: the tick rate and each poll group's counters.
pub(super) fn get_stats(p: Value) -> RpcResult {
    let _: Get = parse_params(p)?;
    target_or_err()?;
    let groups: Vec<Value> = state::groups()
        .iter()
        .map(|g| {
            let s = g.stats();
            let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            json!({
                "name": s.name,
                "admin_qpairs": n(&s.admin_qpairs),
                "io_qpairs": n(&s.io_qpairs),
                "current_admin_qpairs": n(&s.current_admin_qpairs),
                "current_io_qpairs": n(&s.current_io_qpairs),
                "pending_bdev_io": 0,
                "completed_nvme_io": n(&s.completed_nvme_io),
                // Not in SPDK's result: times the group, idle, waited for
                // its sockets (only in --interrupt-mode).
                "idle_waits": n(&s.idle_waits),
                "transports": [{
                    "trtype": "TCP",
                    "pending_data_buffer": n(&s.pending_data_buffer),
                }],
            })
        })
        .collect();
    // Times are kept in nanoseconds: one tick is one nanosecond.
    Ok(json!({"tick_rate": 1_000_000_000u64, "poll_groups": groups}))
}
