//! The poll group's idle wait: a group that has found nothing to do for
//! [`IDLE_BEFORE_WAIT`] — no bytes in or out, no bdev I/O in flight,
//! nothing queued to send — waits up to [`IDLE_WAIT_MS`] in `epoll_wait`
//! on its readiness set instead of spinning, and wakes as soon as a host
//! sends something: the events the wait returns are the ones the group's
//! next poll reads, so a wake-up costs no second readiness check. Under
//! load it never waits; an idle target stops burning its core (and, in a
//! VM, the host CPU its peers need), yet answers the next command without
//! the delay of a blind sleep. On a reactor, the group waits only while
//! the reactor's other threads found nothing to do either (a busy
//! neighbour on the same core is never stalled), and never on a reactor
//! that polls flat out (`spdk-io tgt --busy-poll`, SPDK's nvmf_tgt's way),
//! where the group spins.
//!
//! Idle time is measured on the poll's own clock read
//! ([`crate::thread::poll_ticks`]): an idle poll reads no clock of its
//! own (in a guest whose kernel keeps time with an emulated HPET, every
//! OS clock read is a system call and an exit to the emulator).

use crate::thread::TICKS_HZ;
use std::time::Duration;

/// How long a group stays idle before it waits.
pub const IDLE_BEFORE_WAIT: Duration = Duration::from_micros(250);
/// Longest single wait, in milliseconds (`epoll_wait`'s unit): a wait
/// that ends without an event lets the thread's other pollers (timed
/// ones among them) run before the next one. One millisecond keeps a
/// queue-depth-1 host in a VM, whose commands come a few hundred
/// microseconds apart, from costing the target a timer interrupt and a
/// loop round between two of its commands.
pub const IDLE_WAIT_MS: u16 = 1;

/// The idle-wait state of a poll group.
pub(super) struct IdleWait {
    /// The tick of the first poll in a row that found nothing to do.
    idle_since: Option<u64>,
}

impl IdleWait {
    pub fn new() -> IdleWait {
        IdleWait { idle_since: None }
    }

    /// After a poll of the group: `busy` when it did something, `quiet`
    /// when nothing is in flight or queued. True when the group has been
    /// idle long enough and may wait for its sockets now.
    pub fn should_wait(&mut self, busy: bool, quiet: bool) -> bool {
        // On a reactor that polls flat out, or where another thread did
        // work in the last iteration (waiting would stall it): spin.
        if busy || !quiet || !crate::thread::idle_wait_allowed() {
            self.idle_since = None;
            return false;
        }
        let now = crate::thread::poll_ticks();
        let since = *self.idle_since.get_or_insert(now);
        let before = IDLE_BEFORE_WAIT.as_nanos() as u64 * TICKS_HZ / 1_000_000_000;
        now.saturating_sub(since) >= before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_or_unquiet_poll_restarts_the_idle_spell() {
        let mut w = IdleWait::new();
        assert!(!w.should_wait(true, true));
        assert!(w.idle_since.is_none());
        assert!(!w.should_wait(false, true));
        assert!(w.idle_since.is_some());
        assert!(!w.should_wait(false, false));
        assert!(w.idle_since.is_none());
    }

    #[test]
    fn an_idle_spell_longer_than_the_threshold_allows_a_wait() {
        let mut w = IdleWait::new();
        // Off a reactor, waits are allowed; outside a poll, the poll
        // tick is the clock itself.
        assert!(!w.should_wait(false, true));
        let spell = IDLE_BEFORE_WAIT + Duration::from_millis(1);
        w.idle_since = Some(crate::thread::ticks().saturating_sub(spell.as_nanos() as u64));
        assert!(w.should_wait(false, true));
    }
}
