//! Hostile command fields through the real target path (a raw host on
//! 127.0.0.1, the target's TCP transport, its admin and I/O command
//! decoding): NSIDs 0, FFFFFFFFh and unknown, block ranges past the
//! namespace or overflowing, data lengths beyond the SGL or the largest
//! transfer, Get Log Page lengths and offsets, Identify CNS values, fused
//! admin commands, Property Get sizes and offsets. Each
//! gets its NVMe status (SPDK's), the connection stays, and a
//! well-behaved host is served throughout.

use crate::nvmf_common;

use nvmf_common::raw::*;
use nvmf_common::RawHost;
use spdk_io::nvme::spec::{NvmOpcode, Sqe};
use spdk_io::nvme::tcp::fabrics::set_sgl;
use spdk_io::nvme::tcp::pdu::{flags, PduType};

/// Generic statuses (SCT 0).
const SUCCESS: u16 = 0x00;
const INVALID_OPCODE: u16 = 0x01;
const INVALID_FIELD: u16 = 0x02;
const INVALID_NAMESPACE: u16 = 0x0b;
const DATA_SGL_LENGTH_INVALID: u16 = 0x0f;
const LBA_OUT_OF_RANGE: u16 = 0x80;
/// Command specific (SCT 1): Invalid Log Page.
const INVALID_LOG_PAGE: u16 = 0x109;
/// Command specific (SCT 1): Fabrics Invalid Parameters.
const INVALID_PARAMETERS: u16 = 0x182;

/// Sends `sqe` (with in-capsule `data`) and returns its status as
/// SCT << 8 | SC and the data bytes the target sent before it.
fn status(h: &mut RawHost, mut sqe: Sqe, data: &[u8], cid: u16) -> (u16, usize) {
    sqe.set_cid(cid);
    h.send(&capsule(&sqe, data));
    let mut got = 0;
    for _ in 0..4 {
        let r = h.recv_pdu().expect("an answer");
        match r[0] {
            t if t == PduType::C2HData as u8 => {
                assert_eq!(u16::from_le_bytes([r[8], r[9]]), cid, "C2HData CCCID");
                got += u32::from_le_bytes([r[16], r[17], r[18], r[19]]) as usize;
                if r[1] & flags::SUCCESS != 0 {
                    return (SUCCESS, got);
                }
            }
            t if t == PduType::CapsuleResp as u8 => {
                assert_eq!(u16::from_le_bytes([r[20], r[21]]), cid, "CQE CID");
                return ((u16::from_le_bytes([r[22], r[23]]) >> 1) & 0x7ff, got);
            }
            t => panic!("unexpected PDU type {t:#x}"),
        }
    }
    panic!("no response for command {cid}");
}

/// A command whose data (`len` bytes) moves by the transport (C2HData).
fn cmd(opc: u8, nsid: u32, len: u32) -> Sqe {
    let mut s = Sqe::new(opc, nsid);
    set_sgl(&mut s, len, false);
    s
}

fn rw(opc: NvmOpcode, nsid: u32, slba: u64, nlb0: u32, len: u32) -> Sqe {
    let mut s = cmd(opc as u8, nsid, len);
    s.set_slba(slba);
    s.cdw12 = nlb0;
    s
}

