//! Encoders of the PDUs: the initial exchange, the header of any PDU
//! (with its header digest and the padding up to the receiver's data
//! alignment), the PSH bytes of each type, and TermReqs.

use super::digest;
use super::pdu::*;
use crate::nvme::spec::{self, Cqe, Sqe};

/// ICReq: the first PDU of a connection.
pub fn encode_ic_req(req: &IcReq) -> [u8; IC_LEN] {
    encode_ic(PduType::IcReq, req.pfv, req.hpda, req.dgst, req.maxr2t)
}

/// ICResp: the controller's answer (used by target-side code and test peers).
pub fn encode_ic_resp(resp: &IcResp) -> [u8; IC_LEN] {
    encode_ic(
        PduType::IcResp,
        resp.pfv,
        resp.cpda,
        resp.dgst,
        resp.maxh2cdata,
    )
}

/// The shared layout of ICReq and ICResp: PFV, the sender's data
/// alignment, the digest flags and a dword (MAXR2T or MAXH2CDATA).
fn encode_ic(pdu_type: PduType, pfv: u16, pda: u8, dgst: u8, dword: u32) -> [u8; IC_LEN] {
    let mut b = [0u8; IC_LEN];
    CommonHeader {
        pdu_type: pdu_type as u8,
        flags: 0,
        hlen: IC_LEN as u8,
        pdo: 0,
        plen: IC_LEN as u32,
    }
    .write(&mut b);
    b[8..10].copy_from_slice(&pfv.to_le_bytes());
    b[10] = pda;
    b[11] = dgst;
    b[12..16].copy_from_slice(&dword.to_le_bytes());
    b
}

/// Longest header a data-carrying PDU needs: header, digest and padding
/// up to the largest PDO alignment.
pub const MAX_HEADER_WITH_PAD: usize = CAPSULE_CMD_HLEN + DIGEST_LEN + pda_bytes(PDA_MAX);

/// Writes the header of a PDU that carries `data_len` bytes of data
/// (CH, `psh`, header digest, padding to the PDO) into `out` and returns
/// its length. The data and its digest ([`digest::data_digest`]) follow
/// it on the wire. `psh` is the PSH's bytes (its length sets HLEN).
pub fn encode_header(
    out: &mut [u8; MAX_HEADER_WITH_PAD],
    pdu_type: PduType,
    extra_flags: u8,
    psh: &[u8],
    data_len: usize,
    f: Framing,
) -> usize {
    let hlen = CH_LEN + psh.len();
    let hd = if f.hdgst { DIGEST_LEN } else { 0 };
    let mut flags = extra_flags;
    if f.hdgst {
        flags |= flags::HDGSTF;
    }
    let (pdo, dd) = if data_len > 0 {
        if f.ddgst {
            flags |= flags::DDGSTF;
        }
        let align = pda_bytes(f.pda);
        (
            (hlen + hd).div_ceil(align) * align,
            if f.ddgst { DIGEST_LEN } else { 0 },
        )
    } else {
        (0, 0)
    };
    let head = if data_len > 0 { pdo } else { hlen + hd };
    out[..head].fill(0);
    CommonHeader {
        pdu_type: pdu_type as u8,
        flags,
        hlen: hlen as u8,
        pdo: pdo as u8,
        plen: (head + data_len + dd) as u32,
    }
    .write(&mut out[..]);
    out[CH_LEN..hlen].copy_from_slice(psh);
    if f.hdgst {
        let d = digest::crc32c(&out[..hlen]);
        out[hlen..hlen + DIGEST_LEN].copy_from_slice(&d.to_le_bytes());
    }
    head
}

/// The PSH of a CapsuleCmd: the SQE.
pub fn capsule_cmd_psh(sqe: &Sqe) -> &[u8] {
    spec::as_bytes(sqe)
}

/// The PSH of a CapsuleResp: the CQE.
pub fn capsule_resp_psh(cqe: &Cqe) -> &[u8] {
    spec::as_bytes(cqe)
}

/// The PSH bytes of an H2CData or C2HData PDU.
pub fn data_psh(h: &DataHeader) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..2].copy_from_slice(&h.cccid.to_le_bytes());
    b[2..4].copy_from_slice(&h.ttag.to_le_bytes());
    b[4..8].copy_from_slice(&h.datao.to_le_bytes());
    b[8..12].copy_from_slice(&h.datal.to_le_bytes());
    b
}

/// The PSH bytes of an R2T.
pub fn r2t_psh(r: &R2t) -> [u8; 16] {
    data_psh(&DataHeader {
        cccid: r.cccid,
        ttag: r.ttag,
        datao: r.r2to,
        datal: r.r2tl,
    })
}

/// A whole TermReq PDU (`h2c` picks H2CTermReq or C2HTermReq) carrying
/// up to 128 bytes of the offending PDU's header; returns its length.
pub fn encode_term_req(
    out: &mut [u8; TERM_REQ_HLEN + TERM_REQ_MAX_DATA],
    h2c: bool,
    t: &TermReq,
    offending: &[u8],
) -> usize {
    let n = offending.len().min(TERM_REQ_MAX_DATA);
    let plen = TERM_REQ_HLEN + n;
    out.fill(0);
    CommonHeader {
        pdu_type: if h2c {
            PduType::H2CTermReq as u8
        } else {
            PduType::C2HTermReq as u8
        },
        flags: 0,
        hlen: TERM_REQ_HLEN as u8,
        pdo: 0,
        plen: plen as u32,
    }
    .write(&mut out[..]);
    out[8..10].copy_from_slice(&t.fes.to_le_bytes());
    out[10..14].copy_from_slice(&t.fei.to_le_bytes());
    out[TERM_REQ_HLEN..plen].copy_from_slice(&offending[..n]);
    plen
}
