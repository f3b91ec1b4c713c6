//! Every injected fault is observable by a host; Abort finds held commands.

use std::time::{Duration, Instant};

use crate::env::DmaBuf;
use crate::nvme::emu::{admin_opc, nvm_opc, CommandMatch, EmuController, Sqe, Status};

use super::host::{wait_for, Host, CC_EN_NVM};

fn host() -> Host {
    let mut h = Host::new(
        EmuController::builder()
            .namespace(512, 1024)
            .build()
            .unwrap(),
    );
    h.create_io_queue(1, 16);
    h
}

fn read(lba: u64, buf: &DmaBuf) -> Sqe {
    let mut s = Sqe::new(nvm_opc::READ, 0);
    s.nsid = 1;
    s.cdw10 = lba as u32;
    s.prp1 = buf.iova();
    s
}

fn abort(h: &mut Host, sqid: u16, cid: u16) -> u32 {
    let mut a = Sqe::new(admin_opc::ABORT, 0);
    a.cdw10 = sqid as u32 | (cid as u32) << 16;
    let c = h.cmd(0, a);
    assert_eq!(c.status, Status::SUCCESS);
    c.dw0
}

#[test]
fn injected_status_hits_the_next_n_matching_commands() {
    let mut h = host();
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let f = h.emu.faults();
    f.fail_next(
        CommandMatch::io(nvm_opc::READ),
        Status::UNRECOVERED_READ_ERROR,
        2,
    );
    assert_eq!(
        h.cmd(1, read(0, &buf)).status,
        Status::UNRECOVERED_READ_ERROR
    );
    assert_eq!(
        h.cmd(1, read(0, &buf)).status,
        Status::UNRECOVERED_READ_ERROR
    );
    assert_eq!(h.cmd(1, read(0, &buf)).status, Status::SUCCESS);
    assert_eq!(f.pending_rules(), 0);
}

#[test]
fn injected_status_can_target_an_lba_range_and_namespace() {
    let mut h = host();
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let f = h.emu.faults();
    f.fail_next(
        CommandMatch::any_io().nsid(1).lba_range(100..200),
        Status::WRITE_FAULT,
        1,
    );
    assert_eq!(h.cmd(1, read(50, &buf)).status, Status::SUCCESS);
    assert_eq!(h.cmd(1, read(199, &buf)).status, Status::WRITE_FAULT);
    f.fail_next(
        CommandMatch::any().when(|s| s.cdw10 == 7),
        Status::INTERNAL_ERROR,
        1,
    );
    assert_eq!(h.cmd(1, read(6, &buf)).status, Status::SUCCESS);
    assert_eq!(h.cmd(1, read(7, &buf)).status, Status::INTERNAL_ERROR);
}

#[test]
fn dropped_completion_never_arrives_until_aborted() {
    let mut h = host();
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    h.emu
        .faults()
        .drop_completions(CommandMatch::io(nvm_opc::READ), 1);
    let cid = h.submit(1, read(0, &buf));
    wait_for("the Read executed, its completion dropped", || {
        h.emu.stats().dropped_completions == 1
    });
    assert!(h.quiet_for(1, Duration::ZERO), "no completion");
    assert_eq!(abort(&mut h, 1, cid), 0, "aborted");
    let c = h.wait(1);
    assert_eq!((c.cid, c.status), (cid, Status::ABORT_REQUESTED));
    assert_eq!(abort(&mut h, 1, cid), 1, "nothing left to abort");
}

