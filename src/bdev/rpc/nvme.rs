//! The nvme bdev module's methods (SPDK's `bdev_nvme_rpc.c`): detach, list
//! and reset controllers, the module's options (attach is `nvme_attach`).

use super::errors::Failure;
use super::params;
use crate::bdev::{nvme, BdevError};
use crate::rpc::RpcError;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Mutex;

type Res = Result<Value, Failure>;

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

/// The controller `bdev_nvme_detach_controller` names; a path given
/// (`traddr`, `trsvcid`, `subnqn`, ...) must be its one path.
fn detach_target(p: Detach) -> Result<String, Failure> {
    let c = nvme::controllers(Some(&p.name))?;
    if let Some(t) = &c[0].trid {
        let differs = |want: &Option<String>, have: Option<&str>| {
            want.as_deref()
                .is_some_and(|w| !have.is_some_and(|h| w.eq_ignore_ascii_case(h)))
        };
        if differs(&p.traddr, Some(&t.traddr))
            || differs(&p.trtype, Some(t.trtype.as_str()))
            || differs(&p.trsvcid, t.trsvcid.as_deref())
            || differs(&p.subnqn, t.subnqn.as_deref())
        {
            return Err(Failure::Bdev(BdevError::NotFound(format!(
                "{} path {}",
                p.name,
                p.traddr.as_deref().unwrap_or("")
            ))));
        }
    }
    let _ = (p.adrfam, p.hostaddr, p.hostsvcid);
    Ok(p.name)
}

/// `bdev_nvme_detach_controller`: removes the controller and its bdevs;
/// answered once the controller is shut down (on a worker thread) when
/// nothing else holds it.
pub(super) async fn detach(p: Value) -> Res {
    let name = detach_target(params(p)?)?;
    nvme::detach_controller_async(&name).await?;
    Ok(Value::Bool(true))
}

/// `bdev_nvme_detach_controller` on the calling OS thread.
pub(super) fn detach_sync(p: Value) -> Res {
    let name = detach_target(params(p)?)?;
    nvme::detach_controller(&name)?;
    Ok(Value::Bool(true))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetCtrlrs {
    #[serde(default)]
    name: Option<String>,
}

/// A transport ID as SPDK writes it in JSON (`nvme_bdev_dump_trid_json`):
/// `trtype`, then `adrfam`, `traddr`, `trsvcid`, `subnqn` when set.
fn trid_json(t: &crate::nvme::TransportId) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("trtype".into(), t.trtype.as_str().into());
    if let Some(a) = &t.adrfam {
        m.insert("adrfam".into(), a.clone().into());
    }
    m.insert("traddr".into(), t.traddr.clone().into());
    for (k, v) in [("trsvcid", &t.trsvcid), ("subnqn", &t.subnqn)] {
        if let Some(v) = v {
            m.insert(k.into(), v.clone().into());
        }
    }
    m
}

/// The host NQN a controller was attached as, when known.
fn hostnqn_of(c: &nvme::AttachedController) -> Option<String> {
    c.attach
        .as_ref()
        .and_then(|a| a.hostnqn.clone().or_else(|| a.trid.hostnqn.clone()))
        .or_else(|| c.trid.as_ref().and_then(|t| t.hostnqn.clone()))
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
            let trid = c.trid.as_ref().map(trid_json).unwrap_or_default();
            json!({"name": c.name, "ctrlrs": [{
                "state": c.state.as_str(),
                "trid": trid,
                "cntlid": c.ctrlr.data().cntlid,
                "host": {"nqn": hostnqn_of(c).unwrap_or_default(), "addr": "", "svcid": ""},
            }]})
        })
        .collect())
}

