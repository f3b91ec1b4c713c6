//! The NVMe/TCP transport, target side (SPDK's `lib/nvmf/tcp.c`), built on
//! the `sock` layer and the PDU codec of `nvme::tcp` (shared with the host
//! side).
//!
//! | file | job |
//! |---|---|
//! | `listener` | [`TcpTransport`]: listening sockets (IPv4/IPv6) and the accept poller that hands each new connection to a poll group, round robin |
//! | `group` | [`PollGroup`]: one per thread; its poller serves every connection it was given, a timed poller checks keep alive and events |
//! | `ready` | the group's readiness set: one epoll of its sockets, asked once per poll which have bytes, so idle connections cost no read; an idle wait's events serve the next poll |
//! | `idle` | the group's idle wait (not on a busy-polling reactor): `epoll_wait` on the readiness set after a quiet while (`IDLE_BEFORE_WAIT`), woken by the next PDU |
//! | `bufs` | data buffers: a slot's own for small transfers, the transport's shared pool for large ones, commands waiting for one resumed in order |
//! | `conn` | one connection = one queue: its socket, receive buffer, send queue, command slots |
//! | `recv` | the receive state machine: ICReq, command capsules with in-capsule data, H2CData into the command's buffer, digests |
//! | `exec` | a received command executed: Connect, properties, admin, I/O on the bdev layer |
//! | `abort` | Abort of an I/O command: posted by the admin queue, answered by the I/O queue |
//! | `fused` | a fused Compare + Write pair as one bdev compare-and-write |
//! | `send` | what goes back: ICResp, R2T, C2HData, CapsuleResp, C2HTermReq |
//! | `slot` | per-command state, preallocated per connection |

mod abort;
mod bufs;
mod conn;
mod exec;
mod fused;
mod group;
mod idle;
mod listener;
mod ready;
mod recv;
mod send;
mod slot;

pub use group::{GroupStats, PollGroup, PollGroupHandle};
pub use listener::TcpTransport;
