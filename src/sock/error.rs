//! Errors of the socket layer.

use std::net::SocketAddr;

/// What went wrong with a socket.
#[derive(Debug, thiserror::Error)]
pub enum SockError {
    /// `connect` failed or did not finish in time.
    #[error("connecting to {addr} failed: {source} (is a target listening there?)")]
    Connect {
        /// The peer.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Binding the connection's source address (before `connect`) failed.
    #[error("binding the source address {local} for a connection to {addr} failed: {source} (is {local} an address of this host, and its port free?)")]
    Bind {
        /// The source address asked for.
        local: SocketAddr,
        /// The peer.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Setting a socket option failed.
    #[error("setting {option} on the socket to {addr} failed: {source}")]
    Option {
        /// The option (`TCP_NODELAY`, `SO_PRIORITY`, ...).
        option: &'static str,
        /// The peer.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A read or write failed (connection reset, broken pipe, ...).
    #[error("{op} on the connection to {addr} failed: {source}")]
    Io {
        /// `recv` or `sendmsg`.
        op: &'static str,
        /// The peer.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The peer closed the connection (a read returned end of stream).
    #[error("the peer {0} closed the connection")]
    Closed(SocketAddr),
    /// A frame longer than the receive buffer can ever hold.
    #[error("a frame of {len} bytes does not fit the receive buffer of {capacity} bytes")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The buffer's capacity.
        capacity: usize,
    },
    /// The send queue has no room for another frame: flush it and retry.
    #[error("send queue full ({what}): flush and retry")]
    SendQueueFull {
        /// What ran out: `"staging bytes"` or `"entries"`.
        what: &'static str,
    },
    /// A queued payload's key resolved to fewer bytes than were queued.
    #[error("send queue payload {key:#x} resolved to {have} bytes, {need} were queued")]
    PayloadShort {
        /// The key given to [`SendQueue::push_payload`](super::SendQueue::push_payload).
        key: u64,
        /// Bytes needed (offset + length).
        need: usize,
        /// Bytes the resolver returned.
        have: usize,
    },
}
