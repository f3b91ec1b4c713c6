//! The per-qpair request pool: the one owner of a request's lifecycle.
//!
//! A request is taken from the free list ([`RequestPool::alloc_armed`]), armed
//! with what hears of its completion and the buffer it owns
//! ([`RequestPool::alloc_armed`], [`RequestPool::arm_tagged`]), possibly split
//! into children ([`RequestPool::alloc_child`]), and completed exactly once
//! ([`RequestPool::check`], [`RequestPool::child_done`],
//! [`RequestPool::finish`]). Nothing outside this file touches a slot.
//!
//! **Command IDs carry a generation.** The low bits of a CID name the slot,
//! the high bits count the slot's reuses, so the CID of a recycled slot
//! differs from the one before: a stale or duplicated completion (a
//! controller that posts an entry twice, or late) names a CID that is no
//! longer live and is refused by [`RequestPool::check`] instead of
//! completing whichever request holds the slot now. A pool of `n` requests
//! keeps `16 - bits(n)` generation bits (8 for the default 255 requests);
//! a slot's low bits are never all ones, so CID FFFFh is never used.

use super::buffer::IoBuf;
use super::callback::{Callback, Pending};
use super::prp::Dptr;
use super::NvmeError;
use crate::env::DmaBuf;
use std::time::Instant;

mod dptr;
mod recovery;
mod split;
mod tcp;

pub(crate) use dptr::{BuildDptr, NoData, OverBuf};

/// Who hears of a request's completion.
pub(crate) enum Notify {
    /// Nobody: a child of a split I/O, or a request whose queue was
    /// deleted with it in flight.
    None,
    /// Its callback.
    Call(Callback),
    /// The handler passed to [`QPair::process_completions_tagged`](super::QPair::process_completions_tagged),
    /// with this tag.
    Tag(u64),
}

/// No parent: a request that completes to its own callback.
pub(crate) const NO_PARENT: u16 = u16::MAX;

/// `live` of a slot on the free list: matches no CID.
const FREE: u32 = u32::MAX;

/// The end of the free list (a pool has at most 65535 slots, 0..=65534).
const NO_SLOT: u16 = u16::MAX;

/// One request slot.
struct Request {
    /// The CID of the command in flight, or [`FREE`].
    live: u32,
    /// The CID the slot takes at its next allocation.
    next_cid: u16,
    /// The next slot on the free list (while free), or [`NO_SLOT`].
    next_free: u16,
    /// Slot index of the parent (children of a split I/O), or [`NO_PARENT`].
    parent: u16,
    /// Children not yet completed (parents only).
    children_left: u16,
    /// Opcode, for errors and timeout reports.
    opc: u8,
    notify: Notify,
    buf: IoBuf,
    /// PRP list page (also holds Dataset Management ranges).
    page: DmaBuf,
    page_iova: u64,
    /// First failure among the children (parents only).
    child_error: Option<NvmeError>,
    /// When submitted (or last aborted), and whether an Abort was already
    /// sent for it: recorded only when timeouts are enabled.
    submitted: Option<(Instant, bool)>,
    /// A child's byte offset in its parent's buffer (set by a split; an
    /// NVMe/TCP queue pair sends and receives the child's data there).
    data_off: u32,
    /// NVMe/TCP only: the bytes a tagged I/O lent (start, length), which
    /// the connection sends from or receives into.
    lent: (*mut u8, usize),
}

/// What completing a top-level request hands over.
pub(crate) enum Finished {
    /// Nobody is to hear of it.
    Silent,
    /// Run this callback (its buffer was handed over by
    /// [`RequestPool::finish`]).
    Call(Pending),
    /// Report this tag.
    Tag(u64),
}

/// An outstanding request, as [`RequestPool::check`] found it (valid until
/// the pool is next changed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Live {
    slot: u16,
    /// The parent's slot, or [`NO_PARENT`] for a top-level request.
    pub(crate) parent: u16,
}

