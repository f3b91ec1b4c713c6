//! Submission and completion rings in DMA memory and their doorbells: the
//! only place the driver touches queue memory and doorbell registers.
//!
//! Ordering: an SQE is written to memory before its tail doorbell (a release
//! fence orders the stores); a CQE's phase tag is read first and the rest of
//! the entry only after an acquire fence. With a shadow doorbell buffer
//! (Doorbell Buffer Config) the new value goes to host memory and the MMIO
//! doorbell is written only when the controller's EventIdx asks for it.

use super::spec::{Cqe, Sqe};
use super::NvmeError;
use crate::env::DmaBuf;
use crate::pci::Bar;
use std::ptr::NonNull;
use std::sync::atomic::{fence, Ordering};
use volatile::access::WriteOnly;
use volatile::VolatilePtr;

/// A doorbell register, or a shadow slot: written, never read.
type DbReg = VolatilePtr<'static, u32, WriteOnly>;

/// The shadow doorbell slot of a queue and its EventIdx slot (which the
/// host only reads, except for clearing it before the queue exists).
#[derive(Clone, Copy)]
struct Shadow {
    db: DbReg,
    event_idx: VolatilePtr<'static, u32>,
}

/// One doorbell: its MMIO register, and optionally its shadow and EventIdx slots.
pub(crate) struct Doorbell {
    /// Keeps BAR0 mapped for `mmio` (hence its `'static`).
    _bar: Bar,
    mmio: DbReg,
    shadow: Option<Shadow>,
    /// The value last published (shadow or MMIO).
    last: u16,
    /// The value last stored in the shadow slot (by `ring` or `write_shadow`).
    shadowed: u16,
    /// Writes to the MMIO register (each one a VM exit under virtualization).
    pub(crate) mmio_writes: u64,
    /// Writes to the shadow slot.
    pub(crate) shadow_writes: u64,
}

// SAFETY: the volatile pointers target BAR0 (kept mapped by `_bar`) and the
// controller's shadow pages; a Doorbell is used by one thread at a time
// (inside a QPair, or behind the admin queue's mutex).
unsafe impl Send for Doorbell {}

impl Doorbell {
    /// The doorbell at byte `off` of `bar`; `shadow` = (shadow slot, eventidx slot).
    ///
    /// Both shadow slots are cleared: they may still hold the last values of
    /// a deleted queue with the same ID, and a controller need not reset
    /// them when the queue is created again (QEMU does not). A stale
    /// EventIdx ahead of the new queue's tail would make the first doorbell
    /// skip its MMIO write, and the controller would never fetch the command.
    /// Call before the queue is created, while the controller ignores the slots.
    pub(crate) fn new(
        bar: &Bar,
        off: usize,
        shadow: Option<(*mut u32, *mut u32)>,
    ) -> Result<Self, NvmeError> {
        let reg = bar.reg32(off).ok_or_else(|| {
            NvmeError::Unsupported(format!(
                "doorbell at {off:#x} is beyond BAR0 ({:#x} bytes) or misaligned",
                bar.len()
            ))
        })?;
        // SAFETY: the register lies inside BAR0 (reg32 checked it), and the Bar clone
        // kept in `_bar` keeps the mapping alive as long as this Doorbell: the
        // 'static pointer never outlives it.
        let mmio = unsafe { VolatilePtr::new_restricted(WriteOnly, reg.as_raw_ptr()) };
        let shadow = shadow.and_then(|(db, ei)| Some((NonNull::new(db)?, NonNull::new(ei)?)));
        // SAFETY: the slots are this queue's u32s in the controller's shadow doorbell
        // and EventIdx pages (Controller::shadow_slot checks the bounds), which live
        // as long as the controller, and every user of a Doorbell keeps it alive.
        let shadow = shadow.map(|(db, ei)| unsafe {
            Shadow {
                db: VolatilePtr::new_restricted(WriteOnly, db),
                event_idx: VolatilePtr::new(ei),
            }
        });
        let mut db = Doorbell {
            _bar: bar.clone(),
            mmio,
            shadow,
            last: 0,
            shadowed: 0,
            mmio_writes: 0,
            shadow_writes: 0,
        };
        db.reset();
        Ok(db)
    }

