//! Messages: ordering, never-inline, ring full, exited targets, critical slot.

use crate::thread_support;

use spdk_io::thread::{send_msg, Msg, Thread, ThreadError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use thread_support::Harness;

#[test]
fn messages_from_one_sender_run_in_order() {
    let h = Harness::new(1);
    let log = Arc::new(Mutex::new(Vec::new()));
    for i in 0..100 {
        let log = log.clone();
        send_msg(&h.t(0).handle(), move || log.lock().unwrap().push(i)).unwrap();
    }
    h.poll_threads();
    assert_eq!(*log.lock().unwrap(), (0..100).collect::<Vec<_>>());
    h.finish();
}

#[test]
fn a_message_sent_to_the_current_thread_never_runs_inline() {
    let h = Harness::new(1);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let me = h.t(0).handle();
    h.t(0)
        .send_msg(move || {
            let r2 = r.clone();
            me.send_msg(move || {
                r2.store(2, Ordering::SeqCst);
            })
            .unwrap();
            assert_eq!(r.load(Ordering::SeqCst), 0, "nested message ran inline");
            r.store(1, Ordering::SeqCst);
        })
        .unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0, "message ran before any poll");
    h.t(0).poll(1);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    h.poll_threads();
    assert_eq!(ran.load(Ordering::SeqCst), 2);
    h.finish();
}

#[test]
fn poll_runs_at_most_max_msgs_messages() {
    let h = Harness::new(1);
    let n = Arc::new(AtomicUsize::new(0));
    for _ in 0..20 {
        let n = n.clone();
        h.t(0)
            .send_msg(move || {
                n.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
    }
    h.t(0).poll(5);
    assert_eq!(n.load(Ordering::SeqCst), 5);
    h.t(0).poll(0);
    assert_eq!(
        n.load(Ordering::SeqCst),
        5 + spdk_io::thread::MSG_BATCH_SIZE
    );
    h.finish();
}

#[test]
fn full_ring_is_an_error_and_try_send_hands_the_message_back() {
    let h = Harness::with_ring(1, 4);
    let n = Arc::new(AtomicUsize::new(0));
    let mk = |n: &Arc<AtomicUsize>| {
        let n = n.clone();
        Msg::new(move || {
            n.fetch_add(1, Ordering::SeqCst);
        })
    };
    let handle = h.t(0).handle();
    for _ in 0..4 {
        handle.try_send(mk(&n)).unwrap();
    }
    let (back, err) = handle.try_send(mk(&n)).unwrap_err();
    assert!(
        matches!(err, ThreadError::RingFull { capacity: 4, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("retry"));
    h.t(0).poll(1);
    handle.try_send(back).unwrap();
    h.poll_threads();
    assert_eq!(
        n.load(Ordering::SeqCst),
        5,
        "every message ran exactly once"
    );
    h.finish();
}

#[test]
fn sending_to_an_exited_thread_is_an_error() {
    let t = Thread::new("gone");
    let handle = t.handle();
    t.exit();
    while !t.is_exited() {
        t.poll(0);
    }
    let err = handle.send_msg(|| {}).unwrap_err();
    assert!(matches!(err, ThreadError::Exited { .. }), "{err}");
    assert!(matches!(
        handle.send_critical_msg(|| {}),
        Err(ThreadError::Exited { .. })
    ));
    t.destroy().unwrap();
    assert!(handle.send_msg(|| {}).is_err());
}

static CRITICAL_RUNS: AtomicUsize = AtomicUsize::new(0);

fn critical() {
    CRITICAL_RUNS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn critical_message_slot_holds_one_and_runs_first() {
    let h = Harness::new(1);
    let handle = h.t(0).handle();
    let seen_critical_first = Arc::new(AtomicUsize::new(usize::MAX));
    let s = seen_critical_first.clone();
    handle
        .send_msg(move || s.store(CRITICAL_RUNS.load(Ordering::SeqCst), Ordering::SeqCst))
        .unwrap();
    handle.send_critical_msg(critical).unwrap();
    assert!(matches!(
        handle.send_critical_msg(critical),
        Err(ThreadError::CriticalBusy { .. })
    ));
    h.t(0).poll(0);
    assert_eq!(CRITICAL_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(seen_critical_first.load(Ordering::SeqCst), 1);
    handle.send_critical_msg(critical).unwrap();
    h.poll_threads();
    assert_eq!(CRITICAL_RUNS.load(Ordering::SeqCst), 2);
    h.finish();
}

#[test]
fn current_thread_is_set_only_while_polled() {
    let h = Harness::new(2);
    assert!(Thread::current().is_none());
    let id1 = h.t(1).id();
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    h.t(1)
        .send_msg(move || {
            s.store(Thread::current().unwrap().id() as usize, Ordering::SeqCst);
        })
        .unwrap();
    h.poll_threads();
    assert_eq!(seen.load(Ordering::SeqCst), id1 as usize);
    assert!(Thread::current().is_none());
    h.finish();
}

#[test]
fn stats_count_busy_and_idle_time() {
    let h = Harness::new(1);
    h.t(0)
        .send_msg(|| std::thread::sleep(std::time::Duration::from_millis(2)))
        .unwrap();
    h.t(0).poll(0);
    h.t(0).poll(0);
    let s = h.t(0).stats();
    assert!(s.busy_ticks >= 2_000_000, "{s:?}");
    assert!(s.idle_ticks > 0, "{s:?}");
    h.finish();
}

#[test]
fn poll_at_counts_time_from_the_given_start_to_its_recorded_end() {
    let h = Harness::new(1);
    let t = h.t(0);
    let start = spdk_io::thread::ticks();
    std::thread::sleep(std::time::Duration::from_millis(2));
    // An idle poll whose start was 2 ms ago: all of it counts as idle.
    assert!(!t.poll_at(0, start));
    let end = t.last_poll_end();
    assert!(end >= start + 2_000_000);
    assert_eq!(t.stats().idle_ticks, end - start);
    assert_eq!(t.stats().busy_ticks, 0);
    h.finish();
}

#[test]
fn nested_enter_restores_the_outer_current_thread() {
    let h = Harness::new(2);
    h.on(0, || {
        assert_eq!(Thread::current().unwrap().name(), "ut0");
        h.on(1, || assert_eq!(Thread::current().unwrap().name(), "ut1"));
        assert_eq!(Thread::current().unwrap().name(), "ut0");
    });
    assert!(Thread::current().is_none());
    h.finish();
}
