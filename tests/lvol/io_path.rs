//! The lvol bdev's I/O path: reads and writes to the lvol's clusters are
//! passed through to the base bdev's module and counted on both bdevs;
//! NOMEM from the base is retried; a reset of the base, a reset of the
//! lvol (which drains for SPDK's `reset_io_drain_timeout` of 5 s) and the
//! base's removal, each with lvol I/O in flight.

use crate::bdev::{by_name, opts, setup};
use crate::lvol_common::run;
use spdk_io::bdev::error_inject::{self, ErrorOpts, ErrorType};
use spdk_io::bdev::{self, malloc, Channel, Desc, IoBuf, IoCompletion, IoStatus, IoType};
use spdk_io::blob::BlobClearMethod;
use spdk_io::lvol::vbdev;
use std::cell::RefCell;
use std::rc::Rc;

const MIB: u64 = 1 << 20;

/// Waits (bounded) on this thread until `done` says so.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for _ in 0..1_000_000 {
        if done() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not after 30 s"
        );
        spdk_io::thread::yield_now().await;
    }
    panic!("{what}: not after 1000000 polls");
}

type Log = Rc<RefCell<Vec<IoCompletion>>>;

fn rec(l: &Log) -> Box<dyn bdev::IoDone> {
    let l = l.clone();
    Box::new(move |c: IoCompletion| l.borrow_mut().push(c))
}

fn statuses(l: &Log) -> Vec<IoStatus> {
    l.borrow().iter().map(|c| c.status).collect()
}

fn block(byte: u8) -> IoBuf {
    IoBuf::from_vec(vec![byte; 512])
}

/// Writes `byte` to block `lba` and reads it back through `d`.
async fn round_trip(d: &Desc, ch: &Channel, lba: u64, byte: u8) {
    d.write_blocks_async(ch, block(byte), lba, 1).await.unwrap();
    let b = d
        .read_blocks_async(ch, IoBuf::new(512), lba, 1)
        .await
        .unwrap();
    assert!(b.iter().all(|&x| x == byte), "block {lba}");
}

