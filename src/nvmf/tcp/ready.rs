//! The poll group's readiness set (SPDK's sock group): one epoll instance
//! holding the sockets of every connection of the group, level-triggered
//! on input, each tagged with its connection's place in the group. One
//! `epoll_wait` with a zero timeout tells which connections have bytes
//! waiting, so a poll reads only those: an idle connection costs no
//! syscall, where reading every socket would cost one empty `recvfrom`
//! each. The same set is what the group's idle wait sleeps on: a wait
//! that returns events keeps them for the next poll, which then reads
//! those sockets without asking again.

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::os::fd::AsFd;

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
    /// Events (in `events`) of the last [`ReadySet::wait`], not yet
    /// handed out by [`ReadySet::ready`].
    pending: Option<usize>,
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
            events: vec![EpollEvent::empty(); 16],
            watched: 0,
            pending: None,
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

    /// The tokens of the sockets with bytes waiting (or an error or a
    /// hang-up, which a read then reports): those the last
    /// [`ReadySet::wait`] returned when it has not been asked since,
    /// otherwise those of one `epoll_wait` that does not block. `None`
    /// when the wait failed: the caller reads every connection this time.
    pub fn ready(&mut self) -> Option<impl Iterator<Item = u64> + '_> {
        let n = match self.pending.take() {
            Some(n) => n,
            None => self.epoll_wait(EpollTimeout::ZERO)?,
        };
        Some(self.events[..n].iter().map(|e| e.data()))
    }

    /// Drops the events of the last wait (a poll that reads every
    /// connection anyway), so a later poll never takes them for current.
    pub fn forget_wait(&mut self) {
        self.pending = None;
    }

    /// Blocks up to `timeout_ms` for a watched socket to become readable
    /// (the whole time when none is watched); the events are kept for the
    /// next [`ReadySet::ready`]. False when there is no epoll to wait on.
    pub fn wait(&mut self, timeout_ms: u16) -> bool {
        if self.epoll.is_none() {
            return false;
        }
        self.pending = Some(self.epoll_wait(EpollTimeout::from(timeout_ms)).unwrap_or(0));
        true
    }

    /// `epoll_wait` into the event array; a signal is retried a few times.
    fn epoll_wait(&mut self, timeout: EpollTimeout) -> Option<usize> {
        let ep = self.epoll.as_ref()?;
        for _ in 0..3 {
            match ep.wait(&mut self.events, timeout) {
                Ok(k) => return Some(k),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log::warn!("nvmf/tcp: epoll_wait: {e}");
                    return None;
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    /// A connected pair on 127.0.0.1: (the client, the accepted side).
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, s)
    }

    #[test]
    fn a_wait_hands_its_events_to_the_next_readiness_check_once() {
        let (mut c, mut s) = pair();
        let mut r = ReadySet::new();
        assert!(r.watch(&s, 7));
        c.write_all(b"capsule").unwrap();
        // Bounded: a 1 s wait; the bytes are already on their way.
        assert!(r.wait(1000));
        assert_eq!(r.ready().unwrap().collect::<Vec<_>>(), vec![7]);
        // Read them: the next check asks the kernel again and finds none.
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(r.ready().unwrap().count(), 0);
    }

    #[test]
    fn a_forgotten_wait_is_not_taken_for_current() {
        let (mut c, mut s) = pair();
        let mut r = ReadySet::new();
        assert!(r.watch(&s, 3));
        c.write_all(b"x").unwrap();
        assert!(r.wait(1000));
        r.forget_wait();
        let mut buf = [0u8; 1];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(r.ready().unwrap().count(), 0);
    }

    #[test]
    fn a_set_watching_nothing_still_waits_and_reports_nothing() {
        let mut r = ReadySet::new();
        assert!(r.wait(1));
        assert_eq!(r.ready().unwrap().count(), 0);
    }
}
