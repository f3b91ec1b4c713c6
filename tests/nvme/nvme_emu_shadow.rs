//! The NVMe driver against the software controller with shadow doorbells,
//! which reads them as QEMU does: a shadow value is looked at only while
//! the controller already works on the queue, so a missing MMIO doorbell
//! write (a wrong EventIdx decision in the driver) leaves commands unfetched
//! here just as it would on QEMU.

use crate::nvme_common;

use nvme_common::*;
use spdk_io::env::{self, DmaBuf, EnvOpts};
use spdk_io::nvme::emu::EmuController;
use spdk_io::nvme::{Controller, ControllerOpts, QPairOpts};
use std::sync::Arc;
use std::time::Duration;

fn shadow_emu(io_queue_pairs: u16) -> Arc<EmuController> {
    env::init_once(EnvOpts::no_huge()).expect("env");
    Arc::new(
        EmuController::builder()
            .serial("EMUSHADOW")
            .shadow_doorbells(true)
            .max_io_queue_pairs(io_queue_pairs)
            .namespace(512, 4096)
            .build()
            .expect("emu"),
    )
}

/// A deleted queue leaves its last shadow tail and EventIdx in the doorbell
/// buffer, and Create I/O SQ does not reset them. A qpair reusing the queue
/// ID must still ring its first doorbell by MMIO: otherwise the controller
/// never fetches the command and only the driver's stall kick (an MMIO
/// re-ring after many idle polls) would rescue it.
#[test]
fn a_qpair_on_a_freed_queue_id_completes_io_without_a_doorbell_kick() {
    let e = shadow_emu(1);
    let c = Controller::attach(e.clone(), ControllerOpts::default()).expect("attach");
    assert!(c.shadow_doorbells_enabled());
    let ns = c.namespace(1).unwrap();
    for round in 0..3u64 {
        let mut qp = c
            .alloc_io_qpair(QPairOpts {
                io_queue_size: 64,
                ..QPairOpts::default()
            })
            .unwrap();
        assert_eq!(qp.qid(), 1, "the only queue ID is reused");
        // 40 round trips leave the SQ tail and its EventIdx far from 0.
        for i in 0..20u64 {
            let lba = round * 20 + i;
            let w = patterned(512, lba);
            let want = w.to_vec();
            let first = wait_for_io(&mut qp, &ns, w, lba, true);
            let r = wait_for_io(
                &mut qp,
                &ns,
                DmaBuf::alloc_zeroed(512, 4096).unwrap(),
                lba,
                false,
            );
            assert_same(&r, &want, "read back");
            drop(first);
        }
        assert_eq!(
            qp.pcie_stat().doorbell_kicks,
            0,
            "round {round}: every command reached the controller without a kick"
        );
    }
}

/// A write or read of one block that must complete within 5 s.
fn wait_for_io(
    qp: &mut spdk_io::nvme::QPair,
    ns: &spdk_io::nvme::Namespace,
    buf: DmaBuf,
    lba: u64,
    write: bool,
) -> DmaBuf {
    let s = slot();
    if write {
        qp.write(ns, buf, lba, 1, into_slot(&s)).unwrap();
    } else {
        qp.read(ns, buf, lba, 1, into_slot(&s)).unwrap();
    }
    let done = wait_for(qp, &s, Duration::from_secs(5));
    done.result.expect("I/O succeeds");
    done.buf.into_dma_buf().expect("the DMA buffer comes back")
}

/// Bursts of submissions rung once (`delay_cmd_submit`) at queue depths up
/// to the queue size: the driver's EventIdx decisions keep every command
/// moving, with no kick, through many wraps of a small queue.
#[test]
fn batched_submissions_wrap_a_small_queue_without_a_doorbell_kick() {
    let e = shadow_emu(2);
    let c = Controller::attach(e.clone(), ControllerOpts::default()).expect("attach");
    let ns = c.namespace(1).unwrap();
    let mut qp = c
        .alloc_io_qpair(QPairOpts {
            io_queue_size: 8,
            delay_cmd_submit: true,
            ..QPairOpts::default()
        })
        .unwrap();
    let mut done = 0u64;
    for round in 0..100u64 {
        let burst = 1 + round % 7;
        let slots: Vec<_> = (0..burst)
            .map(|i| {
                let s = slot();
                let lba = (round * 7 + i) % 4096;
                qp.write(&ns, patterned(512, lba), lba, 1, into_slot(&s))
                    .unwrap();
                s
            })
            .collect();
        qp.flush();
        for s in &slots {
            wait_for(&mut qp, s, Duration::from_secs(5))
                .result
                .expect("write succeeds");
            done += 1;
        }
    }
    assert_eq!(done, (0..100u64).map(|r| 1 + r % 7).sum::<u64>());
    assert_eq!(qp.pcie_stat().doorbell_kicks, 0);
    assert!(
        e.stats().mmio_suppressed > 0,
        "the controller picked up shadow values without MMIO writes"
    );
}
