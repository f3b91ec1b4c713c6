//! Admin commands: queue management checks, features, log pages, AER, Format.

use crate::env::DmaBuf;
use crate::nvme::emu::{admin_opc, feature_id, nvm_opc, EmuController, Sqe, Status};

use super::host::{pattern, Host, RawQueue};

fn host() -> Host {
    Host::new(
        EmuController::builder()
            .mqes(63)
            .max_io_queue_pairs(2)
            .namespace(512, 1024)
            .build()
            .unwrap(),
    )
}

fn create_cq(h: &mut Host, qid: u16, entries: u32, base: u64) -> Status {
    let mut s = Sqe::new(admin_opc::CREATE_IO_CQ, 0);
    s.prp1 = base;
    s.cdw10 = qid as u32 | (entries - 1) << 16;
    s.cdw11 = 1;
    h.cmd(0, s).status
}

fn create_sq(h: &mut Host, qid: u16, entries: u32, cqid: u16, base: u64) -> Status {
    let mut s = Sqe::new(admin_opc::CREATE_IO_SQ, 0);
    s.prp1 = base;
    s.cdw10 = qid as u32 | (entries - 1) << 16;
    s.cdw11 = 1 | (cqid as u32) << 16;
    h.cmd(0, s).status
}

fn delete(h: &mut Host, opcode: u8, qid: u16) -> Status {
    let mut s = Sqe::new(opcode, 0);
    s.cdw10 = qid as u32;
    h.cmd(0, s).status
}

#[test]
fn create_queue_checks_id_size_and_cq() {
    let mut h = host();
    let mem = RawQueue::new(9, 64);
    let (sq, cq) = (mem.sq.iova(), mem.cq.iova());
    assert_eq!(
        create_cq(&mut h, 0, 16, cq),
        Status::INVALID_QUEUE_IDENTIFIER
    );
    assert_eq!(
        create_cq(&mut h, 3, 16, cq),
        Status::INVALID_QUEUE_IDENTIFIER,
        "beyond max"
    );
    assert_eq!(
        create_cq(&mut h, 1, 65, cq),
        Status::INVALID_QUEUE_SIZE,
        "above MQES"
    );
    assert_eq!(create_cq(&mut h, 1, 1, cq), Status::INVALID_QUEUE_SIZE);
    assert_eq!(
        create_sq(&mut h, 1, 16, 1, sq),
        Status::COMPLETION_QUEUE_INVALID
    );
    assert_eq!(create_cq(&mut h, 1, 16, cq), Status::SUCCESS);
    assert_eq!(
        create_cq(&mut h, 1, 16, cq),
        Status::INVALID_QUEUE_IDENTIFIER,
        "exists"
    );
    assert_eq!(
        create_sq(&mut h, 1, 16, 0, sq),
        Status::COMPLETION_QUEUE_INVALID,
        "admin CQ"
    );
    assert_eq!(create_sq(&mut h, 1, 16, 1, sq), Status::SUCCESS);
    let mut pc0 = Sqe::new(admin_opc::CREATE_IO_CQ, 0);
    pc0.prp1 = cq;
    pc0.cdw10 = 2 | 15 << 16;
    assert_eq!(
        h.cmd(0, pc0).status,
        Status::INVALID_FIELD,
        "PC = 0 with CAP.CQR = 1"
    );
    let ordinary = vec![0u8; 8192];
    let page = (ordinary.as_ptr() as u64 + 4095) & !4095;
    assert_eq!(create_cq(&mut h, 2, 16, page), Status::DATA_TRANSFER_ERROR);
    drop(mem);
}

#[test]
fn delete_cq_in_use_is_invalid_queue_deletion() {
    let mut h = host();
    h.create_io_queue(1, 16);
    assert_eq!(
        delete(&mut h, admin_opc::DELETE_IO_CQ, 1),
        Status::INVALID_QUEUE_DELETION
    );
    assert_eq!(
        delete(&mut h, admin_opc::DELETE_IO_SQ, 2),
        Status::INVALID_QUEUE_IDENTIFIER
    );
    assert_eq!(delete(&mut h, admin_opc::DELETE_IO_SQ, 1), Status::SUCCESS);
    assert_eq!(delete(&mut h, admin_opc::DELETE_IO_CQ, 1), Status::SUCCESS);
    assert_eq!(
        delete(&mut h, admin_opc::DELETE_IO_CQ, 0),
        Status::INVALID_QUEUE_IDENTIFIER
    );
}

