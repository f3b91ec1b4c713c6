//! Doorbell Buffer Config: shadow doorbells in host memory and EventIdx,
//! read only while the controller works on a queue (as QEMU reads them).

use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::env::DmaBuf;
use crate::nvme::emu::{admin_opc, nvm_opc, CommandMatch, EmuController, Sqe, Status};

use super::host::{wait_for, Gate, Host};

struct Dbbuf {
    shadow: DmaBuf,
    eventidx: DmaBuf,
}

/// Writes dword `idx` of a 4 KiB page the controller reads from its own thread.
fn put_dword(page: &mut DmaBuf, idx: usize, v: u16) {
    assert!(idx < page.len() / 4);
    // SAFETY: idx is inside the buffer (checked above); volatile because
    // the controller reads it from its own thread.
    unsafe {
        page.as_mut_ptr()
            .cast::<u32>()
            .add(idx)
            .write_volatile(v as u32)
    }
}

/// Reads dword `idx` of a page the controller writes from its own thread.
fn get_dword(page: &DmaBuf, idx: usize) -> u16 {
    assert!(idx < page.len() / 4);
    // SAFETY: as in put_dword.
    unsafe { page.as_ptr().cast::<u32>().add(idx).read_volatile() as u16 }
}

impl Dbbuf {
    /// Stores a shadow doorbell value, then a full fence: a host that reads
    /// EventIdx next must not have that load pass its own store (the store
    /// buffer would let the controller go idle on the old value while the
    /// host reads an old EventIdx and skips the MMIO write).
    fn set(&mut self, idx: usize, v: u16) {
        put_dword(&mut self.shadow, idx, v);
        fence(Ordering::SeqCst);
    }
    fn set_eventidx(&mut self, idx: usize, v: u16) {
        put_dword(&mut self.eventidx, idx, v)
    }
    fn shadow(&self, idx: usize) -> u16 {
        get_dword(&self.shadow, idx)
    }
    fn eventidx(&self, idx: usize) -> u16 {
        get_dword(&self.eventidx, idx)
    }
}

/// The host side of EventIdx: ring MMIO only if the new value passed the
/// controller's event index since the old one.
fn need_event(event_idx: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event_idx).wrapping_sub(1) < new.wrapping_sub(old)
}

fn host() -> (Host, Dbbuf) {
    let e = EmuController::builder()
        .shadow_doorbells(true)
        .namespace(512, 256)
        .build()
        .unwrap();
    let mut h = Host::new(e);
    let (_, id) = h.identify(1, 0);
    assert_eq!(
        u16::from_le_bytes([id[256], id[257]]) & 1 << 8,
        1 << 8,
        "OACS: DBBC"
    );
    let db = Dbbuf {
        shadow: DmaBuf::alloc_zeroed(4096, 4096).unwrap(),
        eventidx: DmaBuf::alloc_zeroed(4096, 4096).unwrap(),
    };
    let mut cfg = Sqe::new(admin_opc::DOORBELL_BUFFER_CONFIG, 0);
    cfg.prp1 = db.shadow.iova();
    cfg.prp2 = db.eventidx.iova();
    assert_eq!(h.cmd(0, cfg).status, Status::SUCCESS);
    h.create_io_queue(1, 16);
    (h, db)
}

fn read0(buf: &DmaBuf) -> Sqe {
    let mut s = Sqe::new(nvm_opc::READ, 0);
    s.nsid = 1;
    s.prp1 = buf.iova();
    s
}

#[test]
fn a_shadow_tail_moved_while_the_controller_is_idle_waits_for_an_mmio_doorbell() {
    let (mut h, mut db) = host();
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let cid = h.push(1, read0(&buf));
    db.set(2, h.sq_tail(1));
    assert!(
        h.quiet_for(1, Duration::from_millis(50)),
        "an idle controller does not watch the shadow tail"
    );
    assert_eq!(h.emu.stats().io(nvm_opc::READ), 0, "nothing fetched");
    h.ring_sq(1);
    let c = h.wait_quietly(1);
    assert_eq!((c.cid, c.status), (cid, Status::SUCCESS));
    wait_for("EventIdx of SQ 1 tail", || db.eventidx(2) == 1);
}

