//! A RAM namespace: its bytes and current LBA format, shared between the
//! worker and test code (which may inspect or seed the contents).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::config::NamespaceConfig;
use super::EmuError;

/// Current contents and format of a namespace.
pub struct NsData {
    /// log2 of the logical block size (9 or 12).
    pub lba_shift: u32,
    /// The namespace's bytes (capacity fixed; block count = len >> lba_shift).
    pub bytes: Vec<u8>,
}

impl NsData {
    /// Number of logical blocks (NSZE).
    pub fn blocks(&self) -> u64 {
        (self.bytes.len() >> self.lba_shift) as u64
    }

    /// Byte range of `nlb` blocks at `slba`, or `None` when beyond the end.
    pub fn range(&self, slba: u64, nlb: u64) -> Option<std::ops::Range<usize>> {
        let end = slba.checked_add(nlb)?;
        if end > self.blocks() {
            return None;
        }
        Some((slba << self.lba_shift) as usize..(end << self.lba_shift) as usize)
    }
}

/// One namespace of the controller.
pub struct Namespace {
    /// Namespace ID.
    pub nsid: u32,
    /// Attached to the controller (listed active, accepts I/O).
    active: AtomicBool,
    data: Mutex<NsData>,
}

impl Namespace {
    /// Allocates a zeroed namespace.
    pub fn new(cfg: &NamespaceConfig) -> Result<Self, EmuError> {
        let len = cfg.blocks * cfg.lba_size as u64;
        let mut bytes = Vec::new();
        bytes
            .try_reserve_exact(len as usize)
            .map_err(|_| EmuError::OutOfMemory {
                nsid: cfg.nsid,
                bytes: len,
            })?;
        bytes.resize(len as usize, 0);
        Ok(Self {
            nsid: cfg.nsid,
            active: AtomicBool::new(true),
            data: Mutex::new(NsData {
                lba_shift: cfg.lba_size.trailing_zeros(),
                bytes,
            }),
        })
    }

    /// True while the namespace is attached (an active NSID).
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Attaches or detaches the namespace; returns the previous state.
    pub fn set_active(&self, on: bool) -> bool {
        self.active.swap(on, Ordering::AcqRel)
    }

    /// Locks the contents (a poisoned lock is taken over: the data is plain bytes).
    pub fn lock(&self) -> MutexGuard<'_, NsData> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}
