//! One client connection: a non-blocking Unix stream, the bytes received
//! and not yet framed, and the responses not yet written.

use super::frame::Framer;
use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

/// The largest request accepted (one JSON value): a client sending more
/// without completing a value gets an error and is disconnected.
pub const MAX_REQUEST_SIZE: usize = 4 << 20;
/// Bytes read from one connection per poll, so one busy client cannot hold
/// the app thread.
pub(crate) const READ_BUDGET: usize = 1 << 20;
/// Bytes read per poll from a connection with nothing pending while the
/// server is over its buffer budget: a small request still gets in.
pub(crate) const TRICKLE_BUDGET: usize = 64 << 10;
/// Buffers emptied beyond this capacity are freed rather than kept, so a
/// connection that once sent or received a large value does not hold its
/// memory for its lifetime.
const KEEP_CAPACITY: usize = 64 << 10;
/// Responses waiting to be written beyond which no more requests are read
/// from the connection (a client that does not read its responses is not
/// served more until it does).
pub const SEND_BACKLOG_MAX: usize = 4 << 20;
/// Requests of one connection being handled at once, beyond which no more
/// are read from it.
pub const IN_FLIGHT_MAX: usize = 1024;
/// Requests of one connection started per poll. The rest of what was read
/// waits in the receive buffer for the next polls, so the responses a poll
/// adds to a connection's backlog are bounded, and a client that sends
/// thousands of requests in one write neither holds the app thread for
/// long nor makes its unread responses grow past the backlog limit by more
/// than this many.
pub const DISPATCH_PER_POLL: usize = 64;

/// What a read found.
pub(crate) enum Frame {
    /// A complete JSON value.
    Value(Vec<u8>),
    /// The pending value passed [`MAX_REQUEST_SIZE`].
    TooLarge,
}

/// A client connection.
pub(crate) struct Conn {
    stream: UnixStream,
    recv: Vec<u8>,
    framer: Framer,
    send: Vec<u8>,
    sent: usize,
    /// Requests whose responses are still to come.
    pub in_flight: usize,
    /// The peer closed its side (or a read failed): nothing more to read.
    read_closed: bool,
    /// Close once the pending responses are written (after a parse error).
    close_after_flush: bool,
    /// `recv` may hold complete requests not started yet (the last poll
    /// stopped at its budget).
    held: bool,
    /// Gone: nothing is read or written any more.
    pub closed: bool,
}

impl Conn {
    /// Wraps an accepted stream (made non-blocking).
    pub fn new(stream: UnixStream) -> std::io::Result<Conn> {
        stream.set_nonblocking(true)?;
        Ok(Conn {
            stream,
            recv: Vec::new(),
            framer: Framer::default(),
            send: Vec::new(),
            sent: 0,
            in_flight: 0,
            read_closed: false,
            close_after_flush: false,
            held: false,
            closed: false,
        })
    }

    /// Whether more requests may be started now (the responses pending and
    /// the requests in flight are under their limits).
    fn may_dispatch(&self) -> bool {
        !self.closed
            && !self.close_after_flush
            && self.send.len() - self.sent < SEND_BACKLOG_MAX
            && self.in_flight < IN_FLIGHT_MAX
    }

    /// Hands out complete values of `recv`, up to `budget` of them in
    /// `frames`; notes whether it stopped at the budget.
    fn take_frames(&mut self, frames: &mut Vec<Frame>, budget: usize) {
        let mut used = 0;
        self.held = false;
        while frames.len() < budget {
            let Some((s, e)) = self.framer.next(&self.recv) else {
                break;
            };
            frames.push(Frame::Value(self.recv[s..e].to_vec()));
            used = e;
        }
        if frames.len() >= budget {
            self.held = true;
        }
        if used > 0 {
            self.recv.drain(..used);
            self.framer.consumed(used);
            if self.recv.is_empty() && self.recv.capacity() > KEEP_CAPACITY {
                self.recv = Vec::new();
            }
        }
    }

