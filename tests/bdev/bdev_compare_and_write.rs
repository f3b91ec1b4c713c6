//! Compare-and-write emulated by the bdev layer under a range lock:
//! miscompare writes nothing, writes of other channels and threads never
//! land between the compare and the write, and concurrent read-modify-write
//! counters from two threads (plain OS threads and reactors) lose no update.

use crate::common;

use common::*;
use spdk_io::bdev::{self, file::FileOpts, BdevError, Channel, Desc, IoBuf, IoStatus, IoType};
use std::cell::Cell;
use std::rc::Rc;

#[test]
fn emulated_compare_and_write_miscompare_writes_nothing() {
    let n = new_malloc(16, 512);
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
    let n = new_malloc(16, 512);
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
    let n = new_null("LockNull", 8);
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
        FileOpts::new(name.clone(), path.display().to_string()),
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
    // The directory goes with its last file (other tests may still use it).
    if let Some(d) = path.parent() {
        let _ = std::fs::remove_dir(d);
    }
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
    let n = new_malloc(8, 512);
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
    let base = new_malloc(32, 512);
    let pt = uniq("LockPT");
    bdev::passthru::create(bdev::passthru::PassthruOpts::new(base.clone(), pt.clone())).unwrap();
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

/// Two reactors, one lightweight thread each, every I/O async: each thread
/// adds one to its own counter of the same block with compare-and-write,
/// N times; the channel pollers of the threads acknowledge each other's
/// locks.
#[test]
fn two_reactors_compare_and_write_counters_in_one_block_and_lose_no_update() {
    use spdk_io::bdev::IoData;
    use spdk_io::thread::{spawn_local, CpuMask, ReactorOpts, ReactorSet, ThreadOpts};
    const N: u64 = 300;
    let n = new_malloc(8, 512);
    let rs = ReactorSet::start(
        CpuMask::parse("0x3").unwrap(),
        ReactorOpts {
            pin: false,
            idle_backoff: Some(std::time::Duration::from_micros(200)),
            idle_polls_before_backoff: 100,
            poller_idle_wait: true,
        },
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for which in 0..2usize {
        let (n, tx) = (n.clone(), tx.clone());
        let opts = ThreadOpts {
            name: format!("caw{which}"),
            cpumask: CpuMask::single(which),
            ..Default::default()
        };
        rs.spawn_thread(which, opts, move || {
            spawn_local(async move {
                let d = bdev::open(&n, true).unwrap();
                let ch = d.get_io_channel().unwrap();
                let mut retries = 0u64;
                let mut done = 0;
                while done < N {
                    let old = d
                        .read_blocks_async(&ch, IoBuf::new(512), 0, 1)
                        .await
                        .unwrap()
                        .to_vec();
                    let mut new = old.clone();
                    let r = which * 8..which * 8 + 8;
                    let v = u64::from_le_bytes(new[r.clone()].try_into().unwrap()) + 1;
                    new[r].copy_from_slice(&v.to_le_bytes());
                    let data = IoData::CompareWrite(Box::new([
                        IoBuf::from_vec(old),
                        IoBuf::from_vec(new),
                    ]));
                    match d
                        .submit_async(&ch, IoType::CompareAndWrite, 0, 1, data)
                        .await
                    {
                        Ok(_) => done += 1,
                        Err(f) if f.error == BdevError::IoStatus(IoStatus::Miscompare) => {
                            retries += 1
                        }
                        Err(f) => panic!("compare-and-write failed: {}", f.error),
                    }
                }
                drop((ch, d));
                tx.send(retries).unwrap();
            })
            .unwrap();
        })
        .unwrap();
    }
    let timeout = std::time::Duration::from_secs(60);
    let retries = rx.recv_timeout(timeout).unwrap() + rx.recv_timeout(timeout).unwrap();
    rs.stop();
    let d = bdev::open(&n, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    assert_eq!(
        counters(&read_block(&d, &ch, 0, 512)),
        (N, N),
        "an increment was lost ({retries} retries)"
    );
}
