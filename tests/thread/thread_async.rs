//! The local executor: spawn_local, wakes across threads, Thread::send,
//! sleep, yield_now.

use crate::thread_support;

use spdk_io::thread::{sleep, spawn_local, yield_now, Thread, ThreadError};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use thread_support::Harness;

/// Spawns `f` on the harness's thread 0; its output lands in the cell
/// returned once the task has run to its end.
fn output_on_0<T: 'static>(
    h: &Harness,
    f: impl std::future::Future<Output = T> + 'static,
) -> Rc<RefCell<Option<T>>> {
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    h.on(0, || {
        spawn_local(async move {
            *o.borrow_mut() = Some(f.await);
        })
    })
    .unwrap();
    out
}

#[test]
fn spawned_task_runs_on_the_next_poll_and_joins() {
    let h = Harness::new(1);
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let jh = h
        .on(0, || {
            spawn_local(async move {
                l.borrow_mut().push("ran");
                41 + 1
            })
        })
        .unwrap();
    assert!(log.borrow().is_empty(), "never run inline");
    let l2 = log.clone();
    let waiter = h
        .on(0, || {
            spawn_local(async move {
                let v = jh.await.unwrap();
                assert_eq!(v, 42);
                l2.borrow_mut().push("joined");
                v
            })
        })
        .unwrap();
    h.poll_threads();
    assert_eq!(*log.borrow(), vec!["ran", "joined"]);
    assert!(waiter.is_finished());
    h.finish();
}

#[test]
fn tasks_complete_across_messages_between_threads() {
    let h = Harness::new(3);
    let b = h.t(1).handle();
    let c = h.t(2).handle();
    let result = Rc::new(RefCell::new(None));
    let r = result.clone();
    h.on(0, || {
        spawn_local(async move {
            let mut sum = 0u64;
            for i in 0..100u64 {
                // Alternate targets: each await is a round trip by message.
                let target = if i % 2 == 0 { &b } else { &c };
                let (v, name) = Thread::send(target, move || {
                    (i * 2, Thread::current().unwrap().name().to_string())
                })
                .await
                .unwrap();
                assert_eq!(name, if i % 2 == 0 { "ut1" } else { "ut2" });
                sum += v;
            }
            *r.borrow_mut() = Some(sum);
        })
    })
    .unwrap();
    h.poll_threads();
    assert_eq!(*result.borrow(), Some(9900));
    h.finish();
}

#[test]
fn waking_from_another_os_thread_reschedules_the_task() {
    let h = Harness::new(1);
    let done = Rc::new(RefCell::new(false));
    let d = done.clone();
    let (tx, rx) = std::sync::mpsc::channel::<std::task::Waker>();
    struct WaitOnce(bool, std::sync::mpsc::Sender<std::task::Waker>);
    impl std::future::Future for WaitOnce {
        type Output = ();
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            if self.0 {
                return std::task::Poll::Ready(());
            }
            self.0 = true;
            self.1.send(cx.waker().clone()).unwrap();
            std::task::Poll::Pending
        }
    }
    h.on(0, || {
        spawn_local(async move {
            WaitOnce(false, tx).await;
            *d.borrow_mut() = true;
        })
    })
    .unwrap();
    h.poll_threads();
    assert!(!*done.borrow());
    let w = rx.recv().unwrap();
    std::thread::spawn(move || {
        w.wake_by_ref();
        w.wake();
    })
    .join()
    .unwrap();
    h.poll_threads();
    assert!(*done.borrow());
    h.finish();
}

#[test]
fn send_to_an_exited_thread_resolves_to_an_error() {
    let h = Harness::new(1);
    let gone = Thread::new("gone");
    let gh = gone.handle();
    gone.exit();
    gone.poll(0);
    gone.destroy().unwrap();
    let out = output_on_0(&h, async move { Thread::send(&gh, || 1).await });
    h.poll_threads();
    assert!(matches!(
        out.borrow().as_ref(),
        Some(Err(ThreadError::Exited { .. }))
    ));
    h.finish();
}

