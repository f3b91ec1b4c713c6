//! Hostile hosts against the NVMe-oF target on 127.0.0.1: garbage, a
//! wrong PDU for the state, a bad header length, a PDU announcing
//! gigabytes, H2C data outside the R2T, digests that do not match. Each
//! offender's connection is closed with a C2HTermReq naming the error
//! (a data digest error fails only its command) and a well-behaved host's
//! I/O still completes afterwards. Last, a fuzzer: thousands of random and
//! corrupted PDUs in every connection state, the target never panics nor
//! hangs and goes on serving the good host.

use crate::nvmf_common;

use nvmf_common::fuzz::{attack, drive, Rng, STATES};
use nvmf_common::raw::*;
use nvmf_common::RawHost;
use spdk_io::nvme::spec::Sqe;
use spdk_io::nvme::tcp::fabrics::set_sgl;
use spdk_io::nvme::tcp::pdu::{fes, flags, PduType};

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
    h.send(&h2c(7, 3, 0, &[0u8; 512]));
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
    h.send(&h2c_with_flags(5, ttag, 0, &[0u8; 8192], 0));
    expect_term(&mut h, fes::DATA_TRANSFER_OUT_OF_RANGE);
    b.still_served(6);
}

#[test]
fn in_capsule_data_under_a_wrong_sgl_ends_the_connection() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-icd", "NvmfHostileIcd");
    let mut w = Sqe::new(0x01, 1);
    // 512 bytes in the capsule, the SGL says 4096: PLEN is the bad field.
    set_sgl(&mut w, 4096, true);
    let mut h = raw_admin(b.t.addr, b.nqn, 0);
    h.send(&capsule(&w, &[0; 512]));
    assert_eq!(
        expect_term(&mut h, fes::INVALID_HEADER_FIELD),
        4,
        "FEI: PLEN"
    );
    // A transport SGL over in-capsule data: the SGL is unsupported.
    set_sgl(&mut w, 512, false);
    let mut h = raw_admin(b.t.addr, b.nqn, 0);
    h.send(&capsule(&w, &[0; 512]));
    assert_eq!(
        expect_term(&mut h, fes::UNSUPPORTED_PARAMETER),
        32,
        "FEI: SGL"
    );
    b.still_served(8);
}

/// An admin queue with a Set Features whose 4 KiB of data the target
/// asked for with an R2T: the raw host and the R2T's TTAG.
fn awaiting_h2c(b: &Bench) -> (RawHost, u16) {
    let mut h = raw_admin(b.t.addr, b.nqn, 0);
    let mut sqe = Sqe::new(0x09, 0);
    sqe.set_cid(5);
    sqe.cdw10 = 0x0b;
    set_sgl(&mut sqe, 4096, false);
    h.send(&capsule(&sqe, &[]));
    let r2t = h.recv_pdu().expect("R2T");
    assert_eq!(r2t[0], PduType::R2T as u8);
    (h, u16::from_le_bytes([r2t[10], r2t[11]]))
}

#[test]
fn h2c_data_naming_another_command_or_skipping_ahead_ends_the_connection() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-h2c-seq", "NvmfHostileH2cSeq");
    // The R2T's TTAG with another command's CCCID: a sequence error (FEI
    // is reserved for it, as for Data Transfer Out of Range).
    let (mut h, ttag) = awaiting_h2c(&b);
    h.send(&h2c(6, ttag, 0, &[0; 512]));
    assert_eq!(expect_term(&mut h, fes::PDU_SEQUENCE_ERROR), 0, "FEI");
    // Data that skips the R2T's first bytes.
    let (mut h, ttag) = awaiting_h2c(&b);
    h.send(&h2c(5, ttag, 512, &[0; 512]));
    assert_eq!(
        expect_term(&mut h, fes::DATA_TRANSFER_OUT_OF_RANGE),
        0,
        "FEI"
    );
    b.still_served(7);
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

#[test]
fn fuzzed_pdus_in_every_connection_state_never_stop_the_target_serving_others() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-fuzz", "NvmfHostileFuzz");
    let (addr, nqn) = (b.t.addr, b.nqn);
    // Four raw hosts at once, each from its own fixed seed: every
    // connection's bytes are reproducible, only their interleaving is not.
    const WORKERS: u64 = 4;
    const CASES: u32 = 600;
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            std::thread::spawn(move || {
                let mut r = Rng(0x6e76_6d66_0000_0001 + w * 0x9e37_79b9);
                // The controller whose I/O queues this worker fuzzes (its
                // admin queue stays open).
                let (_admin, cntlid) = raw_ctrlr(addr, nqn);
                let start = std::time::Instant::now();
                let mut cases = 0;
                // Bounded by count and by time (a slow machine runs fewer).
                while cases < CASES && start.elapsed() < std::time::Duration::from_secs(60) {
                    let state = STATES[cases as usize % STATES.len()];
                    let (mut h, ctx) = drive(addr, nqn, cntlid, state, &mut r);
                    let units = 1 + r.below(4);
                    assert!(
                        attack(&mut h, &mut r, &ctx, units),
                        "worker {w} case {cases} ({state:?}): the target neither answered nor closed"
                    );
                    cases += 1;
                }
                cases
            })
        })
        .collect();
    // The good host's I/O completes all along (each round bounded by
    // `still_served`'s own timeout, the rounds by the workers' end).
    let mut round = 0;
    loop {
        assert!(b.t.alive(), "a target thread ended");
        b.still_served(1 + round % 500);
        round += 1;
        if workers.iter().all(|w| w.is_finished()) {
            break;
        }
    }
    let cases: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    eprintln!("{cases} fuzzed connections; the good host did {round} rounds of I/O");
    assert!(cases >= 400, "only {cases} cases ran");
    assert!(b.t.alive(), "a target thread ended");
    b.still_served(round % 500 + 1);
}