    /// A doorbell in ordinary memory, for a queue that no device watches:
    /// an NVMe/TCP queue pair keeps its commands in an SQ ring that its own
    /// poll hands to the connection, so ringing only records the tail.
    pub(crate) fn local() -> Result<Self, NvmeError> {
        let bar = Bar::in_memory(std::sync::Arc::new([std::sync::atomic::AtomicU64::new(0)]));
        Doorbell::new(&bar, 0, None)
    }

    /// True when the doorbell has a shadow slot (Doorbell Buffer Config on).
    pub(crate) fn has_shadow(&self) -> bool {
        self.shadow.is_some()
    }

    /// Publishes `value` (new SQ tail or CQ head).
    #[inline]
    pub(crate) fn ring(&mut self, value: u16) {
        let old = self.last;
        self.last = value;
        if let Some(sh) = self.shadow {
            self.store_shadow(sh.db, value);
            // The shadow store must be visible before EventIdx is read (a full fence).
            fence(Ordering::SeqCst);
            let event_idx = sh.event_idx.read() as u16;
            if !need_event(event_idx, value, old) {
                return;
            }
        } else {
            fence(Ordering::Release);
        }
        self.store_mmio(value);
    }

    /// Writes `value` to the shadow slot only (no EventIdx check, no MMIO),
    /// so a controller that reads shadow values sees it early; a no-op
    /// without shadow doorbells. `last` is unchanged: the next `ring`
    /// compares against the last value published in full. Storing the
    /// value the slot already holds is skipped (idle polls store nothing).
    #[inline]
    pub(crate) fn write_shadow(&mut self, value: u16) {
        if let Some(sh) = self.shadow {
            if value != self.shadowed {
                self.store_shadow(sh.db, value);
            }
        }
    }

    /// Writes `value` to the shadow slot (if any) and to the MMIO register
    /// whatever EventIdx says: the recovery for a controller that missed a
    /// notification (see [`QPair::process_completions`](super::QPair::process_completions)).
    /// Rewriting an unchanged tail or head is harmless: it announces no new
    /// entries.
    pub(crate) fn force(&mut self, value: u16) {
        self.last = value;
        if let Some(sh) = self.shadow {
            self.store_shadow(sh.db, value);
        }
        fence(Ordering::SeqCst);
        self.store_mmio(value);
    }

    /// Stores `value` in shadow slot `db`, after the queue memory it
    /// publishes (a release fence), and counts it.
    #[inline]
    fn store_shadow(&mut self, db: DbReg, value: u16) {
        fence(Ordering::Release);
        db.write(value as u32);
        self.shadowed = value;
        self.shadow_writes += 1;
    }

    /// Writes `value` to the MMIO doorbell register and counts it; the
    /// caller has fenced the memory it publishes.
    #[inline]
    fn store_mmio(&mut self, value: u16) {
        self.mmio.write(value as u32);
        self.mmio_writes += 1;
    }

    /// Forgets the last value and clears the shadow and EventIdx slots
    /// (for a new queue, or after a controller reset, before the queue is
    /// created again: a stale EventIdx would otherwise suppress the first
    /// MMIO doorbell).
    pub(crate) fn reset(&mut self) {
        self.last = 0;
        self.shadowed = 0;
        // The controller does not use the slots of a queue that does not exist.
        if let Some(sh) = self.shadow {
            sh.db.write(0);
            sh.event_idx.write(0);
        }
    }
}

/// The EventIdx rule (as virtio's vring_need_event): ring the MMIO doorbell
/// when the controller's event index lies in (old, new].
#[inline]
pub(crate) fn need_event(event_idx: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event_idx).wrapping_sub(1) < new.wrapping_sub(old)
}

/// A submission queue ring.
pub(crate) struct SqRing {
    /// The ring's memory; `None` once leaked ([`SqRing::leak`]).
    mem: Option<DmaBuf>,
    iova: u64,
    base: *mut Sqe,
    entries: u16,
    tail: u16,
    /// SQ head as last reported by the controller (CQE SQHD).
    pub(crate) head: u16,
    pub(crate) db: Doorbell,
}

// SAFETY: `base` points into `mem`, owned by the ring; used by one thread at a time.
unsafe impl Send for SqRing {}

