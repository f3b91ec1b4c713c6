//! The completion a command gets: Dword 0/1 and the status field, built
//! the way the NVMe Base Specification lays out the CQE's status (SC in
//! bits 8:1, SCT in 11:9, DNR in bit 15).

use crate::nvme::spec::status::generic;

/// Status Code Type values the target returns.
pub mod sct {
    /// Generic Command Status.
    pub const GENERIC: u8 = 0;
    /// Command Specific Status.
    pub const COMMAND_SPECIFIC: u8 = 1;
    /// Media and Data Integrity Errors.
    pub const MEDIA: u8 = 2;
    /// Path Related Status.
    pub const PATH: u8 = 3;
}

/// Generic status codes beyond the ones `nvme::spec::generic` names.
pub mod sc {
    /// Command Sequence Error.
    pub const COMMAND_SEQUENCE_ERROR: u8 = 0x0c;
    /// Data SGL Length Invalid.
    pub const DATA_SGL_LENGTH_INVALID: u8 = 0x0f;
    /// SGL Descriptor Type Invalid.
    pub const SGL_DESCRIPTOR_TYPE_INVALID: u8 = 0x11;
    /// Invalid Queue Identifier (command specific).
    pub const INVALID_QUEUE_IDENTIFIER: u8 = 0x01;
    /// Invalid Log Page (command specific).
    pub const INVALID_LOG_PAGE: u8 = 0x09;
    /// Asynchronous Event Request Limit Exceeded (command specific).
    pub const AER_LIMIT_EXCEEDED: u8 = 0x05;
    /// Feature Identifier Not Saveable (command specific).
    pub const FEATURE_NOT_SAVEABLE: u8 = 0x0d;
    /// Compare Failure (media).
    pub const COMPARE_FAILURE: u8 = 0x85;
}

/// The result of one command: what goes into its CQE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Completion {
    /// Dword 0 (command specific).
    pub dw0: u32,
    /// Dword 1 (command specific).
    pub dw1: u32,
    /// Status Code Type.
    pub sct: u8,
    /// Status Code.
    pub sc: u8,
    /// Do Not Retry.
    pub dnr: bool,
}

impl Completion {
    /// Success with Dword 0.
    pub const fn ok(dw0: u32) -> Self {
        Completion {
            dw0,
            dw1: 0,
            sct: 0,
            sc: 0,
            dnr: false,
        }
    }
    /// An error status (Do Not Retry set, as SPDK does for refusals).
    pub const fn error(sct: u8, sc: u8) -> Self {
        Completion {
            dw0: 0,
            dw1: 0,
            sct,
            sc,
            dnr: true,
        }
    }
    /// A generic error status.
    pub const fn generic(sc: u8) -> Self {
        Self::error(sct::GENERIC, sc)
    }
    /// Invalid Field in Command.
    pub const fn invalid_field() -> Self {
        Self::generic(generic::INVALID_FIELD)
    }
    /// Invalid Command Opcode.
    pub const fn invalid_opcode() -> Self {
        Self::generic(generic::INVALID_OPCODE)
    }
    /// True for a successful completion.
    pub const fn is_success(&self) -> bool {
        self.sct == 0 && self.sc == 0
    }
    /// The CQE's status field (phase bit 0 left clear: fabrics have no phase).
    pub const fn status_field(&self) -> u16 {
        ((self.sc as u16) << 1) | (((self.sct & 7) as u16) << 9) | ((self.dnr as u16) << 15)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nvme::spec::{Cqe, StatusCodeType};

    #[test]
    fn the_status_field_places_sc_sct_and_dnr_where_the_spec_does() {
        let c = Completion::error(sct::COMMAND_SPECIFIC, 0x84);
        assert_eq!(c.status_field(), 0x84 << 1 | 1 << 9 | 1 << 15);
        let cqe = Cqe {
            status: c.status_field(),
            ..Cqe::default()
        };
        let s = cqe.status();
        assert_eq!(s.sct, StatusCodeType::CommandSpecific);
        assert_eq!(s.sc, 0x84);
        assert!(s.dnr);
        assert_eq!(Completion::ok(7).status_field(), 0);
    }
}
