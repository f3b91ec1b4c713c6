//! The controller: attach and bring-up per the NVMe specification, reset,
//! shutdown and detach. Admin commands are in `admin_cmds.rs`.

use super::admin::{AdminQueue, PcieAdmin};
use super::namespace::Namespace;
use super::regs::Regs;
use super::shadow_policy;
use super::spec::features::AsyncEvent;
use super::spec::identify::OACS_DOORBELL_BUFFER_CONFIG;
use super::spec::registers::{Aqa, Cap, Cc, Vs};
use super::spec::{AdminOpcode, IdentifyController, Sqe};
use super::transport::{PcieTransport, ShadowDoorbells, Transport};
use super::{NvmeError, TransportId};
use crate::env::DmaBuf;
use crate::pci::PciDevice;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

/// Options for attaching a controller (SPDK's `spdk_nvme_ctrlr_opts`).
#[derive(Debug, Clone)]
pub struct ControllerOpts {
    /// I/O queue pairs to ask for with Set Features Number of Queues.
    pub num_io_queues: u16,
    /// Admin queue entries (2..=4096).
    pub admin_queue_size: u16,
    /// How long an admin command may take.
    pub admin_timeout: Duration,
    /// Use the shadow doorbell buffer (Doorbell Buffer Config) when the
    /// controller offers it (OACS bit 8), unless the controller is known to
    /// spend more on it than it saves (QEMU's NVMe controller reads and
    /// writes the buffer once per command and per completion, and asks for
    /// the MMIO writes anyway): fewer MMIO writes where the controller polls
    /// the buffer. `false`: never.
    pub shadow_doorbell: bool,
    /// With `shadow_doorbell`, use the buffer on such a controller too (to
    /// measure what it costs there).
    pub shadow_doorbell_always: bool,
    /// Describe contiguous I/O buffers with one SGL descriptor when the
    /// controller supports SGLs (Identify SGLS), instead of PRP lists.
    pub use_sgl: bool,
    /// Asynchronous Event Requests to keep outstanding (capped by AERL+1).
    pub num_aers: u16,
    /// How long a normal shutdown (CC.SHN) may take at detach.
    pub shutdown_timeout: Duration,
    /// Fabrics: the host NQN to connect as (a `hostnqn:` in the transport
    /// ID wins; without either, one is made from `hostid`).
    pub hostnqn: Option<String>,
    /// Fabrics: the host identifier sent in Connect.
    pub hostid: [u8; 16],
    /// Fabrics: the source address to connect from (SPDK's `src_addr`;
    /// `hostaddr` of `bdev_nvme_attach_controller`); `None`: the kernel's
    /// choice.
    pub src_addr: Option<String>,
    /// Fabrics: the source port to connect from (SPDK's `src_svcid`;
    /// `hostsvcid`); `None`: any free port.
    pub src_svcid: Option<String>,
    /// NVMe/TCP: ask for header digests.
    pub header_digest: bool,
    /// NVMe/TCP: ask for data digests.
    pub data_digest: bool,
    /// Fabrics: Keep Alive Timeout in milliseconds sent in the admin
    /// Connect (0: none). With one, [`Controller::process_admin_completions`]
    /// sends Keep Alive every half KATO: call it at least that often, or
    /// the target ends the association.
    pub keep_alive_timeout_ms: u32,
}

impl Default for ControllerOpts {
    fn default() -> Self {
        ControllerOpts {
            num_io_queues: 64,
            admin_queue_size: 32,
            admin_timeout: Duration::from_secs(10),
            shadow_doorbell: true,
            shadow_doorbell_always: false,
            use_sgl: true,
            num_aers: 4,
            shutdown_timeout: Duration::from_secs(10),
            hostnqn: None,
            hostid: super::transport::default_hostid(),
            src_addr: None,
            src_svcid: None,
            header_digest: false,
            data_digest: false,
            keep_alive_timeout_ms: 0,
        }
    }
}

/// Callback for asynchronous events (namespace changes, SMART warnings, errors).
pub type AerCallback = Box<dyn FnMut(AsyncEvent) + Send>;