impl SqRing {
    /// A ring of `entries` commands in fresh zeroed DMA memory.
    pub(crate) fn new(entries: u16, db: Doorbell) -> Result<Self, NvmeError> {
        let len = entries as usize * 64;
        // Aligned to its own size: never crosses a hugepage, so IOVA-contiguous.
        let mut mem = DmaBuf::alloc_zeroed(len, len.next_power_of_two().max(4096))?;
        if mem.contiguous_len(0) < entries as usize * 64 {
            return Err(NvmeError::Unsupported(format!(
                "SQ of {entries} entries is not IOVA-contiguous; use a smaller queue"
            )));
        }
        let base = mem[..].as_mut_ptr().cast::<Sqe>();
        Ok(SqRing {
            iova: mem.iova(),
            mem: Some(mem),
            base,
            entries,
            tail: 0,
            head: 0,
            db,
        })
    }
    /// IOVA of the ring (ASQ / Create I/O SQ PRP1).
    pub(crate) fn iova(&self) -> u64 {
        self.iova
    }
    /// Gives up the ring's memory without freeing it, for a queue the
    /// controller could not be made to forget: it may still read it. Call
    /// only when the ring is about to be dropped.
    pub(crate) fn leak(&mut self) {
        std::mem::forget(self.mem.take());
    }
    /// Number of entries.
    pub(crate) fn entries(&self) -> u16 {
        self.entries
    }
    /// Free slots (one slot is always left empty).
    pub(crate) fn free(&self) -> u16 {
        let used = (self.tail + self.entries - self.head) % self.entries;
        self.entries - 1 - used
    }
    /// Copies `sqe` into the tail slot and advances the tail (no doorbell).
    #[inline]
    pub(crate) fn push(&mut self, sqe: &Sqe) {
        debug_assert!(self.free() > 0);
        // A plain store: the device reads the slot only after the tail
        // doorbell, whose release fence orders this store before it (and
        // keeps the compiler from sinking or dropping it). A volatile store
        // of the 64-byte entry would be split field by field.
        // SAFETY: tail < entries, so the slot is inside `mem`, which this ring owns.
        unsafe { self.base.add(self.tail as usize).write(*sqe) };
        self.tail += 1;
        if self.tail == self.entries {
            self.tail = 0;
        }
    }
    /// Rings the tail doorbell if entries were pushed since the last ring.
    #[inline]
    pub(crate) fn ring(&mut self) {
        if self.db.last != self.tail {
            self.db.ring(self.tail);
        }
    }
    /// Re-announces the current tail by MMIO (see [`Doorbell::force`]).
    pub(crate) fn kick(&mut self) {
        let t = self.tail;
        self.db.force(t);
    }
    /// A copy of the entry at `idx` (an NVMe/TCP queue pair reads back the
    /// commands pushed since its last poll to send them).
    pub(crate) fn read(&self, idx: u16) -> Sqe {
        let i = (idx % self.entries) as usize;
        // SAFETY: i < entries, so the slot is inside `mem`, which this ring
        // owns; only this thread writes it (push), never concurrently.
        unsafe { self.base.add(i).read() }
    }
    /// The current tail (for taking back entries that were never rung).
    pub(crate) fn tail(&self) -> u16 {
        self.tail
    }
    /// Moves the tail back to `tail`, dropping entries pushed after it; only
    /// valid while those entries have not been published by a doorbell.
    pub(crate) fn set_tail(&mut self, tail: u16) {
        self.tail = tail;
    }
    /// True when pushed entries are waiting for a doorbell.
    pub(crate) fn pending(&self) -> bool {
        self.db.last != self.tail
    }
    /// How many pushed entries are waiting for a doorbell.
    #[inline]
    pub(crate) fn unrung(&self) -> u16 {
        let (tail, rung) = (self.tail, self.db.last);
        if tail >= rung {
            tail - rung
        } else {
            self.entries - (rung - tail)
        }
    }
    /// The tail last announced to the controller.
    pub(crate) fn rung(&self) -> u16 {
        self.db.last
    }
    /// Back to an empty ring (after a controller reset).
    pub(crate) fn reset(&mut self) {
        self.tail = 0;
        self.head = 0;
        self.db.reset();
    }
}

