//! Queue behaviour: a full CQ stalls its SQs, aborting queued commands,
//! SQ deletion with held commands, shared CQs, bad doorbell values, page size.

use std::time::Duration;

use crate::env::DmaBuf;
use crate::nvme::emu::{admin_opc, nvm_opc, CommandMatch, EmuController, Sqe, Status};

use super::host::{wait_for, Host, RawQueue, CC_EN_NVM};

fn host() -> Host {
    Host::new(
        EmuController::builder()
            .namespace(512, 1024)
            .build()
            .unwrap(),
    )
}

fn read(buf: &DmaBuf) -> Sqe {
    let mut s = Sqe::new(nvm_opc::READ, 0);
    s.nsid = 1;
    s.prp1 = buf.iova();
    s
}

#[test]
fn full_cq_stalls_the_sq_and_abort_reaches_a_queued_command() {
    let mut h = host();
    h.create_io_queue_sized(1, 4, 2); // a 2-entry CQ holds one completion
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    // Three commands: the first fills the CQ, the other two wait in the SQ.
    let a = h.push(1, read(&buf));
    let b = h.push(1, read(&buf));
    let c = h.submit(1, read(&buf));
    wait_for("the first Read fetched (the CQ is full now)", || {
        h.emu.stats().io(nvm_opc::READ) == 1
    });
    let mut abort = Sqe::new(admin_opc::ABORT, 0);
    abort.cdw10 = 1 | (c as u32) << 16;
    let ab = h.cmd(0, abort);
    assert_eq!(
        (ab.status, ab.dw0 & 1),
        (Status::SUCCESS, 0),
        "queued command aborted"
    );
    let seen: Vec<_> = (0..3)
        .map(|_| h.wait(1))
        .map(|x| (x.cid, x.status))
        .collect();
    assert_eq!(
        seen,
        vec![
            (a, Status::SUCCESS),
            (b, Status::SUCCESS),
            (c, Status::ABORT_REQUESTED)
        ]
    );
}

#[test]
fn abort_of_an_unknown_command_reports_not_aborted() {
    let mut h = host();
    let mut abort = Sqe::new(admin_opc::ABORT, 0);
    abort.cdw10 = 1 | 77 << 16;
    let c = h.cmd(0, abort);
    assert_eq!((c.status, c.dw0 & 1), (Status::SUCCESS, 1));
}

#[test]
fn deleting_an_sq_completes_its_held_commands_as_aborted() {
    let mut h = host();
    h.create_io_queue(1, 8);
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    h.emu
        .faults()
        .delay_next(CommandMatch::any_io(), Duration::from_secs(60), 1);
    let cid = h.submit(1, read(&buf));
    wait_for("the Read fetched and held", || {
        h.emu.stats().io(nvm_opc::READ) == 1
    });
    let mut del = Sqe::new(admin_opc::DELETE_IO_SQ, 0);
    del.cdw10 = 1;
    assert_eq!(h.cmd(0, del).status, Status::SUCCESS);
    let c = h.wait(1);
    assert_eq!((c.cid, c.status), (cid, Status::ABORTED_SQ_DELETION));
}

#[test]
fn deleting_an_sq_aborts_the_commands_it_has_not_fetched() {
    let mut h = host();
    h.create_io_queue_sized(1, 4, 2); // the CQ holds one completion: the SQ stalls
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let a = h.push(1, read(&buf));
    let b = h.push(1, read(&buf));
    let c = h.submit(1, read(&buf));
    wait_for("the first Read fetched (the CQ is full now)", || {
        h.emu.stats().io(nvm_opc::READ) == 1
    });
    let mut del = Sqe::new(admin_opc::DELETE_IO_SQ, 0);
    del.cdw10 = 1;
    assert_eq!(h.cmd(0, del).status, Status::SUCCESS);
    let seen: Vec<_> = (0..3)
        .map(|_| h.wait(1))
        .map(|x| (x.cid, x.status))
        .collect();
    assert_eq!(
        seen,
        vec![
            (a, Status::SUCCESS),
            (b, Status::ABORTED_SQ_DELETION),
            (c, Status::ABORTED_SQ_DELETION)
        ]
    );
}

