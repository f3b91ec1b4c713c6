//! NVMe/TCP PDU encoding and the strict decoding of what a peer sends:
//! round trips, each malformed field refused by name, and fuzzed headers
//! that never make the parser panic.

use spdk_io::nvme::spec::{Cqe, Sqe};
use spdk_io::nvme::tcp::decode::{decode_header, header_frame_len, Expect, Header, Psh};
use spdk_io::nvme::tcp::encode::*;
use spdk_io::nvme::tcp::pdu::*;
use spdk_io::nvme::tcp::PduError;

const HOST_RUNNING: PduTypeSet = PduTypeSet::of(&[
    PduType::CapsuleResp,
    PduType::C2HData,
    PduType::R2T,
    PduType::C2HTermReq,
]);
const TARGET_RUNNING: PduTypeSet =
    PduTypeSet::of(&[PduType::CapsuleCmd, PduType::H2CData, PduType::H2CTermReq]);

fn expect(allowed: PduTypeSet, framing: Framing) -> Expect {
    Expect {
        allowed,
        state: "after connection setup",
        framing,
        max_data: 1 << 20,
    }
}

fn decode_all(bytes: &[u8], e: &Expect) -> Result<Header, PduError> {
    let n = header_frame_len(bytes, e)?.expect("common header present");
    decode_header(&bytes[..n], e)
}

fn field_of(e: &PduError) -> &'static str {
    match e {
        PduError::InvalidField { field, .. } => field,
        other => panic!("expected an invalid field, got {other}"),
    }
}

/// A C2HData header with `datal` bytes of data (and the digest per `f`).
fn c2h(f: Framing, flags: u8, datal: u32) -> Vec<u8> {
    let mut out = [0u8; MAX_HEADER_WITH_PAD];
    let h = DataHeader {
        cccid: 7,
        ttag: 0,
        datao: 0,
        datal,
    };
    let n = encode_header(
        &mut out,
        PduType::C2HData,
        flags,
        &data_psh(&h),
        datal as usize,
        f,
    );
    out[..n].to_vec()
}

#[test]
fn a_capsule_cmd_with_in_capsule_data_round_trips_with_digests_and_alignment() {
    for framing in [
        Framing::default(),
        Framing {
            hdgst: true,
            ddgst: true,
            pda: 0,
        },
        Framing {
            hdgst: true,
            ddgst: false,
            pda: 31,
        },
        Framing {
            hdgst: false,
            ddgst: true,
            pda: 3,
        },
    ] {
        let mut sqe = Sqe::new(0x01, 1);
        sqe.cdw10 = 0x1234;
        sqe.set_cid(42);
        let mut out = [0u8; MAX_HEADER_WITH_PAD];
        let n = encode_header(
            &mut out,
            PduType::CapsuleCmd,
            0,
            capsule_cmd_psh(&sqe),
            512,
            framing,
        );
        let e = expect(TARGET_RUNNING, framing);
        let h = decode_all(&out[..n], &e).unwrap();
        let Psh::CapsuleCmd(got) = h.psh else {
            panic!("{h:?}")
        };
        assert_eq!((got.cid(), got.cdw10, got.nsid), (42, 0x1234, 1));
        assert_eq!(h.data_len, 512, "{framing:?}");
        assert_eq!(h.ch.pdo as usize % pda_bytes(framing.pda), 0);
        assert_eq!(n + 512 + h.ddgst_len, h.ch.plen as usize);
        assert_eq!(header_frame_len(&out[..n], &e).unwrap().unwrap() + h.pad, n);
    }
}

#[test]
fn an_ic_req_and_ic_resp_round_trip() {
    let req = IcReq {
        pfv: 0,
        hpda: 0,
        dgst: dgst::HDGST_ENABLE,
        maxr2t: 0,
    };
    let b = encode_ic_req(&req);
    let e = expect(PduTypeSet::of(&[PduType::IcReq]), Framing::default());
    assert_eq!(decode_all(&b, &e).unwrap().psh, Psh::IcReq(req));
    let resp = IcResp {
        pfv: 0,
        cpda: 0,
        dgst: 0,
        maxh2cdata: 131072,
    };
    let b = encode_ic_resp(&resp);
    let e = expect(PduTypeSet::of(&[PduType::IcResp]), Framing::default());
    assert_eq!(decode_all(&b, &e).unwrap().psh, Psh::IcResp(resp));
}

#[test]
fn an_ic_resp_with_a_wrong_plen_or_small_maxh2cdata_is_refused_by_name() {
    let e = expect(PduTypeSet::of(&[PduType::IcResp]), Framing::default());
    let mut b = encode_ic_resp(&IcResp {
        maxh2cdata: 8192,
        ..Default::default()
    });
    b[4] = 129;
    assert_eq!(field_of(&decode_all(&b, &e).unwrap_err()), "PLEN");
    let b = encode_ic_resp(&IcResp {
        maxh2cdata: 512,
        ..Default::default()
    });
    let err = decode_all(&b, &e).unwrap_err();
    assert_eq!(field_of(&err), "MAXH2CDATA");
    assert!(err.to_string().contains("ICResp"), "{err}");
    let b = encode_ic_resp(&IcResp {
        cpda: 32,
        maxh2cdata: 8192,
        ..Default::default()
    });
    assert_eq!(field_of(&decode_all(&b, &e).unwrap_err()), "CPDA");
}

