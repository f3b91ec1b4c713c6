//! Building, handles, and stopping: the worker goes away cleanly.

use std::sync::Arc;
use std::time::Duration;

use crate::env::DmaBuf;
use crate::nvme::emu::{
    admin_opc, nvm_opc, CommandMatch, EmuBuilder, EmuController, EmuError, Sqe, Status,
};
use crate::pci::PciDevice;

use super::host::{wait_for, Gate, Host};

#[test]
fn bad_configurations_are_refused_with_the_field_named() {
    let cases = [
        EmuController::builder().namespace(1000, 8),
        EmuController::builder().namespace(512, 0),
        EmuController::builder().mqes(0),
        EmuController::builder().max_io_queue_pairs(0),
        EmuController::builder().serial("a serial number that is far too long"),
        EmuController::builder()
            .namespace_with_id(2, 512, 8)
            .namespace_with_id(2, 512, 8),
    ];
    for b in cases {
        match b.build() {
            Err(EmuError::InvalidConfig(msg)) => assert!(!msg.is_empty()),
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }
}

#[test]
fn handle_reads_and_writes_namespace_blocks() {
    let e = EmuController::builder().namespace(4096, 4).build().unwrap();
    let h = e.handle();
    h.write_blocks(1, 3, &[7u8; 4096]).unwrap();
    let mut b = [0u8; 4096];
    h.read_blocks(1, 3, &mut b).unwrap();
    assert_eq!(b, [7u8; 4096]);
    assert!(matches!(
        h.read_blocks(1, 4, &mut b),
        Err(EmuError::OutOfRange { .. })
    ));
    assert!(matches!(
        h.read_blocks(1, 0, &mut b[..100]),
        Err(EmuError::OutOfRange { .. })
    ));
    assert!(matches!(
        h.read_blocks(2, 0, &mut b),
        Err(EmuError::NoSuchNamespace(2))
    ));
}

#[test]
fn a_configuration_can_be_reused() {
    let a = EmuController::builder()
        .serial("TWIN")
        .namespace(512, 8)
        .build()
        .unwrap();
    let b = EmuBuilder::from(a.config().clone()).build().unwrap();
    assert_eq!(b.config().serial, "TWIN");
    assert_eq!(b.handle().namespace_geometry(1).unwrap(), (512, 8));
}

#[test]
fn each_controller_gets_its_own_address() {
    let a = EmuController::builder().build().unwrap();
    let b = EmuController::builder().build().unwrap();
    assert_ne!(a.address(), b.address());
}

#[test]
fn bar_outlives_the_controller() {
    let e = EmuController::builder().build().unwrap();
    let bar = e.map_bar(0).unwrap();
    drop(e);
    assert_eq!(bar.read32(0x08), 0x0001_0400, "registers still mapped");
    bar.write32(0x14, 1); // nobody is listening, and nothing breaks
}

#[test]
fn dropping_a_busy_controller_stops_the_worker_before_memory_goes() {
    let e = EmuController::builder().namespace(512, 64).build().unwrap();
    let handle = e.handle();
    let mut h = Host::new(e);
    h.create_io_queue(1, 8);
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let delay = Duration::from_millis(30);
    handle.faults().delay_next(CommandMatch::any_io(), delay, 4);
    for _ in 0..4 {
        let mut s = Sqe::new(nvm_opc::READ, 0);
        s.nsid = 1;
        s.prp1 = buf.iova();
        h.push(1, s);
    }
    h.ring_sq(1);
    wait_for("the Reads fetched", || {
        handle.stats().io(nvm_opc::READ) == 4
    });
    // Take the controller away without disabling it: dropping it joins the
    // worker first, then the queue memory goes (fields drop in order), then `buf`.
    h.disable_on_drop = false;
    drop(h);
    // Past the Reads' due time nothing has moved: no completion, no DMA fault.
    let after_drop = handle.stats();
    std::thread::sleep(2 * delay);
    assert_eq!(handle.stats(), after_drop, "the worker is gone");
}

#[test]
fn stats_count_commands_by_opcode() {
    let e = EmuController::builder().namespace(512, 64).build().unwrap();
    let mut h = Host::new(e);
    h.create_io_queue(1, 8);
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    for _ in 0..3 {
        h.rw(1, nvm_opc::WRITE, 1, 0, 1, (buf.iova(), 0));
    }
    let s = h.emu.stats();
    assert_eq!(s.io(nvm_opc::WRITE), 3);
    assert_eq!(s.admin(0x05), 1, "Create I/O CQ");
    assert_eq!(s.admin(0x01), 1, "Create I/O SQ");
    assert_eq!(s.bytes_written, 3 * 512);
    assert!(s.doorbell_writes >= 6);
    assert!(s.completions >= 5);
}

/// Reads in flight when CC.EN goes to 0 are never completed: once the host
/// sees CSTS.RDY = 0, neither their data nor their CQEs reach host memory,
/// not even after the controller is enabled again and has run past their due time.
#[test]
fn after_a_reset_the_controller_leaves_host_memory_alone() {
    let e = EmuController::builder().namespace(512, 64).build().unwrap();
    // A Read finishing late would copy these bytes into `buf`.
    e.handle().write_blocks(1, 0, &[0xa5; 512]).unwrap();
    let faults = e.faults();
    let mut h = Host::new(e);
    h.create_io_queue(1, 8);
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    // The worker stops in the fetch of the first Read until the host has
    // cleared CC.EN; both Reads are then held, due at once.
    let gate = Arc::new(Gate::default());
    let worker_side = gate.clone();
    let reads = CommandMatch::io(nvm_opc::READ).when(move |_| {
        worker_side.pass();
        true
    });
    faults.delay_next(reads, Duration::ZERO, 2);
    for _ in 0..2 {
        let mut s = Sqe::new(nvm_opc::READ, 0);
        s.nsid = 1;
        s.prp1 = buf.iova();
        h.push(1, s);
    }
    h.ring_sq(1);
    gate.wait_reached();
    h.bar.write32(0x14, 0);
    gate.open();
    wait_for("RDY = 0", || h.bar.read32(0x1c) & 1 == 0);
    assert!(h.emu.stats().io(nvm_opc::READ) >= 1, "a Read was in flight");
    let cq_before = h.io[0].cq.to_vec();
    let admin_cq_before = h.admin.cq.to_vec();

    // Enabled again, the controller completes a command: it has run past the
    // Reads' due time with bus mastering on.
    let (old_admin, old_io) = h.reenable();
    let c = h.cmd(0, Sqe::new(admin_opc::KEEP_ALIVE, 0));
    assert_eq!(c.status, Status::SUCCESS);
    assert_eq!(
        old_io[0].cq.to_vec(),
        cq_before,
        "no completion after the reset"
    );
    assert_eq!(old_admin.cq.to_vec(), admin_cq_before);
    assert!(buf.iter().all(|b| *b == 0), "no Read data after the reset");
    // Queue 1 was forgotten: it can be created again.
    h.create_io_queue(1, 8);
    assert!(
        h.quiet_for(0, Duration::ZERO),
        "nothing else on the admin CQ"
    );
}
