//! The NVMe/TCP transport, target side (SPDK's `lib/nvmf/tcp.c`), built on
//! the `sock` layer and the PDU codec of `nvme::tcp` (shared with the host
//! side).
//!
//! | file | job |
//! |---|---|
//! | `listener` | [`TcpTransport`]: listening sockets (IPv4/IPv6) and the accept poller that hands each new connection to a poll group, round robin |
//! | `group` | [`PollGroup`]: one per thread; its poller serves every connection it was given, a timed poller checks keep alive and events |
//! | `conn` | one connection = one queue: its socket, receive buffer, send queue, command slots |
//! | `recv` | the receive state machine: ICReq, command capsules with in-capsule data, H2CData into the command's buffer, digests |
//! | `exec` | a received command executed: Connect, properties, admin, I/O on the bdev layer |
//! | `send` | what goes back: ICResp, R2T, C2HData, CapsuleResp, C2HTermReq |
//! | `slot` | per-command state, preallocated per connection |

mod conn;
mod exec;
mod group;
mod listener;
mod recv;
mod send;
mod slot;

pub use group::{PollGroup, PollGroupHandle};
pub use listener::TcpTransport;
