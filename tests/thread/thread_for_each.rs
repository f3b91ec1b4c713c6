//! for_each_channel: visits each thread with a channel once, on that
//! thread, in order; stops on a nonzero status; may continue later; copes
//! with channels coming and going; holds off the device's unregister.

use crate::thread_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use thread_support::counted_device::{device, unregister_on};
use thread_support::Harness;

#[test]
fn for_each_channel_visits_each_thread_once_then_completes_on_the_caller() {
    let h = Harness::new(4);
    let (dev, _) = device("walk");
    let chans: Vec<_> = [1, 2, 3]
        .iter()
        .map(|&i| h.on(i, || dev.get_io_channel()).unwrap())
        .collect();
    let visited = Arc::new(Mutex::new(Vec::new()));
    let v = visited.clone();
    let done = Arc::new(Mutex::new(None));
    let d = done.clone();
    h.on(0, || {
        dev.for_each_channel(
            move |ch, it| {
                let t = spdk_io::thread::Thread::current().unwrap();
                assert_eq!(ch.thread_id(), t.id(), "visit runs on the channel's thread");
                ch.ctx_mut().visits += 1;
                v.lock().unwrap().push(ch.ctx().thread.clone());
                it.continue_with(0);
            },
            move |status| {
                let t = spdk_io::thread::Thread::current().unwrap();
                *d.lock().unwrap() = Some((status, t.name().to_string()));
            },
        )
    })
    .unwrap();
    h.poll_threads();
    assert_eq!(*visited.lock().unwrap(), vec!["ut1", "ut2", "ut3"]);
    assert_eq!(*done.lock().unwrap(), Some((0, "ut0".to_string())));
    for (i, ch) in [1, 2, 3].into_iter().zip(chans) {
        assert_eq!(ch.ctx().visits, 1);
        h.on(i, || drop(ch));
    }
    h.on(0, || dev.unregister(|| {})).unwrap();
    h.finish();
}

#[test]
fn for_each_channel_stops_at_the_first_nonzero_status() {
    let h = Harness::new(3);
    let (dev, _) = device("walk-stop");
    let chans: Vec<_> = (0..3)
        .map(|i| h.on(i, || dev.get_io_channel()).unwrap())
        .collect();
    let visits = Arc::new(AtomicUsize::new(0));
    let v = visits.clone();
    let status = Arc::new(AtomicUsize::new(0));
    let s = status.clone();
    h.on(0, || {
        dev.for_each_channel(
            move |_ch, it| {
                v.fetch_add(1, Ordering::SeqCst);
                it.continue_with(-5);
            },
            move |st| s.store((-st) as usize, Ordering::SeqCst),
        )
    })
    .unwrap();
    h.poll_threads();
    assert_eq!(visits.load(Ordering::SeqCst), 1);
    assert_eq!(status.load(Ordering::SeqCst), 5);
    for (i, ch) in chans.into_iter().enumerate() {
        h.on(i, || drop(ch));
    }
    h.on(0, || dev.unregister(|| {})).unwrap();
    h.finish();
}

#[test]
fn for_each_channel_can_continue_later_from_its_thread() {
    let h = Harness::new(2);
    let (dev, _) = device("walk-async");
    let ch = h.on(1, || dev.get_io_channel()).unwrap();
    let parked = Arc::new(Mutex::new(None));
    let p = parked.clone();
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    h.on(0, || {
        dev.for_each_channel(
            move |_ch, it| *p.lock().unwrap() = Some(it),
            move |_| {
                d.fetch_add(1, Ordering::SeqCst);
            },
        )
    })
    .unwrap();
    h.poll_threads();
    assert_eq!(done.load(Ordering::SeqCst), 0);
    let it = parked.lock().unwrap().take().unwrap();
    h.t(1).send_msg(move || it.continue_with(0)).unwrap();
    h.poll_threads();
    assert_eq!(done.load(Ordering::SeqCst), 1);
    h.on(1, || drop(ch));
    h.on(0, || dev.unregister(|| {})).unwrap();
    h.finish();
}

#[test]
fn for_each_channel_while_channels_come_and_go() {
    let h = Harness::new(5);
    let (dev, _) = device("churn");
    let c1 = h.on(1, || dev.get_io_channel()).unwrap();
    let c2 = h.on(2, || dev.get_io_channel()).unwrap();
    let visited = Arc::new(Mutex::new(Vec::new()));
    let v = visited.clone();
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    h.on(0, || {
        dev.for_each_channel(
            move |ch, it| {
                v.lock().unwrap().push(ch.ctx().thread.clone());
                it.continue_with(0);
            },
            move |_| {
                d.fetch_add(1, Ordering::SeqCst);
            },
        )
    })
    .unwrap();
    // Before any poll: thread 2 drops its channel, thread 4 gets one.
    h.on(2, || drop(c2));
    let c4 = h.on(4, || dev.get_io_channel()).unwrap();
    // An unregister requested mid-walk must wait for the walk.
    let unregistered = unregister_on(&h, 0, &dev);
    h.poll_threads();
    assert_eq!(done.load(Ordering::SeqCst), 1);
    let v = visited.lock().unwrap().clone();
    assert!(
        v.contains(&"ut1".to_string()) && v.contains(&"ut4".to_string()),
        "{v:?}"
    );
    assert!(
        !v.contains(&"ut2".to_string()),
        "a channel destroyed before its turn is skipped: {v:?}"
    );
    assert_eq!(
        unregistered.load(Ordering::SeqCst),
        0,
        "channels 1 and 4 remain"
    );
    h.on(1, || drop(c1));
    h.on(4, || drop(c4));
    h.poll_threads();
    assert_eq!(unregistered.load(Ordering::SeqCst), 1);
    h.finish();
}

#[test]
fn unregister_waits_for_a_for_each_in_flight() {
    let h = Harness::new(2);
    let (dev, _) = device("walk-then-unregister");
    let ch = h.on(1, || dev.get_io_channel()).unwrap();
    let parked = Arc::new(Mutex::new(None));
    let p = parked.clone();
    h.on(0, || {
        dev.for_each_channel(move |_ch, it| *p.lock().unwrap() = Some(it), |_| {})
    })
    .unwrap();
    h.poll_threads();
    h.on(1, || drop(ch));
    let unregistered = unregister_on(&h, 0, &dev);
    h.poll_threads();
    assert_eq!(
        unregistered.load(Ordering::SeqCst),
        0,
        "the walk is still in flight"
    );
    let it = parked.lock().unwrap().take().unwrap();
    it.continue_with(0);
    h.poll_threads();
    assert_eq!(unregistered.load(Ordering::SeqCst), 1);
    h.finish();
}

#[test]
fn dropping_the_cursor_completes_the_walk_as_canceled() {
    let h = Harness::new(2);
    let (dev, _) = device("walk-dropped");
    let ch = h.on(1, || dev.get_io_channel()).unwrap();
    let status = Arc::new(Mutex::new(None));
    let s = status.clone();
    h.on(0, || {
        dev.for_each_channel(|_ch, it| drop(it), move |st| *s.lock().unwrap() = Some(st))
    })
    .unwrap();
    h.poll_threads();
    assert_eq!(
        *status.lock().unwrap(),
        Some(spdk_io::thread::FOR_EACH_DROPPED)
    );
    h.on(1, || drop(ch));
    let gone = unregister_on(&h, 0, &dev);
    h.poll_threads();
    assert_eq!(
        gone.load(Ordering::SeqCst),
        1,
        "the dropped walk does not hold the unregister"
    );
    h.finish();
}
