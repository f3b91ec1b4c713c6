//! The poll group's idle wait: a group that has found nothing to do for
//! [`IDLE_BEFORE_WAIT`] — no bytes in or out, no bdev I/O in flight,
//! nothing queued to send — waits up to [`IDLE_WAIT`] in `ppoll` on the
//! epoll set of its sockets (its readiness set) instead of spinning, and wakes as soon as a
//! host sends something. Under load it never waits; an idle target stops
//! burning its core (and, in a VM, the host CPU its peers need), yet
//! answers the next command without the delay of a blind sleep. The
//! wait is as long as the reactor's own idle back-off. On a reactor, the
//! group waits only while the reactor's other threads found nothing to do
//! either (a busy neighbour on the same core is never stalled), and never
//! on a reactor that polls flat out (`spdk-io tgt --busy-poll`, SPDK's
//! nvmf_tgt's way), where the group spins.

use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::time::TimeSpec;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

/// How long a group stays idle before it waits.
pub const IDLE_BEFORE_WAIT: Duration = Duration::from_micros(250);
/// Longest single wait (other pollers of the thread run between waits).
pub const IDLE_WAIT: Duration = Duration::from_micros(100);

/// The idle-wait state of a poll group.
pub(super) struct IdleWait {
    /// Since when the group found nothing to do.
    idle_since: Option<Instant>,
}

impl IdleWait {
    pub fn new() -> IdleWait {
        IdleWait { idle_since: None }
    }

    /// After a poll of the group: `busy` when it did something, `quiet`
    /// when nothing is in flight or queued; `ready` is the group's epoll
    /// descriptor (`None`: no epoll, the group spins). Waits when idle
    /// long enough; true when it waited.
    pub fn after_poll(&mut self, busy: bool, quiet: bool, ready: Option<BorrowedFd<'_>>) -> bool {
        // On a reactor that polls flat out, or where another thread did
        // work in the last iteration (waiting would stall it): spin.
        if busy || !quiet || !crate::thread::idle_wait_allowed() {
            self.idle_since = None;
            return false;
        }
        let Some(fd) = ready else { return false };
        let now = Instant::now();
        let since = *self.idle_since.get_or_insert(now);
        if now.duration_since(since) < IDLE_BEFORE_WAIT {
            return false;
        }
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        let _ = ppoll(&mut fds, Some(TimeSpec::from_duration(IDLE_WAIT)), None);
        crate::thread::note_idle_wait();
        true
    }
}