    /// Bytes of memory its buffers hold (received and not handled,
    /// responses not written, and their spare capacity).
    pub fn held_bytes(&self) -> usize {
        self.recv.capacity() + self.send.capacity()
    }

    /// Whether a request is partly or wholly received and not handled, or
    /// responses wait to be written.
    pub fn has_pending(&self) -> bool {
        !self.recv.is_empty() || self.sent < self.send.len()
    }

    /// Hands out the requests to start now: those already received first,
    /// then what is available on the socket (up to `read_budget` bytes: 0
    /// reads nothing), at most [`DISPATCH_PER_POLL`] and never past
    /// [`IN_FLIGHT_MAX`] in flight. Returns whether anything was read or
    /// handed out.
    pub fn read(&mut self, frames: &mut Vec<Frame>, read_budget: usize) -> bool {
        if !self.may_dispatch() {
            return false;
        }
        let budget = DISPATCH_PER_POLL.min(IN_FLIGHT_MAX - self.in_flight);
        self.take_frames(frames, budget);
        if read_budget == 0 && !self.read_closed && self.peer_hung_up() {
            // Not read while paused, yet gone: what it sent will never
            // complete, so it is not kept.
            self.read_closed = true;
        }
        if self.held || self.read_closed || read_budget == 0 {
            self.after_read(frames);
            return !frames.is_empty();
        }
        let mut got = 0;
        let mut chunk = [0u8; 64 * 1024];
        while got < read_budget {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.read_closed = true;
                    break;
                }
                Ok(n) => {
                    self.recv.extend_from_slice(&chunk[..n]);
                    got += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.read_closed = true;
                    break;
                }
            }
        }
        self.take_frames(frames, budget);
        self.after_read(frames);
        got > 0 || !frames.is_empty()
    }

    /// Whether the client closed its end (asked without reading, for a
    /// connection whose reads are paused).
    fn peer_hung_up(&self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        // A closed peer shows as a hang-up (both directions shut), which
        // poll reports whatever events are asked for.
        let mut fds = [PollFd::new(self.stream.as_fd(), PollFlags::empty())];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => fds[0]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
            Err(_) => false,
        }
    }

    fn after_read(&mut self, frames: &mut Vec<Frame>) {
        if self.framer.pending_len() > MAX_REQUEST_SIZE {
            frames.push(Frame::TooLarge);
            self.recv = Vec::new();
            self.framer = Framer::default();
            self.held = false;
        }
        if self.read_closed && !self.held {
            // A truncated request at close is dropped with the connection.
            self.recv = Vec::new();
        }
    }

    /// Queues a response.
    pub fn queue(&mut self, bytes: &[u8]) {
        if !self.closed {
            self.send.extend_from_slice(bytes);
        }
    }

    /// Whether it is being closed (after a parse error): nothing more it
    /// sent is handled.
    pub fn is_closing(&self) -> bool {
        self.closed || self.close_after_flush
    }

    /// Stops reading requests (shutdown): what is in flight is still
    /// answered, what was received and not started is dropped.
    pub fn stop_reading(&mut self) {
        self.read_closed = true;
        self.held = false;
        self.recv = Vec::new();
    }

    /// Closes the connection once what is queued is written.
    pub fn close_after_flush(&mut self) {
        self.close_after_flush = true;
    }

    /// Writes what it can without blocking; returns whether anything went.
    pub fn flush(&mut self) -> bool {
        let mut wrote = false;
        while !self.closed && self.sent < self.send.len() {
            match nix::sys::socket::send(
                self.stream.as_raw_fd(),
                &self.send[self.sent..],
                nix::sys::socket::MsgFlags::MSG_NOSIGNAL | nix::sys::socket::MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(n) => {
                    self.sent += n;
                    wrote = true;
                }
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => self.closed = true,
            }
        }
        if self.sent == self.send.len() {
            self.send.clear();
            self.sent = 0;
            if self.send.capacity() > KEEP_CAPACITY {
                self.send = Vec::new();
            }
        } else if self.sent > (1 << 20) {
            self.send.drain(..self.sent);
            self.sent = 0;
        }
        let flushed = self.send.is_empty();
        let done = self.read_closed && !self.held && self.in_flight == 0;
        if flushed && (self.close_after_flush || done) {
            self.closed = true;
        }
        if self.closed {
            self.send = Vec::new();
            self.recv = Vec::new();
        }
        wrote
    }

    /// Whether nothing is pending: no request in flight, nothing to write.
    pub fn is_idle(&self) -> bool {
        self.in_flight == 0 && (self.closed || self.send.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn values(frames: &[Frame]) -> usize {
        frames
            .iter()
            .filter(|f| matches!(f, Frame::Value(_)))
            .count()
    }

    #[test]
    fn requests_sent_in_one_write_are_handed_out_a_poll_budget_at_a_time() {
        let (server, mut client) = UnixStream::pair().unwrap();
        let mut c = Conn::new(server).unwrap();
        let n = DISPATCH_PER_POLL * 2 + 5;
        client
            .write_all(br#"{"method":"m","id":1}"#.repeat(n).as_slice())
            .unwrap();
        drop(client);
        let mut f = Vec::new();
        assert!(c.read(&mut f, READ_BUDGET));
        assert_eq!(values(&f), DISPATCH_PER_POLL);
        f.clear();
        c.read(&mut f, READ_BUDGET);
        assert_eq!(values(&f), DISPATCH_PER_POLL);
        // The peer is gone, but what it sent is still handed out, and the
        // connection stays open until it is.
        c.flush();
        assert!(!c.closed);
        f.clear();
        c.read(&mut f, READ_BUDGET);
        assert_eq!(values(&f), 5);
        c.flush();
        assert!(c.closed);
    }

    #[test]
    fn a_read_budget_of_zero_reads_nothing_and_a_small_one_reads_that_much() {
        let (server, mut client) = UnixStream::pair().unwrap();
        let mut c = Conn::new(server).unwrap();
        client.write_all(&vec![b' '; TRICKLE_BUDGET + 100]).unwrap();
        client.write_all(br#"{"method":"m","id":1}"#).unwrap();
        let mut f = Vec::new();
        assert!(!c.read(&mut f, 0));
        assert!(!c.has_pending());
        assert!(!c.peer_hung_up());
        assert!(c.read(&mut f, TRICKLE_BUDGET));
        assert!(f.is_empty());
        assert!(c.has_pending());
        assert!(c.held_bytes() >= TRICKLE_BUDGET);
        assert!(c.read(&mut f, TRICKLE_BUDGET));
        assert_eq!(values(&f), 1);
        // Emptied, the large receive buffer is freed.
        assert!(!c.has_pending());
        assert!(c.held_bytes() <= KEEP_CAPACITY);
        // A client gone while its reads are paused is noticed all the same.
        client.write_all(b"{\"method\":").unwrap();
        c.read(&mut f, TRICKLE_BUDGET);
        drop(client);
        c.read(&mut f, 0);
        c.flush();
        assert!(c.closed);
    }

    #[test]
    fn no_request_is_handed_out_past_the_in_flight_limit_or_the_backlog_limit() {
        let (server, mut client) = UnixStream::pair().unwrap();
        let mut c = Conn::new(server).unwrap();
        client
            .write_all(br#"{"method":"m","id":1}"#.repeat(10).as_slice())
            .unwrap();
        c.in_flight = IN_FLIGHT_MAX - 3;
        let mut f = Vec::new();
        c.read(&mut f, READ_BUDGET);
        assert_eq!(values(&f), 3);
        c.in_flight = 0;
        c.send = vec![b' '; SEND_BACKLOG_MAX];
        f.clear();
        assert!(!c.read(&mut f, READ_BUDGET));
        assert!(f.is_empty());
    }
}
