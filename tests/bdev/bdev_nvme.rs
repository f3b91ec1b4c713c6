//! The nvme bdev on the host, against the software NVMe controller (the
//! real-controller test is tests/bdev_nvme_guest.rs).

use crate::common;

use common::*;
use spdk_io::bdev::{self, IoBuf, IoStatus, IoType};
use spdk_io::env::{self, EnvOpts};
use spdk_io::nvme::emu::{admin_opc, nvm_opc, CommandMatch, EmuController, Status};
use spdk_io::nvme::{Controller, ControllerOpts};
use std::sync::Arc;

fn emu_bdevs(name: &str) -> Vec<Arc<bdev::Bdev>> {
    emu_bdevs_with(name).1
}

/// The bdevs and the software controller behind them (for its faults).
fn emu_bdevs_with(name: &str) -> (Arc<EmuController>, Vec<Arc<bdev::Bdev>>) {
    env::init_once(EnvOpts::no_huge()).expect("env");
    let e = Arc::new(
        EmuController::builder()
            .serial("BDEVEMU1")
            .mdts(3)
            .max_io_queue_pairs(4)
            .shadow_doorbells(true)
            .namespace(512, 8192)
            .namespace(4096, 512)
            .build()
            .expect("emu"),
    );
    let c = Controller::attach(e.clone(), ControllerOpts::default()).expect("attach");
    let b = bdev::nvme::register_controller(name, c, None).expect("register");
    (e, b)
}

#[test]
fn nvme_bdev_per_namespace_round_trips_dma_and_heap_buffers() {
    let b = emu_bdevs("EmuA");
    assert_eq!(
        b.iter().map(|b| b.name().to_string()).collect::<Vec<_>>(),
        vec!["EmuAn1", "EmuAn2"]
    );
    assert_eq!((b[1].block_size(), b[1].num_blocks()), (4096, 512));
    round_trip("EmuAn1", true);
    round_trip("EmuAn2", true);
    round_trip("EmuAn1", false);
}