/// A timed-out command seen by [`RequestPool::expired`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expired {
    pub(crate) cid: u16,
    pub(crate) opc: u8,
    pub(crate) abort_sent: bool,
}

/// The per-qpair request pool: slots and a LIFO free list threaded
/// through them (`next_free`), so taking and freeing a request touch only
/// the slot and the list head.
pub(crate) struct RequestPool {
    reqs: Vec<Request>,
    /// First free slot, or [`NO_SLOT`].
    free_head: u16,
    /// Slots on the free list.
    free_len: usize,
    /// CID bits that name the slot.
    slot_mask: u16,
    /// Added to a slot's CID at each reuse (0: no generation bits).
    cid_step: u16,
}

impl RequestPool {
    /// `n` requests, each with its own 4 KiB PRP list page. With
    /// `generations` the CIDs carry a generation (see the module comment);
    /// without, a CID is its slot index (for a transport that indexes its
    /// own per-command state by CID).
    pub(crate) fn new(n: u16, generations: bool) -> Result<Self, NvmeError> {
        let bits = u16::BITS - n.leading_zeros();
        let (slot_mask, cid_step) = if generations && bits < 16 {
            ((1u16 << bits) - 1, 1u16 << bits)
        } else {
            (u16::MAX, 0)
        };
        let mut reqs = Vec::with_capacity(n as usize);
        for i in 0..n {
            let page = DmaBuf::alloc_zeroed(super::prp::PAGE_SIZE, super::prp::PAGE_SIZE)?;
            let page_iova = page.iova();
            reqs.push(Request {
                live: FREE,
                next_cid: i,
                next_free: if i + 1 < n { i + 1 } else { NO_SLOT },
                parent: NO_PARENT,
                children_left: 0,
                opc: 0,
                notify: Notify::None,
                buf: IoBuf::None,
                page,
                page_iova,
                child_error: None,
                submitted: None,
                data_off: 0,
                lent: (std::ptr::null_mut(), 0),
            });
        }
        Ok(RequestPool {
            reqs,
            free_head: if n > 0 { 0 } else { NO_SLOT },
            free_len: n as usize,
            slot_mask,
            cid_step,
        })
    }

    /// Free requests.
    pub(crate) fn free_count(&self) -> usize {
        self.free_len
    }
    /// Total requests.
    pub(crate) fn capacity(&self) -> usize {
        self.reqs.len()
    }
    /// Requests taken (commands the controller may still complete, and
    /// parents waiting for their children).
    #[inline]
    pub(crate) fn in_flight(&self) -> usize {
        self.reqs.len() - self.free_len
    }

    /// The slot of an outstanding `cid`, if it is live.
    #[inline(always)]
    fn live(&self, cid: u16) -> Option<&Request> {
        self.reqs
            .get((cid & self.slot_mask) as usize)
            .filter(|r| r.live == cid as u32)
    }
    /// The slot of an outstanding `cid`, mutable.
    #[inline(always)]
    fn live_mut(&mut self, cid: u16) -> Option<&mut Request> {
        slot_mut(&mut self.reqs, self.slot_mask, cid)
    }

    /// Takes a free request and returns its new CID.
    #[cfg(test)]
    pub(crate) fn alloc(&mut self) -> Option<u16> {
        self.take().map(|(cid, _)| cid)
    }

    /// Takes a free request: its new CID and its slot.
    #[inline(always)]
    fn take(&mut self) -> Option<(u16, &mut Request)> {
        let step = self.cid_step;
        let r = self.reqs.get_mut(self.free_head as usize)?;
        self.free_head = r.next_free;
        self.free_len -= 1;
        let cid = r.next_cid;
        r.next_cid = cid.wrapping_add(step);
        r.live = cid as u32;
        // `parent` is NO_PARENT on every free slot (children reset it when freed).
        r.submitted = None;
        Some((cid, r))
    }