/// Index of a CQE's status word (Phase Tag and Status Field) in u16s.
const STATUS_U16: usize = std::mem::offset_of!(Cqe, status) / 2;

/// A completion queue ring.
pub(crate) struct CqRing {
    /// The ring's memory; `None` once leaked ([`CqRing::leak`]).
    mem: Option<DmaBuf>,
    iova: u64,
    base: NonNull<Cqe>,
    entries: u16,
    head: u16,
    phase: bool,
    pub(crate) db: Doorbell,
}

// SAFETY: `base` points into `mem`, owned by the ring; used by one thread at a time.
unsafe impl Send for CqRing {}

impl CqRing {
    /// A ring of `entries` completions in fresh zeroed DMA memory.
    pub(crate) fn new(entries: u16, db: Doorbell) -> Result<Self, NvmeError> {
        let len = entries as usize * 16;
        let mut mem = DmaBuf::alloc_zeroed(len, len.next_power_of_two().max(4096))?;
        if mem.contiguous_len(0) < entries as usize * 16 {
            return Err(NvmeError::Unsupported(format!(
                "CQ of {entries} entries is not IOVA-contiguous; use a smaller queue"
            )));
        }
        let base =
            NonNull::new(mem[..].as_mut_ptr().cast::<Cqe>()).expect("DMA memory is never at 0");
        Ok(CqRing {
            iova: mem.iova(),
            mem: Some(mem),
            base,
            entries,
            head: 0,
            phase: true,
            db,
        })
    }
    /// IOVA of the ring.
    pub(crate) fn iova(&self) -> u64 {
        self.iova
    }
    /// Gives up the ring's memory without freeing it, for a queue the
    /// controller could not be made to forget: it may still write it. Call
    /// only when the ring is about to be dropped.
    pub(crate) fn leak(&mut self) {
        std::mem::forget(self.mem.take());
    }
    /// Number of entries.
    pub(crate) fn entries(&self) -> u16 {
        self.entries
    }
    /// The entry at the head if the controller has posted it (phase tag
    /// matches), and advances past it. The doorbell is not written.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Cqe> {
        let (status, slot) = self.ready()?;
        let cqe = slot.read();
        self.advance();
        Some(Cqe { status, ..cqe })
    }

    /// As [`CqRing::pop`] for an I/O queue, reading only what the I/O
    /// path uses: Dword 0, SQHD, CID and the status (Dword 1 and SQID are
    /// returned as 0; an I/O queue pair has one SQ per CQ).
    #[inline(always)]
    pub(crate) fn pop_io(&mut self) -> Option<Cqe> {
        let (status, slot) = self.ready()?;
        let p = slot.as_raw_ptr().cast::<u32>();
        // SAFETY: Dword 0 and Dword 2 (SQHD, SQID) of the entry `ready`
        // checked, inside `mem`; the device writes it by DMA, so it is read
        // through volatile pointers.
        let (dw0, dw2) = unsafe {
            (
                VolatilePtr::new_read_only(p).read(),
                VolatilePtr::new_read_only(p.add(2)).read(),
            )
        };
        // SAFETY: the CID, the first u16 of Dword 3, likewise.
        let cid = unsafe { VolatilePtr::new_read_only(p.add(3).cast::<u16>()).read() };
        self.advance();
        Some(Cqe {
            dw0,
            dw1: 0,
            sqhd: dw2 as u16,
            sqid: 0,
            cid,
            status,
        })
    }

    /// The head entry's status word and a pointer to the entry when the
    /// controller has posted it (phase tag matches). The status word (which
    /// holds the phase tag) is read alone first; the rest of the entry must
    /// be read only after it, which the acquire fence here orders.
    #[inline(always)]
    fn ready(&self) -> Option<(u16, VolatilePtr<'_, Cqe, volatile::access::ReadOnly>)> {
        // SAFETY: head < entries, so the slot (and its status word, the last u16 of
        // the 16-byte entry) lie inside `mem`, which this ring owns and keeps; the
        // device writes it by DMA, so it is only read through volatile pointers.
        let (slot, status) = unsafe {
            let slot = self.base.add(self.head as usize);
            (
                VolatilePtr::new_read_only(slot),
                VolatilePtr::new_read_only(slot.cast::<u16>().add(STATUS_U16)),
            )
        };
        let status = status.read();
        if (status & 1 != 0) != self.phase {
            return None;
        }
        fence(Ordering::Acquire);
        Some((status, slot))
    }

    /// Moves the head past the entry just read.
    #[inline(always)]
    fn advance(&mut self) {
        self.head += 1;
        if self.head == self.entries {
            self.head = 0;
            self.phase = !self.phase;
        }
    }
    /// Publishes the head (once per batch of pops).
    #[inline]
    pub(crate) fn ring(&mut self) {
        if self.db.last != self.head {
            self.db.ring(self.head);
        }
    }

    /// Publishes the head only when the controller could otherwise find the
    /// queue full: with `in_flight` commands that may still post an entry,
    /// the controller's view of free space is `entries - 1 - unreported -
    /// posted`, which stays positive while `unreported + in_flight <
    /// entries - 1`. Until then the head goes to the shadow slot only (if
    /// any) and the MMIO doorbell — an exit to the hypervisor in a VM — is
    /// saved. Interrupts are never enabled on our queues, so nothing else
    /// depends on a timely head update. Called after each poll and before
    /// each SQ doorbell (with the new commands counted in `in_flight`).
    #[inline]
    pub(crate) fn ring_lazy(&mut self, in_flight: usize) {
        let last = self.db.last;
        if last == self.head {
            return;
        }
        let n = self.entries as usize;
        let unreported = (self.head as usize + n - last as usize) % n;
        if unreported + in_flight < n - 1 {
            self.db.write_shadow(self.head);
            return;
        }
        self.db.ring(self.head);
    }
    /// Re-announces the current head by MMIO (see [`Doorbell::force`]).
    pub(crate) fn kick(&mut self) {
        self.db.force(self.head);
    }
    /// The head (entries consumed so far) and the head last announced to
    /// the controller.
    pub(crate) fn head_and_reported(&self) -> (u16, u16) {
        (self.head, self.db.last)
    }
    /// Back to an empty ring with zeroed memory (after a controller reset).
    pub(crate) fn reset(&mut self) {
        if let Some(m) = &mut self.mem {
            m.fill(0);
        }
        self.head = 0;
        self.phase = true;
        self.db.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::{need_event, Doorbell};
    use crate::pci::Bar;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
    use std::sync::Arc;

    /// A 4 KiB stand-in for BAR0 in ordinary memory, and a handle to read it.
    fn fake_bar() -> (Bar, Arc<[AtomicU64]>) {
        let mem: Arc<[AtomicU64]> = (0..512).map(|_| AtomicU64::new(0)).collect();
        (Bar::in_memory(mem.clone()), mem)
    }

    #[test]
    fn new_doorbell_clears_the_shadow_slots_a_deleted_queue_left_behind() {
        let (bar, regs) = fake_bar();
        // A deleted queue with the same ID published tail 80 and the
        // controller answered EventIdx 80; nothing resets them on re-creation.
        let (shadow, event_idx) = (AtomicU32::new(80), AtomicU32::new(80));
        assert!(
            !need_event(80, 1, 0),
            "with the stale EventIdx the first doorbell would never reach the controller"
        );
        let mut db = Doorbell::new(&bar, 8, Some((shadow.as_ptr(), event_idx.as_ptr()))).unwrap();
        assert_eq!(shadow.load(Ordering::Relaxed), 0);
        assert_eq!(event_idx.load(Ordering::Relaxed), 0);

        db.ring(1);
        assert_eq!(shadow.load(Ordering::Relaxed), 1);
        assert_eq!(
            regs[1].load(Ordering::Relaxed) as u32,
            1,
            "the first tail of the new queue is written to the MMIO doorbell"
        );
    }

    #[test]
    fn event_idx_rule_rings_only_when_the_index_was_crossed() {
        // Controller wants a doorbell when tail passes 5.
        assert!(need_event(5, 6, 5));
        assert!(need_event(5, 8, 3));
        assert!(!need_event(5, 5, 3), "event index not yet passed");
        assert!(!need_event(9, 8, 3));
        // Wrap-around of the 16-bit counters.
        assert!(need_event(0xffff, 2, 0xfffe));
        assert!(!need_event(4, 2, 0xfffe));
    }
}
