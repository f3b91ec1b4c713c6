//! What an emulated controller looks like: identity strings, queue limits,
//! namespaces, optional features. Built with [`EmuBuilder`].

use std::time::Duration;

use crate::pci::PciAddress;

use super::{EmuController, EmuError};

/// One RAM namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceConfig {
    /// Namespace ID (1-based).
    pub nsid: u32,
    /// Logical block size: 512 or 4096.
    pub lba_size: u32,
    /// Number of logical blocks (NSZE).
    pub blocks: u64,
}

/// The full configuration of an emulated controller.
#[derive(Debug, Clone)]
pub struct EmuConfig {
    /// Serial Number (Identify SN, up to 20 ASCII characters).
    pub serial: String,
    /// Model Number (Identify MN, up to 40 ASCII characters).
    pub model: String,
    /// Firmware Revision (Identify FR and firmware slot 1, up to 8 characters).
    pub firmware: String,
    /// CAP.MQES: Maximum Queue Entries Supported, 0's based (1023 = 1024 entries).
    pub mqes: u16,
    /// Identify MDTS: maximum transfer 2^mdts minimum-size (4 KiB) pages; 0 = no limit.
    pub mdts: u8,
    /// Number of I/O queue pairs the controller allocates (Set Features Number of Queues).
    pub max_io_queue_pairs: u16,
    /// CAP.TO: worst-case time to become ready, in 500 ms units.
    pub cap_to: u8,
    /// Time between CC.EN 0→1 and CSTS.RDY = 1.
    pub ready_delay: Duration,
    /// The namespaces, in NSID order.
    pub namespaces: Vec<NamespaceConfig>,
    /// Offer Doorbell Buffer Config (shadow doorbells with EventIdx) in OACS.
    /// The shadow values are read as QEMU reads them (see the module docs):
    /// a driver that skips a needed MMIO doorbell write is caught.
    pub shadow_doorbells: bool,
    /// A volatile write cache is present (Identify VWC, feature 06h).
    pub volatile_write_cache: bool,
    /// SGLs supported for NVM commands (Identify SGLS).
    pub sgl: bool,
    /// Metadata bytes per block that Identify Namespace reports in every
    /// LBA format (MS). Only reported: the controller moves no metadata,
    /// so this is for checking that a host refuses block I/O on such
    /// namespaces. 0 (the default) reports formats without metadata.
    pub advertised_metadata: u16,
    /// PCI vendor and device ID in config space.
    pub pci_ids: (u16, u16),
    /// The PCI address reported; a unique made-up one when `None`.
    pub address: Option<PciAddress>,
}

impl Default for EmuConfig {
    fn default() -> Self {
        Self {
            serial: "EMU0000000001".into(),
            model: "spdk-io software NVMe controller".into(),
            firmware: "1.0".into(),
            mqes: 1023,
            mdts: 7,
            max_io_queue_pairs: 4,
            cap_to: 15,
            ready_delay: Duration::ZERO,
            namespaces: Vec::new(),
            shadow_doorbells: false,
            volatile_write_cache: true,
            sgl: false,
            advertised_metadata: 0,
            pci_ids: (0x1b36, 0x0010),
            address: None,
        }
    }
}

/// Most I/O queue pairs a controller may offer (the doorbells must fit the BAR).
pub const MAX_IO_QUEUE_PAIRS: u16 = 1024;
/// Highest namespace ID accepted (the active namespace list holds 1024 IDs).
pub const MAX_NSID: u32 = 1024;

impl EmuConfig {
    /// Checks every field; the error names the field and the accepted range.
    pub fn validate(&self) -> Result<(), EmuError> {
        let bad = |what: String| Err(EmuError::InvalidConfig(what));
        for (name, s, max) in [
            ("serial", &self.serial, 20),
            ("model", &self.model, 40),
            ("firmware", &self.firmware, 8),
        ] {
            if s.len() > max || !s.is_ascii() {
                return bad(format!("{name} {s:?}: must be ASCII, at most {max} bytes"));
            }
        }
        if self.mqes == 0 {
            return bad("mqes 0: queues need at least 2 entries (mqes >= 1, 0's based)".into());
        }
        if self.max_io_queue_pairs == 0 || self.max_io_queue_pairs > MAX_IO_QUEUE_PAIRS {
            return bad(format!(
                "max_io_queue_pairs {}: must be 1..={MAX_IO_QUEUE_PAIRS}",
                self.max_io_queue_pairs
            ));
        }
        let mut last = 0;
        for ns in &self.namespaces {
            if ns.nsid <= last || ns.nsid > MAX_NSID {
                return bad(format!(
                    "namespace {}: NSIDs must be increasing, unique and within 1..={MAX_NSID}",
                    ns.nsid
                ));
            }
            last = ns.nsid;
            if ns.lba_size != 512 && ns.lba_size != 4096 {
                return bad(format!(
                    "namespace {}: lba_size {} must be 512 or 4096",
                    ns.nsid, ns.lba_size
                ));
            }
            if ns.blocks == 0
                || ns
                    .blocks
                    .checked_mul(ns.lba_size as u64)
                    .map_or(true, |b| b > isize::MAX as u64)
            {
                return bad(format!(
                    "namespace {}: {} blocks is empty or too large",
                    ns.nsid, ns.blocks
                ));
            }
        }
        Ok(())
    }
}

