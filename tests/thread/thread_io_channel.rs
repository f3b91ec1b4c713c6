//! io_device / io_channel: get/put ref counting, deferred destroy,
//! unregister, bad input (for_each_channel is in thread_for_each.rs).

use crate::thread_support;

use spdk_io::thread::{io_device_register, IoDevice, IoDeviceKey, ThreadError};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use thread_support::counted_device::{device, unregister_on, Ctx};
use thread_support::Harness;

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
    let done = unregister_on(&h, 0, &dev);
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
fn no_get_succeeds_after_unregister_but_held_channels_still_clone() {
    let h = Harness::new(1);
    let (dev, _) = device("unreg-existing");
    let ch = h.on(0, || dev.get_io_channel()).unwrap();
    h.on(0, || dev.unregister(|| {})).unwrap();
    let err = h.on(0, || dev.get_io_channel()).unwrap_err();
    assert!(
        matches!(err, ThreadError::DeviceUnregistering { .. }),
        "{err}"
    );
    let again = ch.clone();
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

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "put on a thread other than its own")]
fn putting_a_channel_on_another_thread_is_a_debug_assertion() {
    let h = Harness::new(2);
    let (dev, _) = device("wrong-thread");
    let ch = h.on(0, || dev.get_io_channel()).unwrap();
    h.on(1, || drop(ch));
}

#[test]
fn create_and_destroy_callbacks_run_on_the_channel_thread() {
    let h = Harness::new(2);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (s1, s2) = (seen.clone(), seen.clone());
    let dev = io_device_register(
        IoDeviceKey::unique(),
        "where",
        move || {
            let name = spdk_io::thread::Thread::current()
                .unwrap()
                .name()
                .to_string();
            s1.lock().unwrap().push(format!("create@{name}"));
            Ok(name)
        },
        move |ctx: &mut String| {
            let name = spdk_io::thread::Thread::current()
                .unwrap()
                .name()
                .to_string();
            s2.lock().unwrap().push(format!("destroy {ctx}@{name}"));
        },
    )
    .unwrap();
    let ch = h.on(1, || dev.get_io_channel()).unwrap();
    assert_eq!(ch.thread().unwrap().name(), "ut1");
    h.on(1, || drop(ch));
    h.poll_threads();
    assert_eq!(*seen.lock().unwrap(), vec!["create@ut1", "destroy ut1@ut1"]);
    h.on(0, || dev.unregister(|| {})).unwrap();
    h.finish();
}

#[test]
fn current_channel_finds_the_channel_a_thread_holds_and_never_makes_one() {
    let h = Harness::new(2);
    let (dev, counts) = device("current");
    assert!(h.on(0, || dev.current_channel()).is_none());
    assert_eq!(counts.created.load(Ordering::SeqCst), 0, "no channel made");
    let a = h.on(0, || dev.get_io_channel()).unwrap();
    let again = h
        .on(0, || dev.current_channel())
        .expect("thread 0 holds one");
    assert_eq!(again.ref_count(), 2);
    assert!(h.on(1, || dev.current_channel()).is_none());
    assert!(dev.current_channel().is_none(), "outside any thread");
    h.on(0, || drop((a, again)));
    h.poll_threads();
}

#[test]
fn an_unlisted_thread_is_left_out_of_the_thread_list() {
    let t = spdk_io::thread::Thread::unlisted("hidden");
    let id = t.id();
    assert!(spdk_io::thread::ThreadHandle::by_id(id).is_none());
    assert!(!spdk_io::thread::threads().iter().any(|h| h.id() == id));
    t.handle().send_msg(|| {}).unwrap();
    assert!(t.has_messages());
    while t.poll(0) {}
    assert!(!t.has_messages());
}