/// An lvstore `lvs` on `base` with a thick lvol `v` of 4 MiB, open.
async fn thick_lvol(base: &str, lvs: &str) -> (Desc, Channel) {
    vbdev::create_lvstore(base, &opts(lvs)).await.unwrap();
    let name = vbdev::create(&by_name(lvs), "v", 4, false, BlobClearMethod::None)
        .await
        .unwrap();
    let d = bdev::open(&name, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    // The first I/O makes the thread's blob channel.
    round_trip(&d, &ch, 0, 0xee).await;
    (d, ch)
}

async fn drop_lvstore(lvs: &str, io: (Desc, Channel)) {
    drop(io);
    vbdev::delete_lvstore(&by_name(lvs)).await.unwrap();
}

#[test]
fn lvol_reads_and_writes_count_on_the_lvol_and_on_its_base() {
    setup();
    malloc::create(malloc::MallocOpts::new(
        "LvolPathMalloc",
        16 * MIB / 512,
        512,
    ))
    .unwrap();
    run(async {
        let (d, ch) = thick_lvol("LvolPathMalloc", "lvs_path").await;
        let base = || bdev::get_by_name("LvolPathMalloc").unwrap().iostat();
        let (b0, v0) = (base(), d.bdev().iostat());
        for i in 0..16u64 {
            round_trip(&d, &ch, 100 + i * 37, i as u8).await;
        }
        // Two blocks across the first cluster boundary: two runs, the blob path.
        let two = IoBuf::from_vec(vec![0x77; 1024]);
        d.write_blocks_async(&ch, two, 2047, 2).await.unwrap();
        let (b1, v1) = (base(), d.bdev().iostat());
        assert_eq!(v1.num_write_ops - v0.num_write_ops, 17);
        assert_eq!(v1.num_read_ops - v0.num_read_ops, 16);
        assert_eq!(v1.bytes_written - v0.bytes_written, 16 * 512 + 1024);
        assert_eq!(
            b1.num_read_ops - b0.num_read_ops,
            16,
            "the base saw each read"
        );
        assert_eq!(b1.bytes_read - b0.bytes_read, 16 * 512);
        assert_eq!(b1.bytes_written - b0.bytes_written, 16 * 512 + 1024);
        assert_eq!(v1.num_io_errors + b1.num_io_errors, 0);
        drop_lvstore("lvs_path", (d, ch)).await;
    });
}

#[test]
fn an_lvol_bdev_drains_a_reset_for_spdks_five_seconds_before_its_module_would_fail_it() {
    setup();
    malloc::create(malloc::MallocOpts::new(
        "LvolResetMalloc",
        16 * MIB / 512,
        512,
    ))
    .unwrap();
    run(async {
        let (d, ch) = thick_lvol("LvolResetMalloc", "lvs_reset").await;
        assert_eq!(vbdev::RESET_IO_DRAIN_TIMEOUT, 5);
        assert_eq!(d.bdev().props().reset_io_drain_timeout, 5);
        let (l, r): (Log, Log) = Default::default();
        for i in 0..8u64 {
            d.write_blocks(&ch, block(0x30 + i as u8), 10 + i, 1, rec(&l))
                .unwrap();
        }
        // With eight writes in flight: the reset waits for them, then
        // succeeds without the module (SPDK's lvol module fails a reset).
        d.reset(&ch, rec(&r)).unwrap();
        until("writes and reset", || {
            l.borrow().len() == 8 && r.borrow().len() == 1
        })
        .await;
        assert_eq!(statuses(&l), vec![IoStatus::Success; 8]);
        assert_eq!(statuses(&r), vec![IoStatus::Success]);
        // Nothing in flight: done at once.
        d.reset(&ch, rec(&r)).unwrap();
        until("second reset", || r.borrow().len() == 2).await;
        assert_eq!(r.borrow()[1].status, IoStatus::Success);
        for i in 0..8u64 {
            let b = d
                .read_blocks_async(&ch, IoBuf::new(512), 10 + i, 1)
                .await
                .unwrap();
            assert!(b.iter().all(|&x| x == 0x30 + i as u8), "block {}", 10 + i);
        }
        drop_lvstore("lvs_reset", (d, ch)).await;
    });
}

#[test]
fn nomem_from_the_lvols_base_is_retried_and_never_reported() {
    setup();
    malloc::create(malloc::MallocOpts::new(
        "LvolNomemMalloc",
        16 * MIB / 512,
        512,
    ))
    .unwrap();
    let ee = error_inject::create(ErrorOpts::new("LvolNomemMalloc")).unwrap();
    let ee_name = ee.name().to_string();
    run(async move {
        let (d, ch) = thick_lvol(&ee_name, "lvs_nomem").await;
        let e0 = bdev::get_by_name(&ee_name).unwrap().iostat();
        error_inject::inject_error(&ee_name, None, ErrorType::Nomem, 6).unwrap();
        let l: Log = Default::default();
        for i in 0..4u64 {
            d.write_blocks(&ch, block(0x60 + i as u8), 300 + i, 1, rec(&l))
                .unwrap();
        }
        until("writes", || l.borrow().len() == 4).await;
        assert_eq!(statuses(&l), vec![IoStatus::Success; 4]);
        for i in 0..4u64 {
            let b = d
                .read_blocks_async(&ch, IoBuf::new(512), 300 + i, 1)
                .await
                .unwrap();
            assert!(b.iter().all(|&x| x == 0x60 + i as u8), "block {}", 300 + i);
        }
        let e1 = bdev::get_by_name(&ee_name).unwrap().iostat();
        assert_eq!(
            e1.num_write_ops - e0.num_write_ops,
            4,
            "NOMEM is not counted"
        );
        assert_eq!(e1.num_io_errors, e0.num_io_errors);
        drop_lvstore("lvs_nomem", (d, ch)).await;
    });
}

#[test]
fn a_reset_of_the_base_fails_the_lvol_io_it_held_and_lvol_io_goes_on() {
    setup();
    malloc::create(malloc::MallocOpts::new(
        "LvolBaseResetMalloc",
        16 * MIB / 512,
        512,
    ))
    .unwrap();
    let ee = error_inject::create(ErrorOpts::new("LvolBaseResetMalloc")).unwrap();
    let ee_name = ee.name().to_string();
    run(async move {
        // Opened before the lvstore claims it: a writer that may reset it.
        let de = bdev::open(&ee_name, true).unwrap();
        let ce = de.get_io_channel().unwrap();
        let (d, ch) = thick_lvol(&ee_name, "lvs_base_reset").await;
        error_inject::inject_error(&ee_name, Some(IoType::Write), ErrorType::Pending, 2).unwrap();
        let (l, r): (Log, Log) = Default::default();
        d.write_blocks(&ch, block(1), 40, 1, rec(&l)).unwrap();
        d.write_blocks(&ch, block(2), 41, 1, rec(&l)).unwrap();
        for _ in 0..100 {
            spdk_io::thread::yield_now().await;
        }
        assert!(l.borrow().is_empty(), "held by the error bdev");
        de.reset(&ce, rec(&r)).unwrap();
        until("base reset and lvol writes", || {
            l.borrow().len() == 2 && r.borrow().len() == 1
        })
        .await;
        assert_eq!(statuses(&r), vec![IoStatus::Success]);
        // As SPDK's lvol reports any error of its blob I/O.
        assert_eq!(statuses(&l), vec![IoStatus::Failed; 2]);
        assert!(
            l.borrow().iter().all(|c| c.data.len() == 512),
            "buffers come back"
        );
        round_trip(&d, &ch, 40, 3).await;
        drop((ce, de));
        drop_lvstore("lvs_base_reset", (d, ch)).await;
    });
}

#[test]
fn removing_the_base_with_lvol_io_in_flight_completes_each_io_once() {
    setup();
    malloc::create(malloc::MallocOpts::new(
        "LvolGoneMalloc",
        16 * MIB / 512,
        512,
    ))
    .unwrap();
    let ee = error_inject::create(ErrorOpts::new("LvolGoneMalloc")).unwrap();
    let ee_name = ee.name().to_string();
    drop(ee);
    run(async move {
        let (d, ch) = thick_lvol(&ee_name, "lvs_io_gone").await;
        let lvol = d.bdev().name().to_string();
        error_inject::inject_error(&ee_name, Some(IoType::Write), ErrorType::Pending, 4).unwrap();
        let l: Log = Default::default();
        for i in 0..4u64 {
            d.write_blocks(&ch, block(i as u8), 50 + i, 1, rec(&l))
                .unwrap();
        }
        for _ in 0..100 {
            spdk_io::thread::yield_now().await;
        }
        assert!(l.borrow().is_empty(), "held by the error bdev");
        bdev::get_by_name("LvolGoneMalloc").unwrap().unregister();
        until("the lvol writes", || l.borrow().len() >= 4).await;
        for _ in 0..100 {
            spdk_io::thread::yield_now().await;
        }
        let mut offs: Vec<u64> = l.borrow().iter().map(|c| c.offset_blocks).collect();
        offs.sort();
        assert_eq!(
            offs,
            vec![50, 51, 52, 53],
            "each I/O completed exactly once"
        );
        assert!(statuses(&l).iter().all(|s| *s == IoStatus::Failed));
        assert!(
            l.borrow().iter().all(|c| c.data.len() == 512),
            "buffers come back"
        );
        assert_eq!(ch.outstanding(), 0);
        drop((d, ch));
        until("the lvstore's unload", || {
            vbdev::lvstore(&by_name("lvs_io_gone")).is_err()
        })
        .await;
        assert!(bdev::get_by_name(&lvol).is_none(), "the lvol bdev is gone");
    });
}

#[test]
fn a_thin_lvol_reads_zeroes_where_it_was_never_written_and_its_data_where_it_was() {
    setup();
    malloc::create(malloc::MallocOpts::new(
        "LvolThinMalloc",
        16 * MIB / 512,
        512,
    ))
    .unwrap();
    run(async {
        vbdev::create_lvstore("LvolThinMalloc", &opts("lvs_thin_path"))
            .await
            .unwrap();
        let name = vbdev::create(
            &by_name("lvs_thin_path"),
            "t",
            4,
            true,
            BlobClearMethod::None,
        )
        .await
        .unwrap();
        let d = bdev::open(&name, true).unwrap();
        let ch = d.get_io_channel().unwrap();
        // The buffers come in full of 0xff: a read of unwritten blocks clears them.
        let full = || IoBuf::from_vec(vec![0xff; 1024]);
        let b = d.read_blocks_async(&ch, full(), 5, 2).await.unwrap();
        assert!(b.iter().all(|&x| x == 0), "unwritten blocks read as zeroes");
        round_trip(&d, &ch, 6, 0x42).await;
        let b = d.read_blocks_async(&ch, full(), 5, 2).await.unwrap();
        assert!(
            b[..512].iter().all(|&x| x == 0),
            "block 5 of the allocated cluster"
        );
        assert!(b[512..].iter().all(|&x| x == 0x42), "block 6 as written");
        // Vectored, in a cluster still unallocated.
        let bufs = vec![
            IoBuf::from_vec(vec![0xff; 512]),
            IoBuf::from_vec(vec![0xff; 512]),
        ];
        let c = d
            .submit_async(&ch, IoType::Read, 4096, 2, bdev::IoData::Vec(bufs))
            .await
            .unwrap();
        let bdev::IoData::Vec(c) = c else {
            panic!("the two buffers come back")
        };
        assert!(c.iter().all(|b| b.iter().all(|&x| x == 0)));
        drop_lvstore("lvs_thin_path", (d, ch)).await;
    });
}
