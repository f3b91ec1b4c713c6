//! What the target sends: ICResp, R2T, C2HData (the read's data sent from
//! the slot's buffer where it lies, with SUCCESS when allowed), the
//! CapsuleResp, and C2HTermReq before closing on a fatal error.

use super::conn::{Conn, Phase};
use super::slot::SlotState;
use crate::nvme::spec::Cqe;
use crate::nvme::tcp::digest;
use crate::nvme::tcp::encode::{
    capsule_resp_psh, data_psh, encode_header, encode_ic_resp, encode_term_req, r2t_psh,
    MAX_HEADER_WITH_PAD,
};
use crate::nvme::tcp::pdu::fes as pdu_fes;
use crate::nvme::tcp::pdu::{
    flags, DataHeader, IcResp, PduType, R2t, TermReq, PFV_1_0, TERM_REQ_HLEN, TERM_REQ_MAX_DATA,
};
use crate::nvmf::Completion;
use crate::sock::SockError;

impl Conn {
    fn queue_err(&mut self, e: SockError) {
        log::error!("nvmf/tcp: {}: send queue: {e}; closing", self.peer());
        self.phase = Phase::Closing;
    }

    /// Queues ICResp.
    pub(super) fn send_ic_resp(&mut self, dgst: u8) {
        let b = encode_ic_resp(&IcResp {
            pfv: PFV_1_0,
            cpda: 0,
            dgst,
            maxh2cdata: self.maxh2cdata,
        });
        if let Err(e) = self.sq.push(&b) {
            self.queue_err(e);
        }
    }

    /// Queues a C2HTermReq carrying the offending header, and closes once it is sent.
    pub(super) fn terminate(&mut self, fes: u16, fei: u32, offending: &[u8]) {
        log::info!(
            "nvmf/tcp: {}: fatal error {} (FES {fes:#x}, FEI {fei:#x}); closing the connection",
            self.peer(),
            crate::nvme::tcp::pdu::fes::name(fes)
        );
        // FEI says where the bad field is for those two errors only; it
        // is reserved (0) for the others.
        let fei = match fes {
            pdu_fes::INVALID_HEADER_FIELD | pdu_fes::UNSUPPORTED_PARAMETER => fei,
            _ => 0,
        };
        let mut out = [0u8; TERM_REQ_HLEN + TERM_REQ_MAX_DATA];
        let n = encode_term_req(&mut out, false, &TermReq { fes, fei }, offending);
        if self.phase == Phase::AwaitIcReq || self.phase == Phase::Ready {
            let _ = self.sq.push(&out[..n]);
        }
        self.phase = Phase::Closing;
    }

    /// Queues an R2T asking for all of slot `i`'s data.
    pub(super) fn send_r2t(&mut self, i: u16) {
        let s = &self.slots[i as usize];
        let psh = r2t_psh(&R2t {
            cccid: s.sqe.cid(),
            ttag: i,
            r2to: 0,
            r2tl: s.xfer_len as u32,
        });
        let mut h = [0u8; MAX_HEADER_WITH_PAD];
        let n = encode_header(&mut h, PduType::R2T, 0, &psh, 0, self.send_framing);
        if let Err(e) = self.sq.push(&h[..n]) {
            self.queue_err(e);
        }
    }

    /// Queues the response capsule of slot `i` and frees the slot (its
    /// bytes are copied into the send queue), unless data of it is still queued.
    pub(super) fn respond(&mut self, i: u16, c: Completion) {
        let qid = self.queue.as_ref().map_or(0, |q| q.qid);
        let entries = self.queue.as_ref().map_or(1, |q| q.entries);
        self.sqhd = (self.sqhd + 1) % entries.max(1);
        if qid != 0 {
            self.stats
                .completed_nvme_io
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let cqe = Cqe {
            dw0: c.dw0,
            dw1: c.dw1,
            sqhd: self.sqhd,
            sqid: qid,
            cid: self.slots[i as usize].sqe.cid(),
            status: c.status_field(),
        };
        let mut h = [0u8; MAX_HEADER_WITH_PAD];
        let n = encode_header(
            &mut h,
            PduType::CapsuleResp,
            0,
            capsule_resp_psh(&cqe),
            0,
            self.send_framing,
        );
        if let Err(e) = self.sq.push(&h[..n]) {
            self.queue_err(e);
        }
        if self.slots[i as usize].state != SlotState::Sending {
            self.release(i);
        }
    }

    /// Queues `len` bytes of slot `i`'s buffer as one C2HData PDU, then the
    /// response: folded into the PDU's SUCCESS flag when the transport
    /// allows it and the completion carries nothing else.
    pub(super) fn send_data(&mut self, i: u16, len: usize, c: Completion) {
        let success = self.opts.c2h_success && c.is_success() && c.dw0 == 0 && c.dw1 == 0;
        let mut fl = flags::LAST_PDU;
        if success {
            fl |= flags::SUCCESS;
        }
        let s = &self.slots[i as usize];
        let psh = data_psh(&DataHeader {
            cccid: s.sqe.cid(),
            ttag: 0,
            datao: 0,
            datal: len as u32,
        });
        let mut h = [0u8; MAX_HEADER_WITH_PAD];
        let n = encode_header(&mut h, PduType::C2HData, fl, &psh, len, self.send_framing);
        let ddgst = self
            .send_framing
            .ddgst
            .then(|| digest::data_digest(s.data(len)));
        let r = self
            .sq
            .push(&h[..n])
            .and_then(|_| self.sq.push_payload(i as u64, 0, len))
            .and_then(|_| ddgst.map_or(Ok(()), |d| self.sq.push(&d)));
        if let Err(e) = r {
            self.queue_err(e);
            return;
        }
        self.slots[i as usize].state = SlotState::Sending;
        self.sending.push(i);
        if success {
            let entries = self.queue.as_ref().map_or(1, |q| q.entries);
            self.sqhd = (self.sqhd + 1) % entries.max(1);
            if self.queue.as_ref().is_some_and(|q| q.qid != 0) {
                self.stats
                    .completed_nvme_io
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        } else {
            self.respond(i, c);
        }
    }
}
