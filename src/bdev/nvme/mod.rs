//! The nvme bdev (`bdev_nvme_attach_controller`): one bdev per active
//! namespace of an attached controller, named `<name>n<nsid>` as SPDK
//! names them (`Nvme0n1`).
//!
//! Each bdev channel owns an I/O queue pair with batched doorbells: submits
//! queue SQEs, the channel's poll rings the doorbell once and reaps the
//! completion queue. DMA buffers ([`IoBuf::dma`](super::IoBuf::dma)) are
//! lent to the device by address and stay in the layer's request
//! ([`IoRequest::dma_range`](super::IoRequest::dma_range)); the command
//! carries the request's id as its tag
//! ([`QPair::rw_tagged`](crate::nvme::QPair::rw_tagged)), so nothing moves
//! and no closure is stored per I/O. Heap buffers are bounced through a DMA
//! copy (slower, but any memory works, as in SPDK). Closing a channel
//! deletes its queue pair first; if the controller refuses, the buffers of
//! unfinished requests are never freed. A bdev reset resets the controller. The bdev's
//! `dump_info_json` (in `bdev_get_bdevs`) carries the transport counters
//! ([`PcieStat`]) of its channels that have closed.
//!
//! | file | job |
//! |---|---|
//! | `mod` | `bdev_nvme_attach_controller`, the module, one bdev per namespace |
//! | `channel` | a channel's queue pair, submission and completion paths |
//! | `ctrlrs` | the attached controllers by name: list, detach, reset |

mod channel;
mod ctrlrs;

pub use ctrlrs::{controllers, detach_controller, reset_controller, AttachedController};

use super::{
    Bdev, BdevError, BdevModule, BdevOps, BdevProps, Completer, IoType, ModuleChannel, Result,
};
use crate::nvme::{self, Controller, ControllerOpts, Namespace, PcieStat, QPairOpts, TransportId};
use channel::NvmeChannel;
use serde::Deserialize;
use std::sync::{Arc, Mutex};

/// Parameters of `bdev_nvme_attach_controller` (SPDK's names; PCIe only).
#[derive(Debug, Clone, Deserialize)]
pub struct AttachOpts {
    /// Controller name; bdevs are `<name>n<nsid>`.
    pub name: String,
    /// Transport type (`PCIe`).
    pub trtype: String,
    /// Transport address (`0000:00:04.0`).
    pub traddr: String,
    /// Address family (ignored for PCIe).
    #[serde(default)]
    pub adrfam: Option<String>,
    /// Service id (ignored for PCIe).
    #[serde(default)]
    pub trsvcid: Option<String>,
    /// Subsystem NQN (ignored for PCIe).
    #[serde(default)]
    pub subnqn: Option<String>,
    /// Every other SPDK option (prchk, hostnqn, ...) is accepted and ignored.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

struct NvmeModule;

impl BdevModule for NvmeModule {
    fn name(&self) -> &'static str {
        "nvme"
    }
}

pub(crate) fn module() -> Arc<dyn BdevModule> {
    Arc::new(NvmeModule)
}