#[test]
fn a_pdu_type_not_allowed_in_the_state_is_a_sequence_error() {
    let e = Expect {
        state: "before ICResp",
        ..expect(
            PduTypeSet::of(&[PduType::IcResp, PduType::C2HTermReq]),
            Framing::default(),
        )
    };
    let b = c2h(Framing::default(), 0, 16);
    let err = header_frame_len(&b, &e).unwrap_err();
    assert!(matches!(err, PduError::UnexpectedType { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("C2HData PDU not expected before ICResp"),
        "{err}"
    );
    assert_eq!(err.term_req().unwrap().0, fes::PDU_SEQUENCE_ERROR);
}

#[test]
fn an_unknown_pdu_type_is_refused() {
    let b = [0x08u8, 0, 24, 0, 24, 0, 0, 0];
    let err = header_frame_len(&b, &expect(HOST_RUNNING, Framing::default())).unwrap_err();
    assert_eq!(field_of(&err), "PDU-Type");
    assert_eq!(err.term_req(), Some((fes::INVALID_HEADER_FIELD, 0)));
}

#[test]
fn a_header_digest_mismatch_is_named() {
    let f = Framing {
        hdgst: true,
        ..Default::default()
    };
    let mut b = c2h(f, 0, 16);
    b[10] ^= 1; // TTAG: covered by the digest
    let err = decode_all(&b, &expect(HOST_RUNNING, f)).unwrap_err();
    assert!(
        matches!(err, PduError::HeaderDigest { pdu: "C2HData", .. }),
        "{err}"
    );
}

#[test]
fn a_digest_flag_that_disagrees_with_the_negotiation_is_refused() {
    let b = c2h(
        Framing {
            hdgst: true,
            ..Default::default()
        },
        0,
        16,
    );
    let err = decode_all(&b, &expect(HOST_RUNNING, Framing::default())).unwrap_err();
    // The HLEN check passes; HDGSTF is the field at fault.
    assert_eq!(field_of(&err), "FLAGS");
    let b = c2h(Framing::default(), 0, 16);
    let err = decode_all(
        &b,
        &expect(
            HOST_RUNNING,
            Framing {
                ddgst: true,
                ..Default::default()
            },
        ),
    )
    .unwrap_err();
    assert_eq!(field_of(&err), "FLAGS");
}

#[test]
fn c2h_data_with_a_misaligned_pdo_is_refused() {
    let mut b = c2h(Framing::default(), 0, 16);
    b[3] = 26; // PDO not a multiple of 8 (HPDA 1)
    let e = expect(
        HOST_RUNNING,
        Framing {
            pda: 1,
            ..Default::default()
        },
    );
    assert_eq!(field_of(&decode_all(&b, &e).unwrap_err()), "PDO");
    let mut b = c2h(Framing::default(), 0, 16);
    b[3] = 20; // PDO inside the header
    assert_eq!(
        field_of(&decode_all(&b, &expect(HOST_RUNNING, Framing::default())).unwrap_err()),
        "PDO"
    );
}

#[test]
fn c2h_data_whose_datal_disagrees_with_plen_is_refused() {
    let mut b = c2h(Framing::default(), 0, 16);
    b[16] = 17;
    let err = decode_all(&b, &expect(HOST_RUNNING, Framing::default())).unwrap_err();
    assert_eq!(field_of(&err), "DATAL");
}

#[test]
fn c2h_data_with_success_but_not_last_pdu_is_refused() {
    let b = c2h(Framing::default(), flags::SUCCESS, 16);
    let err = decode_all(&b, &expect(HOST_RUNNING, Framing::default())).unwrap_err();
    assert_eq!(field_of(&err), "FLAGS");
    let b = c2h(Framing::default(), flags::SUCCESS | flags::LAST_PDU, 16);
    assert!(decode_all(&b, &expect(HOST_RUNNING, Framing::default())).is_ok());
}

#[test]
fn data_longer_than_allowed_is_refused_by_plen() {
    let b = c2h(Framing::default(), 0, 4096);
    let e = Expect {
        max_data: 4095,
        ..expect(HOST_RUNNING, Framing::default())
    };
    assert_eq!(field_of(&decode_all(&b, &e).unwrap_err()), "PLEN");
}

#[test]
fn a_capsule_resp_and_an_r2t_decode_and_an_empty_r2t_is_refused() {
    let f = Framing {
        hdgst: true,
        ddgst: true,
        pda: 0,
    };
    let cqe = Cqe {
        dw0: 5,
        dw1: 0,
        sqhd: 3,
        sqid: 1,
        cid: 9,
        status: 0,
    };
    let mut out = [0u8; MAX_HEADER_WITH_PAD];
    let n = encode_header(
        &mut out,
        PduType::CapsuleResp,
        0,
        capsule_resp_psh(&cqe),
        0,
        f,
    );
    assert_eq!(n, CAPSULE_RESP_HLEN + DIGEST_LEN);
    let h = decode_all(&out[..n], &expect(HOST_RUNNING, f)).unwrap();
    assert_eq!(h.psh, Psh::CapsuleResp(cqe));
    let r = R2t {
        cccid: 9,
        ttag: 2,
        r2to: 0,
        r2tl: 8192,
    };
    let n = encode_header(&mut out, PduType::R2T, 0, &r2t_psh(&r), 0, f);
    assert_eq!(
        decode_all(&out[..n], &expect(HOST_RUNNING, f)).unwrap().psh,
        Psh::R2t(r)
    );
    let r0 = R2t { r2tl: 0, ..r };
    let n = encode_header(&mut out, PduType::R2T, 0, &r2t_psh(&r0), 0, f);
    assert_eq!(
        field_of(&decode_all(&out[..n], &expect(HOST_RUNNING, f)).unwrap_err()),
        "R2TL"
    );
}

#[test]
fn a_term_req_carries_its_status_and_the_offending_header() {
    let mut out = [0u8; TERM_REQ_HLEN + TERM_REQ_MAX_DATA];
    let t = TermReq {
        fes: fes::HDGST_ERROR,
        fei: 0,
    };
    let n = encode_term_req(&mut out, false, &t, &[0xaa; 300]);
    assert_eq!(n, TERM_REQ_HLEN + TERM_REQ_MAX_DATA);
    let e = expect(
        HOST_RUNNING,
        Framing {
            hdgst: true,
            ..Default::default()
        },
    );
    let len = header_frame_len(&out[..n], &e).unwrap().unwrap();
    assert_eq!(len, n, "a TermReq is read whole");
    assert_eq!(decode_header(&out[..n], &e).unwrap().psh, Psh::TermReq(t));
}

/// xorshift64*: reproducible pseudo-random bytes without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

#[test]
fn fuzzed_pdu_headers_never_panic_and_never_promise_an_absurd_frame() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let framings = [
        Framing::default(),
        Framing {
            hdgst: true,
            ddgst: true,
            pda: 0,
        },
        Framing {
            hdgst: false,
            ddgst: true,
            pda: 7,
        },
    ];
    let sets = [HOST_RUNNING, TARGET_RUNNING, PduTypeSet(0xffff)];
    // Valid headers of every kind to mutate.
    let mut seeds: Vec<Vec<u8>> = vec![
        encode_ic_req(&IcReq::default()).to_vec(),
        encode_ic_resp(&IcResp {
            maxh2cdata: 8192,
            ..Default::default()
        })
        .to_vec(),
    ];
    for f in framings {
        seeds.push(c2h(f, flags::LAST_PDU, 4096));
        let mut out = [0u8; MAX_HEADER_WITH_PAD];
        let n = encode_header(
            &mut out,
            PduType::CapsuleCmd,
            0,
            capsule_cmd_psh(&Sqe::new(2, 1)),
            64,
            f,
        );
        seeds.push(out[..n].to_vec());
        let n = encode_header(
            &mut out,
            PduType::R2T,
            0,
            &r2t_psh(&R2t {
                r2tl: 1,
                ..Default::default()
            }),
            0,
            f,
        );
        seeds.push(out[..n].to_vec());
    }
    let mut accepted = 0;
    for round in 0..200_000u32 {
        let mut b: Vec<u8> = if round % 2 == 0 {
            let len = (rng.next() % 200) as usize;
            (0..len).map(|_| rng.byte()).collect()
        } else {
            let mut s = seeds[(rng.next() % seeds.len() as u64) as usize].clone();
            for _ in 0..=(rng.next() % 4) {
                if s.is_empty() {
                    break;
                }
                let at = (rng.next() % s.len() as u64) as usize;
                s[at] = rng.byte();
            }
            if rng.next() % 8 == 0 {
                s.truncate((rng.next() % (s.len() as u64 + 1)) as usize);
            }
            s
        };
        if round % 3 == 0 && b.len() > 1 {
            // Mostly-valid type bytes reach the deeper checks more often.
            b[0] = (rng.next() % 10) as u8;
        }
        let f = framings[(rng.next() % 3) as usize];
        let e = Expect {
            allowed: sets[(rng.next() % 3) as usize],
            state: "fuzz",
            framing: f,
            max_data: 1 << 20,
        };
        match header_frame_len(&b, &e) {
            Ok(Some(n)) => {
                assert!(
                    n <= MAX_HEADER_WITH_PAD + TERM_REQ_MAX_DATA,
                    "frame of {n} bytes"
                );
                if b.len() >= n {
                    if let Ok(h) = decode_header(&b[..n], &e) {
                        accepted += 1;
                        assert!(h.rest_len() <= (1 << 20) + 256, "{h:?}");
                        assert_eq!(n + h.rest_len(), h.ch.plen as usize, "{h:?}");
                    }
                }
            }
            Ok(None) => assert!(b.len() < CH_LEN),
            Err(err) => {
                let _ = err.to_string();
                let _ = err.term_req();
            }
        }
    }
    assert!(
        accepted > 100,
        "the fuzzer reached the decoder only {accepted} times"
    );
}