#[test]
fn slow_command_completes_after_its_delay_unless_aborted() {
    let mut h = host();
    let mut buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let f = h.emu.faults();
    f.delay_next(
        CommandMatch::io(nvm_opc::READ),
        Duration::from_millis(150),
        1,
    );
    let submitted = Instant::now();
    let cid = h.submit(1, read(0, &buf));
    let c = h.wait(1);
    assert_eq!((c.cid, c.status), (cid, Status::SUCCESS));
    assert!(
        submitted.elapsed() >= Duration::from_millis(150),
        "held for the whole delay"
    );

    // A delayed write that is aborted never reaches the media.
    buf.fill(0x5a);
    f.delay_next(CommandMatch::io(nvm_opc::WRITE), Duration::from_secs(60), 1);
    let mut w = read(3, &buf);
    w.cdw0 = nvm_opc::WRITE as u32;
    let cid = h.submit(1, w);
    wait_for("the Write fetched and held", || {
        h.emu.stats().io(nvm_opc::WRITE) == 1
    });
    assert!(h.quiet_for(1, Duration::ZERO));
    assert_eq!(abort(&mut h, 1, cid), 0);
    let c = h.wait(1);
    assert_eq!((c.cid, c.status), (cid, Status::ABORT_REQUESTED));
    let mut media = [0xffu8; 512];
    h.emu.handle().read_blocks(1, 3, &mut media).unwrap();
    assert!(media.iter().all(|b| *b == 0));
}

#[test]
fn fatal_status_stops_processing_until_reset() {
    let mut h = host();
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    h.emu.faults().fatal_now();
    wait_for("CSTS.CFS = 1", || h.bar.read32(0x1c) & 2 != 0);
    h.submit(1, read(0, &buf));
    assert!(
        h.quiet_for(1, Duration::from_millis(30)),
        "nothing processed"
    );
    h.bar.write32(0x14, 0);
    wait_for("reset: RDY = 0, CFS = 0", || h.bar.read32(0x1c) & 3 == 0);
    // Bring the controller back up with fresh queues.
    let admin = super::host::RawQueue::new(0, 32);
    h.bar.write64(0x28, admin.sq.iova());
    h.bar.write64(0x30, admin.cq.iova());
    h.admin = admin;
    h.io.clear();
    h.bar.write32(0x14, CC_EN_NVM);
    wait_for("CSTS.RDY = 1", || h.bar.read32(0x1c) & 1 == 1);
    h.create_io_queue(1, 16);
    assert_eq!(h.cmd(1, read(0, &buf)).status, Status::SUCCESS);
}

#[test]
fn fatal_on_a_matching_command() {
    let mut h = host();
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    h.emu
        .faults()
        .fatal_on_next(CommandMatch::io(nvm_opc::READ).lba_range(9..10));
    assert_eq!(h.cmd(1, read(8, &buf)).status, Status::SUCCESS);
    h.submit(1, read(9, &buf));
    wait_for("CSTS.CFS = 1", || h.bar.read32(0x1c) & 2 != 0);
}

#[test]
fn never_ready_keeps_rdy_clear_until_lifted() {
    let e = EmuController::builder().build().unwrap();
    let f = e.faults();
    f.set_never_ready(true);
    let h = Host::programmed(e, 8);
    h.bar.write32(0x14, CC_EN_NVM);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(h.bar.read32(0x1c) & 1, 0);
    f.set_never_ready(false);
    wait_for("CSTS.RDY = 1", || h.bar.read32(0x1c) & 1 == 1);
}

#[test]
fn queue_memory_outside_dma_memory_is_fatal() {
    let h = host();
    // Point the admin SQ somewhere that is not DMA memory, then reset onto it.
    h.bar.write32(0x14, 0);
    wait_for("RDY = 0", || h.bar.read32(0x1c) & 1 == 0);
    let ordinary = vec![0u8; 3 * 4096];
    let page = (ordinary.as_ptr() as u64 + 4095) & !4095;
    h.bar.write64(0x28, page);
    h.bar.write32(0x14, CC_EN_NVM);
    wait_for("RDY = 1", || h.bar.read32(0x1c) & 1 == 1);
    h.bar.write32(0x1000, 1);
    wait_for("CSTS.CFS = 1", || h.bar.read32(0x1c) & 2 != 0);
    assert!(h.emu.stats().dma_faults >= 1);
    h.bar.write32(0x14, 0);
    wait_for("RDY = 0", || h.bar.read32(0x1c) & 3 == 0);
    drop(ordinary);
}
