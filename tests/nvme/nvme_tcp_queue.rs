//! One NVMe/TCP queue's connection against a scripted controller on
//! 127.0.0.1: ICReq/ICResp negotiation, commands with in-capsule data,
//! R2T answered with H2CData at MAXH2CDATA, C2HData arriving in pieces,
//! digests, and a misbehaving controller failing the connection by name.

use crate::nvme_tcp_common;

use nvme_tcp_common::{spawn, Peer, PeerOpts};
use spdk_io::nvme::spec::{Cqe, Sqe};
use spdk_io::nvme::tcp::decode::Psh;
use spdk_io::nvme::tcp::pdu::{fes, flags, PduType, PduTypeSet};
use spdk_io::nvme::tcp::{CommandBuffers, TcpError, TcpQueue, TcpQueueOpts};
use std::time::{Duration, Instant};

/// Test buffers: one or more segments per command identifier.
#[derive(Default)]
struct Bufs(Vec<Vec<Vec<u8>>>);

impl Bufs {
    fn with(cid: u16, segs: Vec<Vec<u8>>) -> Self {
        let mut b = Bufs(vec![Vec::new(); 64]);
        b.0[cid as usize] = segs;
        b
    }
}

impl CommandBuffers for Bufs {
    fn segment(&self, cid: u16, i: usize) -> Option<&[u8]> {
        self.0.get(cid as usize)?.get(i).map(Vec::as_slice)
    }
    fn segment_mut(&mut self, cid: u16, i: usize) -> Option<&mut [u8]> {
        self.0
            .get_mut(cid as usize)?
            .get_mut(i)
            .map(Vec::as_mut_slice)
    }
}

fn digests_on() -> TcpQueueOpts {
    TcpQueueOpts {
        header_digest: true,
        data_digest: true,
        ..TcpQueueOpts::default()
    }
}