fn set_feature(h: &mut Host, fid: u8, value: u32) -> (Status, u32) {
    let mut s = Sqe::new(admin_opc::SET_FEATURES, 0);
    s.cdw10 = fid as u32;
    s.cdw11 = value;
    let c = h.cmd(0, s);
    (c.status, c.dw0)
}

fn get_feature(h: &mut Host, fid: u8, sel: u32) -> (Status, u32) {
    let mut s = Sqe::new(admin_opc::GET_FEATURES, 0);
    s.cdw10 = fid as u32 | sel << 8;
    let c = h.cmd(0, s);
    (c.status, c.dw0)
}

#[test]
fn number_of_queues_reports_the_configured_maximum() {
    let mut h = host();
    let (st, dw0) = set_feature(&mut h, feature_id::NUMBER_OF_QUEUES, 31 | 31 << 16);
    assert_eq!(st, Status::SUCCESS);
    assert_eq!(
        (dw0 & 0xffff, dw0 >> 16),
        (1, 1),
        "two queues each, 0's based"
    );
    assert_eq!(
        set_feature(&mut h, feature_id::NUMBER_OF_QUEUES, 0xffff).0,
        Status::INVALID_FIELD
    );
}

#[test]
fn features_keep_values_and_reject_unknown_ids() {
    let mut h = host();
    assert_eq!(
        get_feature(&mut h, feature_id::VOLATILE_WRITE_CACHE, 0),
        (Status::SUCCESS, 1)
    );
    assert_eq!(
        set_feature(&mut h, feature_id::VOLATILE_WRITE_CACHE, 0).0,
        Status::SUCCESS
    );
    assert_eq!(
        get_feature(&mut h, feature_id::VOLATILE_WRITE_CACHE, 0),
        (Status::SUCCESS, 0)
    );
    assert_eq!(
        get_feature(&mut h, feature_id::VOLATILE_WRITE_CACHE, 1),
        (Status::SUCCESS, 1),
        "default"
    );
    assert_eq!(
        set_feature(&mut h, feature_id::ARBITRATION, 3).0,
        Status::SUCCESS
    );
    assert_eq!(get_feature(&mut h, feature_id::ARBITRATION, 0).1, 3);
    assert_eq!(
        set_feature(&mut h, feature_id::INTERRUPT_COALESCING, 0x0102).0,
        Status::SUCCESS
    );
    assert_eq!(
        set_feature(&mut h, feature_id::ASYNC_EVENT_CONFIG, 0x1ff).0,
        Status::SUCCESS
    );
    assert_eq!(set_feature(&mut h, 0x7e, 0).0, Status::INVALID_FIELD);
    let mut saved = Sqe::new(admin_opc::SET_FEATURES, 0);
    saved.cdw10 = feature_id::ARBITRATION as u32 | 1 << 31;
    assert_eq!(h.cmd(0, saved).status, Status::FEATURE_NOT_SAVEABLE);
}

#[test]
fn write_cache_feature_is_absent_without_a_cache() {
    let mut h = Host::new(
        EmuController::builder()
            .volatile_write_cache(false)
            .build()
            .unwrap(),
    );
    assert_eq!(
        get_feature(&mut h, feature_id::VOLATILE_WRITE_CACHE, 0).0,
        Status::INVALID_FIELD
    );
    let (_, id) = h.identify(1, 0);
    assert_eq!(id[525] & 1, 0);
}

fn log_page(h: &mut Host, lid: u8, bytes: u32, rae: bool) -> (Status, DmaBuf) {
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let mut s = Sqe::new(admin_opc::GET_LOG_PAGE, 0);
    s.nsid = u32::MAX;
    s.cdw10 = lid as u32 | (rae as u32) << 15 | (bytes / 4 - 1) << 16;
    let c = h.admin_with_data(s, &buf);
    (c.status, buf)
}