    /// Returns an outstanding request to the free list (what it held is
    /// dropped: a request that completed had both taken by `finish`).
    #[inline]
    pub(crate) fn release(&mut self, cid: u16) {
        let mask = self.slot_mask;
        let Some(r) = slot_mut(&mut self.reqs, mask, cid) else {
            debug_assert!(false, "release of CID {cid:#x}, which is not outstanding");
            return;
        };
        r.live = FREE;
        r.parent = NO_PARENT;
        if !matches!(r.notify, Notify::None) || !matches!(r.buf, IoBuf::None) {
            disarm_cold(&mut r.notify, &mut r.buf);
        }
        r.next_free = self.free_head;
        self.free_head = cid & self.slot_mask;
        self.free_len += 1;
    }

    /// The outstanding request `cid` names, or `None` when `cid` is not
    /// live: a stale or duplicated completion, to be refused.
    #[inline(always)]
    pub(crate) fn check(&self, cid: u16) -> Option<Live> {
        let slot = cid & self.slot_mask;
        self.live(cid).map(|r| Live {
            slot,
            parent: r.parent,
        })
    }

    /// The opcode of `cid` (0 when it is not outstanding).
    pub(crate) fn opc(&self, cid: u16) -> u8 {
        self.live(cid).map_or(0, |r| r.opc)
    }

    /// Takes a free request for a top-level command with `opc`, builds
    /// its data pointer from `buf` and the request's PRP list page, then
    /// arms it: the buffer is moved out of `buf` (leaving [`IoBuf::None`])
    /// into the slot, and the notification `notify` makes is built there.
    /// Returns the CID and the data pointer; on an error nothing was
    /// taken and `buf` is untouched.
    ///
    /// The buffer is moved once, from the caller's frame into the slot,
    /// and the notification built in place: passed down by value through
    /// the submission layers, each was copied on the way.
    #[inline(always)]
    pub(crate) fn alloc_armed<B: BuildDptr, N: FnOnce() -> Notify>(
        &mut self,
        opc: u8,
        buf: &mut IoBuf,
        notify: N,
        build: B,
    ) -> Result<(u16, Dptr), NvmeError> {
        let Some((cid, r)) = self.take() else {
            return Err(NvmeError::QueueFull);
        };
        r.opc = opc;
        let dptr = match build.build(buf, &mut r.page, r.page_iova) {
            Ok(d) => d,
            Err(e) => {
                self.release(cid);
                return Err(e);
            }
        };
        move_buf(buf, &mut r.buf);
        if !matches!(r.notify, Notify::None) {
            disarm_cold(&mut r.notify, &mut IoBuf::None);
        }
        // The old value is Notify::None (made so above), which owns nothing:
        // skipping its drop loses nothing and saves the check.
        std::mem::forget(std::mem::replace(&mut r.notify, notify()));
        Ok((cid, dptr))
    }

    /// Arms the parent of a split (its children carry the data pointers):
    /// moves the buffer out of `buf` and stores `notify`.
    pub(crate) fn arm_parent(&mut self, cid: u16, buf: &mut IoBuf, notify: Notify) {
        if let Some(r) = self.live_mut(cid) {
            if !matches!(r.notify, Notify::None) {
                disarm_cold(&mut r.notify, &mut IoBuf::None);
            }
            move_buf(buf, &mut r.buf);
            r.notify = notify;
        }
    }

    /// Arms a tagged top-level request: the tag is its notification and it
    /// holds no buffer.
    #[inline]
    pub(crate) fn arm_tagged(&mut self, cid: u16, tag: u64, opc: u8) {
        if let Some(r) = self.live_mut(cid) {
            if !matches!(r.notify, Notify::None) || !matches!(r.buf, IoBuf::None) {
                disarm_cold(&mut r.notify, &mut r.buf);
            }
            r.notify = Notify::Tag(tag);
            r.opc = opc;
        }
    }