struct NvmeBdev {
    ctrlr: Arc<Controller>,
    ns: Namespace,
    ctrlr_name: String,
    trid: Option<TransportId>,
    /// Transport counters of this bdev's channels that have closed.
    stats: Arc<Mutex<PcieStat>>,
}
impl BdevOps for NvmeBdev {
    fn io_type_supported(&self, t: IoType) -> bool {
        match t {
            IoType::Read | IoType::Write | IoType::Flush | IoType::Reset => true,
            IoType::Unmap => self.ns.supports_deallocate(),
            IoType::WriteZeroes => self.ns.supports_write_zeroes(),
            IoType::Compare => self.ns.supports_compare(),
            IoType::CompareAndWrite => false,
        }
    }
    fn get_io_channel(&self, done: Completer) -> Result<Box<dyn ModuleChannel>> {
        let qp = self
            .ctrlr
            .alloc_io_qpair(QPairOpts {
                delay_cmd_submit: true,
                ..QPairOpts::default()
            })
            .map_err(|e| {
                BdevError::InvalidParam(format!("nvme bdev: allocating an I/O queue pair: {e}"))
            })?;
        Ok(Box::new(NvmeChannel::new(
            qp,
            self.ns.clone(),
            self.ctrlr.clone(),
            done,
            self.stats.clone(),
        )))
    }
    fn dump_info_json(&self) -> serde_json::Value {
        let stats = *self.stats.lock().unwrap_or_else(|p| p.into_inner());
        serde_json::json!({"nvme": {"ctrlr": self.ctrlr_name, "nsid": self.ns.id(),
            "trid": self.trid.as_ref().map(|t| t.to_string()),
            "serial": self.ctrlr.data().serial(), "model": self.ctrlr.data().model(),
            "transport_stats": stats}})
    }
    fn write_config_json(&self) -> Option<serde_json::Value> {
        let t = self.trid.as_ref()?;
        (self.ns.id() == first_nsid(&self.ctrlr)).then(|| {
            serde_json::json!({"method": "bdev_nvme_attach_controller", "params": {
                "name": self.ctrlr_name, "trtype": t.trtype.as_str(), "traddr": t.traddr}})
        })
    }
}

fn first_nsid(c: &Controller) -> u32 {
    c.namespace_ids().first().copied().unwrap_or(1)
}

/// Registers a bdev per active namespace of an attached controller.
pub fn register_controller(
    name: &str,
    ctrlr: Controller,
    trid: Option<TransportId>,
) -> Result<Vec<Arc<Bdev>>> {
    if ctrlrs::exists(name) {
        return Err(BdevError::Exists(name.to_string()));
    }
    let ctrlr = Arc::new(ctrlr);
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for ns in ctrlr.namespaces() {
        if let Err(why) = ns.check_block_io() {
            log::warn!("nvme bdev: no bdev for {name}n{}: {why}", ns.id());
            refused.push(why.to_string());
            continue;
        }
        let mut p = BdevProps::new(
            format!("{name}n{}", ns.id()),
            ns.block_size(),
            ns.num_blocks(),
        );
        p.product_name = "NVMe disk".into();
        p.write_cache = true;
        let ops = NvmeBdev {
            ctrlr: ctrlr.clone(),
            ns,
            ctrlr_name: name.to_string(),
            trid: trid.clone(),
            stats: Arc::default(),
        };
        match Bdev::register(p, "nvme", Box::new(ops)) {
            Ok(b) => out.push(b),
            Err(e) => {
                for b in &out {
                    b.unregister();
                }
                return Err(e);
            }
        }
    }
    if out.is_empty() && !refused.is_empty() {
        return Err(BdevError::InvalidParam(format!(
            "controller '{name}' has no namespace a bdev can use: {}",
            refused.join("; ")
        )));
    }
    ctrlrs::insert(AttachedController {
        name: name.to_string(),
        ctrlr,
        trid,
        bdevs: out.iter().map(|b| b.name().to_string()).collect(),
    });
    Ok(out)
}

/// `bdev_nvme_attach_controller` for PCIe: connects the controller at
/// `traddr` (bound to vfio-pci or uio; the env must be initialized).
pub fn attach_controller(opts: AttachOpts) -> Result<Vec<Arc<Bdev>>> {
    if ctrlrs::exists(&opts.name) {
        return Err(BdevError::Exists(opts.name));
    }
    let text = format!("trtype:{} traddr:{}", opts.trtype, opts.traddr);
    let trid: TransportId = text
        .parse()
        .map_err(|e| BdevError::InvalidParam(format!("bdev_nvme_attach_controller: {e}")))?;
    if !crate::env::is_initialized() {
        return Err(BdevError::InvalidParam(
            "bdev_nvme_attach_controller: the env is not initialized (hugepages/DMA memory): call env::init first".into(),
        ));
    }
    let c = nvme::connect(&trid, &ControllerOpts::default()).map_err(|e| {
        BdevError::InvalidParam(format!("bdev_nvme_attach_controller {}: {e}", opts.traddr))
    })?;
    register_controller(&opts.name, c, Some(trid))
}