/// The `bdev_nvme_attach_controller` entries of `save_config`, one per
/// controller attached by a method (SPDK's `nvme_ctrlr_config_json`).
pub(super) fn controller_entries() -> Vec<Value> {
    let Ok(list) = nvme::controllers(None) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|c| {
            let t = c.trid.as_ref()?;
            let mut p = Map::new();
            p.insert("name".into(), c.name.clone().into());
            p.extend(trid_json(t));
            if let Some(a) = &c.attach {
                let r = a.reconnect;
                p.insert("prchk_reftag".into(), false.into());
                p.insert("prchk_guard".into(), false.into());
                p.insert(
                    "ctrlr_loss_timeout_sec".into(),
                    r.ctrlr_loss_timeout_sec.into(),
                );
                p.insert("reconnect_delay_sec".into(), r.reconnect_delay_sec.into());
                p.insert(
                    "fast_io_fail_timeout_sec".into(),
                    r.fast_io_fail_timeout_sec.into(),
                );
                if let Some(n) = hostnqn_of(c) {
                    p.insert("hostnqn".into(), n.into());
                }
                p.insert("hdgst".into(), a.header_digest.into());
                p.insert("ddgst".into(), a.data_digest.into());
            }
            Some(json!({"method": "bdev_nvme_attach_controller", "params": p}))
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reset {
    name: String,
    #[serde(default)]
    cntlid: Option<u16>,
}

/// The controller `bdev_nvme_reset_controller` names (and `cntlid`, if
/// given, must be its).
fn reset_target(p: Reset) -> Result<String, Failure> {
    let c = nvme::controllers(Some(&p.name))?;
    if let Some(id) = p.cntlid {
        if c[0].ctrlr.data().cntlid != id {
            return Err(Failure::Bdev(BdevError::NotFound(format!(
                "{} cntlid {id}",
                p.name
            ))));
        }
    }
    Ok(p.name)
}

/// `bdev_nvme_reset_controller`: resets the controller (over fabrics, a new
/// association) on a worker thread; the queue pairs follow.
pub(super) async fn reset(p: Value) -> Res {
    let name = reset_target(params(p)?)?;
    nvme::reset_controller_async(&name).await?;
    Ok(Value::Bool(true))
}

/// `bdev_nvme_reset_controller` waiting on the calling OS thread.
pub(super) fn reset_sync(p: Value) -> Res {
    let name = reset_target(params(p)?)?;
    nvme::reset_controller(&name)?;
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
    let mut merged = NVME_OPTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default();
    merged.extend(m.clone());
    let r =
        reconnect_from(&merged).map_err(|e| Failure::Params(format!("Invalid parameters: {e}")))?;
    if let Err(e) = r.validate() {
        log::warn!("bdev_nvme_set_options: {e}");
        return Err(Failure::Rpc(RpcError::errno(libc::EINVAL)));
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

/// The reconnect options in `bdev_nvme_set_options` params `m` (SPDK's
/// defaults, 0, for those not there).
fn reconnect_from(m: &Map<String, Value>) -> Result<nvme::ReconnectOpts, String> {
    let int = |k: &str| -> Result<i64, String> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => v
                .as_i64()
                .ok_or_else(|| format!("`{k}` must be an integer, not {v}")),
        }
    };
    let u = |k: &str| -> Result<u32, String> {
        u32::try_from(int(k)?).map_err(|_| format!("`{k}` must be between 0 and {}", u32::MAX))
    };
    Ok(nvme::ReconnectOpts {
        ctrlr_loss_timeout_sec: i32::try_from(int("ctrlr_loss_timeout_sec")?)
            .map_err(|_| "`ctrlr_loss_timeout_sec` is out of range".to_string())?,
        reconnect_delay_sec: u("reconnect_delay_sec")?,
        fast_io_fail_timeout_sec: u("fast_io_fail_timeout_sec")?,
    })
}

/// The reconnect options set by `bdev_nvme_set_options` (the defaults of
/// an attach that gives none).
pub(super) fn reconnect_defaults() -> nvme::ReconnectOpts {
    let kept = NVME_OPTS.lock().unwrap_or_else(|e| e.into_inner());
    kept.as_ref()
        .and_then(|m| reconnect_from(m).ok())
        .unwrap_or_default()
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