/// State shared by a [`Controller`] and its queue pairs.
pub(crate) struct CtrlrInner {
    pub(crate) trid: TransportId,
    pub(crate) transport: Transport,
    pub(crate) cap: Cap,
    pub(crate) vs: Vs,
    pub(crate) opts: ControllerOpts,
    pub(crate) admin: Mutex<AdminQueue>,
    pub(crate) cdata: Box<IdentifyController>,
    pub(crate) namespaces: RwLock<BTreeMap<u32, Namespace>>,
    /// Granted I/O queue pairs.
    pub(crate) num_io_queues: RwLock<u16>,
    /// qid -> in use (index 0 is the admin queue).
    pub(crate) qids: Mutex<Vec<bool>>,
    /// Even: running; odd: reset in progress. Bumped twice per reset.
    pub(crate) generation: AtomicU64,
    pub(crate) failed: AtomicBool,
    pub(crate) detached: AtomicBool,
    /// Largest data transfer of one command, in bytes (MDTS, PRP list limit).
    pub(crate) max_xfer: usize,
    pub(crate) aer_cb: Mutex<Option<AerCallback>>,
}

impl CtrlrInner {
    /// A controller just brought up over `transport`, with no namespaces,
    /// I/O queues or AER callback yet (the one constructor of every
    /// transport's attach).
    pub(crate) fn new(
        trid: TransportId,
        transport: Transport,
        (cap, vs): (Cap, Vs),
        opts: ControllerOpts,
        admin: AdminQueue,
        cdata: Box<IdentifyController>,
        max_xfer: usize,
    ) -> Self {
        CtrlrInner {
            trid,
            transport,
            cap,
            vs,
            opts,
            admin: Mutex::new(admin),
            cdata,
            namespaces: RwLock::new(BTreeMap::new()),
            num_io_queues: RwLock::new(0),
            qids: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            detached: AtomicBool::new(false),
            max_xfer,
            aer_cb: Mutex::new(None),
        }
    }
}

/// An attached NVMe controller (SPDK's `spdk_nvme_ctrlr`).
///
/// `Send + Sync`: admin commands may come from any thread (they serialise on
/// the admin queue's lock). I/O goes through [`QPair`](super::QPair)s, each
/// owned by one thread. Dropping the controller shuts it down (CC.SHN) — the
/// detach of SPDK; queue pairs still alive then fail their new I/O.
pub struct Controller {
    pub(crate) inner: Arc<CtrlrInner>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("trid", &self.inner.trid.to_string())
            .field("model", &self.inner.cdata.model())
            .field("serial", &self.inner.cdata.serial())
            .finish()
    }
}

impl Controller {
    /// Attaches to the NVMe controller behind `device` and brings it up:
    /// disable, admin queues, CC, enable, Identify, Number of Queues, shadow
    /// doorbells, namespace discovery, Asynchronous Event Requests.
    ///
    /// `device` is a VFIO or uio PCI device (see `pci`), or, as here, the
    /// software controller:
    /// ```
    /// use spdk_io::env::{self, DmaBuf, EnvOpts};
    /// use spdk_io::nvme::{emu::EmuController, Controller, ControllerOpts, QPairOpts};
    /// use std::{cell::Cell, rc::Rc, sync::Arc};
    ///
    /// env::init(EnvOpts::no_huge())?;
    /// let emu = Arc::new(EmuController::builder().namespace(512, 1024).build()?);
    /// let ctrlr = Controller::attach(emu, ControllerOpts::default())?;
    /// let ns = ctrlr.namespace(1)?;
    /// let mut qp = ctrlr.alloc_io_qpair(QPairOpts::default())?;
    /// let ok = Rc::new(Cell::new(None));
    /// let o = ok.clone();
    /// qp.read(&ns, DmaBuf::alloc(512, 4096)?, 0, 1, move |_, c| o.set(Some(c.result.is_ok())))?;
    /// while ok.get().is_none() {
    ///     qp.process_completions(0)?;
    /// }
    /// assert_eq!(ok.get(), Some(true));
    /// # drop(qp); drop(ctrlr); env::fini();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn attach(device: Arc<dyn PciDevice>, opts: ControllerOpts) -> Result<Self, NvmeError> {
        let trid = TransportId::pcie(device.address());
        device.enable_bus_master()?;
        let regs = Regs::new(device.map_bar(0)?)?;
        let cap = regs.cap();
        if cap.0 == u64::MAX {
            return Err(NvmeError::DeviceGone);
        }
        let vs = regs.vs();
        if cap.mpsmin() != 0 {
            return Err(NvmeError::Unsupported(format!(
                "controller needs pages of at least {} bytes (CAP.MPSMIN); only 4 KiB is supported",
                cap.mps_min_bytes()
            )));
        }
        if cap.css() & 1 == 0 {
            return Err(NvmeError::Unsupported(
                "controller does not support the NVM command set (CAP.CSS bit 0)".into(),
            ));
        }
        let dstrd = cap.dstrd() as u8;
        let to = cap.timeout();
        log::debug!("{trid}: CAP {:#x} VS {vs} timeout {to:?}", cap.0);
        regs.disable(to)?;

