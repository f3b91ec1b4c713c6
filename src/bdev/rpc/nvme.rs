//! The nvme bdev module's methods (SPDK's `bdev_nvme_rpc.c`): attach,
//! detach, list and reset controllers, and the module's options.

use super::errors::Failure;
use super::params;
use crate::bdev::{nvme, BdevError};
use crate::rpc::RpcError;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Mutex;

type Res = Result<Value, Failure>;

/// Every parameter `spdk-rpc` 26.9 sends to `bdev_nvme_attach_controller`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Attach {
    name: String,
    trtype: String,
    traddr: String,
    #[serde(default)]
    adrfam: Option<String>,
    #[serde(default)]
    trsvcid: Option<String>,
    #[serde(default)]
    priority: Option<Value>,
    #[serde(default)]
    subnqn: Option<String>,
    #[serde(default)]
    hostnqn: Option<String>,
    #[serde(default)]
    hostaddr: Option<String>,
    #[serde(default)]
    hostsvcid: Option<String>,
    #[serde(default)]
    prchk_reftag: bool,
    #[serde(default)]
    prchk_guard: bool,
    #[serde(default)]
    hdgst: bool,
    #[serde(default)]
    ddgst: bool,
    #[serde(default)]
    fabrics_connect_timeout_us: Option<u64>,
    #[serde(default)]
    multipath: Option<String>,
    #[serde(default)]
    num_io_queues: Option<u32>,
    #[serde(default)]
    ctrlr_loss_timeout_sec: Option<i64>,
    #[serde(default)]
    reconnect_delay_sec: Option<u32>,
    #[serde(default)]
    fast_io_fail_timeout_sec: Option<u32>,
    #[serde(default)]
    psk: Option<String>,
    #[serde(default)]
    max_bdevs: Option<u32>,
    #[serde(default)]
    dhchap_key: Option<String>,
    #[serde(default)]
    dhchap_ctrlr_key: Option<String>,
    #[serde(default)]
    allow_unrecognized_csi: bool,
    #[serde(default)]
    multipath_opts: Option<Value>,
    #[serde(default)]
    disable_sq_flow_control: bool,
}

