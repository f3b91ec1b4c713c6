//! The NVMe driver against the software controller (`nvme::emu`), in plain
//! `cargo test`: bring-up, identify, I/O round trips checked against the
//! controller's own copy of the data, PRP lists, MDTS splitting, queue full,
//! argument validation, features, events. Faults: `nvme_emu_faults.rs`.

use crate::nvme_emu_common;
use nvme_emu_common::{attach, attach_mmio_doorbells, emu};

use crate::nvme_common;

use nvme_common::*;
use spdk_io::env::{self, DmaBuf, EnvOpts};
use spdk_io::nvme::emu::{nvm_opc, EmuController};
use spdk_io::nvme::spec::features::{FeatureId, FeatureSelect};
use spdk_io::nvme::{Controller, ControllerOpts, DmaSlice, NvmeError, QPair, QPairOpts};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Writes the `n` 512-byte blocks at `lba` of namespace 1 (`ns`) from a
/// buffer that starts `off` bytes into its DMA allocation, filled with
/// pattern `i`; checks the controller's copy and a read back. Returns the
/// length of the buffer the write's completion handed back.
fn write_check_read(
    e: &EmuController,
    qp: &mut QPair,
    ns: &spdk_io::nvme::Namespace,
    (lba, n): (u64, u32),
    off: usize,
    i: u64,
) -> usize {
    let len = n as usize * 512;
    let mut b = DmaBuf::alloc(off + len, 4096).unwrap();
    fill(&mut b[off..], i);
    let want = b[off..].to_vec();
    let s = slot();
    qp.write(
        ns,
        DmaSlice::new(b, off..off + len).unwrap(),
        lba,
        n,
        into_slot(&s),
    )
    .unwrap();
    let done = wait(qp, &s);
    done.result.unwrap();
    let mut media = vec![0u8; len];
    e.handle().read_blocks(1, lba, &mut media).unwrap();
    assert_same(&media, &want, "controller's copy");
    let r = read_sync(qp, ns, DmaBuf::alloc_zeroed(len, 4096).unwrap(), lba, n).unwrap();
    assert_same(&r, &want, "read back");
    done.buf.len()
}

#[test]
fn bring_up_identifies_the_controller_and_its_namespaces() {
    let e = emu(2);
    let c = attach(&e);
    assert_eq!(c.data().serial(), "EMU0001");
    assert_eq!(c.data().model(), "spdk-io emu");
    assert_eq!(c.version().to_string(), "1.4");
    assert_eq!(c.max_transfer_size(), 16 * 1024);
    assert_eq!(c.max_io_qpairs(), 4);
    assert_eq!(c.namespace_ids(), vec![1, 2]);
    let n1 = c.namespace(1).unwrap();
    assert_eq!((n1.num_blocks(), n1.block_size()), (16384, 512));
    let n2 = c.namespace(2).unwrap();
    assert_eq!((n2.num_blocks(), n2.block_size()), (1024, 4096));
    assert!(matches!(c.namespace(3), Err(NvmeError::NoSuchNamespace(3))));
    assert!(matches!(
        c.identify_namespace(0),
        Err(NvmeError::NoSuchNamespace(0))
    ));
    assert_eq!(c.identify_controller().unwrap().serial(), "EMU0001");
}

#[test]
fn writes_land_on_the_media_and_read_back_through_prp_lists() {
    let e = emu(5);
    let c = attach(&e);
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    let mut rng = Rng(7);
    for i in 0..60u64 {
        let n = 1 + rng.below(200) as u32; // up to 100 KiB: PRP lists
        let lba = rng.below(16384 - n as u64);
        let off = (rng.below(64) * 4) as usize; // dword-aligned, not page-aligned
        let back = write_check_read(&e, &mut qp, &ns, (lba, n), off, i);
        assert_eq!(back, n as usize * 512, "the buffer comes back");
    }
}