fn u128_at(b: &[u8], off: usize) -> u128 {
    u128::from_le_bytes(b[off..off + 16].try_into().unwrap())
}

#[test]
fn smart_log_counts_data_units_and_commands() {
    let mut h = host();
    h.create_io_queue(1, 16);
    let mut data = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    pattern(&mut data, 1);
    for i in 0..3 {
        assert_eq!(
            h.rw(1, nvm_opc::WRITE, 1, i * 8, 8, (data.iova(), 0))
                .status,
            Status::SUCCESS
        );
    }
    assert_eq!(
        h.rw(1, nvm_opc::READ, 1, 0, 8, (data.iova(), 0)).status,
        Status::SUCCESS
    );
    let (st, log) = log_page(&mut h, 0x02, 512, false);
    assert_eq!(st, Status::SUCCESS);
    assert_eq!(
        u128_at(&log, 32),
        1,
        "data units read: 8 x 512 B rounds up to 1"
    );
    assert_eq!(
        u128_at(&log, 48),
        1,
        "data units written: 24 x 512 B rounds up to 1"
    );
    assert_eq!(u128_at(&log, 64), 1, "host read commands");
    assert_eq!(u128_at(&log, 80), 3, "host write commands");
}

#[test]
fn error_log_records_failed_commands_newest_first() {
    let mut h = host();
    h.create_io_queue(1, 16);
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let c = h.rw(1, nvm_opc::READ, 1, 5000, 1, (buf.iova(), 0));
    assert_eq!(c.status, Status::LBA_OUT_OF_RANGE);
    let (st, log) = log_page(&mut h, 0x01, 128, false);
    assert_eq!(st, Status::SUCCESS);
    assert_eq!(
        u64::from_le_bytes(log[0..8].try_into().unwrap()),
        1,
        "error count"
    );
    assert_eq!(
        u16::from_le_bytes(log[8..10].try_into().unwrap()),
        1,
        "SQID"
    );
    assert_eq!(u16::from_le_bytes(log[10..12].try_into().unwrap()), c.cid);
    let sf = u16::from_le_bytes(log[12..14].try_into().unwrap());
    assert_eq!(sf >> 1 & 0xff, 0x80, "status code LBA Out of Range");
}

#[test]
fn firmware_slot_log_and_unknown_log_page() {
    let mut h = host();
    let (st, log) = log_page(&mut h, 0x03, 512, false);
    assert_eq!(st, Status::SUCCESS);
    assert_eq!(log[0] & 0x7, 1, "slot 1 active");
    assert_eq!(&log[8..11], b"1.0");
    assert_eq!(
        log_page(&mut h, 0x55, 512, false).0,
        Status::INVALID_LOG_PAGE
    );
}

fn aer(h: &mut Host) -> u16 {
    h.submit(0, Sqe::new(admin_opc::ASYNC_EVENT_REQUEST, 0))
}

#[test]
fn aer_is_held_until_an_enabled_event_and_masked_until_its_log_is_read() {
    let mut h = host();
    assert_eq!(
        set_feature(&mut h, feature_id::ASYNC_EVENT_CONFIG, 1 << 8).0,
        Status::SUCCESS
    );
    let cid = aer(&mut h);
    assert!(
        h.quiet_for(0, std::time::Duration::from_millis(30)),
        "AER held"
    );
    // SMART warnings are not enabled in AEC: not reported.
    h.emu.handle().raise_smart_warning(0x01);
    assert!(h.quiet_for(0, std::time::Duration::from_millis(30)));
    h.emu.handle().raise_namespace_changed(1);
    let c = h.wait(0);
    assert_eq!((c.cid, c.status), (cid, Status::SUCCESS));
    assert_eq!(c.dw0 & 0x7, 2, "notice");
    assert_eq!(c.dw0 >> 16 & 0xff, 0x04, "changed namespace list log");
    // A second notice waits until the log page is read.
    let cid2 = aer(&mut h);
    h.emu.handle().raise_namespace_changed(1);
    assert!(
        h.quiet_for(0, std::time::Duration::from_millis(30)),
        "masked"
    );
    let (st, log) = log_page(&mut h, 0x04, 4096, false);
    assert_eq!(st, Status::SUCCESS);
    assert_eq!(&log[0..8], &[1, 0, 0, 0, 0, 0, 0, 0]);
    let c = h.wait(0);
    assert_eq!((c.cid, c.dw0 & 7), (cid2, 2));
}

