//! The async forms of LBA range locks and quiesce: they resolve only when
//! the lock is held, errors come out of the future, and a future dropped
//! early never leaves a lock behind.

use crate::common;

use common::*;
use spdk_io::bdev::{self, BdevError, Channel, Desc, IoStatus};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

fn poll_once<F: Future + ?Sized>(f: Pin<&mut F>) -> Poll<F::Output> {
    let w = Waker::from(Arc::new(Noop));
    f.poll(&mut Context::from_waker(&w))
}

/// A write from `b` to block 3 completes (no lock holds it back).
fn write_on_b_completes(d: &Desc, a: &Channel, b: &Channel) {
    let l = log();
    d.write_blocks(b, filled(512, 9), 3, 1, rec(&l)).unwrap();
    poll_n(&[a, b], 50);
    assert_eq!(statuses(&l), [IoStatus::Success], "the range is unlocked");
}

#[test]
fn lock_future_resolves_after_in_flight_writes_and_then_fences_other_channels() {
    let (d, a, b) = two_channels();
    let l = log();
    // In flight on b until b polls.
    d.write_blocks(&b, filled(512, 5), 3, 1, rec(&l)).unwrap();
    let mut f = Box::pin(d.lock_lba_range_async(&a, 0, 8));
    assert!(poll_once(f.as_mut()).is_pending());
    poll_n(&[&a], 100);
    assert!(
        poll_once(f.as_mut()).is_pending(),
        "resolved with an overlapping write in flight"
    );
    b.poll();
    assert_eq!(statuses(&l), [IoStatus::Success]);
    poll_n(&[&a], 10);
    assert!(matches!(poll_once(f.as_mut()), Poll::Ready(Ok(()))));
    drop(f);
    // Held: a write from b waits.
    let w = log();
    d.write_blocks(&b, filled(512, 6), 4, 1, rec(&w)).unwrap();
    poll_n(&[&a, &b], 100);
    assert!(w.borrow().is_empty(), "a write ran through a held lock");
    d.unlock_lba_range(&a, 0, 8).unwrap();
    poll_until(&b, || !w.borrow().is_empty());
    assert_eq!(statuses(&w), [IoStatus::Success]);
}

#[test]
fn a_lock_future_dropped_while_waiting_releases_the_lock_once_granted() {
    let (d, a, b) = two_channels();
    let l = log();
    d.write_blocks(&b, filled(512, 5), 3, 1, rec(&l)).unwrap();
    let mut f = Box::pin(d.lock_lba_range_async(&a, 0, 8));
    assert!(poll_once(f.as_mut()).is_pending());
    drop(f);
    // The write drains, the lock is granted to nobody and released.
    poll_n(&[&a, &b], 50);
    assert_eq!(statuses(&l), [IoStatus::Success]);
    write_on_b_completes(&d, &a, &b);
    // And the range can be locked again.
    let mut g = Box::pin(d.lock_lba_range_async(&a, 0, 8));
    // An async call starts at its first poll.
    assert!(poll_once(g.as_mut()).is_pending());
    poll_n(&[&a, &b], 10);
    assert!(matches!(poll_once(g.as_mut()), Poll::Ready(Ok(()))));
    d.unlock_lba_range(&a, 0, 8).unwrap();
}

#[test]
fn a_lock_future_dropped_after_its_grant_but_before_being_polled_releases_it() {
    let (d, a, b) = two_channels();
    let mut f = Box::pin(d.quiesce_range_async(&a, 0, 8));
    assert!(poll_once(f.as_mut()).is_pending());
    // Granted during these polls; the future never sees it.
    poll_n(&[&a, &b], 20);
    drop(f);
    let r = read_block(&d, &b, 2, 512);
    assert_eq!(r.len(), 512, "a read ran: the quiesce was ended");
    write_on_b_completes(&d, &a, &b);
}

