//! Running a thread from the calling OS thread: `Thread::block_on`,
//! `Thread::shutdown` and `JoinHandle::try_take`, and the errors that
//! replace what used to be silent hangs.

use spdk_io::thread::{
    io_device_register, sleep, spawn_local, IoDeviceKey, Thread, ThreadError, ThreadOpts,
};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A future that is pending forever and keeps no waker.
struct Forgetful;

impl Future for Forgetful {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

#[test]
fn block_on_runs_a_future_with_spawned_tasks_and_timers_to_completion() {
    let t = Thread::new("block_on");
    let v = t
        .block_on(async {
            let a = spawn_local(async { 20 }).unwrap();
            sleep(Duration::from_millis(1)).await.unwrap();
            a.await.unwrap() + 22
        })
        .unwrap();
    assert_eq!(v, 42);
    t.shutdown().unwrap();
    t.destroy().unwrap();
}

#[test]
fn block_on_a_future_nobody_can_wake_is_an_error_not_a_hang() {
    let t = Thread::new("forgetful");
    let e = t.block_on(Forgetful).unwrap_err();
    assert!(matches!(e, ThreadError::NeverWoken { .. }), "{e}");
    assert!(e.to_string().contains("can never be woken"), "{e}");
    t.shutdown().unwrap();
    t.destroy().unwrap();
}

#[test]
fn block_on_inside_a_thread_is_refused() {
    let outer = Thread::new("outer");
    let inner = Thread::new("inner");
    let e = outer.enter(|| inner.block_on(async {})).unwrap_err();
    assert!(matches!(e, ThreadError::NestedBlockOn { .. }), "{e}");
    assert!(e.to_string().contains("'outer'"), "{e}");
    for t in [outer, inner] {
        t.shutdown().unwrap();
        t.destroy().unwrap();
    }
}

#[test]
fn block_on_an_exited_thread_is_refused() {
    let t = Thread::new("gone");
    t.shutdown().unwrap();
    let e = t.block_on(async {}).unwrap_err();
    assert!(matches!(e, ThreadError::ThreadExited { .. }), "{e}");
    t.destroy().unwrap();
}

#[test]
fn block_on_is_woken_from_another_os_thread() {
    let t = Thread::new("woken");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let host = std::thread::spawn(move || {
        let worker = Thread::new("worker");
        tx.send(worker.handle()).unwrap();
        while !s2.load(std::sync::atomic::Ordering::SeqCst) {
            worker.poll(0);
            std::thread::yield_now();
        }
        worker.shutdown().unwrap();
        worker.destroy().unwrap();
    });
    let wh = rx.recv().unwrap();
    let v = t.block_on(Thread::send(&wh, || 5)).unwrap().unwrap();
    assert_eq!(v, 5);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    host.join().unwrap();
    t.shutdown().unwrap();
    t.destroy().unwrap();
}

#[test]
fn shutdown_with_a_channel_still_held_is_an_error_at_once() {
    let t = Thread::with_opts(ThreadOpts {
        name: "holder".into(),
        exit_timeout: Duration::from_secs(3600),
        ..ThreadOpts::default()
    });
    let dev = io_device_register(IoDeviceKey::unique(), "held_dev", || Ok(()), |_| {}).unwrap();
    let ch = t.enter(|| dev.get_io_channel()).unwrap();
    // With an hour of exit timeout, only an immediate error lets this return.
    let e = t.shutdown().unwrap_err();
    assert!(matches!(e, ThreadError::ChannelsHeld { .. }), "{e}");
    assert!(e.to_string().contains("held_dev (1 refs)"), "{e}");
    assert!(!t.is_exited());
    t.enter(|| drop(ch));
    t.shutdown().unwrap();
    assert!(t.is_exited());
    t.destroy().unwrap();
    let u = Thread::new("unreg");
    u.enter(|| dev.unregister(|| {})).unwrap();
    u.shutdown().unwrap();
    u.destroy().unwrap();
}

#[test]
fn shutdown_reports_a_forced_exit_with_the_pollers_left() {
    let t = Thread::with_opts(ThreadOpts {
        name: "stuck".into(),
        exit_timeout: Duration::from_millis(5),
        ..ThreadOpts::default()
    });
    let _p = t
        .enter(|| {
            spdk_io::thread::poller_register("forgotten", 0, || spdk_io::thread::PollerStatus::Idle)
        })
        .unwrap();
    let e = t.shutdown().unwrap_err();
    assert!(matches!(e, ThreadError::ExitTimedOut { .. }), "{e}");
    assert!(e.to_string().contains("forgotten"), "{e}");
    assert!(t.is_exited());
    t.destroy().unwrap();
}

#[test]
fn a_finished_tasks_result_is_taken_once_from_a_host_loop() {
    let t = Thread::new("take");
    let h = t.spawn_local(async { String::from("done") }).unwrap();
    assert!(h.try_take().is_none(), "not run yet");
    for _ in 0..100 {
        if h.is_finished() {
            break;
        }
        t.poll(0);
    }
    assert_eq!(h.try_take().unwrap().unwrap(), "done");
    assert!(h.try_take().is_none(), "taken already");
    t.shutdown().unwrap();
    t.destroy().unwrap();
}

#[test]
fn a_canceled_tasks_result_is_the_cancel_error() {
    let t = Thread::with_opts(ThreadOpts {
        name: "cancel".into(),
        exit_timeout: Duration::from_millis(1),
        ..ThreadOpts::default()
    });
    let h = t.spawn_local(std::future::pending::<()>()).unwrap();
    t.poll(0);
    // The task never ends: the exit times out and destroy drops it.
    let _ = t.shutdown();
    t.destroy().unwrap();
    assert!(matches!(
        h.try_take(),
        Some(Err(ThreadError::Canceled { .. }))
    ));
}

/// What another OS thread hands back: a result, and the waker to wake.
type Handoff = std::sync::Arc<std::sync::Mutex<(bool, Option<std::task::Waker>)>>;

/// Pending until another OS thread sets the result; keeps the waker there.
struct HandedBack(Handoff);

impl Future for HandedBack {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.0.lock().unwrap();
        if s.0 {
            return Poll::Ready(());
        }
        s.1 = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[test]
fn a_future_woken_by_an_os_thread_that_then_drops_the_waker_is_not_called_never_woken() {
    // The waker's holder wakes and lets go of it in one step (as a worker
    // thread finishing a job does): block_on must see the wake, however
    // the two interleave with its check for a waker nobody holds. A race:
    // run many times, with the wake landing at different moments.
    let t = Thread::new("handed_back");
    for i in 0..1000u32 {
        let h: Handoff = Default::default();
        let theirs = h.clone();
        let worker = std::thread::spawn(move || {
            for _ in 0..(i % 16) * 50 {
                std::hint::spin_loop();
            }
            let w = {
                let mut s = theirs.lock().unwrap();
                s.0 = true;
                s.1.take()
            };
            if let Some(w) = w {
                w.wake();
            }
        });
        if let Err(e) = t.block_on(HandedBack(h)) {
            panic!("round {i}: {e}");
        }
        worker.join().unwrap();
    }
    t.shutdown().unwrap();
    t.destroy().unwrap();
}