/// Builds an [`EmuController`]; every setter has a default (see [`EmuConfig`]).
#[derive(Debug, Clone, Default)]
pub struct EmuBuilder {
    cfg: EmuConfig,
}

impl From<EmuConfig> for EmuBuilder {
    /// Starts from a complete configuration (e.g. one cloned from another controller).
    fn from(cfg: EmuConfig) -> Self {
        Self { cfg }
    }
}

impl EmuBuilder {
    /// Sets the Serial Number.
    pub fn serial(mut self, s: &str) -> Self {
        self.cfg.serial = s.into();
        self
    }
    /// Sets the Model Number.
    pub fn model(mut self, s: &str) -> Self {
        self.cfg.model = s.into();
        self
    }
    /// Sets the Firmware Revision.
    pub fn firmware(mut self, s: &str) -> Self {
        self.cfg.firmware = s.into();
        self
    }
    /// Sets CAP.MQES (0's based maximum queue entries).
    pub fn mqes(mut self, mqes: u16) -> Self {
        self.cfg.mqes = mqes;
        self
    }
    /// Sets Identify MDTS (0 = unlimited).
    pub fn mdts(mut self, mdts: u8) -> Self {
        self.cfg.mdts = mdts;
        self
    }
    /// Sets the number of I/O queue pairs offered.
    pub fn max_io_queue_pairs(mut self, n: u16) -> Self {
        self.cfg.max_io_queue_pairs = n;
        self
    }
    /// Sets CAP.TO (500 ms units).
    pub fn cap_to(mut self, to: u8) -> Self {
        self.cfg.cap_to = to;
        self
    }
    /// Sets the delay from CC.EN = 1 to CSTS.RDY = 1.
    pub fn ready_delay(mut self, d: Duration) -> Self {
        self.cfg.ready_delay = d;
        self
    }
    /// Adds a RAM namespace with the next free NSID.
    pub fn namespace(mut self, lba_size: u32, blocks: u64) -> Self {
        let nsid = self.cfg.namespaces.last().map_or(1, |n| n.nsid + 1);
        self.cfg.namespaces.push(NamespaceConfig {
            nsid,
            lba_size,
            blocks,
        });
        self
    }
    /// Adds a RAM namespace with an explicit NSID (IDs may leave gaps: those are inactive).
    pub fn namespace_with_id(mut self, nsid: u32, lba_size: u32, blocks: u64) -> Self {
        self.cfg.namespaces.push(NamespaceConfig {
            nsid,
            lba_size,
            blocks,
        });
        self
    }
    /// Reports `ms` bytes of metadata per block in every LBA format
    /// (see [`EmuConfig::advertised_metadata`]: reported, never moved).
    pub fn advertise_metadata(mut self, ms: u16) -> Self {
        self.cfg.advertised_metadata = ms;
        self
    }
    /// Offers shadow doorbells (Doorbell Buffer Config), read as QEMU reads them.
    pub fn shadow_doorbells(mut self, on: bool) -> Self {
        self.cfg.shadow_doorbells = on;
        self
    }
    /// Declares a volatile write cache.
    pub fn volatile_write_cache(mut self, on: bool) -> Self {
        self.cfg.volatile_write_cache = on;
        self
    }
    /// Accepts SGL data pointers on NVM commands.
    pub fn sgl(mut self, on: bool) -> Self {
        self.cfg.sgl = on;
        self
    }
    /// Sets the PCI vendor and device IDs.
    pub fn pci_ids(mut self, vendor: u16, device: u16) -> Self {
        self.cfg.pci_ids = (vendor, device);
        self
    }
    /// Sets the PCI address reported by [`crate::pci::PciDevice::address`].
    pub fn address(mut self, addr: PciAddress) -> Self {
        self.cfg.address = Some(addr);
        self
    }
    /// The configuration so far.
    pub fn config(&self) -> &EmuConfig {
        &self.cfg
    }
    /// Validates the configuration, allocates the namespaces and starts the worker.
    pub fn build(self) -> Result<EmuController, EmuError> {
        EmuController::new(self.cfg)
    }
}
