//! The NVMe/TCP transport (NVMe/TCP Transport Specification 1.0): the host
//! side of a queue pair carried over one TCP connection.
//!
//! - [`pdu`]: the PDU types and their layouts (checked at compile time);
//!   [`encode`]: the encoders; [`decode`]: validation and decoding of every
//!   PDU header from the peer; [`digest`]: CRC32C header and data digests.
//! - [`fabrics`]: Connect, Property Get/Set and the SGLs of NVMe/TCP commands.
//! - [`TcpQueue`]: one queue's connection: ICReq/ICResp (`queue.rs`),
//!   command capsules with in-capsule data and R2T answered with H2CData,
//!   sends batched per poll (`queue_send.rs`), the PDUs received
//!   (`queue_recv.rs`) and C2HData placed in the command's buffers
//!   ([`CommandBuffers`]), large payloads read straight into them
//!   (`recv_data.rs`).
//! - Reset: the admin connection made again (a new controller ID); each
//!   I/O queue pair reconnects on its next poll.
//! - [`DiscoveryEntry`]: the Discovery Log Page of a discovery controller
//!   (`Controller::discovery_log`).
//! - [`PduError`], [`TcpError`]: a PDU that breaks the rules (naming the
//!   field), and what fails on a connection.

mod admin;
mod attach;
mod check;
pub mod decode;
pub mod digest;
mod discovery;
pub mod encode;
mod error;
pub mod fabrics;
pub mod pdu;
mod queue;
mod queue_recv;
mod queue_send;
mod recv_data;
mod reset;

pub(crate) use admin::TcpAdmin;
pub(crate) use attach::{attach, shutdown, TcpTransport};
pub use discovery::{DiscoveryEntry, DiscoveryLog, LID_DISCOVERY};
pub use error::{PduError, TcpError};
pub use queue::{CommandBuffers, TcpQueue, TcpQueueOpts, DEFAULT_MAX_R2T};