        let aq_entries = opts
            .admin_queue_size
            .clamp(2, 4096)
            .min(cap.max_queue_entries().min(4096) as u16);
        let mut admin = PcieAdmin::new(&regs, aq_entries, dstrd)?;
        program_and_enable(&regs, &admin, cap)?;

        // Identify Controller.
        let buf = DmaBuf::alloc_zeroed(4096, 4096)?;
        let mut sqe = Sqe::new(AdminOpcode::Identify as u8, 0);
        sqe.cdw10 = super::spec::command::cns::CONTROLLER as u32;
        let (_, buf) = admin.exec(&regs, sqe, Some(buf), opts.admin_timeout)?;
        let cdata: IdentifyController =
            super::spec::from_bytes(&buf.expect("identify buffer")).expect("4096 bytes");
        let cdata = Box::new(cdata);

        let mps = 4096usize;
        let mdts_bytes = if cdata.mdts == 0 {
            usize::MAX
        } else {
            mps << cdata.mdts.min(20)
        };
        let max_xfer = mdts_bytes.min(super::prp::MAX_PRP_TRANSFER);

        let offered = cdata.oacs & OACS_DOORBELL_BUFFER_CONFIG != 0;
        let costly = shadow_policy::costs_more_than_it_saves(&cdata);
        if opts.shadow_doorbell && offered && costly && !opts.shadow_doorbell_always {
            log::info!(
                "{}: shadow doorbells offered but left off: this controller reads and writes them per command (ControllerOpts::shadow_doorbell_always turns them on)",
                trid.traddr
            );
        }
        let shadow = if opts.shadow_doorbell && offered && (!costly || opts.shadow_doorbell_always)
        {
            let mut dbs = DmaBuf::alloc_zeroed(4096, 4096)?;
            let mut eis = DmaBuf::alloc_zeroed(4096, 4096)?;
            let dbs_ptr = dbs[..].as_mut_ptr().cast::<u32>();
            let eis_ptr = eis[..].as_mut_ptr().cast::<u32>();
            Some(ShadowDoorbells {
                dbs,
                eis,
                dbs_ptr,
                eis_ptr,
            })
        } else {
            None
        };