/// `bdev_nvme_attach_controller`: the names of the new bdevs. The
/// controller bring-up (enable, wait for CSTS.RDY, identify) runs inside
/// the call: the app thread is held for that long (a known limit).
pub(super) fn attach(p: Value) -> Res {
    let p: Attach = params(p)?;
    if p.prchk_reftag || p.prchk_guard {
        return Err(Failure::Bdev(BdevError::InvalidParam(
            "bdev_nvme_attach_controller: protection information checks (prchk_*) are not supported".into(),
        )));
    }
    if p.psk.is_some() || p.dhchap_key.is_some() || p.dhchap_ctrlr_key.is_some() {
        return Err(Failure::Bdev(BdevError::InvalidParam(
            "bdev_nvme_attach_controller: TLS (psk) and DH-HMAC-CHAP keys are not supported".into(),
        )));
    }
    if nvme::controllers(Some(&p.name)).is_ok() {
        return Err(Failure::Rpc(RpcError::errno_msg(
            libc::EEXIST,
            format!(
                "A controller named {} already exists and multipath is disabled",
                p.name
            ),
        )));
    }
    let mut other = Map::new();
    for (k, v) in [
        ("hostnqn", p.hostnqn.map(Value::from)),
        ("hostaddr", p.hostaddr.map(Value::from)),
        ("hostsvcid", p.hostsvcid.map(Value::from)),
        ("priority", p.priority),
        ("multipath", p.multipath.map(Value::from)),
        ("num_io_queues", p.num_io_queues.map(Value::from)),
        (
            "ctrlr_loss_timeout_sec",
            p.ctrlr_loss_timeout_sec.map(Value::from),
        ),
        (
            "reconnect_delay_sec",
            p.reconnect_delay_sec.map(Value::from),
        ),
        (
            "fast_io_fail_timeout_sec",
            p.fast_io_fail_timeout_sec.map(Value::from),
        ),
        (
            "fabrics_connect_timeout_us",
            p.fabrics_connect_timeout_us.map(Value::from),
        ),
        ("max_bdevs", p.max_bdevs.map(Value::from)),
        ("multipath_opts", p.multipath_opts),
    ] {
        if let Some(v) = v {
            other.insert(k.into(), v);
        }
    }
    let _ = (
        p.hdgst,
        p.ddgst,
        p.allow_unrecognized_csi,
        p.disable_sq_flow_control,
    );
    let bdevs = nvme::attach_controller(nvme::AttachOpts {
        name: p.name,
        trtype: p.trtype,
        traddr: p.traddr,
        adrfam: p.adrfam,
        trsvcid: p.trsvcid,
        subnqn: p.subnqn,
        other,
    })?;
    Ok(bdevs.iter().map(|b| Value::from(b.name())).collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Detach {
    name: String,
    #[serde(default)]
    trtype: Option<String>,
    #[serde(default)]
    traddr: Option<String>,
    #[serde(default)]
    adrfam: Option<String>,
    #[serde(default)]
    trsvcid: Option<String>,
    #[serde(default)]
    subnqn: Option<String>,
    #[serde(default)]
    hostaddr: Option<String>,
    #[serde(default)]
    hostsvcid: Option<String>,
}

/// `bdev_nvme_detach_controller`: removes the controller and its bdevs.
/// A path given (`traddr`, ...) must be the controller's one path.
pub(super) fn detach(p: Value) -> Res {
    let p: Detach = params(p)?;
    let c = nvme::controllers(Some(&p.name))?;
    if let (Some(want), Some(t)) = (&p.traddr, &c[0].trid) {
        if !want.eq_ignore_ascii_case(&t.traddr) {
            return Err(Failure::Bdev(BdevError::NotFound(format!(
                "{} path {want}",
                p.name
            ))));
        }
    }
    let _ = (
        p.trtype,
        p.adrfam,
        p.trsvcid,
        p.subnqn,
        p.hostaddr,
        p.hostsvcid,
    );
    nvme::detach_controller(&p.name)?;
    Ok(Value::Bool(true))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetCtrlrs {
    #[serde(default)]
    name: Option<String>,
}

/// `bdev_nvme_get_controllers`: `[{name, ctrlrs: [{state, trid, cntlid,
/// host}]}]` as SPDK lists them.
pub(super) fn get_controllers(p: Value) -> Res {
    let p: GetCtrlrs = params(p)?;
    // SPDK sends a positive EINVAL here, with its own text.
    let list = nvme::controllers(p.name.as_deref()).map_err(|_| {
        Failure::Rpc(RpcError::new(
            libc::EINVAL,
            format!(
                "Controller {} does not exist",
                p.name.as_deref().unwrap_or("")
            ),
        ))
    })?;
    Ok(list
        .iter()
        .map(|c| {
            let trid = match &c.trid {
                Some(t) => {
                    let mut m = Map::new();
                    m.insert("trtype".into(), t.trtype.as_str().into());
                    m.insert("traddr".into(), t.traddr.clone().into());
                    for (k, v) in [
                        ("adrfam", &t.adrfam),
                        ("trsvcid", &t.trsvcid),
                        ("subnqn", &t.subnqn),
                    ] {
                        if let Some(v) = v {
                            m.insert(k.into(), v.clone().into());
                        }
                    }
                    Value::Object(m)
                }
                None => json!({}),
            };
            json!({"name": c.name, "ctrlrs": [{
                "state": "enabled",
                "trid": trid,
                "cntlid": c.ctrlr.data().cntlid,
                "host": {"nqn": "", "addr": "", "svcid": ""},
            }]})
        })
        .collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reset {
    name: String,
    #[serde(default)]
    cntlid: Option<u16>,
}

/// `bdev_nvme_reset_controller`: resets the controller (its queue pairs
/// are re-created by the driver).
pub(super) fn reset(p: Value) -> Res {
    let p: Reset = params(p)?;
    let c = nvme::controllers(Some(&p.name))?;
    if let Some(id) = p.cntlid {
        if c[0].ctrlr.data().cntlid != id {
            return Err(Failure::Bdev(BdevError::NotFound(format!(
                "{} cntlid {id}",
                p.name
            ))));
        }
    }
    nvme::reset_controller(&p.name)?;
    Ok(Value::Bool(true))
}

/// Every option of `bdev_nvme_set_options` the client may send.
const NVME_OPTIONS: &[&str] = &[
    "action_on_timeout",
    "timeout_us",
    "timeout_admin_us",
    "keep_alive_timeout_ms",
    "arbitration_burst",
    "low_priority_weight",
    "medium_priority_weight",
    "high_priority_weight",
    "nvme_adminq_poll_period_us",
    "nvme_ioq_poll_period_us",
    "io_queue_requests",
    "delay_cmd_submit",
    "transport_retry_count",
    "bdev_retry_count",
    "transport_ack_timeout",
    "ctrlr_loss_timeout_sec",
    "reconnect_delay_sec",
    "fast_io_fail_timeout_sec",
    "disable_auto_failback",
    "generate_uuids",
    "transport_tos",
    "nvme_error_stat",
    "rdma_srq_size",
    "io_path_stat",
    "allow_accel_sequence",
    "rdma_max_cq_size",
    "rdma_cm_event_timeout_ms",
    "dhchap_digests",
    "dhchap_dhgroups",
    "rdma_umr_per_io",
    "tcp_connect_timeout_ms",
    "enable_flush",
    "multipath_opts",
    "retry_count",
];

/// The options given to `bdev_nvme_set_options`, written back by `save_config`.
static NVME_OPTS: Mutex<Option<Map<String, Value>>> = Mutex::new(None);

/// `bdev_nvme_set_options`: accepted and kept for `save_config` (this
/// driver has no timeouts, retries or multipath to tune); refused once a
/// controller is attached, as SPDK refuses it.
pub(super) fn set_options(p: Value) -> Res {
    let m = match p {
        Value::Null => Map::new(),
        Value::Object(m) => m,
        _ => {
            return Err(Failure::Params(
                "Invalid parameters: params must be an object".into(),
            ))
        }
    };
    if let Some(k) = m.keys().find(|k| !NVME_OPTIONS.contains(&k.as_str())) {
        return Err(Failure::Params(format!(
            "Invalid parameters: unknown field `{k}` of bdev_nvme_set_options"
        )));
    }
    if nvme::controllers(None).is_ok_and(|c| !c.is_empty()) {
        return Err(Failure::Rpc(RpcError::errno_msg(
            libc::EPERM,
            "RPC not permitted with nvme controllers already attached",
        )));
    }
    let mut kept = NVME_OPTS.lock().unwrap_or_else(|e| e.into_inner());
    kept.get_or_insert_with(Map::new).extend(m);
    Ok(Value::Bool(true))
}

/// The `bdev_nvme_set_options` entry of `save_config`, if options were set.
pub(super) fn options_entry() -> Option<Value> {
    let kept = NVME_OPTS.lock().unwrap_or_else(|e| e.into_inner());
    kept.as_ref()
        .map(|m| json!({"method": "bdev_nvme_set_options", "params": m}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Hotplug {
    enable: bool,
    #[serde(default)]
    period_us: Option<u64>,
}

/// `bdev_nvme_set_hotplug`: only `enable: false` (there is no hotplug
/// monitor).
pub(super) fn set_hotplug(p: Value) -> Res {
    let p: Hotplug = params(p)?;
    let _ = p.period_us;
    if p.enable {
        return Err(Failure::Bdev(BdevError::InvalidParam(
            "bdev_nvme_set_hotplug: hotplug monitoring is not supported; attach controllers with bdev_nvme_attach_controller".into(),
        )));
    }
    Ok(Value::Bool(true))
}