#[test]
fn a_shadow_tail_moved_while_the_controller_is_processing_is_fetched() {
    let (mut h, mut db) = host();
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    // The worker stops inside the fetch of the first Read until the host
    // has published the second one through the shadow tail alone.
    let gate = Arc::new(Gate::default());
    let worker_side = gate.clone();
    let stop_in_reads = CommandMatch::io(nvm_opc::READ).when(move |_| {
        worker_side.pass();
        false
    });
    h.emu
        .faults()
        .fail_next(stop_in_reads, Status::INTERNAL_ERROR, 1);
    // The admin CQ head doorbell of the last command is counted before the
    // controller re-arms it (all ones): only then can `before` be complete.
    wait_for("the admin CQ head doorbell taken", || {
        h.bar.read32(0x1004) == u32::MAX
    });
    let first = h.push(1, read0(&buf));
    db.set(2, h.sq_tail(1));
    h.ring_sq(1);
    gate.wait_reached();
    let before = h.emu.stats();
    let second = h.push(1, read0(&buf));
    db.set(2, h.sq_tail(1));
    gate.open();
    let cids = [h.wait_quietly(1), h.wait_quietly(1)].map(|c| {
        assert_eq!(c.status, Status::SUCCESS);
        c.cid
    });
    assert_eq!(cids, [first, second]);
    let after = h.emu.stats();
    assert_eq!(
        after.doorbell_writes, before.doorbell_writes,
        "no MMIO doorbell"
    );
    assert_eq!(after.mmio_suppressed - before.mmio_suppressed, 1);
    wait_for("EventIdx of SQ 1 tail", || db.eventidx(2) == 2);
    h.emu.faults().clear();
}

#[test]
fn queue_creation_leaves_the_shadow_and_eventidx_slots_alone() {
    let (mut h, mut db) = host();
    // What a deleted queue 2 would have left behind.
    for slot in [4, 5] {
        db.set(slot, 80);
        db.set_eventidx(slot, 80);
    }
    h.create_io_queue(2, 16);
    for slot in [4, 5] {
        assert_eq!(
            (db.shadow(slot), db.eventidx(slot)),
            (80, 80),
            "slot {slot}"
        );
    }
    // A host that trusts the stale EventIdx skips the MMIO write of its
    // first tail, and the controller never learns of the command.
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    h.push(2, read0(&buf));
    db.set(4, h.sq_tail(2));
    assert!(!need_event(db.eventidx(4), 1, 0));
    assert!(h.quiet_for(2, Duration::from_millis(50)));
    h.ring_sq(2);
    assert_eq!(h.wait_quietly(2).status, Status::SUCCESS);
}

#[test]
fn a_full_completion_queue_resumes_posting_only_after_an_mmio_head_doorbell() {
    let (mut h, mut db) = host();
    // CQ 2 holds 3 completions (4 slots, one always empty).
    h.create_io_queue_sized(2, 16, 4);
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    for _ in 0..5 {
        h.push(2, read0(&buf));
    }
    db.set(4, h.sq_tail(2));
    h.ring_sq(2);
    for _ in 0..3 {
        assert_eq!(h.wait_quietly(2).status, Status::SUCCESS);
    }
    // Consumed, but the new head goes to the shadow slot only.
    db.set(5, h.cq_head(2));
    assert!(
        h.quiet_for(2, Duration::from_millis(50)),
        "a full CQ is not refilled on a shadow head alone"
    );
    let head = h.cq_head(2);
    h.bar.write32(0x1000 + 8 * 2 + 4, head as u32);
    for _ in 0..2 {
        assert_eq!(h.wait_quietly(2).status, Status::SUCCESS);
    }
    assert_eq!(h.emu.stats().io(nvm_opc::READ), 5);
}

#[test]
fn bad_doorbell_buffer_addresses_are_invalid_field() {
    let (mut h, db) = host();
    let mut cfg = Sqe::new(admin_opc::DOORBELL_BUFFER_CONFIG, 0);
    cfg.prp1 = db.shadow.iova() + 8;
    cfg.prp2 = db.eventidx.iova();
    assert_eq!(
        h.cmd(0, cfg).status,
        Status::INVALID_FIELD,
        "not page aligned"
    );
    cfg.prp1 = 0;
    assert_eq!(h.cmd(0, cfg).status, Status::INVALID_FIELD);
}

