//! Hostile hosts against the NVMe-oF target on 127.0.0.1: garbage, a
//! wrong PDU for the state, a bad header length, a PDU announcing
//! gigabytes, H2C data outside the R2T, digests that do not match. Each
//! offender's connection is closed with a C2HTermReq naming the error
//! (a data digest error fails only its command) and a well-behaved host's
//! I/O still completes afterwards.

mod nvmf_common;

use nvmf_common::raw::*;
use nvmf_common::RawHost;
use spdk_io::nvme::spec::Sqe;
use spdk_io::nvme::tcp::encode::{data_psh, encode_header, MAX_HEADER_WITH_PAD};
use spdk_io::nvme::tcp::fabrics::set_sgl;
use spdk_io::nvme::tcp::pdu::{fes, flags, DataHeader, Framing, PduType};

#[test]
fn garbage_bytes_get_a_term_req_and_the_other_host_is_still_served() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-garbage", "NvmfHostileGarbage");
    let mut h = RawHost::connect(b.t.addr);
    h.send(&[0xee; 64]);
    expect_term(&mut h, fes::INVALID_HEADER_FIELD);
    b.still_served(1);
}

#[test]
fn a_command_before_icreq_is_a_pdu_sequence_error() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-seq", "NvmfHostileSeq");
    let mut h = RawHost::connect(b.t.addr);
    h.send(&capsule(&Sqe::new(0x06, 0), &[]));
    expect_term(&mut h, fes::PDU_SEQUENCE_ERROR);
    b.still_served(2);
}

#[test]
fn a_bad_header_length_is_named_by_its_offset() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-hlen", "NvmfHostileHlen");
    let mut h = RawHost::handshake(b.t.addr);
    let mut pdu = capsule(&Sqe::new(0x06, 0), &[]);
    pdu[2] = 40; // HLEN of a CapsuleCmd is 72
    h.send(&pdu);
    assert_eq!(
        expect_term(&mut h, fes::INVALID_HEADER_FIELD),
        2,
        "FEI: HLEN at byte 2"
    );
    b.still_served(3);
}

#[test]
fn a_pdu_announcing_gigabytes_is_refused_without_waiting_for_them() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-huge", "NvmfHostileHuge");
    let mut h = RawHost::handshake(b.t.addr);
    let mut pdu = capsule(&Sqe::new(0x01, 1), &[0; 16]);
    pdu[4..8].copy_from_slice(&0xfff0_0000u32.to_le_bytes());
    h.send(&pdu);
    assert_eq!(
        expect_term(&mut h, fes::INVALID_HEADER_FIELD),
        4,
        "FEI: PLEN at byte 4"
    );
    b.still_served(4);
}

#[test]
fn h2c_data_outside_the_r2t_window_ends_the_connection() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-h2c", "NvmfHostileH2c");
    let nqn = b.nqn;
    let mut h = raw_admin(b.t.addr, nqn, 0);
    // H2CData for a transfer tag no R2T gave out: TTAG is the bad field.
    let psh = data_psh(&DataHeader {
        cccid: 7,
        ttag: 3,
        datao: 0,
        datal: 512,
    });
    let mut hdr = [0u8; MAX_HEADER_WITH_PAD];
    let n = encode_header(
        &mut hdr,
        PduType::H2CData,
        flags::LAST_PDU,
        &psh,
        512,
        Framing::default(),
    );
    let mut pdu = hdr[..n].to_vec();
    pdu.extend_from_slice(&[0u8; 512]);
    h.send(&pdu);
    assert_eq!(
        expect_term(&mut h, fes::INVALID_HEADER_FIELD),
        10,
        "FEI: TTAG at byte 10"
    );
    b.still_served(5);
}

#[test]
fn h2c_data_past_the_r2t_length_is_data_transfer_out_of_range() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-r2t", "NvmfHostileR2t");
    let nqn = b.nqn;
    let mut h = raw_admin(b.t.addr, nqn, 0);
    // An admin command with host-to-controller data by transport SGL
    // (Set Features, opcode 09h): the target asks for it with an R2T.
    let mut sqe = Sqe::new(0x09, 0);
    sqe.set_cid(5);
    sqe.cdw10 = 0x0b;
    set_sgl(&mut sqe, 4096, false);
    h.send(&capsule(&sqe, &[]));
    let r2t = h.recv_pdu().expect("R2T");
    assert_eq!(r2t[0], PduType::R2T as u8);
    let ttag = u16::from_le_bytes([r2t[10], r2t[11]]);
    let r2tl = u32::from_le_bytes([r2t[16], r2t[17], r2t[18], r2t[19]]);
    assert_eq!(r2tl, 4096);
    let psh = data_psh(&DataHeader {
        cccid: 5,
        ttag,
        datao: 0,
        datal: 8192,
    });
    let mut hdr = [0u8; MAX_HEADER_WITH_PAD];
    let n = encode_header(
        &mut hdr,
        PduType::H2CData,
        0,
        &psh,
        8192,
        Framing::default(),
    );
    let mut pdu = hdr[..n].to_vec();
    pdu.extend_from_slice(&[0u8; 8192]);
    h.send(&pdu);
    expect_term(&mut h, fes::DATA_TRANSFER_OUT_OF_RANGE);
    b.still_served(6);
}

#[test]
fn a_header_digest_that_does_not_match_is_a_header_digest_error() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-hdgst", "NvmfHostileHdgst");
    let mut h = handshake_digests(b.t.addr);
    h.send(&connect_with_digests(true, false));
    expect_term(&mut h, fes::HDGST_ERROR);
    b.still_served(13);
}

#[test]
fn a_data_digest_that_does_not_match_fails_the_command_with_a_transient_transport_error() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-ddgst", "NvmfHostileDdgst");
    let mut h = handshake_digests(b.t.addr);
    h.send(&connect_with_digests(false, true));
    let r = h.recv_pdu().expect("a response capsule");
    assert_eq!(r[0], PduType::CapsuleResp as u8);
    assert_eq!(
        r[1] & flags::HDGSTF,
        flags::HDGSTF,
        "with its header digest"
    );
    let status = u16::from_le_bytes([r[22], r[23]]) >> 1;
    assert_eq!(status & 0xff, 0x22, "Transient Transport Error");
    // The connection stays: a good Connect (to an unknown NQN) is answered.
    h.send(&connect_with_digests(false, false));
    let r = h.recv_pdu().expect("a second response");
    assert_eq!(r[0], PduType::CapsuleResp as u8);
    b.still_served(14);
}
