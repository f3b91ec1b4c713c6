//! `bdev_nvme_attach_controller`: what to attach (SPDK's parameters, made
//! into a transport ID and the driver's controller options), and the
//! attach itself — on a worker thread awaited from the app thread (the
//! JSON-RPC method), or inline (config loading in a one-shot tool).

use super::bdev::register;
use super::reconnect::ReconnectOpts;
use super::{ctrlrs, paths, worker};
use crate::bdev::{Bdev, BdevError, ErrorSource, Result};
use crate::nvme::{self, ControllerOpts, TransportId, TransportType};
use crate::pci::PciAddress;
use std::sync::Arc;
use std::time::Duration;

/// What `bdev_nvme_attach_controller` attaches (SPDK's parameters that this
/// driver acts on; the JSON-RPC method refuses the others by name).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AttachOpts {
    /// Controller name; its bdevs are `<name>n<nsid>` (`Nvme0n1`).
    pub name: String,
    /// Where the controller is: `trtype:PCIe traddr:0000:00:04.0`, or
    /// `trtype:TCP adrfam:IPv4 traddr:... trsvcid:... subnqn:...`.
    pub trid: TransportId,
    /// Fabrics: the host NQN to connect as (`hostnqn`).
    pub hostnqn: Option<String>,
    /// Fabrics: the source address every connection binds to (`hostaddr`).
    pub hostaddr: Option<String>,
    /// Fabrics: the source port every connection binds to (`hostsvcid`).
    pub hostsvcid: Option<String>,
    /// NVMe/TCP: header digests (`hdgst`).
    pub header_digest: bool,
    /// NVMe/TCP: data digests (`ddgst`).
    pub data_digest: bool,
    /// I/O queues to ask the controller for (`num_io_queues`).
    pub num_io_queues: Option<u16>,
    /// How long the bring-up may take before the attach fails with
    /// "Connection timed out" (`fabrics_connect_timeout_us`; `None`: the
    /// driver's own timeouts only).
    pub connect_timeout: Option<Duration>,
    /// What to do when the controller is lost.
    pub reconnect: ReconnectOpts,
    /// Fabrics: the Keep Alive Timeout asked for in Connect, in ms (SPDK's
    /// `keep_alive_timeout_ms`, 10000 by default; 0: none). The module's
    /// admin queue poller sends Keep Alive at half of it.
    pub keep_alive_timeout_ms: u32,
    /// What a second attach of `name` does (`multipath`): refused, or an
    /// alternate path to fail over to.
    pub multipath: super::Multipath,
}

/// SPDK's default `keep_alive_timeout_ms` of `bdev_nvme_set_options`.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT_MS: u32 = 10_000;

impl AttachOpts {
    /// Attach options for controller `name` at `trid`, every other option
    /// at its default.
    pub fn new(name: impl Into<String>, trid: TransportId) -> Self {
        AttachOpts {
            name: name.into(),
            trid,
            hostnqn: None,
            hostaddr: None,
            hostsvcid: None,
            header_digest: false,
            data_digest: false,
            num_io_queues: None,
            connect_timeout: None,
            reconnect: ReconnectOpts::default(),
            keep_alive_timeout_ms: DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
            multipath: super::Multipath::Disable,
        }
    }

    /// The driver's options for this attach.
    pub(super) fn controller_opts(&self) -> ControllerOpts {
        let mut o = ControllerOpts {
            hostnqn: self.hostnqn.clone(),
            src_addr: self.hostaddr.clone(),
            src_svcid: self.hostsvcid.clone(),
            header_digest: self.header_digest,
            data_digest: self.data_digest,
            keep_alive_timeout_ms: self.keep_alive_timeout_ms,
            ..ControllerOpts::default()
        };
        if let Some(n) = self.num_io_queues {
            o.num_io_queues = n;
        }
        o
    }
}

/// A transport ID from SPDK's separate parameters (`trtype`, `adrfam`,
/// `traddr`, `trsvcid`, `subnqn`), with SPDK's errors for a bad
/// transport type or address family.
pub fn transport_id(
    trtype: &str,
    adrfam: Option<&str>,
    traddr: &str,
    trsvcid: Option<&str>,
    subnqn: Option<&str>,
) -> Result<TransportId> {
    let bad = |m: String| BdevError::InvalidParam(m);
    let trtype = match trtype.to_ascii_lowercase().as_str() {
        "pcie" => TransportType::Pcie,
        "tcp" => TransportType::Tcp,
        "rdma" => TransportType::Rdma,
        _ => return Err(bad(format!("Failed to parse trtype: {trtype}"))),
    };
    let adrfam = match adrfam {
        None => None,
        Some(a) => Some(
            match a.to_ascii_lowercase().as_str() {
                "ipv4" => "IPv4",
                "ipv6" => "IPv6",
                "ib" => "IB",
                "fc" => "FC",
                "intra_host" => "INTRA_HOST",
                _ => return Err(bad(format!("Failed to parse adrfam: {a}"))),
            }
            .to_string(),
        ),
    };
    let traddr = if trtype == TransportType::Pcie {
        traddr
            .parse::<PciAddress>()
            .map_err(|e| bad(format!("traddr {traddr}: {e}")))?
            .to_string()
    } else {
        traddr.to_string()
    };
    if trtype == TransportType::Rdma {
        return Err(bad(format!(
            "trtype RDMA ({traddr}): this driver has PCIe and TCP transports only"
        )));
    }
    Ok(TransportId {
        trtype,
        adrfam,
        traddr,
        trsvcid: trsvcid.map(str::to_string),
        subnqn: subnqn.map(str::to_string),
        hostnqn: None,
    })
}