#[test]
fn host_following_eventidx_completes_every_command() {
    let (mut h, mut db) = host();
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let mut done = 0;
    for round in 0..20 {
        // Submit a burst of 1..=8 commands, updating the shadow each time and
        // ringing MMIO only when EventIdx asks for it.
        let burst = round % 8 + 1;
        for _ in 0..burst {
            let old = h.sq_tail(1);
            h.push(1, read0(&buf));
            let new = h.sq_tail(1);
            db.set(2, new);
            if need_event(db.eventidx(2), new, old) {
                h.ring_sq(1);
            }
        }
        for _ in 0..burst {
            let old = h.cq_head(1);
            assert_eq!(h.wait_quietly(1).status, Status::SUCCESS);
            let new = h.cq_head(1);
            db.set(3, new);
            if need_event(db.eventidx(3), new, old) {
                h.bar.write32(0x1000 + 8 + 4, new as u32);
            }
            done += 1;
        }
    }
    assert_eq!(done, (0..20).map(|r| r % 8 + 1).sum::<u32>());
    let s = h.emu.stats();
    assert_eq!(s.io(nvm_opc::READ), done as u64);
    assert!(s.shadow_doorbell_updates > 0);
    // The admin queue still uses its MMIO doorbell.
    assert_eq!(
        h.cmd(0, Sqe::new(admin_opc::KEEP_ALIVE, 0)).status,
        Status::SUCCESS
    );
}

#[test]
fn a_shadow_tail_beyond_the_queue_is_reported_once_and_stops_the_queue() {
    let (mut h, mut db) = host();
    let aer = h.submit(0, Sqe::new(admin_opc::ASYNC_EVENT_REQUEST, 0));
    db.set(2, 100);
    h.ring_sq(1); // MMIO tail 0: processing starts and reads the shadow tail
    let c = h.wait(0);
    assert_eq!((c.cid, c.status), (aer, Status::SUCCESS));
    assert_eq!(c.dw0 >> 8 & 0xff, 0x01, "Invalid Doorbell Write Value");
    // A second AER stays outstanding: the bad value is not reported again.
    h.submit(0, Sqe::new(admin_opc::ASYNC_EVENT_REQUEST, 0));
    assert!(h.quiet_for(0, Duration::from_millis(30)), "reported once");
    assert_eq!(h.emu.stats().io(nvm_opc::READ), 0, "nothing fetched");
    // A valid tail and an MMIO write get the queue going again.
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    h.push(1, read0(&buf));
    db.set(2, h.sq_tail(1));
    h.ring_sq(1);
    assert_eq!(h.wait_quietly(1).status, Status::SUCCESS);
}

#[test]
fn doorbell_buffer_config_seeds_the_shadow_slots_of_existing_queues_only() {
    let e = EmuController::builder()
        .shadow_doorbells(true)
        .namespace(512, 256)
        .build()
        .unwrap();
    let mut h = Host::new(e);
    h.create_io_queue(1, 16);
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    for _ in 0..3 {
        assert_eq!(h.cmd(1, read0(&buf)).status, Status::SUCCESS);
    }
    let mut db = Dbbuf {
        shadow: DmaBuf::alloc_zeroed(4096, 4096).unwrap(),
        eventidx: DmaBuf::alloc_zeroed(4096, 4096).unwrap(),
    };
    db.set_eventidx(2, 7);
    wait_for("the CQ 1 head doorbell taken", || {
        h.bar.read32(0x1000 + 12) == u32::MAX
    });
    let mut cfg = Sqe::new(admin_opc::DOORBELL_BUFFER_CONFIG, 0);
    cfg.prp1 = db.shadow.iova();
    cfg.prp2 = db.eventidx.iova();
    assert_eq!(h.cmd(0, cfg).status, Status::SUCCESS);
    assert_eq!((db.shadow(2), db.shadow(3)), (3, 3), "SQ 1 tail, CQ 1 head");
    assert_eq!(db.eventidx(2), 7, "EventIdx is left alone");
    assert_eq!(db.shadow(4), 0, "no queue 2: its slot is untouched");
    // From here on the shadow tail counts: the MMIO write starts the queue.
    h.push(1, read0(&buf));
    db.set(2, h.sq_tail(1));
    h.ring_sq(1);
    assert_eq!(h.wait_quietly(1).status, Status::SUCCESS);
    wait_for("EventIdx of SQ 1 tail", || db.eventidx(2) == 4);
}
