//! LBA range locks and the compare-and-write the bdev layer emulates with
//! them: what a lock fences and when it is granted, in-order release of
//! queued writes, atomicity across threads, and every way a lock can end.

#[path = "bdev_common.rs"]
mod common;

use common::*;
use spdk_io::bdev::{
    self, file::FileOpts, malloc::MallocOpts, BdevError, Channel, Desc, IoBuf, IoCompletion,
    IoStatus, IoType,
};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

fn malloc(blocks: u64, bs: u32) -> String {
    dma_env();
    let n = uniq("LockMalloc");
    bdev::malloc::create(MallocOpts {
        name: Some(n.clone()),
        num_blocks: blocks,
        block_size: bs,
        uuid: None,
        optimal_io_boundary: 0,
        md_size: 0,
    })
    .unwrap();
    n
}

/// A flag a lock callback sets: `Some(result)` once it ran.
type Granted = Rc<RefCell<Option<Result<(), BdevError>>>>;

fn granted() -> Granted {
    Rc::new(RefCell::new(None))
}

fn on_lock(g: &Granted) -> impl FnOnce(Result<(), BdevError>) + 'static {
    let g = g.clone();
    move |r| *g.borrow_mut() = Some(r)
}

fn filled(bs: usize, v: u8) -> IoBuf {
    IoBuf::from_vec(vec![v; bs])
}

/// Runs one I/O to completion on `ch` and returns it.
fn wait_io(
    ch: &Channel,
    submit: impl FnOnce(Box<dyn spdk_io::bdev::IoDone>) -> spdk_io::bdev::Submitted,
) -> IoCompletion {
    let slot: Rc<RefCell<Option<IoCompletion>>> = Rc::new(RefCell::new(None));
    let s = slot.clone();
    submit(Box::new(move |c: IoCompletion| *s.borrow_mut() = Some(c))).unwrap();
    poll_until(ch, || slot.borrow().is_some());
    let c = slot.borrow_mut().take().unwrap();
    c
}

fn read_block(d: &Desc, ch: &Channel, block: u64, bs: usize) -> Vec<u8> {
    let c = wait_io(ch, |cb| d.read_blocks(ch, IoBuf::new(bs), block, 1, cb));
    assert!(c.success());
    c.data.into_buf().unwrap().to_vec()
}

fn poll_n(chs: &[&Channel], n: usize) {
    for _ in 0..n {
        for c in chs {
            c.poll();
        }
    }
}

#[test]
fn writes_from_other_channels_wait_behind_a_lock_and_run_in_order_after_unlock() {
    let n = malloc(64, 512);
    let d = bdev::open(&n, true).unwrap();
    let (a, b) = (
        d.get_io_channel().unwrap(),
        d.get_io_channel_sized(64).unwrap(),
    );
    let g = granted();
    d.lock_lba_range(&a, 10, 10, on_lock(&g)).unwrap();
    poll_until(&a, || {
        b.poll();
        g.borrow().is_some()
    });
    assert_eq!(*g.borrow(), Some(Ok(())));

    let l = log();
    d.write_blocks(&b, filled(512, 1), 12, 1, rec(&l)).unwrap();
    d.write_blocks(&b, filled(512, 2), 12, 1, rec(&l)).unwrap();
    d.write_blocks(&b, filled(512, 3), 30, 1, rec(&l)).unwrap(); // outside the range
    d.read_blocks(&b, IoBuf::new(512), 12, 1, rec(&l)).unwrap(); // reads pass a lock
    poll_n(&[&a, &b], 50);
    assert_eq!(b.queued_behind_locks(), 2);
    let done: Vec<(IoType, u64)> = l
        .borrow()
        .iter()
        .map(|c| (c.io_type, c.offset_blocks))
        .collect();
    assert_eq!(done, [(IoType::Write, 30), (IoType::Read, 12)]);

    // The owner's own writes pass its lock.
    let own = wait_io(&a, |cb| d.write_blocks(&a, filled(512, 9), 15, 1, cb));
    assert!(own.success());

    d.unlock_lba_range(&a, 10, 10).unwrap();
    poll_until(&b, || l.borrow().len() == 4);
    assert_eq!(b.queued_behind_locks(), 0);
    let data: Vec<u8> = l.borrow()[2..]
        .iter()
        .map(|c| {
            assert!(c.success());
            match &c.data {
                spdk_io::bdev::IoData::Buf(buf) => buf[0],
                _ => 0,
            }
        })
        .collect();
    assert_eq!(data, [1, 2], "queued writes complete in submission order");
    assert_eq!(read_block(&d, &b, 12, 512), vec![2; 512]);
}

