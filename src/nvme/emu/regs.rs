//! The controller's BAR 0: page-aligned memory the emulator owns, holding the
//! controller registers (CAP, VS, CC, CSTS, AQA, ASQ, ACQ) and the doorbells
//! from offset 0x1000 (doorbell stride 0: 4 bytes apart).
//!
//! The driver reaches this memory through a [`crate::pci::Bar`] with volatile
//! loads and stores; the worker uses atomics on the same words.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// Controller Capabilities (64-bit).
pub const CAP: usize = 0x00;
/// Version.
pub const VS: usize = 0x08;
/// Controller Configuration.
pub const CC: usize = 0x14;
/// Controller Status.
pub const CSTS: usize = 0x1c;
/// Admin Queue Attributes.
pub const AQA: usize = 0x24;
/// Admin Submission Queue Base Address (64-bit).
pub const ASQ: usize = 0x28;
/// Admin Completion Queue Base Address (64-bit).
pub const ACQ: usize = 0x30;
/// First doorbell register (SQ 0 Tail Doorbell).
pub const DOORBELL_BASE: usize = 0x1000;

/// CSTS.RDY.
pub const CSTS_RDY: u32 = 1 << 0;
/// CSTS.CFS (Controller Fatal Status).
pub const CSTS_CFS: u32 = 1 << 1;
/// CSTS.SHST = 10b (shutdown processing complete).
pub const CSTS_SHST_COMPLETE: u32 = 0b10 << 2;

/// A doorbell register holds this value until the host writes it; the worker
/// swaps it back after reading, so every write is seen (the host never reads doorbells).
pub const DOORBELL_UNWRITTEN: u32 = u32::MAX;

/// Byte offset of SQ `qid`'s Tail Doorbell (stride 0).
pub fn sq_doorbell(qid: u16) -> usize {
    DOORBELL_BASE + 8 * qid as usize
}

/// Byte offset of CQ `qid`'s Head Doorbell (stride 0).
pub fn cq_doorbell(qid: u16) -> usize {
    DOORBELL_BASE + 8 * qid as usize + 4
}

/// The register memory. Lives as long as any [`crate::pci::Bar`] over it.
pub struct Regs {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the memory is only accessed through atomics (here) and volatile
// aligned stores/loads (the Bar); it is owned by this value and freed once.
unsafe impl Send for Regs {}
// SAFETY: as above; no `&`/`&mut` to the bytes is ever handed out.
unsafe impl Sync for Regs {}

impl Regs {
    /// Allocates `len` bytes (a multiple of 4096), zeroed, page-aligned, with
    /// every doorbell set to [`DOORBELL_UNWRITTEN`].
    pub fn new(len: usize) -> Self {
        let layout =
            Layout::from_size_align(len, 4096).expect("BAR layout: len is a page multiple");
        // SAFETY: layout has a non-zero size (callers pass at least 16 KiB).
        let raw = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        let regs = Self { ptr, layout };
        for off in (DOORBELL_BASE..len).step_by(4) {
            regs.store(off, DOORBELL_UNWRITTEN);
        }
        regs
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// Base pointer, for building the Bar.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        assert!(
            off % 4 == 0 && off + 4 <= self.len(),
            "register offset {off:#x}"
        );
        // SAFETY: in bounds and 4-aligned (base is page-aligned); the memory
        // lives as long as `self`, and is only ever accessed atomically or by
        // aligned volatile 32-bit accesses.
        unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(off).cast::<u32>()) }
    }

    /// Loads a 32-bit register.
    pub fn load(&self, off: usize) -> u32 {
        self.word(off).load(Ordering::Acquire)
    }

    /// Stores a 32-bit register.
    pub fn store(&self, off: usize, val: u32) {
        self.word(off).store(val, Ordering::Release)
    }

    /// Loads a 64-bit register (low dword first).
    pub fn load64(&self, off: usize) -> u64 {
        self.load(off) as u64 | (self.load(off + 4) as u64) << 32
    }

    /// Stores a 64-bit register.
    pub fn store64(&self, off: usize, val: u64) {
        self.store(off, val as u32);
        self.store(off + 4, (val >> 32) as u32);
    }

    /// Takes the value last written to a doorbell, leaving
    /// [`DOORBELL_UNWRITTEN`]; `None` if the host has not written since.
    /// `on_write` runs before the doorbell is re-armed, so whoever sees it
    /// re-armed also sees what `on_write` did (a counted write).
    pub fn take_doorbell(&self, off: usize, on_write: impl FnOnce()) -> Option<u32> {
        let word = self.word(off);
        if word.load(Ordering::Acquire) == DOORBELL_UNWRITTEN {
            return None;
        }
        on_write();
        // Only the worker re-arms, so the doorbell still holds a written
        // value (the same or a newer one).
        Some(word.swap(DOORBELL_UNWRITTEN, Ordering::AcqRel))
    }

    /// Sets or clears bits of CSTS.
    pub fn set_csts(&self, bits: u32, on: bool) {
        if on {
            self.word(CSTS).fetch_or(bits, Ordering::AcqRel);
        } else {
            self.word(CSTS).fetch_and(!bits, Ordering::AcqRel);
        }
    }
}

impl Drop for Regs {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed only here.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}