#[test]
fn send_dropped_unrun_resolves_to_canceled() {
    let h = Harness::new(1);
    let victim = Thread::new("victim");
    let vh = victim.handle();
    let out = output_on_0(&h, async move { Thread::send(&vh, || 1).await });
    h.poll_threads();
    drop(victim);
    h.poll_threads();
    assert!(
        matches!(
            out.borrow().as_ref(),
            Some(Err(ThreadError::Canceled { .. }))
        ),
        "{:?}",
        out.borrow()
            .as_ref()
            .map(|r| r.as_ref().err().map(|e| e.to_string()))
    );
    h.finish();
}

#[test]
fn sleep_completes_after_its_duration_via_a_timed_poller() {
    let h = Harness::new(1);
    let woke = Rc::new(RefCell::new(None));
    let w = woke.clone();
    let start = std::time::Instant::now();
    h.on(0, || {
        spawn_local(async move {
            sleep(Duration::from_millis(3)).await.unwrap();
            *w.borrow_mut() = Some(start.elapsed());
        })
    })
    .unwrap();
    while woke.borrow().is_none() {
        h.t(0).poll(0);
        assert!(start.elapsed() < Duration::from_secs(10));
    }
    assert!(woke.borrow().unwrap() >= Duration::from_millis(3));
    h.finish();
}

#[test]
fn sleep_longer_than_a_day_is_an_error() {
    let h = Harness::new(1);
    let out = output_on_0(
        &h,
        async move { sleep(Duration::from_secs(100 * 86_400)).await },
    );
    h.poll_threads();
    assert!(matches!(
        out.borrow().as_ref(),
        Some(Err(ThreadError::PollerPeriodTooLong { .. }))
    ));
    h.finish();
}

#[test]
fn dropped_sleep_unregisters_its_poller() {
    let h = Harness::new(1);
    h.on(0, || {
        spawn_local(async move {
            let s = sleep(Duration::from_secs(60));
            let mut s = std::pin::pin!(s);
            // Poll it once, then drop it.
            std::future::poll_fn(|cx| {
                let _ = s.as_mut().poll(cx);
                std::task::Poll::Ready(())
            })
            .await;
        })
    })
    .unwrap();
    h.poll_threads();
    // finish() asserts the thread exits without timing out: no poller left.
    h.finish();
}

use std::future::Future;

#[test]
fn yield_now_lets_other_tasks_run() {
    let h = Harness::new(1);
    let log = Rc::new(RefCell::new(Vec::new()));
    for id in 0..2 {
        let l = log.clone();
        h.on(0, || {
            spawn_local(async move {
                for step in 0..3 {
                    l.borrow_mut().push((id, step));
                    yield_now().await;
                }
            })
        })
        .unwrap();
    }
    h.poll_threads();
    assert_eq!(
        *log.borrow(),
        vec![(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
    );
    h.finish();
}

#[test]
fn spawn_without_a_current_thread_is_an_error() {
    assert!(matches!(
        spawn_local(async {}),
        Err(ThreadError::NoCurrentThread)
    ));
}

#[test]
fn join_handle_of_a_task_dropped_with_its_thread_resolves_to_canceled() {
    let h = Harness::new(1);
    let doomed = Thread::new("doomed");
    let never = doomed.spawn_local(std::future::pending::<u32>()).unwrap();
    doomed.poll(0);
    let out = output_on_0(&h, never);
    h.poll_threads();
    assert!(out.borrow().is_none());
    drop(doomed);
    h.poll_threads();
    assert!(
        matches!(
            out.borrow().as_ref(),
            Some(Err(ThreadError::Canceled { .. }))
        ),
        "the waiter learns the task is gone"
    );
    h.finish();
}

#[test]
fn send_to_a_full_ring_resolves_to_ring_full() {
    let h = Harness::new(1);
    let busy = Thread::with_opts(spdk_io::thread::ThreadOpts {
        name: "busy".into(),
        msg_ring_size: 1,
        ..Default::default()
    });
    busy.send_msg(|| {}).unwrap();
    let bh = busy.handle();
    let out = output_on_0(&h, async move { Thread::send(&bh, || 1).await });
    h.poll_threads();
    assert!(matches!(
        out.borrow().as_ref(),
        Some(Err(ThreadError::RingFull { .. }))
    ));
    busy.exit();
    while !busy.is_exited() {
        busy.poll(0);
    }
    busy.destroy().unwrap();
    h.finish();
}