#[test]
fn io_above_mdts_is_split_into_child_commands_and_completes_once() {
    let e = emu(1); // 8 KiB per command
    let c = attach(&e);
    let ns = c.namespace(2).unwrap(); // 4 KiB blocks
    let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    let before = e.stats().io(nvm_opc::WRITE);
    let w = patterned(10 * 4096, 3);
    let want = w.to_vec();
    write_sync(&mut qp, &ns, w, 100, 10).unwrap();
    assert_eq!(
        e.stats().io(nvm_opc::WRITE) - before,
        5,
        "10 blocks / 2 per command"
    );
    let r = read_sync(
        &mut qp,
        &ns,
        DmaBuf::alloc_zeroed(10 * 4096, 4096).unwrap(),
        100,
        10,
    )
    .unwrap();
    assert_same(&r, &want, "split read");
    assert_eq!(qp.outstanding(), 0);
    assert_eq!(
        qp.free_requests(),
        qp.queue_size() as usize - 1,
        "every child freed"
    );
}

#[test]
fn queue_full_is_a_retryable_error_and_no_request_is_lost() {
    let e = emu(5);
    let c = attach(&e);
    let ns = c.namespace(1).unwrap();
    let opts = QPairOpts {
        io_queue_size: 8,
        delay_cmd_submit: true,
        ..QPairOpts::default()
    };
    let mut qp = c.alloc_io_qpair(opts).unwrap();
    let done = Rc::new(Cell::new(0u32));
    for i in 0..7 {
        let d = done.clone();
        qp.write(&ns, patterned(512, i), i, 1, move |_, c| {
            c.result.unwrap();
            d.set(d.get() + 1);
        })
        .unwrap();
    }
    let e8 = qp
        .write(&ns, patterned(512, 9), 9, 1, |_, _| {})
        .unwrap_err();
    assert!(matches!(e8.error, NvmeError::QueueFull));
    assert!(e8.error.is_retryable());
    assert_eq!(e8.buf.len(), 512, "the rejected buffer comes back");
    // An I/O that needs more child commands than the qpair has requests is refused outright.
    let big = qp
        .read(
            &ns,
            DmaBuf::alloc(1 << 20, 4096).unwrap(),
            0,
            2048,
            |_, _| {},
        )
        .unwrap_err();
    assert!(matches!(
        big.error,
        NvmeError::QueueFull | NvmeError::InvalidArgument(_)
    ));
    while done.get() < 7 {
        qp.process_completions(0).unwrap();
    }
    for _ in 0..100 {
        qp.process_completions(0).unwrap();
    }
    assert_eq!(done.get(), 7, "each I/O completed exactly once");
    assert_eq!(qp.outstanding(), 0);
}

#[test]
fn delayed_submissions_ring_the_doorbell_every_n_commands_and_at_the_flush() {
    let e = emu(5);
    // By MMIO only, as on QEMU's controller, so every ring is counted once.
    let c = attach_mmio_doorbells(&e);
    let ns = c.namespace(1).unwrap();
    let mut qp = c
        .alloc_io_qpair(QPairOpts {
            io_queue_size: 16,
            delay_cmd_submit: true,
            sq_ring_every: 4,
            ..QPairOpts::default()
        })
        .unwrap();
    let rings = |qp: &QPair| qp.pcie_stat().sq_mmio_doorbell_updates;
    let done = Rc::new(Cell::new(0u32));
    let mut rung_after = Vec::new();
    for i in 0..10u64 {
        let d = done.clone();
        qp.write(&ns, patterned(512, i), 100 + i, 1, move |_, c| {
            c.result.unwrap();
            d.set(d.get() + 1);
        })
        .unwrap();
        rung_after.push(rings(&qp));
    }
    assert_eq!(
        rung_after,
        [0, 0, 0, 1, 1, 1, 1, 2, 2, 2],
        "rung when the 4th and the 8th submissions were queued, not before"
    );
    qp.flush();
    assert_eq!(rings(&qp), 3, "the last two go at the flush");
    qp.flush();
    assert_eq!(rings(&qp), 3, "nothing left to ring");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while done.get() < 10 && std::time::Instant::now() < deadline {
        qp.process_completions(0).unwrap();
        std::thread::yield_now();
    }
    assert_eq!(done.get(), 10, "every command was fetched and completed");
    assert_eq!(rings(&qp), 3, "polling rang nothing more");
    for i in 0..10u64 {
        let mut got = vec![0u8; 512];
        e.handle().read_blocks(1, 100 + i, &mut got).unwrap();
        assert_same(
            &got,
            &patterned(512, i)[..],
            "block written through the batched doorbells",
        );
    }
}