#[test]
fn io_commands_with_bad_namespaces_ranges_and_lengths_get_their_status() {
    let mut b = bench("nqn.2016-06.io.spdk-io:c-io", "NvmfCmdIo");
    let (_admin, cntlid) = raw_ctrlr(b.t.addr, b.nqn);
    let mut io = raw_io(b.t.addr, b.nqn, cntlid, 1);
    let read = NvmOpcode::Read;
    // The namespace has 4096 blocks of 512 bytes.
    let cases: [(&str, Sqe, u16); 10] = [
        ("NSID 0", rw(read, 0, 0, 0, 512), INVALID_NAMESPACE),
        (
            "NSID FFFFFFFFh",
            rw(read, u32::MAX, 0, 0, 512),
            INVALID_NAMESPACE,
        ),
        (
            "an NSID not attached",
            rw(read, 3, 0, 0, 512),
            INVALID_NAMESPACE,
        ),
        ("past the end", rw(read, 1, 4095, 1, 1024), LBA_OUT_OF_RANGE),
        (
            "SLBA + NLB overflowing",
            rw(read, 1, u64::MAX, 0xffff, 4096),
            LBA_OUT_OF_RANGE,
        ),
        (
            "more blocks than the SGL",
            rw(read, 1, 0, 15, 4096),
            DATA_SGL_LENGTH_INVALID,
        ),
        (
            "an SGL beyond max_io_size",
            rw(read, 1, 0, 0, 1 << 20),
            DATA_SGL_LENGTH_INVALID,
        ),
        (
            "an SGL of 4 GiB - 1",
            rw(read, 1, 0, 0, u32::MAX),
            DATA_SGL_LENGTH_INVALID,
        ),
        (
            "Write Zeroes past the end",
            rw(NvmOpcode::WriteZeroes, 1, 4000, 0xffff, 0),
            LBA_OUT_OF_RANGE,
        ),
        ("an unknown opcode", cmd(0x7e, 1, 0), INVALID_OPCODE),
    ];
    for (i, (what, sqe, want)) in cases.into_iter().enumerate() {
        let (got, data) = status(&mut io, sqe, &[], 10 + i as u16);
        assert_eq!((got, data), (want, 0), "{what}: status {got:#x}");
    }
    // Dataset Management with a range past the end (in-capsule ranges).
    let mut dsm = Sqe::new(NvmOpcode::DatasetManagement as u8, 1);
    dsm.cdw11 = 1 << 2; // AD
    set_sgl(&mut dsm, 16, true);
    let mut range = [0u8; 16];
    range[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    range[8..16].copy_from_slice(&4000u64.to_le_bytes());
    assert_eq!(status(&mut io, dsm, &range, 30).0, LBA_OUT_OF_RANGE, "DSM");
    // The queue goes on: the last block reads.
    assert_eq!(
        status(&mut io, rw(read, 1, 4095, 0, 512), &[], 31),
        (SUCCESS, 512)
    );
    b.still_served(1);
}

/// Get Log Page of `lid`, `numd` dwords (0's based in the command) at
/// `offset`, into an SGL of `sgl` bytes.
fn get_log_page(lid: u8, numd: u32, offset: u64, sgl: u32) -> Sqe {
    let mut s = cmd(0x02, 0, sgl);
    let n = numd - 1;
    s.cdw10 = lid as u32 | (n & 0xffff) << 16;
    s.cdw11 = n >> 16;
    s.cdw12 = offset as u32;
    s.cdw13 = (offset >> 32) as u32;
    s
}

#[test]
fn get_log_page_lengths_and_offsets_from_the_host_are_checked() {
    let mut b = bench("nqn.2016-06.io.spdk-io:c-log", "NvmfCmdLog");
    let (mut admin, _) = raw_ctrlr(b.t.addr, b.nqn);
    // SMART / Health is 512 bytes.
    let ok = get_log_page(0x02, 128, 0, 512);
    assert_eq!(status(&mut admin, ok, &[], 10), (SUCCESS, 512));
    let cases: [(&str, Sqe, u16); 6] = [
        (
            "NUMD past the SGL",
            get_log_page(0x02, 256, 0, 512),
            INVALID_FIELD,
        ),
        (
            "NUMDU all ones",
            get_log_page(0x02, u32::MAX, 0, 512),
            INVALID_FIELD,
        ),
        (
            "an offset not dword aligned",
            get_log_page(0x02, 1, 2, 512),
            INVALID_FIELD,
        ),
        (
            "an offset past the page",
            get_log_page(0x02, 1, 516, 512),
            INVALID_FIELD,
        ),
        (
            "an offset of 2^64 - 4",
            get_log_page(0x02, 1, u64::MAX - 3, 512),
            INVALID_FIELD,
        ),
        (
            "an unknown log page",
            get_log_page(0x7e, 1, 0, 512),
            INVALID_LOG_PAGE,
        ),
    ];
    for (i, (what, sqe, want)) in cases.into_iter().enumerate() {
        let (got, data) = status(&mut admin, sqe, &[], 11 + i as u16);
        assert_eq!((got, data), (want, 0), "{what}: status {got:#x}");
    }
    // The page's last dword, and the end of the page (zeroes after it).
    let tail = get_log_page(0x02, 1, 508, 512);
    assert_eq!(status(&mut admin, tail, &[], 20), (SUCCESS, 4));
    let end = get_log_page(0x02, 4, 512, 512);
    assert_eq!(status(&mut admin, end, &[], 21), (SUCCESS, 16));
    b.still_served(2);
}

fn identify(cns: u32, nsid: u32, sgl: u32) -> Sqe {
    let mut s = cmd(0x06, nsid, sgl);
    s.cdw10 = cns;
    s
}

#[test]
fn identify_cns_values_and_namespace_ids_from_the_host_are_checked() {
    let mut b = bench("nqn.2016-06.io.spdk-io:c-identify", "NvmfCmdIdentify");
    let (mut admin, _) = raw_ctrlr(b.t.addr, b.nqn);
    let cases: [(&str, Sqe, u16, usize); 9] = [
        ("the controller", identify(1, 0, 4096), SUCCESS, 4096),
        ("namespace 1", identify(0, 1, 4096), SUCCESS, 4096),
        ("NSID 0", identify(0, 0, 4096), INVALID_NAMESPACE, 0),
        (
            "an NSID past NN",
            identify(0, 5, 4096),
            INVALID_NAMESPACE,
            0,
        ),
        (
            "an inactive NSID (zeroes)",
            identify(0, 2, 4096),
            SUCCESS,
            4096,
        ),
        (
            "the active list after FFFFFFFEh",
            identify(2, 0xffff_fffe, 4096),
            INVALID_FIELD,
            0,
        ),
        (
            "descriptors of NSID 0",
            identify(3, 0, 4096),
            INVALID_NAMESPACE,
            0,
        ),
        ("a reserved CNS", identify(0x55, 0, 4096), INVALID_FIELD, 0),
        ("a short buffer", identify(1, 0, 512), SUCCESS, 512),
    ];
    for (i, (what, sqe, want, len)) in cases.into_iter().enumerate() {
        let (got, data) = status(&mut admin, sqe, &[], 10 + i as u16);
        assert_eq!((got, data), (want, len), "{what}: status {got:#x}");
    }
    // A fused admin command (not supported, as in SPDK).
    let mut fused = identify(1, 0, 4096);
    fused.set_fuse(1);
    assert_eq!(
        status(&mut admin, fused, &[], 29),
        (INVALID_FIELD, 0),
        "fused"
    );
    // Property Get with a reserved size and of an unknown property.
    let mut prop = Sqe::new(0x7f, 0x04);
    prop.cdw10 = 5;
    assert_eq!(
        status(&mut admin, prop, &[], 30).0,
        INVALID_PARAMETERS,
        "ATTRIB 5"
    );
    prop.cdw10 = 0;
    prop.cdw11 = 0x30;
    assert_eq!(
        status(&mut admin, prop, &[], 31).0,
        INVALID_PARAMETERS,
        "offset 30h"
    );
    b.still_served(3);
}
