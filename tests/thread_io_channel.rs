//! io_device / io_channel: get/put ref counting, deferred destroy,
//! for_each_channel, unregister, bad input.

mod thread_support;

use spdk_io::thread::{io_device_register, IoDevice, IoDeviceKey, ThreadError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use thread_support::Harness;

/// A channel context that records which thread created it.
struct Ctx {
    thread: String,
    visits: u32,
}

struct Counts {
    created: AtomicUsize,
    destroyed: AtomicUsize,
}

fn device(name: &str) -> (IoDevice<Ctx>, Arc<Counts>) {
    let counts = Arc::new(Counts {
        created: AtomicUsize::new(0),
        destroyed: AtomicUsize::new(0),
    });
    let (c1, c2) = (counts.clone(), counts.clone());
    let dev = io_device_register(
        IoDeviceKey::unique(),
        name,
        move || {
            c1.created.fetch_add(1, Ordering::SeqCst);
            let t = spdk_io::thread::Thread::current().unwrap();
            Ok(Ctx {
                thread: t.name().to_string(),
                visits: 0,
            })
        },
        move |_ctx: &mut Ctx| {
            c2.destroyed.fetch_add(1, Ordering::SeqCst);
        },
    )
    .unwrap();
    (dev, counts)
}

#[test]
fn get_on_the_same_thread_returns_the_same_channel_with_a_reference() {
    let h = Harness::new(2);
    let (dev, counts) = device("refcount");
    let a = h.on(0, || dev.get_io_channel()).unwrap();
    let b = h.on(0, || dev.get_io_channel()).unwrap();
    let c = h.on(1, || dev.get_io_channel()).unwrap();
    assert_eq!(counts.created.load(Ordering::SeqCst), 2);
    assert_eq!(a.ref_count(), 2);
    assert_eq!(a.ctx().thread, "ut0");
    assert_eq!(c.ctx().thread, "ut1");
    a.ctx_mut().visits = 9;
    assert_eq!(b.ctx().visits, 9, "same context");
    assert_eq!(dev.channel_count(), 2);
    h.on(0, || drop(a));
    h.poll_threads();
    assert_eq!(
        counts.destroyed.load(Ordering::SeqCst),
        0,
        "b still holds it"
    );
    h.on(0, || drop(b));
    h.on(1, || drop(c));
    assert_eq!(
        counts.destroyed.load(Ordering::SeqCst),
        0,
        "destroy is deferred to a poll"
    );
    h.poll_threads();
    assert_eq!(counts.destroyed.load(Ordering::SeqCst), 2);
    assert_eq!(dev.channel_count(), 0);
    h.on(0, || dev.unregister(|| {})).unwrap();
    h.finish();
}

#[test]
fn a_get_between_put_and_the_deferred_destroy_keeps_the_channel() {
    let h = Harness::new(1);
    let (dev, counts) = device("reget");
    let ch = h.on(0, || dev.get_io_channel()).unwrap();
    ch.ctx_mut().visits = 42;
    h.on(0, || ch.put());
    let again = h.on(0, || dev.get_io_channel()).unwrap();
    h.poll_threads();
    assert_eq!(counts.destroyed.load(Ordering::SeqCst), 0);
    assert_eq!(counts.created.load(Ordering::SeqCst), 1);
    assert_eq!(again.ctx().visits, 42, "the old context survived");
    h.on(0, || drop(again));
    h.poll_threads();
    assert_eq!(counts.destroyed.load(Ordering::SeqCst), 1);
    h.on(0, || dev.unregister(|| {})).unwrap();
    h.finish();
}

#[test]
fn unregister_waits_for_every_channel() {
    let h = Harness::new(4);
    let (dev, counts) = device("unreg");
    let chans: Vec<_> = (0..3)
        .map(|i| h.on(i, || dev.get_io_channel()).unwrap())
        .collect();
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    h.on(0, || {
        dev.unregister(move || {
            d.fetch_add(1, Ordering::SeqCst);
        })
    })
    .unwrap();
    let err = h.on(3, || dev.get_io_channel()).unwrap_err();
    assert!(
        matches!(err, ThreadError::DeviceUnregistering { .. }),
        "{err}"
    );
    let err = h.on(2, || IoDevice::<Ctx>::lookup(dev.key())).unwrap_err();
    assert!(matches!(err, ThreadError::UnknownDevice { .. }));
    let mut chans = chans.into_iter().enumerate().collect::<Vec<_>>();
    while let Some((i, ch)) = chans.pop() {
        h.poll_threads();
        assert_eq!(done.load(Ordering::SeqCst), 0, "a channel is still open");
        h.on(i, || drop(ch));
    }
    h.poll_threads();
    assert_eq!(done.load(Ordering::SeqCst), 1);
    assert_eq!(counts.destroyed.load(Ordering::SeqCst), 3);
    h.finish();
}

#[test]
fn get_on_a_thread_that_already_has_a_channel_works_while_unregistering() {
    let h = Harness::new(1);
    let (dev, _) = device("unreg-existing");
    let ch = h.on(0, || dev.get_io_channel()).unwrap();
    h.on(0, || dev.unregister(|| {})).unwrap();
    let again = h.on(0, || dev.get_io_channel()).unwrap();
    assert_eq!(again.ref_count(), 2);
    h.on(0, || {
        drop(ch);
        drop(again)
    });
    h.finish();
}

#[test]
fn bad_device_calls_are_errors() {
    let h = Harness::new(1);
    let key = IoDeviceKey::unique();
    let dev = io_device_register(key, "first", || Ok(0u32), |_| {}).unwrap();
    let err = io_device_register(key, "second", || Ok(0u32), |_| {}).unwrap_err();
    assert!(matches!(err, ThreadError::DeviceExists { .. }), "{err}");
    assert!(err.to_string().contains("first"));
    let err = IoDevice::<String>::lookup(key).unwrap_err();
    assert!(
        matches!(err, ThreadError::DeviceTypeMismatch { .. }),
        "{err}"
    );
    assert!(IoDevice::<u32>::lookup(key).is_ok());
    assert!(matches!(
        dev.get_io_channel(),
        Err(ThreadError::NoCurrentThread)
    ));
    assert!(matches!(
        dev.unregister(|| {}),
        Err(ThreadError::NoCurrentThread)
    ));
    h.on(0, || dev.unregister(|| {})).unwrap();
    let err = h.on(0, || dev.unregister(|| {})).unwrap_err();
    assert!(matches!(err, ThreadError::UnknownDevice { .. }), "{err}");
    assert!(matches!(
        IoDevice::<u32>::lookup(key),
        Err(ThreadError::UnknownDevice { .. })
    ));
    let again = io_device_register(key, "reused", || Ok(1u32), |_| {}).unwrap();
    h.on(0, || again.unregister(|| {})).unwrap();
    h.finish();
}

#[test]
fn failing_create_callback_is_reported() {
    let h = Harness::new(1);
    let dev = io_device_register(
        IoDeviceKey::unique(),
        "broken",
        || -> Result<u8, spdk_io::thread::BoxError> { Err("no queue pairs left".into()) },
        |_| {},
    )
    .unwrap();
    let err = h.on(0, || dev.get_io_channel()).unwrap_err();
    assert!(err.to_string().contains("no queue pairs left"), "{err}");
    assert_eq!(dev.channel_count(), 0);
    h.on(0, || dev.unregister(|| {})).unwrap();
    h.finish();
}

#[test]
fn key_from_a_pointer_identifies_the_object() {
    let a = Box::new(1u64);
    let b = Box::new(2u64);
    assert_eq!(IoDeviceKey::from_ptr(&*a), IoDeviceKey::from_ptr(&*a));
    assert_ne!(IoDeviceKey::from_ptr(&*a), IoDeviceKey::from_ptr(&*b));
}

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
    let unregistered = Arc::new(AtomicUsize::new(0));
    let u = unregistered.clone();
    h.on(0, || {
        dev.unregister(move || {
            u.fetch_add(1, Ordering::SeqCst);
        })
    })
    .unwrap();
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
    let unregistered = Arc::new(AtomicUsize::new(0));
    let u = unregistered.clone();
    h.on(0, || {
        dev.unregister(move || {
            u.fetch_add(1, Ordering::SeqCst);
        })
    })
    .unwrap();
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
fn channels_are_released_when_their_thread_is_destroyed() {
    let h = Harness::new(1);
    let (dev, counts) = device("orphaned");
    let ch = h.on(0, || dev.get_io_channel()).unwrap();
    std::mem::forget(ch);
    let t = h.t(0).clone();
    drop(h);
    drop(t);
    assert_eq!(counts.destroyed.load(Ordering::SeqCst), 1);
    assert_eq!(dev.channel_count(), 0);
}