#[test]
fn lock_is_granted_only_after_overlapping_in_flight_writes_complete() {
    let n = malloc(64, 512);
    let d = bdev::open(&n, true).unwrap();
    let (a, b) = (
        d.get_io_channel().unwrap(),
        d.get_io_channel_sized(64).unwrap(),
    );
    let l = log();
    // In flight on b until b polls (the module finished, the layer has not).
    d.write_blocks(&b, filled(512, 5), 3, 1, rec(&l)).unwrap();
    let g = granted();
    d.lock_lba_range(&a, 0, 8, on_lock(&g)).unwrap();
    poll_n(&[&a], 100);
    assert!(
        g.borrow().is_none(),
        "granted with an overlapping write in flight"
    );
    assert!(l.borrow().is_empty());
    b.poll();
    assert_eq!(statuses(&l), [IoStatus::Success]);
    poll_until(&a, || g.borrow().is_some());
    assert_eq!(*g.borrow(), Some(Ok(())));
    d.unlock_lba_range(&a, 0, 8).unwrap();
}

#[test]
fn an_overlapping_lock_waits_for_the_first_to_be_released() {
    let n = malloc(64, 512);
    let d = bdev::open(&n, true).unwrap();
    let (a, b) = (
        d.get_io_channel().unwrap(),
        d.get_io_channel_sized(64).unwrap(),
    );
    let (g1, g2) = (granted(), granted());
    d.lock_lba_range(&a, 0, 8, on_lock(&g1)).unwrap();
    d.lock_lba_range(&b, 4, 8, on_lock(&g2)).unwrap();
    poll_n(&[&a, &b], 50);
    assert_eq!(*g1.borrow(), Some(Ok(())));
    assert!(g2.borrow().is_none());
    // Not granted yet, so not unlockable yet.
    assert!(matches!(
        d.unlock_lba_range(&b, 4, 8),
        Err(BdevError::RangeNotLocked { .. })
    ));
    d.unlock_lba_range(&a, 0, 8).unwrap();
    poll_n(&[&a, &b], 50);
    assert_eq!(*g2.borrow(), Some(Ok(())));
    d.unlock_lba_range(&b, 4, 8).unwrap();
}

#[test]
fn a_channel_made_while_a_lock_is_held_respects_it() {
    let n = malloc(64, 512);
    let d = bdev::open(&n, true).unwrap();
    let a = d.get_io_channel().unwrap();
    let g = granted();
    d.lock_lba_range(&a, 0, 64, on_lock(&g)).unwrap();
    poll_until(&a, || g.borrow().is_some());
    let late = d.get_io_channel_sized(16).unwrap();
    let l = log();
    d.write_blocks(&late, filled(512, 7), 1, 1, rec(&l))
        .unwrap();
    poll_n(&[&late], 50);
    assert!(l.borrow().is_empty());
    d.unlock_lba_range(&a, 0, 64).unwrap();
    poll_until(&late, || l.borrow().len() == 1);
    assert_eq!(statuses(&l), [IoStatus::Success]);
}

#[test]
fn quiesce_fences_reads_too_even_on_its_own_channel() {
    let n = malloc(64, 512);
    let d = bdev::open(&n, true).unwrap();
    let (a, b) = (
        d.get_io_channel().unwrap(),
        d.get_io_channel_sized(64).unwrap(),
    );
    let g = granted();
    d.quiesce_range(&a, 0, 4, on_lock(&g)).unwrap();
    poll_until(&a, || {
        b.poll();
        g.borrow().is_some()
    });
    let l = log();
    d.read_blocks(&a, IoBuf::new(512), 1, 1, rec(&l)).unwrap();
    d.read_blocks(&b, IoBuf::new(512), 2, 1, rec(&l)).unwrap();
    d.read_blocks(&b, IoBuf::new(512), 9, 1, rec(&l)).unwrap();
    poll_n(&[&a, &b], 50);
    assert_eq!(l.borrow().len(), 1, "only the read outside the range ran");
    // A quiesce is not a write lock: the unlock must name the right kind.
    assert!(d.unlock_lba_range(&a, 0, 4).is_err());
    d.unquiesce_range(&a, 0, 4).unwrap();
    poll_until(&a, || {
        b.poll();
        l.borrow().len() == 3
    });
    assert!(statuses(&l).iter().all(|s| s.is_success()));
}