#[test]
fn nvme_bdev_flush_write_zeroes_unmap_and_reset_under_load() {
    emu_bdevs("EmuB");
    let d = bdev::open("EmuBn1", true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    d.write_blocks(&ch, IoBuf::from_vec(vec![0xee; 4096]), 16, 8, rec(&l))
        .unwrap();
    poll_until(&ch, || l.borrow().len() == 1);
    if d.bdev().io_type_supported(IoType::WriteZeroes) {
        d.write_zeroes_blocks(&ch, 16, 4, rec(&l)).unwrap();
    } else {
        d.flush_blocks(&ch, 0, 1, rec(&l)).unwrap();
    }
    d.flush_blocks(&ch, 0, 8192, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 3);
    // Reset with reads in flight: every I/O completes exactly once.
    for i in 0..16 {
        d.read_blocks(&ch, IoBuf::dma(512, 512).unwrap(), i, 1, rec(&l))
            .unwrap();
    }
    d.reset(&ch, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 3 + 17);
    for _ in 0..100 {
        ch.poll();
    }
    assert_eq!(l.borrow().len(), 20, "nothing completes twice");
    let reset = l
        .borrow()
        .iter()
        .filter(|c| c.io_type == IoType::Reset)
        .map(|c| c.status)
        .collect::<Vec<_>>();
    assert_eq!(reset, vec![IoStatus::Success]);
    // The device works after the reset.
    d.read_blocks(&ch, IoBuf::dma(4096, 4096).unwrap(), 16, 8, rec(&l))
        .unwrap();
    poll_until(&ch, || l.borrow().len() == 21);
    let c = l.borrow_mut().pop().unwrap();
    assert!(c.success(), "{:?}", c.status);
    let b = c.data.into_buf().unwrap();
    if d.bdev().io_type_supported(IoType::WriteZeroes) {
        assert!(b[..2048].iter().all(|&x| x == 0) && b[2048..].iter().all(|&x| x == 0xee));
    }
}

#[test]
fn nvme_bdev_compare_and_write_is_emulated_over_the_native_compare() {
    emu_bdevs("EmuCaw");
    let b = bdev::get_by_name("EmuCawn1").unwrap();
    assert!(b.io_type_supported(IoType::Compare));
    assert!(b.emulates_compare_and_write(), "no fused commands yet");
    let d = bdev::open("EmuCawn1", true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    let dma = |v: u8| {
        let mut b = IoBuf::dma(1024, 512).unwrap();
        b.fill(v);
        b
    };
    d.write_blocks(&ch, dma(0x11), 40, 2, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 1);
    d.compare_and_write_blocks(&ch, dma(0x11), dma(0x22), 40, 2, rec(&l))
        .unwrap();
    // Heap buffers too: the nvme bdev bounces them.
    let heap = |v: u8| IoBuf::from_vec(vec![v; 1024]);
    d.compare_and_write_blocks(&ch, heap(0x11), heap(0x33), 40, 2, rec(&l))
        .unwrap();
    d.compare_and_write_blocks(&ch, heap(0x22), heap(0x44), 40, 2, rec(&l))
        .unwrap();
    poll_until(&ch, || l.borrow().len() == 4);
    assert_eq!(
        statuses(&l)[1..],
        [IoStatus::Success, IoStatus::Miscompare, IoStatus::Success]
    );
    d.read_blocks(&ch, IoBuf::dma(1024, 512).unwrap(), 40, 2, rec(&l))
        .unwrap();
    poll_until(&ch, || l.borrow().len() == 5);
    let got = std::mem::take(&mut l.borrow_mut()[4].data)
        .into_buf()
        .unwrap();
    assert!(got.iter().all(|&x| x == 0x44));
}

#[test]
fn a_channel_whose_queue_cannot_be_deleted_never_frees_the_buffers_in_flight() {
    // The nvme bdev lends DMA buffers to the device by address. When its
    // channel closes with a read in flight and the controller refuses to
    // delete the queue, the device may still write that buffer: the layer
    // must never free it (nor the queue's rings).
    let (e, _) = emu_bdevs_with("EmuLeak");
    let d = bdev::open("EmuLeakn2", true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    d.write_blocks(&ch, filled(4096, 0x6b), 3, 1, rec(&l))
        .unwrap();
    poll_until(&ch, || l.borrow().len() == 1);
    e.faults().delay_next(
        CommandMatch::io(nvm_opc::READ),
        std::time::Duration::from_millis(300),
        1,
    );
    e.faults().fail_next(
        CommandMatch::admin(admin_opc::DELETE_IO_SQ),
        Status::INTERNAL_ERROR,
        1,
    );
    d.read_blocks(&ch, IoBuf::dma(4096, 4096).unwrap(), 3, 1, rec(&l))
        .unwrap();
    ch.poll(); // rings the doorbell
    std::thread::sleep(std::time::Duration::from_millis(20));
    drop(ch);
    assert_eq!(l.borrow().len(), 1, "no completion for the abandoned read");
    let fresh: Vec<IoBuf> = (0..64).map(|_| IoBuf::dma(4096, 4096).unwrap()).collect();
    std::thread::sleep(std::time::Duration::from_millis(600));
    for (i, f) in fresh.iter().enumerate() {
        assert!(
            f.iter().all(|&x| x == 0),
            "buffer {i} was written after the close"
        );
    }
}

#[test]
fn a_namespace_formatted_with_metadata_takes_no_block_io_and_gets_no_bdev() {
    env::init_once(EnvOpts::no_huge()).expect("env");
    let e = Arc::new(
        EmuController::builder()
            .serial("BDEVEMUMD")
            .advertise_metadata(8)
            .namespace(512, 1024)
            .build()
            .expect("emu"),
    );
    let c = Controller::attach(e.clone(), ControllerOpts::default()).expect("attach");
    // The driver lists the namespace and tells what it is ...
    let ns = c.namespace(1).unwrap();
    assert_eq!(
        (ns.block_size(), ns.num_blocks(), ns.metadata_size()),
        (512, 1024, 8)
    );
    assert!(!ns.supports_block_io());
    // ... refuses every command that moves blocks, by name, and hands the
    // buffer back; the device never sees one ...
    let mut qp = c.alloc_io_qpair(Default::default()).unwrap();
    let buf = spdk_io::env::DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let r = qp.read(&ns, buf, 0, 8, |_, _| {}).unwrap_err();
    assert!(
        r.error
            .to_string()
            .contains("8 bytes of metadata per block"),
        "{}",
        r.error
    );
    assert_eq!(r.buf.len(), 4096, "the buffer comes back");
    assert!(qp.write_zeroes(&ns, 0, 1, |_, _| {}).is_err());
    assert!(qp.deallocate(&ns, &[(0, 1)], |_, _| {}).is_err());
    assert_eq!(e.stats().io(nvm_opc::READ), 0);
    // ... but a flush, which addresses no block, still runs.
    let done = std::rc::Rc::new(std::cell::Cell::new(false));
    let d2 = done.clone();
    qp.flush_ns(&ns, move |_, c| {
        c.result.unwrap();
        d2.set(true);
    })
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done.get() {
        qp.process_completions(0).unwrap();
        assert!(
            std::time::Instant::now() < deadline,
            "flush never completed"
        );
    }
    drop(qp);
    // The nvme bdev module makes no bdev of it and says why.
    let err = bdev::nvme::register_controller("EmuMd", c, None).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("EmuMd") && msg.contains("namespace 1") && msg.contains("metadata"),
        "{msg}"
    );
    assert!(bdev::get_by_name("EmuMdn1").is_none());
}

/// Waits (up to 20 s) until `cond` holds.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn a_namespace_detached_on_the_controller_loses_its_bdev_and_gets_it_back_when_reattached() {
    let (e, _) = emu_bdevs_with("EmuNs");
    e.handle().set_namespace_attached(2, false).unwrap();
    wait_for("the detached namespace's bdev is still registered", || {
        bdev::get_by_name("EmuNsn2").is_none()
    });
    assert!(bdev::get_by_name("EmuNsn1").is_some());
    assert_eq!(
        bdev::nvme::controllers(Some("EmuNs")).unwrap()[0].bdevs,
        vec!["EmuNsn1".to_string()]
    );
    e.handle().set_namespace_attached(2, true).unwrap();
    wait_for("the reattached namespace got no bdev", || {
        bdev::get_by_name("EmuNsn2").is_some()
    });
    round_trip("EmuNsn2", true);
    bdev::nvme::detach_controller("EmuNs").unwrap();
}

#[test]
fn a_namespace_grown_on_the_controller_grows_its_bdev_and_open_descriptors_hear_of_it() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (e, b) = emu_bdevs_with("EmuRs");
    assert_eq!(b[0].num_blocks(), 8192);
    let resized = Arc::new(AtomicUsize::new(0));
    let r = resized.clone();
    let d = bdev::open_ext("EmuRsn1", true, move |ev, _| {
        if ev == bdev::BdevEvent::Resize {
            r.fetch_add(1, Ordering::AcqRel);
        }
    })
    .unwrap();
    e.handle().resize_namespace(1, 16384).unwrap();
    // The size changes first, then the descriptors hear of it.
    wait_for("the bdev did not grow, or no resize event came", || {
        b[0].num_blocks() == 16384 && resized.load(Ordering::Acquire) > 0
    });
    assert_eq!(resized.load(Ordering::Acquire), 1);
    // A channel made now reaches the new blocks.
    let ch = d.get_io_channel().unwrap();
    let l = log();
    d.write_blocks(&ch, IoBuf::from_vec(vec![0x77; 512]), 16000, 1, rec(&l))
        .unwrap();
    poll_until(&ch, || l.borrow().len() == 1);
    assert!(l.borrow()[0].success(), "{:?}", l.borrow()[0].status);
    drop(ch);

    // Shrinking while it is open is refused: the bdev keeps its size.
    e.handle().resize_namespace(1, 4096).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(b[0].num_blocks(), 16384);
    drop(d);
    bdev::nvme::detach_controller("EmuRs").unwrap();
}
