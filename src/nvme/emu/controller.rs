//! [`EmuController`]: the software NVMe controller as a [`PciDevice`], and
//! [`EmuHandle`], the cloneable side door tests use to inspect and disturb it.

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::pci::{Bar, PciAddress, PciDevice, PciError};

use super::config::EmuConfig;
use super::events::{AsyncEvent, EventQueue};
use super::faults::{FaultState, Faults};
use super::namespace::Namespace;
use super::pci_config::PciConfig;
use super::regs::{self, Regs};
use super::stats::{Counters, EmuStats};
use super::worker::Worker;
use super::{EmuBuilder, EmuError};

/// State shared by the controller, its handles and its worker thread.
pub(crate) struct Shared {
    pub cfg: EmuConfig,
    pub address: PciAddress,
    pub regs: Arc<Regs>,
    pub pci: PciConfig,
    pub namespaces: Vec<Namespace>,
    pub faults: Arc<FaultState>,
    pub stats: Counters,
    pub events: EventQueue,
    pub stop: AtomicBool,
}

impl Shared {
    /// An active (attached) namespace: what the controller's commands see.
    pub fn namespace(&self, nsid: u32) -> Option<&Namespace> {
        self.any_namespace(nsid).filter(|n| n.is_active())
    }

    /// A configured namespace, attached or not.
    pub fn any_namespace(&self, nsid: u32) -> Option<&Namespace> {
        self.namespaces.iter().find(|n| n.nsid == nsid)
    }
}

/// A software NVMe controller: registers in memory, RAM namespaces, and a
/// worker thread that executes commands. Dropping it stops the worker (the
/// BAR memory stays valid while any [`Bar`] over it lives).
pub struct EmuController {
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

/// Made-up PCI addresses for controllers built without one: domain 0xe000 + n.
static NEXT_ADDRESS: AtomicU16 = AtomicU16::new(0);

fn bar_len(max_io_queue_pairs: u16) -> usize {
    let doorbells = regs::DOORBELL_BASE + 8 * (max_io_queue_pairs as usize + 1);
    doorbells.next_multiple_of(4096).max(16 * 1024)
}

impl EmuController {
    /// Starts configuring a controller.
    pub fn builder() -> EmuBuilder {
        EmuBuilder::default()
    }

    pub(crate) fn new(cfg: EmuConfig) -> Result<Self, EmuError> {
        cfg.validate()?;
        let namespaces = cfg
            .namespaces
            .iter()
            .map(Namespace::new)
            .collect::<Result<Vec<_>, _>>()?;
        let regs = Arc::new(Regs::new(bar_len(cfg.max_io_queue_pairs)));
        let cap = cfg.mqes as u64
            | 1 << 16 // CQR: queues must be physically contiguous
            | (cfg.cap_to as u64) << 24
            | 1 << 37 // CSS: NVM command set
            | 4 << 52; // MPSMAX = 4 (64 KiB); MPSMIN = 0 (4 KiB)
        regs.store64(regs::CAP, cap);
        regs.store(regs::VS, 0x0001_0400);
        let address = cfg.address.unwrap_or_else(|| {
            let n = NEXT_ADDRESS.fetch_add(1, Ordering::Relaxed);
            PciAddress {
                domain: 0xe000 + (n as u32 >> 8),
                bus: n as u8,
                device: 0,
                function: 0,
            }
        });
        let shared = Arc::new(Shared {
            pci: PciConfig::new(cfg.pci_ids.0, cfg.pci_ids.1),
            cfg,
            address,
            regs,
            namespaces,
            faults: Arc::default(),
            stats: Counters::default(),
            events: EventQueue::default(),
            stop: AtomicBool::new(false),
        });
        let worker = Worker::new(shared.clone());
        let thread = std::thread::Builder::new()
            .name(format!("nvme-emu {address}"))
            .spawn(move || worker.run())
            .map_err(EmuError::Spawn)?;
        Ok(Self {
            shared,
            worker: Some(thread),
        })
    }

    /// A cloneable handle for fault injection, statistics, events and namespace contents.
    pub fn handle(&self) -> EmuHandle {
        EmuHandle {
            shared: self.shared.clone(),
        }
    }

    /// Fault injection (same as `handle().faults()`).
    pub fn faults(&self) -> Faults {
        self.handle().faults()
    }

    /// A snapshot of the counters (same as `handle().stats()`).
    pub fn stats(&self) -> EmuStats {
        self.shared.stats.snapshot()
    }

    /// The configuration the controller was built with.
    pub fn config(&self) -> &EmuConfig {
        &self.shared.cfg
    }
}

impl Drop for EmuController {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.worker.take() {
            t.thread().unpark();
            if t.join().is_err() {
                log::error!("nvme emu {}: worker thread panicked", self.shared.address);
            }
        }
    }
}

impl std::fmt::Debug for EmuController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmuController")
            .field("address", &self.shared.address)
            .field("serial", &self.shared.cfg.serial)
            .finish()
    }
}

impl PciDevice for EmuController {
    fn address(&self) -> PciAddress {
        self.shared.address
    }

    fn map_bar(&self, index: u8) -> Result<Bar, PciError> {
        if index != 0 {
            return Err(PciError::NoSuchBar {
                device: self.shared.address.to_string(),
                index,
            });
        }
        let regs = self.shared.regs.clone();
        // SAFETY: the register memory is page-aligned, `regs.len()` bytes long
        // and freed only when the last Arc<Regs> (kept by the Bar) drops.
        Ok(unsafe { Bar::from_raw(regs.as_ptr(), regs.len(), regs) })
    }

