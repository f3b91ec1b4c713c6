//! The "nvmf" subsystem's part of `save_config`: the transport, then each
//! subsystem with its namespaces, hosts and listeners (with their ANA
//! states), in the order a `--json` load must run them.

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
            "ana_reporting": st.ana_reporting,
        }}));
        for n in st.namespaces.values() {
            let mut ns = json!({
                "nsid": n.nsid,
                "bdev_name": n.bdev_name,
                "uuid": crate::bdev::Uuid(n.uuid).to_string(),
            });
            if n.anagrpid != n.nsid {
                ns["anagrpid"] = json!(n.anagrpid);
            }
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
            let addr = json!({"trtype": l.trtype, "adrfam": l.adrfam, "traddr": l.traddr, "trsvcid": l.trsvcid});
            let mut add = json!({"method": "nvmf_subsystem_add_listener", "params": {
                "nqn": s.nqn(),
                "listen_address": addr,
            }});
            // ANA states, oldest first: the all-groups one (always first
            // when set) rides on the listener as SPDK's `ana_state`, each
            // group's own follows as a set_ana_state.
            let mut group_states = Vec::new();
            for (group, state) in st.ana.of(l) {
                if group == 0 {
                    add["params"]["ana_state"] = json!(state.name());
                } else {
                    group_states.push(
                        json!({"method": "nvmf_subsystem_listener_set_ana_state", "params": {
                            "nqn": s.nqn(),
                            "listen_address": addr,
                            "ana_state": state.name(),
                            "anagrpid": group,
                        }}),
                    );
                }
            }
            v.push(add);
            v.extend(group_states);
        }
    }
    v
}
