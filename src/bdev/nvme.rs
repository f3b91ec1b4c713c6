//! The nvme bdev (`bdev_nvme_attach_controller`): one bdev per active
//! namespace of an attached controller, named `<name>n<nsid>` as SPDK
//! names them (`Nvme0n1`).
//!
//! Each bdev channel owns an I/O queue pair with batched doorbells: submits
//! queue SQEs, the channel's poll rings the doorbell once and reaps the
//! completion queue. DMA buffers ([`IoBuf::dma`]) go to the device as they
//! are; heap buffers are bounced through a DMA copy (slower, but any memory
//! works, as in SPDK). A bdev reset resets the controller.

use super::{
    Bdev, BdevError, BdevModule, BdevOps, BdevProps, Completer, IoBuf, IoData, IoId, IoRequest,
    IoStatus, IoType, ModuleChannel, Result,
};
use crate::nvme::{
    self, Controller, ControllerOpts, DmaSlice, Namespace, NvmeError, QPair, QPairOpts, TransportId,
};
use serde::Deserialize;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

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
}

/// NVMe Status Code Type 2h: Media and Data Integrity Errors.
const SCT_MEDIA_ERROR: u8 = 0x2;
/// Status Code 85h of that type: Compare Failure.
const SC_COMPARE_FAILURE: u8 = 0x85;

fn status_of(r: &std::result::Result<(), NvmeError>) -> IoStatus {
    match r {
        Ok(()) => IoStatus::Success,
        // Media and Data Integrity Errors / Compare Failure is a miscompare,
        // as SPDK's spdk_bdev_io_complete_nvme_status reports it.
        Err(NvmeError::Command { status, .. })
            if status.sct.raw() == SCT_MEDIA_ERROR && status.sc == SC_COMPARE_FAILURE =>
        {
            IoStatus::Miscompare
        }
        Err(NvmeError::Command { status, .. }) => IoStatus::NvmeError {
            sct: status.sct.raw(),
            sc: status.sc,
        },
        Err(NvmeError::AbortedByReset) => IoStatus::Aborted,
        Err(NvmeError::QueueFull) => IoStatus::NoMem,
        Err(e) => {
            log::error!("nvme bdev: I/O failed: {e}");
            IoStatus::Failed
        }
    }
}

/// Heap buffers waiting for their bounce I/O, by request index.
type Bounced = Rc<RefCell<Vec<Option<IoData>>>>;

struct NvmeChannel {
    qp: QPair,
    ns: Namespace,
    ctrlr: Arc<Controller>,
    done: Completer,
    bounced: Bounced,
}

impl NvmeChannel {
    /// The data as one DMA slice: the caller's DMA buffer as is, or a bounce
    /// copy of a heap buffer (kept aside until completion).
    fn dma_slice(&mut self, io: &mut IoRequest<'_>) -> std::result::Result<DmaSlice, IoStatus> {
        let Some(data) = io.take_data() else {
            log::error!("nvme bdev: split pieces are not expected (max_rw_size is 0)");
            return Err(IoStatus::Failed);
        };
        match data {
            IoData::Buf(b) if b.is_dma() => match b.into_dma() {
                Ok((d, r)) => DmaSlice::new(d, r).map_err(|(e, _)| {
                    log::error!("nvme bdev: {e}");
                    IoStatus::Failed
                }),
                Err(_) => Err(IoStatus::Failed),
            },
            other => {
                let len = other.len() as usize;
                let mut bounce = match crate::env::DmaBuf::alloc(len, 4096) {
                    Ok(d) => d,
                    Err(e) => {
                        log::error!("nvme bdev: bounce buffer of {len} bytes: {e}");
                        let i = io.id.index() as usize;
                        self.park(i, other);
                        return Err(IoStatus::NoMem);
                    }
                };
                let mut at = 0;
                other.for_each(0, len, |s| {
                    bounce[at..at + s.len()].copy_from_slice(s);
                    at += s.len();
                });
                self.park(io.id.index() as usize, other);
                DmaSlice::new(bounce, 0..len).map_err(|_| IoStatus::Failed)
            }
        }
    }

    fn park(&mut self, i: usize, data: IoData) {
        let mut b = self.bounced.borrow_mut();
        if b.len() <= i {
            b.resize_with(i + 1, || None);
        }
        b[i] = Some(data);
    }
}

