//! The rules every received PDU header must follow: the type allowed in
//! the connection's state, HLEN, PLEN, PDO and its alignment, the digest
//! flags, and the fields of each PDU-specific header.

use super::decode::{Expect, Header, Psh};
use super::error::PduError;
use super::pdu::*;

pub(super) fn bad(
    pdu: &'static str,
    field: &'static str,
    value: u64,
    why: String,
    offset: u32,
) -> PduError {
    PduError::InvalidField {
        pdu,
        field,
        value,
        why,
        offset,
    }
}

/// The expected HLEN of a PDU type.
fn hlen_of(t: PduType) -> usize {
    match t {
        PduType::IcReq | PduType::IcResp => IC_LEN,
        PduType::H2CTermReq | PduType::C2HTermReq => TERM_REQ_HLEN,
        PduType::CapsuleCmd => CAPSULE_CMD_HLEN,
        PduType::CapsuleResp => CAPSULE_RESP_HLEN,
        PduType::H2CData | PduType::C2HData | PduType::R2T => DATA_HLEN,
    }
}

fn has_digests(t: PduType) -> bool {
    !matches!(
        t,
        PduType::IcReq | PduType::IcResp | PduType::H2CTermReq | PduType::C2HTermReq
    )
}

pub(super) fn header_digest_len(t: PduType, e: &Expect) -> usize {
    if e.framing.hdgst && has_digests(t) {
        DIGEST_LEN
    } else {
        0
    }
}

/// Validates the common header alone; returns its type.
pub(super) fn check_common(ch: &CommonHeader, e: &Expect) -> Result<PduType, PduError> {
    let Some(t) = PduType::from_raw(ch.pdu_type) else {
        return Err(bad(
            "unknown",
            "PDU-Type",
            ch.pdu_type as u64,
            "not a PDU type of NVMe/TCP 1.0".into(),
            0,
        ));
    };
    let name = t.name();
    if !e.allowed.contains(t) {
        return Err(PduError::UnexpectedType {
            pdu: name.into(),
            state: e.state,
        });
    }
    let hlen = hlen_of(t);
    if ch.hlen as usize != hlen {
        return Err(bad(
            name,
            "HLEN",
            ch.hlen as u64,
            format!("must be {hlen}"),
            2,
        ));
    }
    let hd = header_digest_len(t, e);
    if has_digests(t) && (ch.flags & flags::HDGSTF != 0) != e.framing.hdgst {
        return Err(bad(
            name,
            "FLAGS",
            ch.flags as u64,
            format!(
                "HDGSTF must be {} as header digests were negotiated {}",
                e.framing.hdgst as u8,
                if e.framing.hdgst { "on" } else { "off" }
            ),
            1,
        ));
    }
    let plen = ch.plen as usize;
    let head = hlen + hd;
    match t {
        PduType::IcReq | PduType::IcResp => {
            if plen != IC_LEN {
                return Err(bad(
                    name,
                    "PLEN",
                    plen as u64,
                    format!("must be {IC_LEN}"),
                    4,
                ));
            }
        }
        PduType::H2CTermReq | PduType::C2HTermReq => {
            if !(TERM_REQ_HLEN..=TERM_REQ_HLEN + TERM_REQ_MAX_DATA).contains(&plen) {
                return Err(bad(
                    name,
                    "PLEN",
                    plen as u64,
                    format!(
                        "must be within {TERM_REQ_HLEN}..={}",
                        TERM_REQ_HLEN + TERM_REQ_MAX_DATA
                    ),
                    4,
                ));
            }
        }
        PduType::CapsuleResp | PduType::R2T => {
            if plen != head {
                return Err(bad(name, "PLEN", plen as u64, format!("must be {head}"), 4));
            }
        }
        PduType::CapsuleCmd | PduType::H2CData | PduType::C2HData => {
            check_data_layout(ch, t, head, e)?;
        }
    }
    Ok(t)
}