    fn cfg_read(&self, offset: u16, buf: &mut [u8]) -> Result<(), PciError> {
        self.shared.pci.read(offset, buf)
    }

    fn cfg_write(&self, offset: u16, data: &[u8]) -> Result<(), PciError> {
        self.shared.pci.write(offset, data)
    }
}

/// Side door into a running [`EmuController`]; cheap to clone, and usable
/// after the controller was handed to a driver. It does not keep the worker running.
#[derive(Clone)]
pub struct EmuHandle {
    shared: Arc<Shared>,
}

impl EmuHandle {
    /// Fault injection.
    pub fn faults(&self) -> Faults {
        Faults(self.shared.faults.clone())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> EmuStats {
        self.shared.stats.snapshot()
    }

    /// Reports a Namespace Attribute Changed notice for `nsid` (delivered
    /// when Asynchronous Event Configuration bit 8 is set and an AER is outstanding).
    pub fn raise_namespace_changed(&self, nsid: u32) {
        self.shared
            .events
            .raise(AsyncEvent::NamespaceAttributeChanged(nsid));
    }

    /// Sets SMART Critical Warning bits and reports a SMART / Health event
    /// (delivered for the bits enabled in Asynchronous Event Configuration).
    pub fn raise_smart_warning(&self, critical_warning: u8) {
        self.shared
            .events
            .raise(AsyncEvent::SmartWarning(critical_warning));
    }

    /// Detaches (`false`) or re-attaches (`true`) namespace `nsid`, as
    /// namespace management would: a detached NSID leaves the active list,
    /// identifies as all zeroes and refuses I/O with Invalid Namespace or
    /// Format; its data is kept. A change raises Namespace Attribute Changed.
    pub fn set_namespace_attached(&self, nsid: u32, attached: bool) -> Result<(), EmuError> {
        let ns = self
            .shared
            .any_namespace(nsid)
            .ok_or(EmuError::NoSuchNamespace(nsid))?;
        if ns.set_active(attached) != attached {
            self.raise_namespace_changed(nsid);
        }
        Ok(())
    }

    /// Resizes namespace `nsid` to `blocks` blocks (new blocks read as
    /// zeroes; blocks past a shrink are dropped) and raises Namespace
    /// Attribute Changed, as a capacity change on a real controller does.
    pub fn resize_namespace(&self, nsid: u32, blocks: u64) -> Result<(), EmuError> {
        let ns = self
            .shared
            .any_namespace(nsid)
            .ok_or(EmuError::NoSuchNamespace(nsid))?;
        {
            let mut d = ns.lock();
            let len = blocks << d.lba_shift;
            let extra = (len as usize).saturating_sub(d.bytes.len());
            d.bytes
                .try_reserve_exact(extra)
                .map_err(|_| EmuError::OutOfMemory { nsid, bytes: len })?;
            d.bytes.resize(len as usize, 0);
        }
        self.raise_namespace_changed(nsid);
        Ok(())
    }

    fn ns_range(&self, nsid: u32, lba: u64, len: usize) -> Result<(&Namespace, u32), EmuError> {
        let ns = self
            .shared
            .any_namespace(nsid)
            .ok_or(EmuError::NoSuchNamespace(nsid))?;
        let shift = ns.lock().lba_shift;
        if len % (1 << shift) != 0 {
            return Err(EmuError::OutOfRange { nsid, lba, len });
        }
        Ok((ns, shift))
    }

    /// Copies whole blocks of namespace `nsid` from `lba` into `buf`.
    pub fn read_blocks(&self, nsid: u32, lba: u64, buf: &mut [u8]) -> Result<(), EmuError> {
        let (ns, shift) = self.ns_range(nsid, lba, buf.len())?;
        let data = ns.lock();
        let r = data
            .range(lba, (buf.len() >> shift) as u64)
            .ok_or(EmuError::OutOfRange {
                nsid,
                lba,
                len: buf.len(),
            })?;
        buf.copy_from_slice(&data.bytes[r]);
        Ok(())
    }

    /// Overwrites whole blocks of namespace `nsid` from `lba` with `buf`.
    pub fn write_blocks(&self, nsid: u32, lba: u64, buf: &[u8]) -> Result<(), EmuError> {
        let (ns, shift) = self.ns_range(nsid, lba, buf.len())?;
        let mut data = ns.lock();
        let r = data
            .range(lba, (buf.len() >> shift) as u64)
            .ok_or(EmuError::OutOfRange {
                nsid,
                lba,
                len: buf.len(),
            })?;
        data.bytes[r].copy_from_slice(buf);
        Ok(())
    }

    /// Current logical block size and block count of namespace `nsid`.
    pub fn namespace_geometry(&self, nsid: u32) -> Result<(u32, u64), EmuError> {
        let ns = self
            .shared
            .any_namespace(nsid)
            .ok_or(EmuError::NoSuchNamespace(nsid))?;
        let data = ns.lock();
        Ok((1 << data.lba_shift, data.blocks()))
    }
}

impl std::fmt::Debug for EmuHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmuHandle")
            .field("address", &self.shared.address)
            .finish()
    }
}
