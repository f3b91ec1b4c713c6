//! The NVMe/TCP transport (NVMe/TCP Transport Specification 1.0): the host
//! side of a queue pair carried over one TCP connection.
//!
//! - [`pdu`]: the PDU types, their layouts (checked at compile time) and
//!   [`encode`]: the encoders; [`decode`]: validation and decoding of every PDU
//!   header from the peer; [`digest`]: CRC32C header and data digests.
//! - [`PduError`]: a PDU that breaks the rules, naming the field.

mod check;
pub mod decode;
pub mod digest;
pub mod encode;
mod error;
pub mod pdu;

pub use error::PduError;