#[test]
fn too_many_aers_exceed_the_limit() {
    let mut h = host();
    for _ in 0..4 {
        aer(&mut h);
    }
    let cid = aer(&mut h);
    let c = h.wait(0);
    assert_eq!((c.cid, c.status), (cid, Status::AER_LIMIT_EXCEEDED));
}

#[test]
fn format_zeroes_the_namespace_and_changes_the_lba_size() {
    let mut h = host();
    h.emu.handle().write_blocks(1, 0, &[0xaa; 1024]).unwrap();
    let mut f = Sqe::new(admin_opc::FORMAT_NVM, 0);
    f.nsid = 1;
    f.cdw10 = 1; // LBA format 1: 4 KiB
    assert_eq!(h.cmd(0, f).status, Status::SUCCESS);
    assert_eq!(h.emu.handle().namespace_geometry(1).unwrap(), (4096, 128));
    let mut back = vec![0xffu8; 4096];
    h.emu.handle().read_blocks(1, 0, &mut back).unwrap();
    assert!(back.iter().all(|b| *b == 0));
    let (_, id) = h.identify(0, 1);
    assert_eq!(id[26] & 0xf, 1, "FLBAS");
    f.cdw10 = 5;
    assert_eq!(h.cmd(0, f).status, Status::INVALID_FORMAT);
    f.cdw10 = 0;
    f.nsid = 9;
    assert_eq!(h.cmd(0, f).status, Status::INVALID_NAMESPACE_OR_FORMAT);
}

#[test]
fn keep_alive_is_accepted() {
    let mut h = host();
    assert_eq!(
        h.cmd(0, Sqe::new(admin_opc::KEEP_ALIVE, 0)).status,
        Status::SUCCESS
    );
    assert_eq!(
        h.cmd(0, Sqe::new(admin_opc::DOORBELL_BUFFER_CONFIG, 0))
            .status,
        Status::INVALID_OPCODE,
        "not offered unless configured"
    );
}

#[test]
fn a_detached_namespace_leaves_the_active_list_and_refuses_io() {
    let mut h = Host::new(
        EmuController::builder()
            .namespace(512, 64)
            .namespace(512, 64)
            .build()
            .unwrap(),
    );
    h.create_io_queue(1, 8);
    assert_eq!(
        set_feature(&mut h, feature_id::ASYNC_EVENT_CONFIG, 1 << 8).0,
        Status::SUCCESS
    );
    let cid = aer(&mut h);
    h.emu.handle().set_namespace_attached(1, false).unwrap();
    let c = h.wait(0);
    assert_eq!((c.cid, c.dw0 & 7), (cid, 2), "namespace attribute notice");
    let (_, list) = h.identify(2, 0);
    assert_eq!(&list[0..8], &[2, 0, 0, 0, 0, 0, 0, 0]);
    let (c, ns) = h.identify(0, 1);
    assert_eq!(c.status, Status::SUCCESS);
    assert!(
        ns[..512].iter().all(|b| *b == 0),
        "inactive NSID identifies as zeroes"
    );
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let r = h.rw(1, nvm_opc::READ, 1, 0, 1, (buf.iova(), 0));
    assert_eq!(r.status, Status::INVALID_NAMESPACE_OR_FORMAT);
    h.emu.handle().set_namespace_attached(1, true).unwrap();
    assert_eq!(
        h.rw(1, nvm_opc::READ, 1, 0, 1, (buf.iova(), 0)).status,
        Status::SUCCESS
    );
    assert!(h.emu.handle().set_namespace_attached(3, true).is_err());
}
