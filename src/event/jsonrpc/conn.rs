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
const READ_BUDGET: usize = 1 << 20;
/// Responses waiting to be written beyond which no more requests are read
/// from the connection (a client that does not read its responses is not
/// served more until it does).
pub const SEND_BACKLOG_MAX: usize = 4 << 20;
/// Requests of one connection being handled at once, beyond which no more
/// are read from it.
pub const IN_FLIGHT_MAX: usize = 1024;

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
            closed: false,
        })
    }

    /// Whether more requests may be read now.
    fn may_read(&self) -> bool {
        !self.closed
            && !self.read_closed
            && !self.close_after_flush
            && self.send.len() - self.sent < SEND_BACKLOG_MAX
            && self.in_flight < IN_FLIGHT_MAX
    }

    /// Reads what is available (up to the budget) and returns the complete
    /// values it finished. Returns whether anything was read.
    pub fn read(&mut self, frames: &mut Vec<Frame>) -> bool {
        if !self.may_read() {
            return false;
        }
        let mut got = 0;
        let mut chunk = [0u8; 64 * 1024];
        while got < READ_BUDGET {
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
        let mut used = 0;
        while let Some((s, e)) = self.framer.next(&self.recv) {
            frames.push(Frame::Value(self.recv[s..e].to_vec()));
            used = e;
        }
        if used > 0 {
            self.recv.drain(..used);
            self.framer.consumed(used);
        }
        if self.framer.pending_len() > MAX_REQUEST_SIZE {
            frames.push(Frame::TooLarge);
            self.recv = Vec::new();
            self.framer = Framer::default();
        }
        if self.read_closed && frames.is_empty() {
            // A truncated request at close is dropped with the connection.
            self.recv = Vec::new();
        }
        got > 0
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

    /// Stops reading requests (shutdown): what is in flight is still answered.
    pub fn stop_reading(&mut self) {
        self.read_closed = true;
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
        } else if self.sent > (1 << 20) {
            self.send.drain(..self.sent);
            self.sent = 0;
        }
        let flushed = self.send.is_empty();
        if flushed && (self.close_after_flush || (self.read_closed && self.in_flight == 0)) {
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
