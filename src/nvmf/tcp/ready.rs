//! The poll group's readiness set (SPDK's sock group): one epoll instance
//! holding the sockets of every connection of the group, level-triggered
//! on input, each tagged with its connection's place in the group. One
//! `epoll_wait` with a zero timeout tells which connections have bytes
//! waiting, so a poll reads only those: an idle connection costs no
//! syscall, where reading every socket would cost one empty `recvfrom`
//! each. The same set is what the group's idle wait sleeps on.

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::os::fd::{AsFd, BorrowedFd};

/// Most readiness events taken by one wait; a group with more ready
/// sockets gets the rest at its next poll (level-triggered: nothing is
/// lost, and the kernel hands the ready list out in turn).
const MAX_EVENTS: usize = 256;

/// The group's epoll set and the events of its last wait.
pub(super) struct ReadySet {
    /// `None`: epoll unavailable; the group then reads every socket.
    epoll: Option<Epoll>,
    /// Preallocated event array, grown (on connect only) with the number
    /// of sockets watched, up to [`MAX_EVENTS`].
    events: Vec<EpollEvent>,
    /// Sockets in the set.
    watched: usize,
}

impl ReadySet {
    /// An empty set (a warning when epoll cannot be had: the group then
    /// reads every connection at every poll, as it would without it).
    pub fn new() -> ReadySet {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
            .map_err(|e| {
                log::warn!(
                    "nvmf/tcp: epoll_create: {e}; the poll group will read every \
                     connection at every poll and spin when idle"
                )
            })
            .ok();
        ReadySet {
            epoll,
            events: Vec::new(),
            watched: 0,
        }
    }

    /// Adds a socket, tagged `token`. False when it is not watched (no
    /// epoll, or `epoll_ctl` failed): the caller then reads it at every
    /// poll.
    pub fn watch(&mut self, fd: impl AsFd, token: u64) -> bool {
        let Some(ep) = &self.epoll else { return false };
        if let Err(e) = ep.add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token)) {
            log::warn!("nvmf/tcp: epoll_ctl(ADD): {e}; the connection is read at every poll");
            return false;
        }
        self.watched += 1;
        let want = self.watched.clamp(16, MAX_EVENTS);
        if self.events.len() < want {
            self.events.resize(want, EpollEvent::empty());
        }
        true
    }

    /// Removes a socket that was watched (its connection closed: a shut
    /// socket stays readable, and would otherwise be reported at every
    /// poll until it is dropped).
    pub fn unwatch(&mut self, fd: impl AsFd) {
        let Some(ep) = &self.epoll else { return };
        if let Err(e) = ep.delete(fd) {
            log::debug!("nvmf/tcp: epoll_ctl(DEL): {e}");
        }
        self.watched = self.watched.saturating_sub(1);
    }

    /// True when readiness can be asked (epoll is there and watches something).
    pub fn usable(&self) -> bool {
        self.epoll.is_some() && self.watched > 0
    }

    /// One `epoll_wait` that does not block: the tokens of the sockets
    /// with bytes waiting (or an error or a hang-up, which a read then
    /// reports). `None` when the wait failed: the caller reads every
    /// connection this time.
    pub fn ready(&mut self) -> Option<impl Iterator<Item = u64> + '_> {
        let ep = self.epoll.as_ref()?;
        // A zero timeout returns at once; a signal is retried a few times.
        let mut n = None;
        for _ in 0..3 {
            match ep.wait(&mut self.events, EpollTimeout::ZERO) {
                Ok(k) => {
                    n = Some(k);
                    break;
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log::warn!("nvmf/tcp: epoll_wait: {e}");
                    return None;
                }
            }
        }
        Some(self.events[..n?].iter().map(|e| e.data()))
    }

    /// The epoll descriptor, readable when a watched socket is (for the
    /// idle wait's `ppoll`).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.epoll.as_ref().map(|e| e.0.as_fd())
    }
}