#[test]
fn the_cq_head_is_reported_before_new_commands_could_find_the_queue_full() {
    let e = emu(5);
    let c = attach_mmio_doorbells(&e);
    let ns = c.namespace(1).unwrap();
    let mut qp = c
        .alloc_io_qpair(QPairOpts {
            io_queue_size: 16,
            delay_cmd_submit: true,
            ..QPairOpts::default()
        })
        .unwrap();
    // Batches of 4, each reaped whole before the next goes out, as a
    // polling loop at queue depth 4 does: consumed entries pile up behind
    // the lazily reported head until 4 new completions would not fit.
    let done = Rc::new(Cell::new(0u32));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let posted_before = e.stats().completions;
    for batch in 0..12u32 {
        for i in 0..4u64 {
            let d = done.clone();
            let buf = DmaBuf::alloc(512, 4096).unwrap();
            qp.read(&ns, buf, batch as u64 * 4 + i, 1, move |_, c| {
                c.result.unwrap();
                d.set(d.get() + 1);
            })
            .unwrap();
        }
        qp.flush();
        // No poll (and so no head doorbell) until the controller has
        // posted the whole batch, or has had 200 ms to: what it cannot
        // post for want of room then shows in its counter.
        let want = posted_before + 4 * (batch as u64 + 1);
        let t = std::time::Instant::now();
        while e.stats().completions < want && t.elapsed() < Duration::from_millis(200) {
            std::thread::yield_now();
        }
        while done.get() < 4 * (batch + 1) && std::time::Instant::now() < deadline {
            qp.process_completions(0).unwrap();
            std::thread::yield_now();
        }
        assert_eq!(done.get(), 4 * (batch + 1), "batch {batch} completed");
    }
    assert_eq!(
        e.stats().cq_full_stalls,
        0,
        "the controller never had to wait for room in the completion queue"
    );
    let cq_rings = qp.pcie_stat().cq_mmio_doorbell_updates;
    assert!(
        (1..12).contains(&cq_rings),
        "the head still goes lazily, not once per batch: {cq_rings} MMIO writes for 12 batches"
    );
}

#[test]
fn bad_arguments_are_refused_with_the_buffer_returned() {
    let e = emu(5);
    let c = attach(&e);
    let ns = c.namespace(2).unwrap(); // 1024 blocks of 4 KiB
    let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    let b = || DmaBuf::alloc(8192, 4096).unwrap();
    let err = |r: Result<(), spdk_io::nvme::SubmitError>| r.unwrap_err();
    let z = err(qp.read(&ns, b(), 0, 0, |_, _| {}));
    assert!(matches!(z.error, NvmeError::ZeroLength), "{}", z.error);
    let oor = err(qp.read(&ns, b(), 1023, 2, |_, _| {}));
    assert!(
        matches!(oor.error, NvmeError::LbaOutOfRange { .. }),
        "{}",
        oor.error
    );
    assert!(oor.error.to_string().contains("LBA Out of Range"));
    let wrap = err(qp.read(&ns, b(), u64::MAX, 2, |_, _| {}));
    assert!(matches!(wrap.error, NvmeError::LbaOutOfRange { .. }));
    let short = err(qp.write(&ns, b(), 0, 3, |_, _| {}));
    assert!(matches!(
        short.error,
        NvmeError::BufferTooShort {
            need: 12288,
            have: 8192
        }
    ));
    let segs = vec![
        DmaSlice::new(b(), 0..4096).unwrap(),
        DmaSlice::new(b(), 0..2048).unwrap(),
    ];
    let mis = err(qp.writev(&ns, segs, 0, 1, |_, _| {}));
    assert!(
        matches!(mis.error, NvmeError::InvalidArgument(_)),
        "{}",
        mis.error
    );
    assert_eq!(mis.buf.into_vec().len(), 2, "both segments come back");
    let unaligned = DmaSlice::new(b(), 2..4098).unwrap();
    let odd = err(qp.write(&c.namespace(1).unwrap(), unaligned, 0, 8, |_, _| {}));
    assert!(
        matches!(odd.error, NvmeError::BadBuffer(_)),
        "{}",
        odd.error
    );
    let (range_err, back) = DmaSlice::new(b(), 0..9000).unwrap_err();
    assert!(range_err.to_string().contains("outside"));
    assert_eq!(back.len(), 8192);
    assert_eq!(qp.outstanding(), 0);
    assert_eq!(qp.free_requests(), qp.queue_size() as usize - 1);
}

