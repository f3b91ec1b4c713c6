//! Thread exit: waits for pollers, channels, for_each, tasks and messages;
//! times out when they never go; destroy refuses a running thread.

use spdk_io::thread::{
    io_device_register, poller_register, IoDeviceKey, PollerStatus, Thread, ThreadError, ThreadOpts,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn poll_n(t: &Thread, n: usize) {
    for _ in 0..n {
        t.poll(0);
    }
}

#[test]
fn destroying_a_thread_that_has_not_exited_is_an_error() {
    let t = Thread::new("alive");
    let err = t.clone().destroy().unwrap_err();
    assert!(matches!(err, ThreadError::NotExited { .. }), "{err}");
    assert!(err.to_string().contains("exit()"));
    t.exit();
    poll_n(&t, 2);
    assert!(t.is_exited());
    t.destroy().unwrap();
}

#[test]
fn exit_waits_for_pollers_to_be_unregistered() {
    let t = Thread::new("pollers");
    let p = t
        .enter(|| poller_register("p", 0, || PollerStatus::Idle))
        .unwrap();
    t.exit();
    poll_n(&t, 10);
    assert!(t.is_exiting() && !t.is_exited());
    // An exiting thread still takes pollers (for its cleanup), as SPDK's.
    let late = t
        .enter(|| poller_register("late", 0, || PollerStatus::Idle))
        .unwrap();
    p.unregister();
    poll_n(&t, 3);
    assert!(!t.is_exited(), "the late poller holds the exit");
    late.unregister();
    poll_n(&t, 2);
    assert!(t.is_exited());
    assert!(!t.exit_timed_out());
    t.destroy().unwrap();
}

#[test]
fn exit_waits_for_channels_to_be_put() {
    let t = Thread::new("channels");
    let destroyed = Arc::new(AtomicUsize::new(0));
    let d = destroyed.clone();
    let dev = io_device_register(
        IoDeviceKey::unique(),
        "dev",
        || Ok(()),
        move |_| {
            d.fetch_add(1, Ordering::SeqCst);
        },
    )
    .unwrap();
    let ch = t.enter(|| dev.get_io_channel()).unwrap();
    t.exit();
    poll_n(&t, 10);
    assert!(!t.is_exited());
    assert!(matches!(
        t.enter(|| dev.get_io_channel().map(|_| ())),
        Ok(()) // the thread's existing channel is still handed out
    ));
    t.enter(|| drop(ch));
    poll_n(&t, 3);
    assert!(t.is_exited());
    assert_eq!(destroyed.load(Ordering::SeqCst), 1);
    t.destroy().unwrap();
    let other = Thread::new("unreg");
    other.enter(|| dev.unregister(|| {})).unwrap();
    other.exit();
    poll_n(&other, 3);
    other.destroy().unwrap();
}

#[test]
fn exited_thread_refuses_new_channels_pollers_and_tasks() {
    let t = Thread::new("no-new-channels");
    let dev = io_device_register(IoDeviceKey::unique(), "dev", || Ok(1u8), |_| {}).unwrap();
    t.exit();
    poll_n(&t, 2);
    assert!(t.is_exited());
    let err = t.enter(|| dev.get_io_channel()).unwrap_err();
    assert!(matches!(err, ThreadError::ThreadExited { .. }), "{err}");
    let err = t
        .enter(|| poller_register("p", 0, || PollerStatus::Idle))
        .unwrap_err();
    assert!(matches!(err, ThreadError::ThreadExited { .. }), "{err}");
    assert!(matches!(
        t.spawn_local(async {}),
        Err(ThreadError::ThreadExited { .. })
    ));
    t.destroy().unwrap();
    let u = Thread::new("u");
    u.enter(|| dev.unregister(|| {})).unwrap();
}

#[test]
fn exit_runs_queued_messages_first() {
    let t = Thread::new("drain");
    let n = Arc::new(AtomicUsize::new(0));
    for _ in 0..50 {
        let n = n.clone();
        t.send_msg(move || {
            n.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    t.exit();
    let h = t.handle();
    let n2 = n.clone();
    h.send_msg(move || {
        n2.fetch_add(1, Ordering::SeqCst);
    })
    .expect("an exiting thread still takes messages");
    while !t.is_exited() {
        t.poll(0);
    }
    assert_eq!(n.load(Ordering::SeqCst), 51);
    t.destroy().unwrap();
}

#[test]
fn exit_waits_for_async_tasks() {
    let t = Thread::new("tasks");
    let h = t.handle();
    let go = std::rc::Rc::new(std::cell::Cell::new(false));
    let g = go.clone();
    let jh = t
        .spawn_local(async move {
            while !g.get() {
                spdk_io::thread::yield_now().await;
            }
            // A message round trip to itself, then a short timer.
            let v = Thread::send(&h, || 7).await.unwrap();
            spdk_io::thread::sleep(Duration::from_millis(1))
                .await
                .unwrap();
            v
        })
        .unwrap();
    t.exit();
    poll_n(&t, 10);
    assert!(!t.is_exited(), "the task is still running");
    go.set(true);
    while !t.is_exited() {
        t.poll(0);
    }
    assert!(jh.is_finished());
    assert!(!t.exit_timed_out());
    t.destroy().unwrap();
}

#[test]
fn exit_times_out_and_reports_it() {
    let t = Thread::with_opts(ThreadOpts {
        name: "stuck".into(),
        exit_timeout: Duration::from_millis(5),
        ..ThreadOpts::default()
    });
    let _p = t
        .enter(|| poller_register("forgotten", 0, || PollerStatus::Idle))
        .unwrap();
    t.exit();
    let start = std::time::Instant::now();
    while !t.is_exited() {
        t.poll(0);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "exit never timed out"
        );
    }
    assert!(t.exit_timed_out());
    t.destroy().unwrap();
}

#[test]
fn polling_an_exited_thread_does_nothing() {
    let t = Thread::new("done");
    t.exit();
    t.poll(0);
    assert!(t.is_exited());
    assert!(!t.poll(0));
    t.exit();
    t.destroy().unwrap();
}

#[test]
fn destroying_after_a_timed_out_exit_drops_unrun_messages_and_their_captures() {
    let t = Thread::with_opts(ThreadOpts {
        name: "leftovers".into(),
        exit_timeout: Duration::from_millis(1),
        ..ThreadOpts::default()
    });
    let p = t
        .enter(|| poller_register("stuck", 0, || PollerStatus::Idle))
        .unwrap();
    t.exit();
    while !t.is_exited() {
        t.poll(0);
    }
    let token = Arc::new(());
    // Exited: refused, and the closure (with its capture) is dropped at once.
    let tk = token.clone();
    assert!(t.send_msg(move || drop(tk)).is_err());
    assert_eq!(Arc::strong_count(&token), 1);
    assert!(t.exit_timed_out());
    assert!(p.is_registered());
    t.destroy().unwrap();
    assert!(!p.is_registered(), "destroy drops the pollers left");
}