        let transport = Transport::Pcie(PcieTransport {
            _device: device,
            regs,
            dstrd,
            shadow,
        });
        let inner = CtrlrInner::new(
            trid,
            transport,
            (cap, vs),
            opts,
            AdminQueue::Pcie(admin),
            cdata,
            max_xfer,
        );
        let ctrlr = Controller {
            inner: Arc::new(inner),
        };
        ctrlr.inner.init_after_enable()?;
        ctrlr.scan_namespaces()?;
        log::info!(
            "{}: attached {} (serial {}, fw {}, NVMe {}), {} namespace(s), {} I/O queues, shadow doorbells {}",
            ctrlr.inner.trid,
            ctrlr.inner.cdata.model(),
            ctrlr.inner.cdata.serial(),
            ctrlr.inner.cdata.firmware(),
            vs,
            ctrlr.inner.namespaces.read().unwrap().len(),
            ctrlr.max_io_qpairs(),
            if ctrlr.shadow_doorbells_enabled() { "on" } else { "off" },
        );
        Ok(ctrlr)
    }

    pub(crate) fn admin(&self) -> Result<MutexGuard<'_, AdminQueue>, NvmeError> {
        self.inner.admin()
    }

    /// The transport ID.
    pub fn trid(&self) -> &TransportId {
        &self.inner.trid
    }
    /// CAP as read at attach.
    pub fn cap(&self) -> Cap {
        self.inner.cap
    }
    /// VS, the NVMe version the controller implements.
    pub fn version(&self) -> Vs {
        self.inner.vs
    }
    /// Identify Controller data.
    pub fn data(&self) -> &IdentifyController {
        &self.inner.cdata
    }
    /// Largest transfer of one command in bytes (from MDTS); larger I/O is split.
    pub fn max_transfer_size(&self) -> usize {
        self.inner.max_xfer
    }
    /// I/O queue pairs granted by the controller.
    pub fn max_io_qpairs(&self) -> u16 {
        *self.inner.num_io_queues.read().unwrap()
    }
    /// Size of the Controller Memory Buffer in bytes (CMBSZ; 0 when absent).
    pub fn cmb_size(&self) -> u64 {
        self.inner.regs().map_or(0, |r| r.cmbsz().size_bytes())
    }
    /// True when shadow doorbells (Doorbell Buffer Config) are in use.
    pub fn shadow_doorbells_enabled(&self) -> bool {
        self.inner.shadow().is_some()
    }
    /// Active namespace IDs, ascending.
    pub fn namespace_ids(&self) -> Vec<u32> {
        self.inner
            .namespaces
            .read()
            .unwrap()
            .keys()
            .copied()
            .collect()
    }
    /// The active namespace `nsid`.
    pub fn namespace(&self, nsid: u32) -> Result<Namespace, NvmeError> {
        self.inner
            .namespaces
            .read()
            .unwrap()
            .get(&nsid)
            .cloned()
            .ok_or(NvmeError::NoSuchNamespace(nsid))
    }
    /// All active namespaces.
    pub fn namespaces(&self) -> Vec<Namespace> {
        self.inner
            .namespaces
            .read()
            .unwrap()
            .values()
            .cloned()
            .collect()
    }

    /// Registers the callback for asynchronous events, run from
    /// [`process_admin_completions`](Self::process_admin_completions).
    pub fn register_aer_callback(&self, cb: impl FnMut(AsyncEvent) + Send + 'static) {
        *self.inner.aer_cb.lock().unwrap() = Some(Box::new(cb));
    }

    /// Polls the admin queue: handles AER completions (re-reading the
    /// namespace list on a namespace change, then calling the AER callback)
    /// and checks CSTS.CFS. Returns the number of completions.
    pub fn process_admin_completions(&self) -> Result<usize, NvmeError> {
        let (n, events) = {
            let mut a = self.admin()?;
            let n = a.poll();
            if a.connection_failed() {
                // NVMe/TCP: the admin connection is gone; a reset reconnects.
                self.inner.failed.store(true, Ordering::Release);
                return Err(NvmeError::ConnectionLost);
            }
            (n, a.take_events())
        };
        self.inner.keep_alive_if_due()?;
        if let Some(regs) = self.inner.regs() {
            let csts = regs.csts();
            if csts.is_all_ones() {
                return Err(NvmeError::DeviceGone);
            }
            if csts.cfs() == 1 {
                self.inner.failed.store(true, Ordering::Release);
                return Err(NvmeError::ControllerFatal);
            }
        }
        for ev in events {
            if ev.log_page != 0 {
                // Reading the log page re-arms this event type.
                let len = if ev.log_page == super::spec::log::lid::CHANGED_NS_LIST {
                    4096
                } else {
                    512
                };
                if let Err(e) = self.get_log_page(ev.log_page, 0, len) {
                    log::debug!("reading log page {:#x} after AER: {e}", ev.log_page);
                }
            }
            if ev.is_namespace_attribute_changed() {
                self.scan_namespaces()?;
            }
            if let Some(cb) = self.inner.aer_cb.lock().unwrap().as_mut() {
                cb(ev);
            }
        }
        Ok(n)
    }

    /// True after a fatal status was seen, after the admin connection of an
    /// NVMe/TCP controller failed, or after a reset failed — until a
    /// reset succeeds.
    pub fn is_failed(&self) -> bool {
        self.inner.failed.load(Ordering::Acquire)
    }

    /// Resets the controller: disable (CC.EN=0), re-create the admin queue,
    /// enable, and redo Number of Queues, shadow doorbells and AERs.
    ///
    /// I/O queue pairs are re-created by their owning threads on their next
    /// `process_completions`: every I/O that was in flight then completes
    /// with [`NvmeError::AbortedByReset`] — failed, never lost.
    ///
    /// Over NVMe/TCP a reset closes the admin connection and connects
    /// again (ICReq, Fabrics Connect, CC.EN by Property Set); each queue
    /// pair closes its connection and connects again on its next poll, and
    /// the same [`QPair`](super::QPair) handles go on working. While the
    /// target is unreachable the reset fails with
    /// [`NvmeError::ReconnectFailed`] (retryable): the controller stays
    /// failed and its queue pairs fail new I/O until a reset succeeds.
    pub fn reset(&self) -> Result<(), NvmeError> {
        self.inner.reset()
    }

    /// Re-reads the active namespace list and each namespace's Identify data.
    pub fn scan_namespaces(&self) -> Result<(), NvmeError> {
        let ids = self.active_ns_list()?;
        let oncs = self.inner.cdata.oncs;
        let mut map = BTreeMap::new();
        for id in ids {
            let data = self.identify_namespace(id)?;
            if let Some(ns) = Namespace::new(id, data, oncs) {
                map.insert(id, ns);
            }
        }
        *self.inner.namespaces.write().unwrap() = map;
        Ok(())
    }
}