/// PDO, PLEN and DDGSTF of a PDU that may carry data.
fn check_data_layout(
    ch: &CommonHeader,
    t: PduType,
    head: usize,
    e: &Expect,
) -> Result<(), PduError> {
    let name = t.name();
    let plen = ch.plen as usize;
    let pdo = ch.pdo as usize;
    let must_have_data = t != PduType::CapsuleCmd;
    if plen == head && !must_have_data {
        if pdo != 0 {
            return Err(bad(
                name,
                "PDO",
                pdo as u64,
                "must be 0 without data".into(),
                3,
            ));
        }
        return Ok(());
    }
    let align = pda_bytes(e.framing.pda);
    if pdo < head || pdo % align != 0 {
        return Err(bad(
            name,
            "PDO",
            pdo as u64,
            format!("must be at least {head} and a multiple of {align} (PDA)"),
            3,
        ));
    }
    let dd = if e.framing.ddgst { DIGEST_LEN } else { 0 };
    if (ch.flags & flags::DDGSTF != 0) != e.framing.ddgst {
        return Err(bad(
            name,
            "FLAGS",
            ch.flags as u64,
            format!(
                "DDGSTF must be {} as data digests were negotiated {}",
                e.framing.ddgst as u8,
                if e.framing.ddgst { "on" } else { "off" }
            ),
            1,
        ));
    }
    let max = pdo + e.max_data as usize + dd;
    if plen <= pdo + dd || plen > max {
        return Err(bad(
            name,
            "PLEN",
            plen as u64,
            format!("must leave 1..={} data bytes after PDO {pdo}", e.max_data),
            4,
        ));
    }
    Ok(())
}

/// The fields ICReq and ICResp share: PFV at byte 8 and the sender's
/// data alignment (HPDA or CPDA) at byte 10.
fn check_ic(
    name: &'static str,
    pfv: u16,
    (pda_name, pda): (&'static str, u8),
) -> Result<(), PduError> {
    if pfv != PFV_1_0 {
        return Err(bad(
            name,
            "PFV",
            pfv as u64,
            "only 0 (version 1.0) is known".into(),
            8,
        ));
    }
    if pda > PDA_MAX {
        return Err(bad(
            name,
            pda_name,
            pda as u64,
            format!("must be at most {PDA_MAX}"),
            10,
        ));
    }
    Ok(())
}

/// Field checks of the PSHs.
pub(super) fn check_psh(h: &Header) -> Result<(), PduError> {
    let name = h.pdu_type.name();
    match h.psh {
        Psh::IcReq(r) => check_ic(name, r.pfv, ("HPDA", r.hpda))?,
        Psh::IcResp(r) => {
            check_ic(name, r.pfv, ("CPDA", r.cpda))?;
            if r.maxh2cdata < 4096 || r.maxh2cdata % 4 != 0 {
                return Err(bad(
                    name,
                    "MAXH2CDATA",
                    r.maxh2cdata as u64,
                    "must be at least 4096 and a multiple of 4".into(),
                    12,
                ));
            }
        }
        Psh::Data(d) => {
            if d.datal as usize != h.data_len {
                return Err(bad(
                    name,
                    "DATAL",
                    d.datal as u64,
                    format!("must equal the {} data bytes the PDU carries", h.data_len),
                    16,
                ));
            }
            let f = h.ch.flags;
            if h.pdu_type == PduType::C2HData && f & flags::SUCCESS != 0 && f & flags::LAST_PDU == 0
            {
                return Err(bad(
                    name,
                    "FLAGS",
                    f as u64,
                    "SUCCESS needs LAST_PDU".into(),
                    1,
                ));
            }
            if d.datao.checked_add(d.datal).is_none() {
                return Err(bad(
                    name,
                    "DATAO",
                    d.datao as u64,
                    "DATAO + DATAL overflows".into(),
                    12,
                ));
            }
        }
        Psh::R2t(r) => {
            if r.r2tl == 0 {
                return Err(bad(name, "R2TL", 0, "must be at least 1".into(), 16));
            }
            if r.r2to.checked_add(r.r2tl).is_none() {
                return Err(bad(
                    name,
                    "R2TO",
                    r.r2to as u64,
                    "R2TO + R2TL overflows".into(),
                    12,
                ));
            }
        }
        Psh::TermReq(_) | Psh::CapsuleCmd(_) | Psh::CapsuleResp(_) => {}
    }
    Ok(())
}
