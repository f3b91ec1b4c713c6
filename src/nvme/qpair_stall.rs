//! A queue pair that stops completing: once it has polled
//! [`STALL_KICK_POLLS`] times and waited [`STALL_KICK_TIME`] without a
//! completion while commands are outstanding, the doorbells are re-rung by
//! MMIO and the log says whether the driver or the controller held things
//! up; the end of such a stall is logged too.

use super::qpair::{QPair, STALL_KICK_TIME};
use std::time::Instant;

impl QPair {
    /// Every [`STALL_KICK_POLLS`](super::STALL_KICK_POLLS) idle polls of a
    /// stall: starts its clock the first time, and re-rings once
    /// [`STALL_KICK_TIME`] has passed since it started or since the last
    /// re-ring. The clock is read only here, never on the busy path.
    #[cold]
    #[inline(never)]
    pub(super) fn stall_check(&mut self) {
        let now = Instant::now();
        match self.stall_clock {
            Some(t) if now.duration_since(t) >= STALL_KICK_TIME => {
                self.kick();
                self.stall_clock = Some(Instant::now());
            }
            Some(_) => {}
            None => self.stall_clock = Some(now),
        }
    }

    /// Writes both doorbells by MMIO with their current values. With shadow
    /// doorbells the controller is told of new entries only when its
    /// EventIdx asks; a controller that loses that race (a missing memory
    /// barrier on its side) would leave commands unfetched forever, so a
    /// queue with commands outstanding and nothing completing for
    /// [`STALL_KICK_TIME`] re-announces its tail and head. Harmless when
    /// nothing was lost (the values are unchanged). QEMU's controller
    /// under TCG needs it without shadow doorbells too: see
    /// [`STALL_KICK_TIME`].
    ///
    /// The first re-ring of a queue pair is a warning, later ones are
    /// debug messages (the counter `doorbell_kicks` of
    /// [`QPair::pcie_stat`] has them all), unless the driver is at fault.
    ///
    /// The warning says whose the stall is: submissions never rung, or a
    /// completion queue head the controller needs and was not told, would
    /// be the driver's; with both announced by MMIO, the controller simply
    /// has not answered yet (a descheduled emulator, a slow device).
    #[cold]
    #[inline(never)]
    pub(super) fn kick(&mut self) {
        self.stat.doorbell_kicks += 1;
        let (tail, rung, unrung) = (self.sq.tail(), self.sq.rung(), self.sq.unrung());
        let (head, reported) = self.cq.head_and_reported();
        let n = self.cq.entries() as usize;
        let unreported = (head as usize + n - reported as usize) % n;
        let in_flight = self.pool.in_flight();
        let cq_head_owed = unreported + in_flight >= n - 1;
        // Static text: the kick runs on the I/O path's thread, which must
        // not allocate even while it reports a stall.
        let whose = if unrung != 0 {
            "submissions were never rung: a driver bug"
        } else if cq_head_owed {
            "the controller may find the completion queue full (head not reported): a driver bug"
        } else if self.sq.db.has_shadow() {
            "everything was announced in the shadow doorbell buffer: the controller missed it \
             or has not answered"
        } else {
            "every submission and the head the controller needs were written by MMIO: \
             the controller has not answered (no doorbell was lost)"
        };
        let level = if self.stat.doorbell_kicks == 1 || unrung != 0 || cq_head_owed {
            log::Level::Warn
        } else {
            log::Level::Debug
        };
        log::log!(
            level,
            "qpair {}: {} polls without a completion with {} commands outstanding: \
             re-ringing the doorbells (SQ tail {tail}, rung {rung}, {unrung} never rung, controller's SQ head {}; \
             CQ head {head}, reported {reported}; {in_flight} in flight): {whose}",
            self.qid,
            self.stalled_polls,
            self.outstanding,
            self.sq.head,
        );
        self.kicked_at = Some(Instant::now());
        self.sq.kick();
        self.cq.kick();
    }

    /// Ends a stall; if [`QPair::kick`] re-rang for it, logs how long the
    /// controller took to answer after the doorbells were re-rung (at once
    /// if a doorbell had been lost; any time if it was merely late).
    #[cold]
    #[inline(never)]
    pub(super) fn stall_ended(&mut self) {
        self.stall_clock = None;
        let Some(kicked) = self.kicked_at.take() else {
            return;
        };
        let level = if self.stat.doorbell_kicks == 1 {
            log::Level::Warn
        } else {
            log::Level::Debug
        };
        log::log!(
            level,
            "qpair {}: completions resumed after {} polls without one, {:?} after the last re-ring",
            self.qid,
            self.stalled_polls,
            kicked.elapsed()
        );
    }
}
