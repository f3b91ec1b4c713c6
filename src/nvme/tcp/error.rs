//! Errors of the NVMe/TCP transport: a PDU that breaks the rules (naming
//! the PDU, the field and its value) and failures of the connection.

use super::pdu::fes;

/// A PDU from the peer that breaks the NVMe/TCP rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    /// A header field with a value the specification does not allow.
    #[error("{pdu} PDU: invalid {field} {value:#x} ({why})")]
    InvalidField {
        /// The PDU type's name.
        pdu: &'static str,
        /// The field (`HLEN`, `PLEN`, `PDO`, ...).
        field: &'static str,
        /// Its value.
        value: u64,
        /// What was expected.
        why: String,
        /// Byte offset of the field in the PDU (the FEI of a TermReq).
        offset: u32,
    },
    /// A PDU type that may not arrive in this state of the connection.
    #[error("{pdu} PDU not expected {state} (PDU sequence error)")]
    UnexpectedType {
        /// The PDU type's name (or its number when unknown).
        pdu: String,
        /// The connection's state.
        state: &'static str,
    },
    /// The header digest does not match the header.
    #[error("{pdu} PDU: header digest {got:#010x} does not match the header ({want:#010x})")]
    HeaderDigest {
        /// The PDU type's name.
        pdu: &'static str,
        /// The digest computed here.
        want: u32,
        /// The digest received.
        got: u32,
    },
    /// The data digest does not match the data.
    #[error("{pdu} PDU for command {cccid}: data digest {got:#010x} does not match the data ({want:#010x})")]
    DataDigest {
        /// The PDU type's name.
        pdu: &'static str,
        /// The command capsule's CID.
        cccid: u16,
        /// The digest computed here.
        want: u32,
        /// The digest received.
        got: u32,
    },
    /// The peer ended the connection with a TermReq.
    #[error("the controller terminated the connection: {} (FES {fes:#x}, FEI {fei:#x})", fes::name(*fes))]
    Terminated {
        /// Fatal Error Status.
        fes: u16,
        /// Fatal Error Information.
        fei: u32,
    },
}

impl PduError {
    /// The FES and FEI to report in an H2CTermReq for this error (`None`
    /// when the peer itself terminated, or for a data digest error, which
    /// fails only its command).
    pub fn term_req(&self) -> Option<(u16, u32)> {
        match self {
            PduError::InvalidField { offset, .. } => Some((fes::INVALID_HEADER_FIELD, *offset)),
            PduError::UnexpectedType { .. } => Some((fes::PDU_SEQUENCE_ERROR, 0)),
            PduError::HeaderDigest { .. } => Some((fes::HDGST_ERROR, 0)),
            PduError::DataDigest { .. } | PduError::Terminated { .. } => None,
        }
    }
}

/// What failed on an NVMe/TCP connection.
#[derive(Debug, thiserror::Error)]
pub enum TcpError {
    /// The socket failed (connect, reset, closed).
    #[error("NVMe/TCP: {0}")]
    Sock(#[from] crate::sock::SockError),
    /// The controller sent a PDU that breaks the rules.
    #[error("NVMe/TCP protocol error from {addr}: {error}")]
    Pdu {
        /// The controller's address.
        addr: std::net::SocketAddr,
        /// What was wrong.
        error: PduError,
    },
    /// The controller's answer to ICReq is not one this host can use.
    #[error("NVMe/TCP connection setup with {addr} failed: {why}")]
    Negotiation {
        /// The controller's address.
        addr: std::net::SocketAddr,
        /// What was wrong.
        why: String,
    },
    /// A PDU referred to a command this queue does not have in flight, or
    /// to data outside what the command moves.
    #[error("NVMe/TCP protocol error from {addr}: {why}")]
    Protocol {
        /// The controller's address.
        addr: std::net::SocketAddr,
        /// What was wrong.
        why: String,
    },
    /// The connection failed before and takes no more commands.
    #[error("NVMe/TCP connection to {0} has failed; reconnect the queue")]
    Failed(std::net::SocketAddr),
    /// The controller did not answer in time.
    #[error("NVMe/TCP: no answer from {addr} to {what} within {after:?}")]
    Timeout {
        /// The controller's address.
        addr: std::net::SocketAddr,
        /// What was awaited.
        what: &'static str,
        /// How long.
        after: std::time::Duration,
    },
}
