//! Read / Write through PRPs, range checks, phase tags, DMA faults.

use crate::env::DmaBuf;
use crate::nvme::emu::{nvm_opc, EmuController, Sqe, Status};

use super::host::{pattern, Host};

fn host(lba: u32, blocks: u64) -> Host {
    let e = EmuController::builder()
        .mdts(5)
        .namespace(lba, blocks)
        .build()
        .unwrap();
    let mut h = Host::new(e);
    h.create_io_queue(1, 16);
    h
}

#[test]
fn write_then_read_back_through_a_prp_list_and_an_unaligned_prp1() {
    let mut h = host(512, 4096);
    // 5 pages of data starting 512 bytes into a page: PRP1 covers 3.5 KiB,
    // the rest goes through a PRP list of 5 entries.
    let len = 5 * 4096;
    let mut data = DmaBuf::alloc_zeroed(6 * 4096, 4096).unwrap();
    pattern(&mut data[512..512 + len], 7);
    let mut list = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    for i in 0..5 {
        list[i * 8..i * 8 + 8].copy_from_slice(&data.iova_at((i + 1) * 4096).to_le_bytes());
    }
    let nlb = (len / 512) as u32;
    let c = h.rw(
        1,
        nvm_opc::WRITE,
        1,
        100,
        nlb,
        (data.iova_at(512), list.iova()),
    );
    assert_eq!(c.status, Status::SUCCESS);
    assert_eq!((c.sqid, c.sq_head), (1, 1));

    let mut on_media = vec![0u8; len];
    h.emu.handle().read_blocks(1, 100, &mut on_media).unwrap();
    assert_eq!(on_media[..], data[512..512 + len]);

    let back = DmaBuf::alloc_zeroed(6 * 4096, 4096).unwrap();
    let mut list2 = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    for i in 0..5 {
        list2[i * 8..i * 8 + 8].copy_from_slice(&back.iova_at((i + 1) * 4096).to_le_bytes());
    }
    let c = h.rw(
        1,
        nvm_opc::READ,
        1,
        100,
        nlb,
        (back.iova_at(512), list2.iova()),
    );
    assert_eq!(c.status, Status::SUCCESS);
    assert_eq!(back[512..512 + len], data[512..512 + len]);
}

#[test]
fn two_page_transfer_uses_prp2_as_a_page() {
    let mut h = host(4096, 64);
    let mut data = DmaBuf::alloc_zeroed(2 * 4096, 4096).unwrap();
    pattern(&mut data, 3);
    let c = h.rw(
        1,
        nvm_opc::WRITE,
        1,
        10,
        2,
        (data.iova(), data.iova_at(4096)),
    );
    assert_eq!(c.status, Status::SUCCESS);
    let mut media = vec![0u8; 8192];
    h.emu.handle().read_blocks(1, 10, &mut media).unwrap();
    assert_eq!(media[..], data[..]);
}

#[test]
fn out_of_range_lba_is_lba_out_of_range() {
    let mut h = host(512, 1024);
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let c = h.rw(1, nvm_opc::READ, 1, 1020, 8, (buf.iova(), 0));
    assert_eq!(c.status, Status::LBA_OUT_OF_RANGE);
    let c = h.rw(1, nvm_opc::READ, 1, u64::MAX - 2, 8, (buf.iova(), 0));
    assert_eq!(c.status, Status::LBA_OUT_OF_RANGE, "no overflow");
}

#[test]
fn transfer_above_mdts_is_invalid_field() {
    let mut h = host(512, 4096);
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    // MDTS 5 = 128 KiB = 256 blocks of 512 B.
    let c = h.rw(1, nvm_opc::READ, 1, 0, 257, (buf.iova(), 0));
    assert_eq!(c.status, Status::INVALID_FIELD);
}

#[test]
fn unknown_namespace_is_invalid_namespace() {
    let mut h = host(512, 64);
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let c = h.rw(1, nvm_opc::READ, 2, 0, 1, (buf.iova(), 0));
    assert_eq!(c.status, Status::INVALID_NAMESPACE_OR_FORMAT);
}

#[test]
fn address_outside_dma_memory_is_data_transfer_error() {
    let mut h = host(512, 64);
    let ordinary = vec![0u8; 4096];
    let c = h.rw(1, nvm_opc::READ, 1, 0, 1, (ordinary.as_ptr() as u64, 0));
    assert_eq!(c.status, Status::DATA_TRANSFER_ERROR);
    assert!(h.emu.stats().dma_faults >= 1);
    // The controller keeps working.
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    assert_eq!(
        h.rw(1, nvm_opc::READ, 1, 0, 1, (buf.iova(), 0)).status,
        Status::SUCCESS
    );
}

#[test]
fn completion_phase_flips_after_wrap() {
    let mut h = host(512, 64);
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let mut phases = Vec::new();
    for i in 0..40u64 {
        let c = h.rw(1, nvm_opc::READ, 1, i % 8, 1, (buf.iova(), 0));
        assert_eq!(c.status, Status::SUCCESS);
        assert_eq!(c.sq_head, ((i + 1) % 16) as u16, "SQ head reported");
        phases.push(c.phase);
    }
    assert!(phases[..16].iter().all(|p| *p), "first pass: phase 1");
    assert!(phases[16..32].iter().all(|p| !*p), "second pass: phase 0");
    assert!(phases[32..].iter().all(|p| *p), "third pass: phase 1 again");
}

#[test]
fn flush_and_unknown_opcode() {
    let mut h = host(512, 64);
    let mut f = Sqe::new(nvm_opc::FLUSH, 0);
    f.nsid = 1;
    assert_eq!(h.cmd(1, f).status, Status::SUCCESS);
    let mut bad = Sqe::new(0x7f, 0);
    bad.nsid = 1;
    assert_eq!(h.cmd(1, bad).status, Status::INVALID_OPCODE);
    assert_eq!(h.cmd(0, Sqe::new(0x7f, 0)).status, Status::INVALID_OPCODE);
}

#[test]
fn prp_list_chains_to_a_second_list_page() {
    let mut h = host(512, 4096);
    // PRP1 = page 0; the list starts in the last two slots of its page: one
    // data entry (page 1), then a pointer to a second list page (pages 2..4).
    let len = 5 * 4096;
    let mut data = DmaBuf::alloc_zeroed(len, 4096).unwrap();
    pattern(&mut data, 21);
    let mut lists = DmaBuf::alloc_zeroed(2 * 4096, 4096).unwrap();
    let tail = 4096 - 16;
    lists[tail..tail + 8].copy_from_slice(&data.iova_at(4096).to_le_bytes());
    let next = lists.iova_at(4096).to_le_bytes();
    lists[tail + 8..tail + 16].copy_from_slice(&next);
    for i in 0..3 {
        let e = data.iova_at((i + 2) * 4096).to_le_bytes();
        lists[4096 + i * 8..4096 + i * 8 + 8].copy_from_slice(&e);
    }
    let c = h.rw(
        1,
        nvm_opc::WRITE,
        1,
        0,
        40,
        (data.iova(), lists.iova_at(tail)),
    );
    assert_eq!(c.status, Status::SUCCESS);
    let mut media = vec![0u8; len];
    h.emu.handle().read_blocks(1, 0, &mut media).unwrap();
    assert_eq!(media[..], data[..]);
}