#[test]
fn async_events_reach_the_callback_and_namespaces_are_rescanned() {
    let e = emu(5);
    let c = attach(&e);
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev2 = events.clone();
    c.register_aer_callback(move |ev| ev2.lock().unwrap().push(ev));
    e.handle().raise_namespace_changed(1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while events.lock().unwrap().is_empty() {
        c.process_admin_completions().unwrap();
        assert!(std::time::Instant::now() < deadline, "no AER completion");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(events.lock().unwrap()[0].is_namespace_attribute_changed());
    assert_eq!(c.namespace_ids(), vec![1, 2]);
}

#[test]
fn features_log_pages_format_and_raw_admin_commands() {
    let e = emu(5);
    let c = attach(&e);
    c.set_features(FeatureId::VolatileWriteCache, 0, 0).unwrap();
    let v = c
        .get_features(FeatureId::VolatileWriteCache, FeatureSelect::Current, 0, 0)
        .unwrap();
    assert_eq!(v & 1, 0);
    c.set_features(FeatureId::VolatileWriteCache, 1, 0).unwrap();
    let v = c
        .get_features(FeatureId::VolatileWriteCache, FeatureSelect::Current, 0, 0)
        .unwrap();
    assert_eq!(v & 1, 1);
    let nq = c
        .get_features(FeatureId::NumberOfQueues, FeatureSelect::Current, 0, 0)
        .unwrap();
    assert_eq!(
        spdk_io::nvme::spec::features::NumberOfQueues::from_dw0(nq).nsq,
        4
    );
    let h = c.smart_health().unwrap();
    assert!(h.temperature_kelvin() > 200);
    c.error_log().unwrap();
    c.firmware_slot().unwrap();
    let bad = c.get_log_page(0x70, 0, 512).unwrap_err();
    assert!(bad.status().is_some(), "{bad}");
    c.format_nvm(2, spdk_io::nvme::FormatOpts::default())
        .unwrap();
    let n2 = c.namespace(2).expect("still there after Format NVM");
    assert_eq!(n2.block_size(), n2.identify().lbaf[0].data_size());
    let mut sqe = spdk_io::nvme::spec::Sqe::new(0x06, 0);
    sqe.cdw10 = 1;
    let (_, buf) = c
        .admin_raw(sqe, Some(DmaBuf::alloc_zeroed(4096, 4096).unwrap()))
        .unwrap();
    assert_eq!(&buf.unwrap()[4..11], b"EMU0001");
    let unknown = c
        .admin_raw(spdk_io::nvme::spec::Sqe::new(0xc3, 0), None)
        .unwrap_err();
    assert_eq!(unknown.status().unwrap().name(), "Invalid Command Opcode");
}

#[test]
fn qpairs_are_limited_to_the_granted_queues_and_freed_ids_are_reused() {
    let e = emu(5);
    let c = attach(&e);
    let qs: Vec<_> = (0..4)
        .map(|_| c.alloc_io_qpair(QPairOpts::default()).unwrap())
        .collect();
    let err = c.alloc_io_qpair(QPairOpts::default()).unwrap_err();
    assert!(matches!(err, NvmeError::NoFreeQueue(4)), "{err}");
    let bad = c
        .alloc_io_qpair(QPairOpts {
            io_queue_size: 1,
            ..QPairOpts::default()
        })
        .unwrap_err();
    assert!(matches!(bad, NvmeError::InvalidArgument(_)));
    drop(qs);
    c.alloc_io_qpair(QPairOpts::default()).unwrap();
}

#[test]
fn compare_flush_write_zeroes_and_deallocate() {
    let e = emu(5);
    let c = attach(&e);
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    write_sync(&mut qp, &ns, patterned(2048, 5), 10, 4).unwrap();
    cmd_sync(&mut qp, |qp, s| {
        qp.compare(&ns, patterned(2048, 5), 10, 4, into_slot(&s))
    })
    .unwrap();
    let miss = cmd_sync(&mut qp, |qp, s| {
        qp.compare(&ns, patterned(2048, 6), 10, 4, into_slot(&s))
    })
    .unwrap_err();
    assert_eq!(miss.status().unwrap().name(), "Compare Failure");
    cmd_sync(&mut qp, |qp, s| qp.flush_ns(&ns, into_slot(&s))).unwrap();
    cmd_sync(&mut qp, |qp, s| qp.write_zeroes(&ns, 10, 2, into_slot(&s))).unwrap();
    let r = read_sync(&mut qp, &ns, patterned(2048, 1), 10, 4).unwrap();
    assert!(r[..1024].iter().all(|&b| b == 0));
    assert_same(&r[1024..], &patterned(2048, 5)[1024..], "untouched blocks");
    cmd_sync(&mut qp, |qp, s| {
        qp.deallocate(&ns, &[(12, 2), (100, 1)], into_slot(&s))
    })
    .unwrap();
    let r = read_sync(&mut qp, &ns, patterned(2048, 1), 10, 4).unwrap();
    assert!(
        r.iter().all(|&b| b == 0),
        "deallocated blocks read zeroes on this controller"
    );
    let e0 = qp.deallocate(&ns, &[], |_, _| {}).unwrap_err();
    assert!(matches!(e0.error, NvmeError::InvalidArgument(_)));
}

#[test]
fn shadow_doorbells_are_used_when_offered_and_can_be_turned_off() {
    env::init_once(EnvOpts::no_huge()).unwrap();
    let e = Arc::new(
        EmuController::builder()
            .shadow_doorbells(true)
            .namespace(512, 4096)
            .build()
            .unwrap(),
    );
    let run = |shadow: bool| {
        let c = Controller::attach(
            e.clone(),
            ControllerOpts {
                shadow_doorbell: shadow,
                ..ControllerOpts::default()
            },
        )
        .unwrap();
        assert_eq!(c.shadow_doorbells_enabled(), shadow);
        let ns = c.namespace(1).unwrap();
        let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
        let before = e.stats();
        for i in 0..50 {
            let w = patterned(512, i);
            let want = w.to_vec();
            write_sync(&mut qp, &ns, w, i, 1).unwrap();
            let r =
                read_sync(&mut qp, &ns, DmaBuf::alloc_zeroed(512, 4096).unwrap(), i, 1).unwrap();
            assert_same(&r, &want, "round trip");
        }
        e.stats().shadow_doorbell_updates - before.shadow_doorbell_updates
    };
    assert!(run(true) > 0, "the controller saw shadow doorbell updates");
    assert_eq!(run(false), 0, "no shadow doorbell updates when turned off");
}

#[test]
fn qemus_controller_gets_no_shadow_doorbells_unless_asked_for_always() {
    env::init_once(EnvOpts::no_huge()).unwrap();
    // QEMU's NVMe controller as Identify shows it: Red Hat's vendor ID and
    // QEMU's model number, offering Doorbell Buffer Config.
    let e = Arc::new(
        EmuController::builder()
            .pci_ids(0x1b36, 0x0010)
            .model("QEMU NVMe Ctrl")
            .shadow_doorbells(true)
            .namespace(512, 4096)
            .build()
            .unwrap(),
    );
    let attach = |always: bool| {
        Controller::attach(
            e.clone(),
            ControllerOpts {
                shadow_doorbell_always: always,
                ..ControllerOpts::default()
            },
        )
        .unwrap()
    };
    let c = attach(false);
    assert!(
        !c.shadow_doorbells_enabled(),
        "QEMU's controller reads and writes the buffer per command: left off by default"
    );
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    let before = e.stats();
    write_sync(&mut qp, &ns, patterned(512, 7), 0, 1).unwrap();
    assert_eq!(
        e.stats().shadow_doorbell_updates,
        before.shadow_doorbell_updates
    );
    assert!(qp.pcie_stat().sq_mmio_doorbell_updates > 0);
    drop(qp);
    drop(c);
    assert!(attach(true).shadow_doorbells_enabled());
}

#[test]
fn a_qpair_that_outlives_its_controller_fails_cleanly() {
    let e = emu(5);
    let c = attach(&e);
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    drop(c); // detach: shutdown, disable
    let err = qp
        .write(&ns, patterned(512, 1), 0, 1, |_, _| {})
        .unwrap_err();
    assert!(
        matches!(err.error, NvmeError::ControllerUnavailable),
        "{}",
        err.error
    );
    assert_eq!(err.buf.len(), 512);
    let _ = qp.process_completions(0);
    assert!(matches!(
        qp.process_completions(0),
        Err(NvmeError::ControllerUnavailable)
    ));
}

#[test]
fn completion_head_doorbells_wait_until_space_could_run_short() {
    let e = emu(5);
    let c = attach_mmio_doorbells(&e);
    let ns = c.namespace(1).unwrap();
    let mut qp = c
        .alloc_io_qpair(QPairOpts {
            io_queue_size: 16,
            ..QPairOpts::default()
        })
        .unwrap();
    // QD1: one SQ doorbell per I/O, a CQ doorbell only every ~14 completions.
    let before = e.stats().doorbell_writes;
    for i in 0..100u64 {
        write_sync(&mut qp, &ns, patterned(512, i), i, 1).unwrap();
    }
    let writes = e.stats().doorbell_writes - before;
    assert!(writes >= 100, "every submission rings");
    assert!(
        writes <= 100 + 100 / 10,
        "{writes} doorbell writes for 100 I/Os"
    );
    // A full queue (15 requests in flight on 16 entries) never stalls.
    let done = Rc::new(Cell::new(0u32));
    for round in 0..40u64 {
        for i in 0..15u64 {
            let d = done.clone();
            qp.read(
                &ns,
                DmaBuf::alloc(512, 4096).unwrap(),
                round * 15 + i,
                1,
                move |_, c| {
                    c.result.unwrap();
                    d.set(d.get() + 1);
                },
            )
            .unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while qp.outstanding() > 0 {
            qp.process_completions(0).unwrap();
            assert!(
                std::time::Instant::now() < deadline,
                "stalled in round {round}"
            );
        }
    }
    assert_eq!(done.get(), 600);
}

#[test]
fn contiguous_buffers_go_as_one_sgl_descriptor_when_offered() {
    env::init_once(EnvOpts::no_huge()).unwrap();
    let e = Arc::new(
        EmuController::builder()
            .sgl(true)
            .mdts(3)
            .namespace(512, 8192)
            .build()
            .unwrap(),
    );
    for use_sgl in [true, false] {
        let c = Controller::attach(
            e.clone(),
            ControllerOpts {
                use_sgl,
                ..ControllerOpts::default()
            },
        )
        .unwrap();
        assert!(c.data().supports_sgl());
        let ns = c.namespace(1).unwrap();
        let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
        let mut rng = Rng(use_sgl as u64 + 5);
        for i in 0..30u64 {
            // Up to 3x MDTS (32 KiB), at dword offsets: split, each child one descriptor.
            let n = 1 + rng.below(190) as u32;
            let lba = rng.below(8192 - n as u64);
            let off = (rng.below(32) * 4) as usize;
            write_check_read(&e, &mut qp, &ns, (lba, n), off, i);
        }
    }
}