/// Completion of a data I/O: hand the caller's buffer back (copying a
/// bounced read into it first).
fn finish_data(done: &Completer, bounced: &Bounced, id: IoId, read: bool, c: nvme::IoCompletion) {
    let st = status_of(&c.result);
    let parked = bounced
        .borrow_mut()
        .get_mut(id.index() as usize)
        .and_then(Option::take);
    let data = match (parked, c.buf.into_single()) {
        (Some(mut orig), Some(slice)) => {
            if read && st == IoStatus::Success {
                let src = slice.as_slice();
                let mut at = 0;
                orig.for_each_mut(0, src.len(), |s| {
                    s.copy_from_slice(&src[at..at + s.len()]);
                    at += s.len();
                });
            }
            orig
        }
        (None, Some(slice)) => {
            let r = slice.range();
            IoData::Buf(IoBuf::from_dma(slice.into_inner(), r.start, r.len()))
        }
        (Some(orig), None) => orig,
        (None, None) => IoData::None,
    };
    done.complete_with_data(id, st, data);
}

impl ModuleChannel for NvmeChannel {
    fn submit_request(&mut self, mut io: IoRequest<'_>) {
        let (id, lba, n) = (io.id, io.offset_blocks, io.num_blocks);
        let Ok(count) = u32::try_from(n) else {
            self.done.complete(id, IoStatus::Failed);
            return;
        };
        let (done, bounced) = (self.done.clone(), self.bounced.clone());
        let r = match io.io_type {
            IoType::Read | IoType::Write | IoType::Compare => {
                let slice = match self.dma_slice(&mut io) {
                    Ok(s) => s,
                    Err(st) => {
                        let data = self
                            .bounced
                            .borrow_mut()
                            .get_mut(id.index() as usize)
                            .and_then(Option::take);
                        self.done
                            .complete_with_data(id, st, data.unwrap_or_default());
                        return;
                    }
                };
                let read = io.io_type == IoType::Read;
                let cb = move |_: &mut QPair, c: nvme::IoCompletion| {
                    finish_data(&done, &bounced, id, read, c)
                };
                match io.io_type {
                    IoType::Read => self.qp.read(&self.ns, slice, lba, count, cb),
                    IoType::Write => self.qp.write(&self.ns, slice, lba, count, cb),
                    _ => self.qp.compare(&self.ns, slice, lba, count, cb),
                }
            }
            IoType::Flush => self.qp.flush_ns(&self.ns, move |_, c| {
                done.complete(id, status_of(&c.result))
            }),
            IoType::WriteZeroes => self.qp.write_zeroes(&self.ns, lba, count, move |_, c| {
                done.complete(id, status_of(&c.result))
            }),
            IoType::Unmap => self.qp.deallocate(&self.ns, &[(lba, count)], move |_, c| {
                done.complete(id, status_of(&c.result))
            }),
            IoType::Reset => {
                let st = match self.ctrlr.reset() {
                    Ok(()) => IoStatus::Success,
                    Err(e) => {
                        log::error!("nvme bdev: controller reset failed: {e}");
                        IoStatus::Failed
                    }
                };
                self.done.complete(id, st);
                return;
            }
            IoType::CompareAndWrite => {
                self.done.complete(id, IoStatus::Failed);
                return;
            }
        };
        if let Err(e) = r {
            let st = status_of(&Err(e.error));
            let parked = self
                .bounced
                .borrow_mut()
                .get_mut(id.index() as usize)
                .and_then(Option::take);
            let data = match (parked, e.buf.into_single()) {
                (Some(orig), _) => orig,
                (None, Some(slice)) => {
                    let r = slice.range();
                    IoData::Buf(IoBuf::from_dma(slice.into_inner(), r.start, r.len()))
                }
                (None, None) => IoData::None,
            };
            self.done.complete_with_data(id, st, data);
        }
    }

    fn poll(&mut self) -> usize {
        match self.qp.process_completions(0) {
            Ok(n) => n,
            Err(e) => {
                log::warn!("nvme bdev: qpair: {e}");
                0
            }
        }
    }

    fn outstanding(&self) -> usize {
        self.qp.outstanding()
    }
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
        Ok(Box::new(NvmeChannel {
            qp,
            ns: self.ns.clone(),
            ctrlr: self.ctrlr.clone(),
            done,
            bounced: Rc::new(RefCell::new(Vec::new())),
        }))
    }
    fn dump_info_json(&self) -> serde_json::Value {
        serde_json::json!({"nvme": {"ctrlr": self.ctrlr_name, "nsid": self.ns.id(),
            "trid": self.trid.as_ref().map(|t| t.to_string()),
            "serial": self.ctrlr.data().serial(), "model": self.ctrlr.data().model()}})
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
    let ctrlr = Arc::new(ctrlr);
    let mut out = Vec::new();
    for ns in ctrlr.namespaces() {
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
    Ok(out)
}

/// `bdev_nvme_attach_controller` for PCIe: connects the controller at
/// `traddr` (bound to vfio-pci or uio; the env must be initialized).
pub fn attach_controller(opts: AttachOpts) -> Result<Vec<Arc<Bdev>>> {
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