#[test]
fn quiesce_future_waits_for_in_flight_reads_and_holds_every_io() {
    let (d, a, b) = two_channels();
    let l = log();
    d.read_blocks(&b, spdk_io::bdev::IoBuf::new(512), 1, 1, rec(&l))
        .unwrap();
    let mut f = Box::pin(d.quiesce_async(&a));
    poll_n(&[&a], 50);
    assert!(
        poll_once(f.as_mut()).is_pending(),
        "resolved with a read in flight"
    );
    b.poll();
    poll_n(&[&a], 10);
    assert!(matches!(poll_once(f.as_mut()), Poll::Ready(Ok(()))));
    drop(f);
    let r = log();
    d.read_blocks(&b, spdk_io::bdev::IoBuf::new(512), 60, 1, rec(&r))
        .unwrap();
    poll_n(&[&a, &b], 50);
    assert!(r.borrow().is_empty(), "a read ran through a quiesce");
    d.unquiesce(&a).unwrap();
    poll_until(&b, || !r.borrow().is_empty());
    assert_eq!(statuses(&r), [IoStatus::Success]);
}

#[test]
fn bad_async_lock_requests_resolve_to_clear_errors() {
    let (d, a, _b) = two_channels();
    let mut f = Box::pin(d.lock_lba_range_async(&a, 60, 8));
    assert!(matches!(
        poll_once(f.as_mut()),
        Poll::Ready(Err(BdevError::OutOfRange { .. }))
    ));
    let ro = bdev::open(d.bdev().name(), false).unwrap();
    let ch = ro.get_io_channel().unwrap();
    let mut g = Box::pin(ro.quiesce_async(&ch));
    assert!(matches!(
        poll_once(g.as_mut()),
        Poll::Ready(Err(BdevError::ReadOnly { .. }))
    ));
}

#[test]
fn on_a_lightweight_thread_the_lock_future_is_woken_by_its_grant() {
    use spdk_io::thread::{spawn_local, Thread};
    let n = new_malloc(64, 512);
    let t = Thread::new("lock_async");
    let done = std::rc::Rc::new(std::cell::Cell::new(false));
    let dn = done.clone();
    let h = t.enter(|| {
        spawn_local(async move {
            let d = bdev::open(&n, true).unwrap();
            let a = d.get_io_channel().unwrap();
            let b = d.get_io_channel().unwrap();
            // A write in flight on b holds the grant back until b's poller runs.
            let l = log();
            d.write_blocks(&b, filled(512, 1), 2, 1, rec(&l)).unwrap();
            d.lock_lba_range_async(&a, 0, 16).await.unwrap();
            assert_eq!(statuses(&l), [IoStatus::Success], "granted after the write");
            d.unlock_lba_range(&a, 0, 16).unwrap();
            dn.set(true);
        })
    });
    assert!(h.is_ok(), "spawned");
    for _ in 0..100_000 {
        if done.get() {
            break;
        }
        t.poll(0);
    }
    assert!(done.get(), "the task never finished");
    t.exit();
    for _ in 0..1000 {
        if t.is_exited() {
            break;
        }
        t.poll(0);
    }
}

#[test]
fn an_abandoned_lock_future_does_not_keep_its_descriptor_open() {
    let n = new_malloc(64, 512);
    let d2 = bdev::open(&n, true).unwrap();
    let a = d2.get_io_channel().unwrap();
    let g = granted();
    d2.lock_lba_range(&a, 0, 8, on_lock(&g)).unwrap();
    poll_until(&a, || g.borrow().is_some());
    // d1's lock waits behind d2's; d1 is then dropped along with its future.
    let d1 = bdev::open(&n, true).unwrap();
    d1.claim("lock-test").unwrap();
    let mut f = Box::pin(d1.lock_lba_range_async(&a, 0, 8));
    assert!(poll_once(f.as_mut()).is_pending());
    poll_n(&[&a], 10);
    drop(f);
    drop(d1);
    assert_eq!(
        d2.bdev().claimed_by(),
        None,
        "the descriptor stayed open behind the abandoned lock"
    );
    d2.unlock_lba_range(&a, 0, 8).unwrap();
    let l = log();
    d2.write_blocks(&a, filled(512, 3), 1, 1, rec(&l)).unwrap();
    poll_until(&a, || !l.borrow().is_empty());
    assert_eq!(statuses(&l), [IoStatus::Success]);
}
