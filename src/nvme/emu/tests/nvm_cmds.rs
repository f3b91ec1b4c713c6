//! NVM commands beyond Read/Write: Write Zeroes, Dataset Management, Compare; SGLs.

use crate::env::DmaBuf;
use crate::nvme::emu::{nvm_opc, EmuController, Sqe, Status};

use super::host::{pattern, Host};

fn host_with(sgl: bool) -> Host {
    let e = EmuController::builder()
        .namespace(512, 1024)
        .sgl(sgl)
        .build()
        .unwrap();
    let mut h = Host::new(e);
    h.create_io_queue(1, 16);
    h
}

fn ones(h: &Host, lba: u64, blocks: usize) {
    h.emu
        .handle()
        .write_blocks(1, lba, &vec![0xa5; blocks * 512])
        .unwrap();
}

fn media(h: &Host, lba: u64, blocks: usize) -> Vec<u8> {
    let mut v = vec![0u8; blocks * 512];
    h.emu.handle().read_blocks(1, lba, &mut v).unwrap();
    v
}

#[test]
fn write_zeroes_zeroes_only_its_range() {
    let mut h = host_with(false);
    ones(&h, 0, 32);
    let mut wz = Sqe::new(nvm_opc::WRITE_ZEROES, 0);
    wz.nsid = 1;
    wz.cdw10 = 8;
    wz.cdw12 = 15; // 16 blocks
    assert_eq!(h.cmd(1, wz).status, Status::SUCCESS);
    let m = media(&h, 0, 32);
    assert!(m[..8 * 512].iter().all(|b| *b == 0xa5));
    assert!(m[8 * 512..24 * 512].iter().all(|b| *b == 0));
    assert!(m[24 * 512..].iter().all(|b| *b == 0xa5));
    wz.cdw10 = 1020;
    assert_eq!(h.cmd(1, wz).status, Status::LBA_OUT_OF_RANGE);
}

#[test]
fn deallocated_blocks_read_back_as_zeroes() {
    let mut h = host_with(false);
    ones(&h, 0, 64);
    let mut ranges = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    // Two ranges: 4 blocks at LBA 2, 10 blocks at LBA 40.
    for (i, (nlb, slba)) in [(4u32, 2u64), (10, 40)].iter().enumerate() {
        ranges[i * 16 + 4..i * 16 + 8].copy_from_slice(&nlb.to_le_bytes());
        ranges[i * 16 + 8..i * 16 + 16].copy_from_slice(&slba.to_le_bytes());
    }
    let mut dsm = Sqe::new(nvm_opc::DATASET_MANAGEMENT, 0);
    dsm.nsid = 1;
    dsm.cdw10 = 1; // two ranges
    dsm.cdw11 = 1 << 2; // deallocate
    dsm.prp1 = ranges.iova();
    assert_eq!(h.cmd(1, dsm).status, Status::SUCCESS);
    let back = DmaBuf::alloc_zeroed(64 * 512, 4096).unwrap();
    let mut list = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    for i in 1..8 {
        list[(i - 1) * 8..i * 8].copy_from_slice(&back.iova_at(i * 4096).to_le_bytes());
    }
    let c = h.rw(1, nvm_opc::READ, 1, 0, 64, (back.iova(), list.iova()));
    assert_eq!(c.status, Status::SUCCESS);
    for blk in 0..64 {
        let zero = (2..6).contains(&blk) || (40..50).contains(&blk);
        let b = &back[blk * 512..blk * 512 + 512];
        assert!(
            b.iter().all(|x| *x == if zero { 0 } else { 0xa5 }),
            "block {blk}"
        );
    }
}

#[test]
fn compare_reports_compare_failure_on_mismatch() {
    let mut h = host_with(false);
    let mut data = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    pattern(&mut data, 11);
    h.emu.handle().write_blocks(1, 16, &data).unwrap();
    assert_eq!(
        h.rw(1, nvm_opc::COMPARE, 1, 16, 8, (data.iova(), 0)).status,
        Status::SUCCESS
    );
    data[4000] ^= 1;
    assert_eq!(
        h.rw(1, nvm_opc::COMPARE, 1, 16, 8, (data.iova(), 0)).status,
        Status::COMPARE_FAILURE
    );
}

fn sgl_desc(buf: &mut [u8], at: usize, addr: u64, len: u32, kind: u8) {
    buf[at..at + 8].copy_from_slice(&addr.to_le_bytes());
    buf[at + 8..at + 12].copy_from_slice(&len.to_le_bytes());
    buf[at + 12..at + 15].fill(0);
    buf[at + 15] = kind << 4;
}

fn sgl_rw(h: &mut Host, opcode: u8, slba: u64, nlb: u32, sgl1: [u8; 16]) -> Status {
    let mut s = Sqe::new(opcode, 0);
    s.cdw0 |= 1 << 14; // PSDT = 01b: SGL for data
    s.nsid = 1;
    s.cdw10 = slba as u32;
    s.cdw12 = nlb - 1;
    s.prp1 = u64::from_le_bytes(sgl1[0..8].try_into().unwrap());
    s.prp2 = u64::from_le_bytes(sgl1[8..16].try_into().unwrap());
    h.cmd(1, s).status
}

#[test]
fn sgl_segments_scatter_and_gather() {
    let mut h = host_with(true);
    let (_, id) = h.identify(1, 0);
    assert_eq!(id[536] & 0x3, 1, "SGLS: supported");
    // Write 3 KiB gathered from three 1 KiB pieces listed in a Last Segment.
    let mut data = DmaBuf::alloc_zeroed(3 * 4096, 4096).unwrap();
    pattern(&mut data, 5);
    let mut seg = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    for i in 0..3 {
        sgl_desc(&mut seg, i * 16, data.iova_at(i * 4096 + 100), 1024, 0x0);
    }
    let mut sgl1 = [0u8; 16];
    sgl_desc(&mut sgl1, 0, seg.iova(), 48, 0x3);
    assert_eq!(sgl_rw(&mut h, nvm_opc::WRITE, 4, 6, sgl1), Status::SUCCESS);
    let m = media(&h, 4, 6);
    for i in 0..3 {
        assert_eq!(
            m[i * 1024..(i + 1) * 1024],
            data[i * 4096 + 100..i * 4096 + 1124]
        );
    }
    // Read it back into one data block descriptor in the command.
    let back = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let mut one = [0u8; 16];
    sgl_desc(&mut one, 0, back.iova(), 3072, 0x0);
    assert_eq!(sgl_rw(&mut h, nvm_opc::READ, 4, 6, one), Status::SUCCESS);
    assert_eq!(back[..3072], m[..]);
    // A descriptor shorter than the transfer is a length error.
    sgl_desc(&mut one, 0, back.iova(), 512, 0x0);
    assert_eq!(
        sgl_rw(&mut h, nvm_opc::READ, 4, 6, one),
        Status::DATA_SGL_LENGTH_INVALID
    );
    sgl_desc(&mut one, 0, back.iova(), 3072, 0x7);
    assert_eq!(
        sgl_rw(&mut h, nvm_opc::READ, 4, 6, one),
        Status::SGL_DESCRIPTOR_TYPE_INVALID
    );
}

#[test]
fn sgl_is_refused_when_not_offered() {
    let mut h = host_with(false);
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let mut one = [0u8; 16];
    sgl_desc(&mut one, 0, buf.iova(), 512, 0x0);
    assert_eq!(
        sgl_rw(&mut h, nvm_opc::READ, 0, 1, one),
        Status::INVALID_FIELD
    );
}