    /// Takes a free request for a command with `opc`, armed with
    /// `notify` when it is a tag or nothing (such a notification owns
    /// nothing: a failed build just releases the request): its CID, PRP
    /// list page and the page's IOVA.
    #[inline(always)]
    pub(crate) fn alloc_with_page(
        &mut self,
        opc: u8,
        notify: Notify,
    ) -> Option<(u16, &mut DmaBuf, u64)> {
        debug_assert!(!matches!(notify, Notify::Call(_)));
        let (cid, r) = self.take()?;
        r.opc = opc;
        if !matches!(r.notify, Notify::None) || !matches!(r.buf, IoBuf::None) {
            disarm_cold(&mut r.notify, &mut r.buf);
        }
        // The old value is Notify::None (made so above): no drop needed.
        std::mem::forget(std::mem::replace(&mut r.notify, notify));
        Some((cid, &mut r.page, r.page_iova))
    }

    /// Records the submission time of `cid` (timeouts enabled).
    #[inline]
    pub(crate) fn stamp(&mut self, cid: u16, now: Instant) {
        if let Some(r) = self.live_mut(cid) {
            r.submitted = Some((now, false));
        }
    }

    /// Completes the top-level request `live` ([`RequestPool::check`]):
    /// frees it, moves its buffer into `out` (which holds [`IoBuf::None`]),
    /// and hands over its notification.
    #[inline(always)]
    pub(crate) fn finish(&mut self, live: Live, out: &mut IoBuf) -> Finished {
        let slot = live.slot;
        let Some(r) = self.reqs.get_mut(slot as usize) else {
            return Finished::Silent;
        };
        r.live = FREE;
        let done = match &mut r.notify {
            // A tagged request holds no buffer: nothing to take back.
            Notify::Tag(tag) => Finished::Tag(*tag),
            Notify::Call(cb) => {
                // SAFETY: the Callback is forgotten just below (the slot is
                // set to Notify::None without a drop).
                let pending = unsafe { cb.detach() };
                move_buf(&mut r.buf, out);
                Finished::Call(pending)
            }
            Notify::None => {
                drop_cold(std::mem::take(&mut r.buf));
                Finished::Silent
            }
        };
        // Notify::Call is forgotten, not dropped: its state is run by the
        // Pending; Tag and None own nothing.
        std::mem::forget(std::mem::replace(&mut r.notify, Notify::None));
        r.next_free = self.free_head;
        self.free_head = slot;
        self.free_len += 1;
        done
    }
}

/// The slot of an outstanding `cid` among `reqs` (a borrow of the slots
/// alone, so the free list can be updated while it lives).
#[inline(always)]
fn slot_mut(reqs: &mut [Request], slot_mask: u16, cid: u16) -> Option<&mut Request> {
    reqs.get_mut((cid & slot_mask) as usize)
        .filter(|r| r.live == cid as u32)
}

/// Moves the buffer in `from` into `to` and leaves [`IoBuf::None`] in
/// `from`: one copy, straight from one place to the other (`mem::take`
/// followed by a store goes through a temporary the compiler keeps).
#[inline(always)]
fn move_buf(from: &mut IoBuf, to: &mut IoBuf) {
    if !matches!(to, IoBuf::None) {
        drop_cold(std::mem::take(to));
    }
    // SAFETY: `to` holds IoBuf::None (made so above), which owns nothing, so
    // overwriting it without a drop leaks nothing; `from` is overwritten
    // with IoBuf::None right after its bytes are copied, so the value is
    // moved, never duplicated; two `&mut` never overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(from as *const IoBuf, to as *mut IoBuf, 1);
        std::ptr::write(from, IoBuf::None);
    }
}

/// Drops what a request should not hold any more (never on the I/O path).
#[cold]
#[inline(never)]
fn disarm_cold(notify: &mut Notify, buf: &mut IoBuf) {
    *notify = Notify::None;
    *buf = IoBuf::None;
}

#[cold]
#[inline(never)]
fn drop_cold(buf: IoBuf) {
    drop(buf)
}

#[cfg(test)]
mod tests;
