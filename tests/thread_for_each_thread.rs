//! The process-wide thread list: by_id, thread_count, for_each_thread.
//! One test in this binary, because for_each_thread visits every thread of
//! the process and other tests' threads are not polled here.

mod thread_support;

use spdk_io::thread::{for_each_thread, thread_count, Thread, ThreadError, ThreadHandle};
use std::sync::{Arc, Mutex};
use thread_support::Harness;

#[test]
fn thread_list_finds_counts_and_walks_every_live_thread() {
    assert_eq!(thread_count(), 0);
    assert!(matches!(
        for_each_thread(|| {}, || {}),
        Err(ThreadError::NoCurrentThread)
    ));
    let h = Harness::new(4);
    assert_eq!(thread_count(), 4);
    let found = ThreadHandle::by_id(h.t(2).id()).unwrap();
    assert_eq!(found.name(), "ut2");

    // Thread 3 exits first: the walk skips it.
    h.t(3).exit();
    h.poll_threads();
    assert!(h.t(3).is_exited());
    assert_eq!(thread_count(), 3);

    let visited = Arc::new(Mutex::new(Vec::new()));
    let v = visited.clone();
    let done_on = Arc::new(Mutex::new(None));
    let d = done_on.clone();
    h.on(1, || {
        for_each_thread(
            move || {
                v.lock()
                    .unwrap()
                    .push(Thread::current().unwrap().name().to_string())
            },
            move || *d.lock().unwrap() = Some(Thread::current().unwrap().name().to_string()),
        )
    })
    .unwrap();
    h.poll_threads();
    assert_eq!(*visited.lock().unwrap(), vec!["ut0", "ut1", "ut2"]);
    assert_eq!(done_on.lock().unwrap().as_deref(), Some("ut1"));

    // A thread dropped mid-walk is skipped, and the walk still completes.
    let extra = Thread::new("extra");
    let visited2 = Arc::new(Mutex::new(Vec::new()));
    let v2 = visited2.clone();
    let finished = Arc::new(Mutex::new(false));
    let f2 = finished.clone();
    h.on(0, || {
        for_each_thread(
            move || {
                v2.lock()
                    .unwrap()
                    .push(Thread::current().unwrap().name().to_string())
            },
            move || *f2.lock().unwrap() = true,
        )
    })
    .unwrap();
    for i in 0..3 {
        h.t(i).poll(0);
    }
    let extra_id = extra.id();
    drop(extra);
    assert!(ThreadHandle::by_id(extra_id).is_none());
    h.poll_threads();
    assert!(*finished.lock().unwrap());
    assert!(!visited2.lock().unwrap().contains(&"extra".to_string()));
    h.finish();
    assert_eq!(thread_count(), 0);
}