#[test]
fn bad_lock_requests_are_clear_errors() {
    let n = malloc(64, 512);
    let d = bdev::open(&n, true).unwrap();
    let a = d.get_io_channel().unwrap();
    let never = |_r: Result<(), BdevError>| panic!("callback of a refused lock ran");
    assert!(matches!(
        d.lock_lba_range(&a, 60, 8, never),
        Err(BdevError::OutOfRange { .. })
    ));
    assert!(matches!(
        d.lock_lba_range(&a, 0, 0, never),
        Err(BdevError::OutOfRange { .. })
    ));
    let e = d.unlock_lba_range(&a, 0, 8).unwrap_err();
    assert!(matches!(e, BdevError::RangeNotLocked { .. }));
    assert!(e.to_string().contains("not locked"));
    let ro = bdev::open(&n, false).unwrap();
    assert!(matches!(
        ro.lock_lba_range(&a, 0, 8, never),
        Err(BdevError::ReadOnly { .. })
    ));
    // The lock's owner is the channel: another channel cannot unlock it.
    let g = granted();
    d.lock_lba_range(&a, 0, 8, on_lock(&g)).unwrap();
    poll_until(&a, || g.borrow().is_some());
    let b = d.get_io_channel_sized(8).unwrap();
    assert!(d.unlock_lba_range(&b, 0, 8).is_err());
    assert!(d.unlock_lba_range(&a, 0, 7).is_err());
    d.unlock_lba_range(&a, 0, 8).unwrap();
    assert!(d.unlock_lba_range(&a, 0, 8).is_err(), "unlocked twice");
}

#[test]
fn closing_the_descriptor_or_putting_the_owner_channel_releases_its_locks() {
    let n = malloc(64, 512);
    let d = bdev::open(&n, true).unwrap();
    let b = d.get_io_channel_sized(64).unwrap();
    let l = log();
    for round in 0..2 {
        let locker = bdev::open(&n, true).unwrap();
        let a = locker.get_io_channel_sized(8).unwrap();
        let g = granted();
        locker.lock_lba_range(&a, 0, 8, on_lock(&g)).unwrap();
        poll_until(&a, || {
            b.poll();
            g.borrow().is_some()
        });
        d.write_blocks(&b, filled(512, round), 0, 1, rec(&l))
            .unwrap();
        poll_n(&[&a, &b], 20);
        assert_eq!(b.queued_behind_locks(), 1);
        if round == 0 {
            drop(locker); // the channel lives on, the lock does not
        } else {
            drop(a); // the descriptor lives on, the lock does not
        }
        poll_until(&b, || l.borrow().len() == round as usize + 1);
    }
    assert_eq!(statuses(&l), [IoStatus::Success; 2]);
}

#[test]
fn putting_a_channel_with_writes_queued_behind_a_lock_aborts_them() {
    let n = malloc(64, 512);
    let d = bdev::open(&n, true).unwrap();
    let a = d.get_io_channel().unwrap();
    let g = granted();
    d.lock_lba_range(&a, 0, 8, on_lock(&g)).unwrap();
    poll_until(&a, || g.borrow().is_some());
    let b = d.get_io_channel_sized(8).unwrap();
    let l = log();
    d.write_blocks(&b, filled(512, 1), 0, 1, rec(&l)).unwrap();
    d.compare_and_write_blocks(&b, filled(512, 0), filled(512, 2), 1, 1, rec(&l))
        .unwrap();
    poll_n(&[&a, &b], 20);
    assert!(l.borrow().is_empty());
    drop(b);
    assert_eq!(statuses(&l), [IoStatus::Aborted; 2]);
    d.unlock_lba_range(&a, 0, 8).unwrap();
    assert_eq!(read_block(&d, &a, 0, 512), vec![0; 512]);
    assert_eq!(read_block(&d, &a, 1, 512), vec![0; 512]);
}

#[test]
fn hot_remove_aborts_queued_writes_and_fails_waiting_locks() {
    let n = malloc(64, 512);
    let d = bdev::open(&n, true).unwrap();
    let (a, b) = (
        d.get_io_channel().unwrap(),
        d.get_io_channel_sized(64).unwrap(),
    );
    let (g1, g2) = (granted(), granted());
    d.lock_lba_range(&a, 0, 8, on_lock(&g1)).unwrap();
    poll_until(&a, || {
        b.poll();
        g1.borrow().is_some()
    });
    d.lock_lba_range(&b, 0, 8, on_lock(&g2)).unwrap();
    let l = log();
    d.write_blocks(&b, filled(512, 1), 2, 1, rec(&l)).unwrap();
    poll_n(&[&a, &b], 20);
    d.bdev().unregister();
    poll_until(&b, || l.borrow().len() == 1 && g2.borrow().is_some());
    assert_eq!(statuses(&l), [IoStatus::Aborted]);
    assert!(matches!(*g2.borrow(), Some(Err(BdevError::Removed(_)))));
    assert!(matches!(
        d.lock_lba_range(&a, 8, 8, |_| {}),
        Err(BdevError::Removed(_))
    ));
}

