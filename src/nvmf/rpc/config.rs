//! The "nvmf" subsystem's part of `save_config`: the transport, then each
//! subsystem with its namespaces, hosts and listeners, in the order a
//! `--json` load must run them.

use super::methods::transport_json;
use super::state;
use serde_json::{json, Value};

/// The subsystem's `config` array for `save_config`.
pub fn config() -> Option<Vec<Value>> {
    Some(config_entries())
}

/// The entries that rebuild the target as it is.
pub fn config_entries() -> Vec<Value> {
    let Some(t) = state::target() else {
        return Vec::new();
    };
    let mut v = Vec::new();
    if state::has_transport() {
        v.push(json!({"method": "nvmf_create_transport", "params": transport_json(&t.opts())}));
    }
    for s in t.subsystems() {
        let st = s.lock();
        v.push(json!({"method": "nvmf_create_subsystem", "params": {
            "nqn": s.nqn(),
            "serial_number": st.serial_number,
            "model_number": st.model_number,
            "allow_any_host": st.allow_any_host,
            "max_namespaces": st.max_namespaces,
        }}));
        for n in st.namespaces.values() {
            let mut ns = json!({
                "nsid": n.nsid,
                "bdev_name": n.bdev_name,
                "uuid": crate::bdev::Uuid(n.uuid).to_string(),
            });
            if n.nguid != [0; 16] {
                let hex: String = n.nguid.iter().map(|b| format!("{b:02X}")).collect();
                ns["nguid"] = json!(hex);
            }
            v.push(json!({"method": "nvmf_subsystem_add_ns", "params": {"nqn": s.nqn(), "namespace": ns}}));
        }
        for h in &st.hosts {
            v.push(
                json!({"method": "nvmf_subsystem_add_host", "params": {"nqn": s.nqn(), "host": h}}),
            );
        }
        for l in &st.listeners {
            v.push(json!({"method": "nvmf_subsystem_add_listener", "params": {
                "nqn": s.nqn(),
                "listen_address": {"trtype": l.trtype, "adrfam": l.adrfam, "traddr": l.traddr, "trsvcid": l.trsvcid},
            }}));
        }
    }
    v
}
