//! The `sock` layer: non-blocking TCP sockets polled by their owner (SPDK's
//! `lib/sock`). No thread of its own and nothing that blocks after connect:
//! the owner (an NVMe/TCP queue pair, later the target's poll group) reads
//! and writes from its poll.
//!
//! - [`Socket`]: a connected, non-blocking TCP socket over IPv4 or IPv6 with
//!   the options NVMe/TCP wants ([`SocketOpts`]: `TCP_NODELAY`, priority,
//!   buffer sizes), made by [`Socket::connect`] or from an accepted stream.
//! - [`RecvBuffer`]: a preallocated receive buffer. One read takes whatever
//!   the kernel holds; the owner then takes complete frames out of it
//!   ([`RecvBuffer::next_frame`]) or streams payload bytes
//!   ([`RecvBuffer::take`]): a frame may arrive in pieces and several may
//!   arrive in one read.
//! - [`SendQueue`]: frames queued since the last flush go out with one
//!   `sendmsg` of many iovecs ([`SendQueue::flush`]); a partial send is
//!   resumed from where it stopped at the next flush. Small headers are
//!   copied into a preallocated staging area; payloads stay where they are
//!   and are found again by key at flush time (no copy, no allocation).
//! - [`SockError`]: every failure, naming the peer and the operation.

#![deny(unsafe_code)]

mod error;
mod recv;
mod send;
mod socket;

pub use error::SockError;
pub use recv::RecvBuffer;
pub use send::{SendQueue, MAX_IOVS};
pub use socket::{Socket, SocketOpts};