#[test]
fn two_sqs_can_share_one_cq() {
    let mut h = host();
    h.create_io_queue(1, 8);
    let mem = RawQueue::new(2, 8);
    let mut sq = Sqe::new(admin_opc::CREATE_IO_SQ, 0);
    sq.prp1 = mem.sq.iova();
    sq.cdw10 = 2 | 7 << 16;
    sq.cdw11 = 1 | 1 << 16; // completes into CQ 1
    assert_eq!(h.cmd(0, sq).status, Status::SUCCESS);
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let mut mem = mem;
    let cid = mem.push(read(&buf), false);
    h.bar.write32(0x1000 + 16, 1);
    let c = h.wait(1);
    assert_eq!((c.sqid, c.cid, c.sq_head), (2, cid, 1));
    let mut del = Sqe::new(admin_opc::DELETE_IO_SQ, 0);
    del.cdw10 = 2;
    assert_eq!(h.cmd(0, del).status, Status::SUCCESS);
}

#[test]
fn doorbell_value_beyond_the_queue_is_ignored_and_reported() {
    let mut h = host();
    h.create_io_queue(1, 8);
    let aer = h.submit(0, Sqe::new(admin_opc::ASYNC_EVENT_REQUEST, 0));
    h.bar.write32(0x1000 + 8, 100);
    let c = h.wait(0);
    assert_eq!((c.cid, c.status), (aer, Status::SUCCESS));
    assert_eq!(c.dw0 & 0x7, 0, "error status event");
    assert_eq!(c.dw0 >> 8 & 0xff, 0x01, "Invalid Doorbell Write Value");
    assert_eq!(c.dw0 >> 16 & 0xff, 0x01, "error information log");
    assert!(h.quiet_for(1, Duration::from_millis(30)), "nothing fetched");
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    assert_eq!(h.cmd(1, read(&buf)).status, Status::SUCCESS);
}

#[test]
fn an_8k_memory_page_size_is_honoured() {
    let e = EmuController::builder()
        .namespace(512, 1024)
        .build()
        .unwrap();
    let mut h = Host::programmed(e, 8);
    // Admin queues must be 8 KiB aligned now.
    let mut admin = RawQueue::new(0, 8);
    admin.sq = DmaBuf::alloc_zeroed(8192, 8192).unwrap();
    admin.cq = DmaBuf::alloc_zeroed(8192, 8192).unwrap();
    h.bar.write64(0x28, admin.sq.iova());
    h.bar.write64(0x30, admin.cq.iova());
    h.admin = admin;
    h.bar.write32(0x14, CC_EN_NVM | 1 << 7);
    wait_for("RDY", || h.bar.read32(0x1c) & 1 == 1);
    // Identify into a buffer starting 4 KiB into an 8 KiB page: PRP1 covers it all.
    let buf = DmaBuf::alloc_zeroed(16384, 8192).unwrap();
    let mut id = Sqe::new(admin_opc::IDENTIFY, 0);
    id.cdw10 = 1;
    id.prp1 = buf.iova_at(4096);
    assert_eq!(h.cmd(0, id).status, Status::SUCCESS);
    assert_eq!(buf[4096 + 512], 0x66);
}

#[test]
fn full_queues_on_two_qpairs_complete_every_command_once() {
    let e = EmuController::builder()
        .max_io_queue_pairs(2)
        .namespace(512, 1024)
        .build()
        .unwrap();
    let mut h = Host::new(e);
    h.create_io_queue(1, 16);
    h.create_io_queue(2, 16);
    let mut bufs = Vec::new();
    let mut want = std::collections::HashMap::new();
    for qid in [1u16, 2] {
        for i in 0..15u64 {
            let lba = (qid as u64 - 1) * 64 + i * 2;
            let mut b = DmaBuf::alloc_zeroed(1024, 4096).unwrap();
            super::host::pattern(&mut b, lba);
            let mut w = Sqe::new(nvm_opc::WRITE, 0);
            w.nsid = 1;
            w.cdw10 = lba as u32;
            w.cdw12 = 1;
            w.prp1 = b.iova();
            let cid = h.push(qid, w);
            want.insert((qid, cid), lba);
            bufs.push((lba, b));
        }
        h.ring_sq(qid);
    }
    for qid in [1u16, 2] {
        let mut heads = Vec::new();
        for _ in 0..15 {
            let c = h.wait(qid);
            assert_eq!(c.status, Status::SUCCESS);
            assert_eq!(c.sqid, qid);
            assert!(want.remove(&(qid, c.cid)).is_some(), "completed once");
            heads.push(c.sq_head);
        }
        assert!(
            heads.windows(2).all(|w| w[0] <= w[1]),
            "SQ head moves forward"
        );
        assert_eq!(*heads.last().unwrap(), 15);
    }
    assert!(want.is_empty());
    for (lba, b) in bufs {
        let mut m = vec![0u8; 1024];
        h.emu.handle().read_blocks(1, lba, &mut m).unwrap();
        assert_eq!(m[..], b[..], "LBA {lba}");
    }
}