#[test]
fn emulated_compare_and_write_miscompare_writes_nothing() {
    let n = malloc(16, 512);
    assert!(bdev::get_by_name(&n)
        .unwrap()
        .io_type_supported(IoType::CompareAndWrite));
    let d = bdev::open(&n, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    assert!(wait_io(&ch, |cb| d.write_blocks(&ch, filled(1024, 4), 2, 2, cb)).success());
    let c = wait_io(&ch, |cb| {
        d.compare_and_write_blocks(&ch, filled(1024, 5), filled(1024, 6), 2, 2, cb)
    });
    assert_eq!(c.status, IoStatus::Miscompare);
    let bufs = c.data.into_bufs();
    assert_eq!(
        (bufs[0][0], bufs[1][0]),
        (5, 6),
        "both buffers come back intact"
    );
    assert_eq!(read_block(&d, &ch, 2, 512), vec![4; 512]);
    assert_eq!(read_block(&d, &ch, 3, 512), vec![4; 512]);
}

#[test]
fn a_write_on_another_channel_cannot_land_between_compare_and_write() {
    let n = malloc(16, 512);
    let d = bdev::open(&n, true).unwrap();
    let (a, b) = (
        d.get_io_channel().unwrap(),
        d.get_io_channel_sized(16).unwrap(),
    );
    let l = log();
    d.compare_and_write_blocks(&a, filled(512, 0), filled(512, 1), 0, 1, rec(&l))
        .unwrap();
    a.poll(); // the lock is handed to every channel; b has not acknowledged
    d.write_blocks(&b, filled(512, 2), 0, 1, rec(&l)).unwrap();
    assert_eq!(b.queued_behind_locks(), 1);
    poll_until(&a, || {
        b.poll();
        l.borrow().len() == 2
    });
    let order: Vec<(IoType, IoStatus)> = l.borrow().iter().map(|c| (c.io_type, c.status)).collect();
    assert_eq!(
        order,
        [
            (IoType::CompareAndWrite, IoStatus::Success),
            (IoType::Write, IoStatus::Success)
        ]
    );
    assert_eq!(read_block(&d, &a, 0, 512), vec![2; 512]);
}

#[test]
fn compare_and_write_is_refused_on_a_bdev_without_data() {
    let n = uniq("LockNull");
    bdev::null::create(bdev::null::NullOpts {
        name: n.clone(),
        num_blocks: 8,
        block_size: 512,
        uuid: None,
        md_size: 0,
        dif_type: 0,
    })
    .unwrap();
    let d = bdev::open(&n, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    let r = d
        .compare_and_write_blocks(&ch, filled(512, 0), filled(512, 1), 0, 1, rec(&l))
        .unwrap_err();
    assert!(matches!(r.error, BdevError::Unsupported { .. }));
}

#[test]
fn emulated_compare_and_write_on_the_file_bdev_uses_read_and_compare() {
    let dir = std::env::temp_dir().join(format!("spdk-io-lock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let name = uniq("LockFile");
    let path = dir.join(format!("{name}.img"));
    std::fs::File::create(&path)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let b = bdev::file::create(
        FileOpts {
            name: name.clone(),
            filename: path.display().to_string(),
            block_size: Some(512),
            readonly: false,
            fallocate: false,
            uuid: None,
        },
        "bdev_uring_create",
    )
    .unwrap();
    assert!(b.emulates_compare_and_write());
    let d = bdev::open(&name, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let caw = |cmp: u8, new: u8| {
        wait_io(&ch, |cb| {
            d.compare_and_write_blocks(&ch, filled(4096, cmp), filled(4096, new), 8, 8, cb)
        })
        .status
    };
    assert_eq!(caw(0, 7), IoStatus::Success);
    assert_eq!(caw(0, 8), IoStatus::Miscompare);
    assert_eq!(caw(7, 9), IoStatus::Success);
    assert_eq!(read_block(&d, &ch, 15, 512), vec![9; 512]);
    drop((ch, d));
    b.unregister();
    let _ = std::fs::remove_file(&path);
}

/// The block holds two little-endian counters: bytes 0..8 and 8..16.
fn counters(block: &[u8]) -> (u64, u64) {
    let f = |r: std::ops::Range<usize>| u64::from_le_bytes(block[r].try_into().unwrap());
    (f(0..8), f(8..16))
}

/// Adds one to counter `which` of block 0 with compare-and-write, retrying
/// on miscompare; returns the number of retries.
fn caw_increment(d: &Desc, ch: &Channel, which: usize) -> u64 {
    let mut retries = 0;
    loop {
        let old = read_block(d, ch, 0, 512);
        let mut new = old.clone();
        let v = u64::from_le_bytes(new[which * 8..which * 8 + 8].try_into().unwrap()) + 1;
        new[which * 8..which * 8 + 8].copy_from_slice(&v.to_le_bytes());
        let c = wait_io(ch, |cb| {
            d.compare_and_write_blocks(ch, IoBuf::from_vec(old), IoBuf::from_vec(new), 0, 1, cb)
        });
        match c.status {
            IoStatus::Success => return retries,
            IoStatus::Miscompare => retries += 1,
            s => panic!("compare-and-write failed: {s:?}"),
        }
    }
}

/// Adds one to counter `which` with a plain read and write under an
/// explicit range lock.
fn locked_increment(d: &Desc, ch: &Channel, which: usize) {
    let g = granted();
    d.lock_lba_range(ch, 0, 1, on_lock(&g)).unwrap();
    poll_until(ch, || g.borrow().is_some());
    assert_eq!(*g.borrow(), Some(Ok(())));
    let mut b = read_block(d, ch, 0, 512);
    let v = u64::from_le_bytes(b[which * 8..which * 8 + 8].try_into().unwrap()) + 1;
    b[which * 8..which * 8 + 8].copy_from_slice(&v.to_le_bytes());
    assert!(wait_io(ch, |cb| d.write_blocks(ch, IoBuf::from_vec(b), 0, 1, cb)).success());
    d.unlock_lba_range(ch, 0, 1).unwrap();
}

fn hammer(second_uses_caw: bool) {
    const N: u64 = 1000;
    let n = malloc(8, 512);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let retries = Rc::new(Cell::new(0u64));
    let spawn = |which: usize, caw: bool| {
        let (n, barrier) = (n.clone(), barrier.clone());
        std::thread::spawn(move || {
            let d = bdev::open(&n, true).unwrap();
            let ch = d.get_io_channel().unwrap();
            barrier.wait();
            let mut retries = 0;
            for _ in 0..N {
                if caw {
                    retries += caw_increment(&d, &ch, which);
                } else {
                    locked_increment(&d, &ch, which);
                }
            }
            // Put the channel before stopping to poll it: a lock taken by
            // the other thread no longer waits for it.
            drop(ch);
            retries
        })
    };
    let t0 = spawn(0, true);
    let t1 = spawn(1, second_uses_caw);
    retries.set(t0.join().unwrap() + t1.join().unwrap());
    let d = bdev::open(&n, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    assert_eq!(
        counters(&read_block(&d, &ch, 0, 512)),
        (N, N),
        "an increment was lost ({} compare-and-write retries)",
        retries.get()
    );
}

#[test]
fn two_threads_compare_and_write_the_same_block_and_lose_no_update() {
    hammer(true);
}

#[test]
fn compare_and_write_and_locked_plain_writes_from_two_threads_lose_no_update() {
    hammer(false);
}

#[test]
fn compare_and_write_through_a_passthru_is_emulated_on_its_base() {
    let base = malloc(32, 512);
    let pt = uniq("LockPT");
    bdev::passthru::create(bdev::passthru::PassthruOpts {
        base_bdev_name: base.clone(),
        name: pt.clone(),
        uuid: None,
    })
    .unwrap();
    let top = bdev::get_by_name(&pt).unwrap();
    assert!(top.io_type_supported(IoType::CompareAndWrite));
    assert!(!top.emulates_compare_and_write(), "forwarded to the base");
    let d = bdev::open(&pt, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    d.compare_and_write_blocks(&ch, filled(512, 0), filled(512, 1), 4, 1, rec(&l))
        .unwrap();
    d.write_blocks(&ch, filled(512, 2), 4, 1, rec(&l)).unwrap();
    d.compare_and_write_blocks(&ch, filled(512, 1), filled(512, 3), 4, 1, rec(&l))
        .unwrap();
    poll_until(&ch, || l.borrow().len() == 3);
    let order: Vec<(IoType, IoStatus)> = l.borrow().iter().map(|c| (c.io_type, c.status)).collect();
    assert_eq!(
        order,
        [
            (IoType::CompareAndWrite, IoStatus::Success),
            (IoType::Write, IoStatus::Success),
            (IoType::CompareAndWrite, IoStatus::Miscompare)
        ]
    );
    assert_eq!(read_block(&d, &ch, 4, 512), vec![2; 512]);
}