/// What an attach checks before it starts.
fn precheck(opts: &AttachOpts) -> Result<()> {
    opts.reconnect.validate()?;
    if ctrlrs::exists(&opts.name) && !paths::adds_path(opts) {
        return Err(BdevError::Exists(opts.name.clone()));
    }
    if !crate::env::is_initialized() {
        return Err(BdevError::InvalidParam(
            "bdev_nvme_attach_controller: the env is not initialized (hugepages/DMA memory): call env::init first".into(),
        ));
    }
    Ok(())
}

/// The OS error under `e` (a refused or reset connection), if any.
fn os_errno(e: &nvme::NvmeError) -> Option<i32> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = match e {
        nvme::NvmeError::Tcp(t) => Some(t.as_ref()),
        other => Some(other),
    };
    while let Some(x) = cur {
        if let Some(io) = x.downcast_ref::<std::io::Error>() {
            return io.raw_os_error();
        }
        cur = x.source();
    }
    None
}

/// A failed bring-up, carrying the OS error under it (SPDK answers
/// `-errno`: "Connection refused"), else EIO.
fn connect_failed(opts: &AttachOpts, e: nvme::NvmeError) -> BdevError {
    let errno = os_errno(&e).unwrap_or(libc::EIO);
    BdevError::Os {
        op: "attach controller",
        path: format!("{} ({})", opts.name, opts.trid),
        source: ErrorSource::with_errno(e, errno),
    }
}

/// `bdev_nvme_attach_controller`, waiting on the calling OS thread for the
/// bring-up (with [`Multipath::Failover`](super::Multipath) and the name
/// attached, the path is checked and added as an alternate): for config loading in a tool with no app thread to keep
/// serving. The JSON-RPC method uses [`attach_controller_async`].
pub fn attach_controller(opts: AttachOpts) -> Result<Vec<Arc<Bdev>>> {
    precheck(&opts)?;
    let c =
        nvme::connect(&opts.trid, &opts.controller_opts()).map_err(|e| connect_failed(&opts, e))?;
    if paths::adds_path(&opts) {
        return paths::add_path(&opts, c);
    }
    let trid = opts.trid.clone();
    register(&opts.name.clone(), c, Some(trid), Some(opts))
}

/// `bdev_nvme_attach_controller` without holding the calling thread: the
/// bring-up (enable and CSTS.RDY, or TCP connect, ICReq and Fabrics
/// Connect, then Identify) runs on a worker thread while this future
/// waits; the bdevs are registered on the caller's thread when it is done.
/// Past `connect_timeout` the attach fails with `ETIMEDOUT` (a controller
/// that comes up later is detached on its worker). The name is reserved
/// while the attach runs, so a second attach of it is refused.
/// Needs a current lightweight thread (the app thread).
pub async fn attach_controller_async(opts: AttachOpts) -> Result<Vec<Arc<Bdev>>> {
    precheck(&opts)?;
    let adds_path = paths::adds_path(&opts);
    let reserved = if adds_path {
        None
    } else {
        Some(ctrlrs::reserve(&opts.name)?)
    };
    let (trid, copts) = (opts.trid.clone(), opts.controller_opts());
    let job = worker::spawn(&format!("nvme-attach-{}", opts.name), move || {
        nvme::connect(&trid, &copts)
    })?;
    let c = match worker::with_deadline(job, opts.connect_timeout).await {
        Ok(r) => r.map_err(|e| connect_failed(&opts, e))?,
        Err(after) => {
            return Err(BdevError::Os {
                op: "attach controller",
                path: format!("{} ({})", opts.name, opts.trid),
                source: ErrorSource::message(
                    format!("no controller within {after:?} (fabrics_connect_timeout_us)"),
                    libc::ETIMEDOUT,
                ),
            })
        }
    };
    if adds_path {
        return paths::add_path(&opts, c);
    }
    drop(reserved);
    let trid = opts.trid.clone();
    register(&opts.name.clone(), c, Some(trid), Some(opts))
}