/// Polls until `n` completions arrived (10 s at most).
fn wait(q: &mut TcpQueue, bufs: &mut Bufs, n: usize) -> Result<Vec<Cqe>, TcpError> {
    let mut got = Vec::new();
    let start = Instant::now();
    while got.len() < n {
        q.poll(bufs, |c| got.push(c))?;
        assert!(start.elapsed() < Duration::from_secs(10), "no completion");
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(got)
}

/// Submits command `cid` with opcode `opc` (Write 0x01, Read 0x02) over
/// `len` bytes of its buffers and waits for its completion.
fn one(q: &mut TcpQueue, bufs: &mut Bufs, opc: u8, cid: u16, len: u32) -> Cqe {
    q.submit(cmd(opc, cid), len, opc == 0x01, bufs).unwrap();
    let mut c = wait(q, bufs, 1).unwrap();
    assert_eq!(c.len(), 1, "one command, one completion");
    c.remove(0)
}

/// On the controller's side: reads the H2CData PDUs that answer R2T
/// `ttag` of command `cid` (`len` bytes at `off`), in order, appending
/// their data to `got`; returns the largest PDU's data length.
fn read_r2t_data(p: &mut Peer, cid: u16, ttag: u16, off: u32, len: u32, got: &mut Vec<u8>) -> u32 {
    let mut left = len;
    let mut largest = 0;
    while left > 0 {
        let (d, f, bytes) = p.read_h2c();
        assert_eq!((d.cccid, d.ttag), (cid, ttag));
        assert_eq!(d.datao, off + len - left);
        assert!(d.datal <= left, "no more data than the R2T asked for");
        left -= d.datal;
        largest = largest.max(d.datal);
        assert_eq!(f & flags::LAST_PDU != 0, left == 0);
        got.extend_from_slice(&bytes);
    }
    largest
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn cmd(opc: u8, cid: u16) -> Sqe {
    let mut s = Sqe::new(opc, 1);
    s.set_cid(cid);
    s
}

#[test]
fn icreq_negotiates_the_digests_the_controller_grants() {
    let (addr, peer) = spawn(
        PeerOpts {
            grant_ddgst: false,
            maxh2cdata: 16384,
            ..PeerOpts::default()
        },
        |_| (),
    );
    let q = TcpQueue::connect(addr, 32, &digests_on()).unwrap();
    assert_eq!(q.digests(), (true, false));
    assert_eq!(q.maxh2cdata(), 16384);
    drop(q);
    peer.join().unwrap();
}

#[test]
fn a_write_within_the_in_capsule_limit_travels_in_the_capsule() {
    let data = pattern(4096, 1);
    let want = data.clone();
    let (addr, peer) = spawn(PeerOpts::default(), move |p| {
        let (sqe, got) = p.read_cmd();
        let b = spdk_io::nvme::spec::as_bytes(&sqe);
        assert_eq!(b[39], 0x01, "SGL: data block, offset (in-capsule)");
        assert_eq!(got, want);
        p.send_resp(sqe.cid(), 0, 0);
    });
    let mut q = TcpQueue::connect(addr, 32, &digests_on()).unwrap();
    q.set_in_capsule_max(8192);
    let mut bufs = Bufs::with(5, vec![data[..1000].to_vec(), data[1000..].to_vec()]);
    let c = one(&mut q, &mut bufs, 0x01, 5, 4096);
    assert_eq!((c.cid, c.status), (5, 0));
    drop(q);
    peer.join().unwrap();
}

#[test]
fn a_write_beyond_the_in_capsule_limit_is_sent_on_r2t_in_maxh2cdata_pieces() {
    let data = pattern(20000, 2);
    let want = data.clone();
    let (addr, peer) = spawn(PeerOpts::default(), move |p| {
        let (sqe, inline) = p.read_cmd();
        assert!(inline.is_empty());
        assert_eq!(
            spdk_io::nvme::spec::as_bytes(&sqe)[39],
            0x5a,
            "transport SGL"
        );
        let mut got = Vec::new();
        // Two R2Ts, as a controller with little buffer space would send.
        for (ttag, off, len) in [(7u16, 0u32, 12000u32), (8, 12000, 8000)] {
            p.send_r2t(sqe.cid(), ttag, off, len);
            let largest = read_r2t_data(p, sqe.cid(), ttag, off, len, &mut got);
            assert!(largest <= 8192, "MAXH2CDATA respected");
            assert_eq!(got.len(), (off + len) as usize);
        }
        assert!(got == want);
        p.send_resp(sqe.cid(), 0, 0);
    });
    let mut q = TcpQueue::connect(addr, 32, &digests_on()).unwrap();
    q.set_in_capsule_max(4096);
    let mut bufs = Bufs::with(9, vec![data]);
    let c = one(&mut q, &mut bufs, 0x01, 9, 20000);
    assert_eq!((c.cid, c.status), (9, 0));
    drop(q);
    peer.join().unwrap();
}

#[test]
fn several_r2ts_outstanding_at_once_are_each_answered_with_their_data() {
    let data = pattern(48000, 3);
    let want = data.clone();
    let (addr, peer) = spawn(PeerOpts::default(), move |p| {
        assert_eq!(p.maxr2t, 3, "ICReq MAXR2T: four R2Ts (0's based)");
        let (sqe, _) = p.read_cmd();
        // Four R2Ts before reading any data, as a controller with buffer
        // space for the whole write asks for it.
        let pieces = [
            (1u16, 0u32, 16000u32),
            (2, 16000, 8000),
            (3, 24000, 20000),
            (4, 44000, 4000),
        ];
        for (ttag, off, len) in pieces {
            p.send_r2t(sqe.cid(), ttag, off, len);
        }
        let mut got = Vec::new();
        for (ttag, off, len) in pieces {
            read_r2t_data(p, sqe.cid(), ttag, off, len, &mut got);
        }
        assert!(got == want);
        p.send_resp(sqe.cid(), 0, 0);
    });
    let opts = TcpQueueOpts {
        max_r2t: 4,
        ..digests_on()
    };
    let mut q = TcpQueue::connect(addr, 32, &opts).unwrap();
    q.set_in_capsule_max(4096);
    let mut bufs = Bufs::with(3, vec![data[..30000].to_vec(), data[30000..].to_vec()]);
    let c = one(&mut q, &mut bufs, 0x01, 3, 48000);
    assert_eq!((c.cid, c.status), (3, 0));
    drop(q);
    peer.join().unwrap();
}

#[test]
fn read_data_arriving_in_pieces_and_several_pdus_lands_in_the_buffer() {
    let data = pattern(10000, 3);
    let d2 = data.clone();
    let (addr, peer) = spawn(PeerOpts::default(), move |p| {
        let (sqe, _) = p.read_cmd();
        assert_eq!(spdk_io::nvme::spec::as_bytes(&sqe)[39], 0x5a);
        let cid = sqe.cid();
        let first = p.pdu(PduType::C2HData, 0, &data_psh(cid, 0, 6000), &d2[..6000]);
        let last = p.pdu(
            PduType::C2HData,
            flags::LAST_PDU | flags::SUCCESS,
            &data_psh(cid, 6000, 4000),
            &d2[6000..],
        );
        // Dribbled out in odd-sized pieces across both PDUs.
        let all = [first, last].concat();
        for piece in all.chunks(777) {
            p.send_raw(piece);
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let mut q = TcpQueue::connect(addr, 32, &digests_on()).unwrap();
    let mut bufs = Bufs::with(3, vec![vec![0; 4096], vec![0; 5904]]);
    let c = one(&mut q, &mut bufs, 0x02, 3, 10000);
    assert_eq!(
        (c.cid, c.status),
        (3, 0),
        "SUCCESS completes without a CapsuleResp"
    );
    assert!(bufs.0[3].concat() == data);
    drop(q);
    peer.join().unwrap();
}

#[test]
fn large_read_data_is_received_straight_into_the_buffer_across_its_segments() {
    let data = pattern(200_000, 4);
    let d2 = data.clone();
    let (addr, peer) = spawn(PeerOpts::default(), move |p| {
        let (sqe, _) = p.read_cmd();
        let cid = sqe.cid();
        let pdu = p.pdu(
            PduType::C2HData,
            flags::LAST_PDU | flags::SUCCESS,
            &data_psh(cid, 0, 200_000),
            &d2,
        );
        // The header and a little data, then the rest in pauses: the host
        // finds its receive buffer empty in the middle of the payload.
        for piece in [
            &pdu[..100],
            &pdu[100..70_000],
            &pdu[70_000..150_001],
            &pdu[150_001..],
        ] {
            p.send_raw(piece);
            std::thread::sleep(Duration::from_millis(30));
        }
    });
    let mut q = TcpQueue::connect(addr, 32, &digests_on()).unwrap();
    let mut bufs = Bufs::with(6, vec![vec![0; 65536], vec![0; 100_000], vec![0; 34_464]]);
    let c = one(&mut q, &mut bufs, 0x02, 6, 200_000);
    assert_eq!((c.cid, c.status), (6, 0), "data digest matched");
    assert!(bufs.0[6].concat() == data);
    assert!(
        q.direct_bytes() > 0,
        "some of the payload skipped the receive buffer"
    );
    drop(q);
    peer.join().unwrap();
}

#[test]
fn after_a_large_read_the_next_payload_skips_the_receive_buffer_whole() {
    let (a, b) = (pattern(200_000, 5), pattern(200_000, 6));
    let (a2, b2) = (a.clone(), b.clone());
    let (addr, peer) = spawn(PeerOpts::default(), move |p| {
        // Each PDU in one write, sent only once its command has arrived:
        // the second finds the host's receive buffer empty, just after a
        // large C2HData.
        for data in [&a2, &b2] {
            let (sqe, _) = p.read_cmd();
            let cid = sqe.cid();
            let pdu = p.pdu(
                PduType::C2HData,
                flags::LAST_PDU | flags::SUCCESS,
                &data_psh(cid, 0, 200_000),
                data,
            );
            p.send_raw(&pdu);
        }
    });
    let mut q = TcpQueue::connect(addr, 32, &digests_on()).unwrap();
    let mut bufs = Bufs::with(1, vec![vec![0; 200_000]]);
    bufs.0[2] = vec![vec![0; 200_000]];
    assert_eq!(one(&mut q, &mut bufs, 0x02, 1, 200_000).status, 0);
    let before = q.direct_bytes();
    let c = one(&mut q, &mut bufs, 0x02, 2, 200_000);
    assert_eq!((c.cid, c.status), (2, 0), "data digest matched");
    assert!(bufs.0[1][0] == a && bufs.0[2][0] == b);
    // The payload goes straight into the buffer from its first byte; only
    // a tail shorter than 16 KiB that arrives after a pause may come
    // through the receive buffer, with whatever header follows it. Without
    // the one-header read, the 64 KiB receive buffer would take the
    // payload's start as well.
    let copied = 200_000 - (q.direct_bytes() - before);
    assert!(
        copied < 16 * 1024,
        "only the second PDU's header and at most a short tail went through \
         the receive buffer, not {copied} bytes"
    );
    drop(q);
    peer.join().unwrap();
}

fn data_psh(cid: u16, datao: u32, datal: u32) -> [u8; 16] {
    spdk_io::nvme::tcp::encode::data_psh(&spdk_io::nvme::tcp::pdu::DataHeader {
        cccid: cid,
        ttag: 0,
        datao,
        datal,
    })
}

#[test]
fn a_data_digest_mismatch_fails_the_command_with_a_transport_error() {
    let (addr, peer) = spawn(PeerOpts::default(), move |p| {
        let (sqe, _) = p.read_cmd();
        let mut b = p.pdu(
            PduType::C2HData,
            0,
            &data_psh(sqe.cid(), 0, 512),
            &[0xab; 512],
        );
        let n = b.len();
        b[n - 1] ^= 0xff; // corrupt the data digest
        p.send_raw(&b);
        p.send_resp(sqe.cid(), 0, 0);
    });
    let mut q = TcpQueue::connect(addr, 32, &digests_on()).unwrap();
    let mut bufs = Bufs::with(1, vec![vec![0; 512]]);
    let c = one(&mut q, &mut bufs, 0x02, 1, 512);
    assert_eq!(c.status >> 1, 0x22, "Transient Transport Error");
    drop(q);
    peer.join().unwrap();
}

#[test]
fn c2h_data_for_a_command_not_in_flight_fails_the_connection_naming_it() {
    let (addr, peer) = spawn(PeerOpts::default(), move |p| {
        let (sqe, _) = p.read_cmd();
        p.send_c2h(
            sqe.cid() + 1,
            0,
            &[0; 512],
            flags::LAST_PDU | flags::SUCCESS,
        );
    });
    let mut q = TcpQueue::connect(addr, 32, &TcpQueueOpts::default()).unwrap();
    let mut bufs = Bufs::with(4, vec![vec![0; 512]]);
    q.submit(cmd(0x02, 4), 512, false, &bufs).unwrap();
    let e = wait(&mut q, &mut bufs, 1).unwrap_err();
    assert!(
        e.to_string()
            .contains("command 5, which is not a read in flight"),
        "{e}"
    );
    assert!(q.is_failed());
    assert!(matches!(
        q.submit(cmd(0x02, 6), 512, false, &bufs),
        Err(TcpError::Failed(_))
    ));
    drop(q);
    peer.join().unwrap();
}

#[test]
fn a_malformed_header_is_answered_with_an_h2c_term_req_naming_the_field() {
    let (addr, peer) = spawn(
        PeerOpts {
            grant_hdgst: false,
            grant_ddgst: false,
            ..PeerOpts::default()
        },
        move |p| {
            let (sqe, _) = p.read_cmd();
            // A CapsuleResp whose HLEN says 25.
            let mut b = p.pdu(PduType::CapsuleResp, 0, &[0u8; 16], &[]);
            b[2] = 25;
            let _ = sqe;
            p.send_raw(&b);
            let (h, data) = p.read_pdu_with(PduTypeSet::of(&[PduType::H2CTermReq]));
            let Psh::TermReq(t) = h.psh else {
                panic!("{h:?}")
            };
            (t.fes, t.fei, data.len())
        },
    );
    let mut q = TcpQueue::connect(addr, 32, &TcpQueueOpts::default()).unwrap();
    let mut bufs = Bufs::with(2, vec![vec![0; 512]]);
    q.submit(cmd(0x02, 2), 512, false, &bufs).unwrap();
    let e = wait(&mut q, &mut bufs, 1).unwrap_err();
    assert!(
        e.to_string().contains("CapsuleResp PDU: invalid HLEN"),
        "{e}"
    );
    drop(q);
    let (f, fei, _) = peer.join().unwrap();
    assert_eq!(
        (f, fei),
        (fes::INVALID_HEADER_FIELD, 2),
        "FEI: the offset of HLEN"
    );
}

#[test]
fn a_controller_that_closes_fails_the_queue() {
    let (addr, peer) = spawn(PeerOpts::default(), move |p| {
        let _ = p.read_cmd();
        p.hang_up = true;
    });
    let mut q = TcpQueue::connect(addr, 32, &TcpQueueOpts::default()).unwrap();
    let mut bufs = Bufs::with(2, vec![vec![0; 512]]);
    q.submit(cmd(0x02, 2), 512, false, &bufs).unwrap();
    q.flush(&bufs).unwrap();
    peer.join().unwrap();
    let e = wait(&mut q, &mut bufs, 1).unwrap_err();
    assert!(matches!(e, TcpError::Sock(_)), "{e}");
}
