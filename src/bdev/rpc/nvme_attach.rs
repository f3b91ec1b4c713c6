//! `bdev_nvme_attach_controller` (SPDK's `rpc_bdev_nvme_attach_controller`):
//! every parameter the current client sends, SPDK's errors for what this
//! driver cannot do, and the attach awaited (JSON-RPC) or inline (config
//! loading).

use super::errors::Failure;
use super::nvme::reconnect_defaults;
use super::params;
use crate::bdev::nvme;
use crate::rpc::RpcError;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

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
    ctrlr_loss_timeout_sec: Option<i32>,
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

/// The attach a `bdev_nvme_attach_controller` request asks for, with
/// SPDK's errors for what cannot be done; reconnect options not given
/// come from `bdev_nvme_set_options`.
fn attach_opts(p: Attach) -> Result<nvme::AttachOpts, Failure> {
    let inval = |m: String| Failure::Rpc(RpcError::errno_msg(libc::EINVAL, m));
    if p.prchk_reftag || p.prchk_guard {
        return Err(inval(
            "protection information checks (prchk_reftag, prchk_guard) are not supported".into(),
        ));
    }
    if p.psk.is_some() || p.dhchap_key.is_some() || p.dhchap_ctrlr_key.is_some() {
        return Err(inval(
            "TLS (psk) and DH-HMAC-CHAP keys are not supported".into(),
        ));
    }
    let multipath = match p.multipath.as_deref() {
        None | Some("disable") => nvme::Multipath::Disable,
        Some("failover") => nvme::Multipath::Failover,
        Some("multipath") => {
            return Err(inval(
                "multipath mode 'multipath' (active-active) is not supported: use 'failover'"
                    .into(),
            ))
        }
        Some(m) => return Err(inval(format!("Invalid multipath parameter: {m}"))),
    };
    if p.max_bdevs == Some(0) {
        return Err(inval("max_bdevs cannot be zero".into()));
    }
    let num_io_queues = match p.num_io_queues {
        None => None,
        Some(n) if (1..=65536).contains(&n) => Some(n.min(65535) as u16),
        Some(_) => {
            return Err(inval(
                "num_io_queues out of bounds, min: 1 max: 65536".into(),
            ))
        }
    };
    let trid = nvme::transport_id(
        &p.trtype,
        p.adrfam.as_deref(),
        &p.traddr,
        p.trsvcid.as_deref(),
        p.subnqn.as_deref(),
    )?;
    if multipath == nvme::Multipath::Disable && nvme::controllers(Some(&p.name)).is_ok() {
        return Err(Failure::Rpc(RpcError::errno_msg(
            libc::EEXIST,
            format!(
                "A controller named {} already exists and multipath is disabled",
                p.name
            ),
        )));
    }
    let defaults = reconnect_defaults();
    let mut o = nvme::AttachOpts::new(p.name, trid);
    o.hostnqn = p.hostnqn;
    o.hostaddr = p.hostaddr;
    o.hostsvcid = p.hostsvcid;
    o.multipath = multipath;
    o.header_digest = p.hdgst;
    o.data_digest = p.ddgst;
    o.num_io_queues = num_io_queues;
    o.connect_timeout = p
        .fabrics_connect_timeout_us
        .filter(|&us| us > 0)
        .map(Duration::from_micros);
    o.reconnect = nvme::ReconnectOpts {
        ctrlr_loss_timeout_sec: p
            .ctrlr_loss_timeout_sec
            .unwrap_or(defaults.ctrlr_loss_timeout_sec),
        reconnect_delay_sec: p
            .reconnect_delay_sec
            .unwrap_or(defaults.reconnect_delay_sec),
        fast_io_fail_timeout_sec: p
            .fast_io_fail_timeout_sec
            .unwrap_or(defaults.fast_io_fail_timeout_sec),
    };
    let _ = (
        p.priority,
        p.allow_unrecognized_csi,
        p.disable_sq_flow_control,
        p.multipath_opts,
    );
    Ok(o)
}

/// `bdev_nvme_attach_controller`: the names of the new bdevs. The
/// controller comes up on a worker thread; the app thread keeps serving
/// other requests until this one is answered.
pub(super) async fn attach(p: Value) -> Res {
    let o = attach_opts(params(p)?)?;
    let bdevs = nvme::attach_controller_async(o).await?;
    Ok(bdevs.iter().map(|b| Value::from(b.name())).collect())
}

/// `bdev_nvme_attach_controller` waiting on the calling OS thread (config
/// loading in a tool with no app thread).
pub(super) fn attach_sync(p: Value) -> Res {
    let o = attach_opts(params(p)?)?;
    let bdevs = nvme::attach_controller(o)?;
    Ok(bdevs.iter().map(|b| Value::from(b.name())).collect())
}
