//! The nvme bdev itself: one per active namespace of an attached
//! controller, named `<name>n<nsid>` as SPDK names them (`Nvme0n1`), and
//! the registration of a controller's bdevs.

use super::attach::AttachOpts;
use super::channel::NvmeChannel;
use super::ctrlrs;
use super::reconnect::Link;
use crate::bdev::{Bdev, BdevError, BdevOps, BdevProps, Completer, IoType, ModuleChannel, Result};
use crate::nvme::{Controller, Namespace, PcieStat, QPairOpts, TransportId};
use std::sync::{Arc, Mutex};

struct NvmeBdev {
    link: Arc<Link>,
    ns: Namespace,
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
        let epoch = self.link.epoch();
        let ctrlr = self
            .link
            .controller()
            .map_err(|e| BdevError::InvalidParam(format!("nvme bdev {}: {e}", self.link.name)))?;
        let qp = ctrlr.alloc_io_qpair(qpair_opts(&ctrlr)).map_err(|e| {
            BdevError::InvalidParam(format!("nvme bdev: allocating an I/O queue pair: {e}"))
        })?;
        let ns = ctrlr
            .namespace(self.ns.id())
            .unwrap_or_else(|_| self.ns.clone());
        Ok(Box::new(NvmeChannel::new(
            qp,
            ns,
            (self.link.clone(), epoch),
            done,
            self.stats.clone(),
        )))
    }
    fn dump_info_json(&self) -> serde_json::Value {
        let stats = *self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let (serial, model) = match self.link.controller() {
            Ok(c) => (c.data().serial(), c.data().model()),
            Err(_) => (String::new(), String::new()),
        };
        serde_json::json!({"nvme": {"ctrlr": self.link.name, "nsid": self.ns.id(),
            "trid": self.trid.as_ref().map(|t| t.to_string()),
            "serial": serial, "model": model,
            "transport_stats": stats}})
    }
}

/// The options of a channel's queue pair: batched doorbells, and SPDK's
/// queue size capped by what the controller takes (CAP.MQES + 1; 128 on
/// many fabrics targets).
pub(super) fn qpair_opts(c: &Controller) -> QPairOpts {
    let d = QPairOpts::default();
    QPairOpts {
        delay_cmd_submit: true,
        io_queue_size: d.io_queue_size.min(c.cap().max_queue_entries()),
        ..d
    }
}

/// Registers a bdev per active namespace of an attached controller, under
/// controller name `name` (handed in: it is reset, not reconnected, when
/// lost, and `save_config` does not write it unless `trid` is given).
pub fn register_controller(
    name: &str,
    ctrlr: Controller,
    trid: Option<TransportId>,
) -> Result<Vec<Arc<Bdev>>> {
    register(name, ctrlr, trid, None)
}

/// [`register_controller`] for a controller attached with `attach`.
pub(super) fn register(
    name: &str,
    ctrlr: Controller,
    trid: Option<TransportId>,
    attach: Option<AttachOpts>,
) -> Result<Vec<Arc<Bdev>>> {
    if ctrlrs::exists(name) {
        return Err(BdevError::Exists(name.to_string()));
    }
    let namespaces = ctrlr.namespaces();
    let link = Arc::new(Link::new(name, Arc::new(ctrlr), attach));
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for ns in namespaces {
        match register_ns(&link, ns, &trid) {
            Ok(b) => out.push(b),
            Err(NsRefused::Unusable(why)) => refused.push(why),
            Err(NsRefused::Register(e)) => {
                for (_, b) in &out {
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
    ctrlrs::insert(ctrlrs::Entry {
        link: link.clone(),
        trid,
        bdevs: out
            .iter()
            .map(|(nsid, b)| (*nsid, b.name().to_string()))
            .collect(),
        deleting: false,
    });
    super::adminq::start(&link);
    Ok(out.into_iter().map(|(_, b)| b).collect())
}

/// Why a namespace got no bdev.
pub(super) enum NsRefused {
    /// The namespace cannot carry block I/O (no LBA format this driver
    /// uses, or inactive): logged and skipped.
    Unusable(String),
    /// The bdev layer refused it (its name is taken, ...).
    Register(BdevError),
}

/// Registers the bdev of namespace `ns` of `link`'s controller
/// (`<name>n<nsid>`); returns its NSID and bdev.
pub(super) fn register_ns(
    link: &Arc<Link>,
    ns: Namespace,
    trid: &Option<TransportId>,
) -> std::result::Result<(u32, Arc<Bdev>), NsRefused> {
    let name = &link.name;
    if let Err(why) = ns.check_block_io() {
        log::warn!("nvme bdev: no bdev for {name}n{}: {why}", ns.id());
        return Err(NsRefused::Unusable(why.to_string()));
    }
    let nsid = ns.id();
    let mut p = BdevProps::new(format!("{name}n{nsid}"), ns.block_size(), ns.num_blocks());
    p.product_name = "NVMe disk".into();
    p.write_cache = true;
    let ops = NvmeBdev {
        link: link.clone(),
        ns,
        trid: trid.clone(),
        stats: Arc::default(),
    };
    Bdev::register(p, "nvme", Box::new(ops))
        .map(|b| (nsid, b))
        .map_err(NsRefused::Register)
}
