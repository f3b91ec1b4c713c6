//! Validation and decoding of received PDU headers: every field the peer
//! sets is checked before it is used (type allowed in the state, HLEN,
//! PLEN, PDO and its alignment, digest flags, data lengths), and a bad one
//! is an error naming it, never a panic.

use super::check::{bad, check_common, check_psh, header_digest_len};
use super::digest;
use super::error::PduError;
use super::pdu::*;
use crate::nvme::spec::{self, Cqe, Sqe};

/// What the receiver expects of the next PDU.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    /// PDU types allowed now.
    pub allowed: PduTypeSet,
    /// The connection's state, for errors ("before ICResp", ...).
    pub state: &'static str,
    /// Digests negotiated and the PDO alignment this side asked for.
    pub framing: Framing,
    /// Most data bytes one PDU may carry.
    pub max_data: u32,
}

/// A decoded PDU header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Psh {
    /// ICReq.
    IcReq(IcReq),
    /// ICResp.
    IcResp(IcResp),
    /// H2CTermReq or C2HTermReq (the error data is in the data part).
    TermReq(TermReq),
    /// CapsuleCmd: the SQE (in-capsule data is the data part).
    CapsuleCmd(Sqe),
    /// CapsuleResp: the CQE.
    CapsuleResp(Cqe),
    /// H2CData or C2HData.
    Data(DataHeader),
    /// R2T.
    R2t(R2t),
}

/// A validated header and where its data lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The common header.
    pub ch: CommonHeader,
    /// The PDU type.
    pub pdu_type: PduType,
    /// The PDU-specific header.
    pub psh: Psh,
    /// Padding bytes between the header (and its digest) and the data.
    pub pad: usize,
    /// Data bytes.
    pub data_len: usize,
    /// Data digest bytes after the data (0 or 4).
    pub ddgst_len: usize,
}

impl Header {
    /// Bytes after the header frame: padding, data, data digest.
    pub fn rest_len(&self) -> usize {
        self.pad + self.data_len + self.ddgst_len
    }
}

/// Checks the common header at the front of `bytes` and returns the
/// length of the header frame (CH + PSH + header digest; the whole PDU
/// for a TermReq, whose data is short and read with it), or `None` until
/// the 8 bytes of the common header have arrived.
pub fn header_frame_len(bytes: &[u8], e: &Expect) -> Result<Option<usize>, PduError> {
    let Some(ch) = CommonHeader::parse(bytes) else {
        return Ok(None);
    };
    let t = check_common(&ch, e)?;
    Ok(Some(match t {
        PduType::H2CTermReq | PduType::C2HTermReq => ch.plen as usize,
        _ => ch.hlen as usize + header_digest_len(t, e),
    }))
}

/// Validates and decodes a whole header frame (as long as
/// [`header_frame_len`] said), checking its header digest.
pub fn decode_header(frame: &[u8], e: &Expect) -> Result<Header, PduError> {
    let ch = CommonHeader::parse(frame).ok_or_else(|| {
        bad(
            "unknown",
            "PLEN",
            frame.len() as u64,
            "header cut short".into(),
            4,
        )
    })?;
    let t = check_common(&ch, e)?;
    let name = t.name();
    let hlen = ch.hlen as usize;
    let hd = header_digest_len(t, e);
    let need = match t {
        PduType::H2CTermReq | PduType::C2HTermReq => ch.plen as usize,
        _ => hlen + hd,
    };
    if frame.len() < need {
        return Err(bad(
            name,
            "PLEN",
            frame.len() as u64,
            format!("header frame needs {need} bytes"),
            4,
        ));
    }
    if hd > 0 {
        let want = digest::crc32c(&frame[..hlen]);
        let got = le32(frame, hlen);
        if want != got {
            return Err(PduError::HeaderDigest {
                pdu: name,
                want,
                got,
            });
        }
    }
    let p = &frame[CH_LEN..hlen];
    let psh = match t {
        PduType::IcReq => Psh::IcReq(IcReq {
            pfv: le16(p, 0),
            hpda: p[2],
            dgst: p[3],
            maxr2t: le32(p, 4),
        }),
        PduType::IcResp => Psh::IcResp(IcResp {
            pfv: le16(p, 0),
            cpda: p[2],
            dgst: p[3],
            maxh2cdata: le32(p, 4),
        }),
        PduType::H2CTermReq | PduType::C2HTermReq => Psh::TermReq(TermReq {
            fes: le16(p, 0),
            fei: le32(p, 2),
        }),
        PduType::CapsuleCmd => Psh::CapsuleCmd(
            spec::from_bytes(p)
                .ok_or_else(|| bad(name, "HLEN", hlen as u64, "SQE cut short".into(), 2))?,
        ),
        PduType::CapsuleResp => Psh::CapsuleResp(
            spec::from_bytes(p)
                .ok_or_else(|| bad(name, "HLEN", hlen as u64, "CQE cut short".into(), 2))?,
        ),
        PduType::H2CData | PduType::C2HData => Psh::Data(DataHeader {
            cccid: le16(p, 0),
            ttag: le16(p, 2),
            datao: le32(p, 4),
            datal: le32(p, 8),
        }),
        PduType::R2T => Psh::R2t(R2t {
            cccid: le16(p, 0),
            ttag: le16(p, 2),
            r2to: le32(p, 4),
            r2tl: le32(p, 8),
        }),
    };
    let (pad, data_len, ddgst_len) = match t {
        PduType::CapsuleCmd | PduType::H2CData | PduType::C2HData if ch.pdo != 0 => {
            let dd = if e.framing.ddgst { DIGEST_LEN } else { 0 };
            let pdo = ch.pdo as usize;
            (pdo - (hlen + hd), ch.plen as usize - pdo - dd, dd)
        }
        _ => (0, 0, 0),
    };
    let h = Header {
        ch,
        pdu_type: t,
        psh,
        pad,
        data_len,
        ddgst_len,
    };
    check_psh(&h)?;
    Ok(h)
}
