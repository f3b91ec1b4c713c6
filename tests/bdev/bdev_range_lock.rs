//! LBA range locks: what a lock fences and when it is granted, in-order
//! release of queued writes, quiesce, bad requests, and every way a lock
//! can end (unlock, descriptor closed, channel put, hot remove).

use crate::common;

use common::*;
use spdk_io::bdev::{self, BdevError, Channel, IoBuf, IoStatus, IoType};

/// Polls both channels until the lock callback behind `g` has run.
fn wait_granted(a: &Channel, b: &Channel, g: &Granted) {
    poll_until(a, || {
        b.poll();
        g.borrow().is_some()
    });
}

#[test]
fn writes_from_other_channels_wait_behind_a_lock_and_run_in_order_after_unlock() {
    let (d, a, b) = two_channels();
    let g = granted();
    d.lock_lba_range(&a, 10, 10, on_lock(&g)).unwrap();
    wait_granted(&a, &b, &g);
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
    let (d, a, b) = two_channels();
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
    let (d, a, b) = two_channels();
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
    let n = new_malloc(64, 512);
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
    let (d, a, b) = two_channels();
    let g = granted();
    d.quiesce_range(&a, 0, 4, on_lock(&g)).unwrap();
    wait_granted(&a, &b, &g);
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
    let n = new_malloc(64, 512);
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
    assert!(matches!(
        d.unlock_lba_range(&a, 60, 8),
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
    let n = new_malloc(64, 512);
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
    let n = new_malloc(64, 512);
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
    let (d, a, b) = two_channels();
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
fn a_lock_still_draining_when_its_descriptor_closes_fails_with_cancelled() {
    let n = new_malloc(64, 512);
    let d = bdev::open(&n, true).unwrap();
    let b = d.get_io_channel_sized(16).unwrap();
    let l = log();
    d.write_blocks(&b, filled(512, 1), 0, 1, rec(&l)).unwrap(); // in flight until b polls
    let locker = bdev::open(&n, true).unwrap();
    let a = locker.get_io_channel_sized(16).unwrap();
    let g = granted();
    locker.lock_lba_range(&a, 0, 8, on_lock(&g)).unwrap();
    poll_n(&[&a], 10);
    assert!(g.borrow().is_none());
    drop(locker);
    poll_n(&[&a, &b], 10);
    assert!(matches!(
        *g.borrow(),
        Some(Err(BdevError::LockCancelled { .. }))
    ));
    assert_eq!(statuses(&l), [IoStatus::Success]);
    // Nothing is left locked.
    d.write_blocks(&b, filled(512, 2), 0, 1, rec(&l)).unwrap();
    poll_until(&b, || l.borrow().len() == 2);
}

#[test]
fn quiescing_the_whole_bdev_waits_for_in_flight_reads_then_holds_every_io() {
    let n = new_malloc(64, 512);
    let d = bdev::open(&n, true).unwrap();
    let (a, b) = (
        d.get_io_channel().unwrap(),
        d.get_io_channel_sized(16).unwrap(),
    );
    let l = log();
    d.read_blocks(&b, IoBuf::new(512), 63, 1, rec(&l)).unwrap(); // in flight until b polls
    let g = granted();
    d.quiesce(&a, on_lock(&g)).unwrap();
    poll_n(&[&a], 20);
    assert!(g.borrow().is_none(), "granted with a read in flight");
    wait_granted(&a, &b, &g);
    assert_eq!(statuses(&l), [IoStatus::Success]);
    d.read_blocks(&b, IoBuf::new(512), 0, 1, rec(&l)).unwrap();
    d.write_blocks(&b, filled(512, 3), 0, 1, rec(&l)).unwrap();
    poll_n(&[&a, &b], 20);
    assert_eq!(b.queued_behind_locks(), 2);
    d.unquiesce(&a).unwrap();
    poll_until(&b, || l.borrow().len() == 3);
    assert!(statuses(&l).iter().all(|s| s.is_success()));
}

#[test]
fn waiting_locks_are_granted_in_request_order_where_they_overlap() {
    let n = new_malloc(64, 512);
    let d = bdev::open(&n, true).unwrap();
    let (a, b) = (
        d.get_io_channel().unwrap(),
        d.get_io_channel_sized(16).unwrap(),
    );
    let g: Vec<Granted> = (0..4).map(|_| granted()).collect();
    d.lock_lba_range(&a, 40, 8, on_lock(&g[0])).unwrap();
    d.lock_lba_range(&a, 0, 8, on_lock(&g[1])).unwrap();
    d.lock_lba_range(&b, 0, 16, on_lock(&g[2])).unwrap(); // waits for [0, 8)
    d.lock_lba_range(&b, 10, 2, on_lock(&g[3])).unwrap(); // waits for [0, 16)
    let state = || g.iter().map(|x| x.borrow().is_some()).collect::<Vec<_>>();
    poll_n(&[&a, &b], 20);
    assert_eq!(state(), [true, true, false, false]);
    d.unlock_lba_range(&a, 40, 8).unwrap(); // unrelated: nobody jumps the queue
    poll_n(&[&a, &b], 20);
    assert_eq!(state(), [true, true, false, false]);
    d.unlock_lba_range(&a, 0, 8).unwrap();
    poll_n(&[&a, &b], 20);
    assert_eq!(state(), [true, true, true, false]);
    d.unlock_lba_range(&b, 0, 16).unwrap();
    poll_n(&[&a, &b], 20);
    assert_eq!(state(), [true; 4]);
    d.unlock_lba_range(&b, 10, 2).unwrap();
}

#[test]
fn a_lock_taken_on_a_lightweight_thread_reaches_a_channel_made_outside_any_thread() {
    let n = new_malloc(64, 512);
    let d = bdev::open(&n, true).unwrap();
    let t = spdk_io::thread::Thread::new("locker");
    let owner = t.enter(|| d.get_io_channel()).unwrap();
    let outside = d.get_io_channel().unwrap();
    let l = log();
    // In flight on the unthreaded channel: the lock waits for it.
    d.write_blocks(&outside, filled(512, 1), 2, 1, rec(&l))
        .unwrap();
    let g = granted();
    t.enter(|| d.lock_lba_range(&owner, 0, 8, on_lock(&g)))
        .unwrap();
    for _ in 0..50 {
        t.poll(0);
    }
    assert!(g.borrow().is_none(), "granted with a write in flight");
    // Its poll completes the write and lets the walk go on.
    poll_until(&outside, || {
        t.poll(0);
        g.borrow().is_some()
    });
    assert_eq!(*g.borrow(), Some(Ok(())));
    assert_eq!(statuses(&l), [IoStatus::Success]);
    d.write_blocks(&outside, filled(512, 2), 3, 1, rec(&l))
        .unwrap();
    poll_n(&[&outside], 50);
    assert_eq!(outside.queued_behind_locks(), 1, "fenced by the lock");
    t.enter(|| d.unlock_lba_range(&owner, 0, 8)).unwrap();
    poll_until(&outside, || {
        t.poll(0);
        l.borrow().len() == 2
    });
    assert_eq!(statuses(&l), [IoStatus::Success, IoStatus::Success]);
    t.enter(|| drop(owner));
    t.exit();
    while !t.is_exited() {
        t.poll(0);
    }
    t.destroy().unwrap();
}