impl CtrlrInner {
    pub(crate) fn admin(&self) -> Result<MutexGuard<'_, AdminQueue>, NvmeError> {
        if self.detached.load(Ordering::Acquire) {
            return Err(NvmeError::ControllerUnavailable);
        }
        Ok(self.admin.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Executes one admin command.
    pub(crate) fn admin_exec(
        &self,
        sqe: Sqe,
        buf: Option<DmaBuf>,
    ) -> Result<(super::spec::Cqe, Option<DmaBuf>), NvmeError> {
        let timeout = self.opts.admin_timeout;
        let r = self.admin()?.exec(self.regs(), sqe, buf, timeout);
        if matches!(r, Err(NvmeError::ControllerFatal)) {
            self.failed.store(true, Ordering::Release);
        }
        r
    }

    /// Shadow doorbell (shadow, eventidx) slot pointers for doorbell index `idx`
    /// (2·qid for an SQ tail, 2·qid+1 for a CQ head).
    pub(crate) fn shadow_slot(&self, idx: usize) -> Option<(*mut u32, *mut u32)> {
        let p = self.pcie()?;
        let sh = p.shadow.as_ref()?;
        let off = idx << p.dstrd;
        if (off + 1) * 4 > 4096 {
            return None;
        }
        // SAFETY: off < 1024 u32 slots of each 4 KiB page (checked above).
        Some(unsafe { (sh.dbs_ptr.add(off), sh.eis_ptr.add(off)) })
    }
}

/// Programs AQA/ASQ/ACQ and CC, then enables and waits for ready.
pub(crate) fn program_and_enable(
    regs: &Regs,
    admin: &PcieAdmin,
    cap: Cap,
) -> Result<(), NvmeError> {
    let n = admin.entries() as u32 - 1;
    regs.set_admin_queues(
        Aqa(0).with_asqs(n).with_acqs(n),
        admin.sq_iova(),
        admin.cq_iova(),
    );
    let cc = Cc(0)
        .with_css(0)
        .with_mps(0)
        .with_ams(0)
        .with_shn(0)
        .with_iosqes(6)
        .with_iocqes(4);
    regs.enable(cc, cap.timeout())
}

impl Drop for Controller {
    fn drop(&mut self) {
        let i = &self.inner;
        // Hold the admin lock so no command races the shutdown.
        let mut admin = i.admin.lock().unwrap_or_else(|p| p.into_inner());
        i.detached.store(true, Ordering::Release);
        i.generation.fetch_add(2, Ordering::AcqRel);
        let Some(regs) = i.regs() else {
            super::tcp::shutdown(&i.trid, &mut admin, i.opts.shutdown_timeout);
            return;
        };
        if let Err(e) = regs.shutdown(i.opts.shutdown_timeout) {
            log::warn!("{}: shutdown did not complete: {e}", i.trid);
        }
        // Disabled, so no DMA is in flight when queue memory is freed with the last Arc.
        if let Err(e) = regs.disable(i.cap.timeout()) {
            log::warn!("{}: disable after shutdown: {e}", i.trid);
        }
    }
}
