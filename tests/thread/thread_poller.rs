//! Pollers: untimed and timed, pause/resume, unregister (also from inside).

use crate::thread_support;

use spdk_io::thread::{poller_register, Poller, PollerStatus, ThreadError, MAX_POLLER_PERIOD_US};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use thread_support::Harness;

fn counter() -> (Rc<Cell<u32>>, impl FnMut() -> PollerStatus) {
    let c = Rc::new(Cell::new(0));
    let c2 = c.clone();
    (c, move || {
        c2.set(c2.get() + 1);
        PollerStatus::Busy
    })
}

#[test]
fn untimed_poller_runs_every_poll_and_never_after_unregister() {
    let h = Harness::new(1);
    let (n, f) = counter();
    let p = h.on(0, || poller_register("p", 0, f)).unwrap();
    for _ in 0..5 {
        assert!(h.t(0).poll(0), "busy poller makes the poll busy");
    }
    assert_eq!(n.get(), 5);
    assert_eq!(p.run_counts(), (5, 5));
    p.unregister();
    p.unregister();
    h.t(0).poll(0);
    h.t(0).poll(0);
    assert_eq!(n.get(), 5);
    assert!(!p.is_registered());
    h.finish();
}

#[test]
fn poller_can_unregister_itself_from_its_callback() {
    let h = Harness::new(1);
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    h.on(0, || {
        poller_register("once", 0, move || {
            r.set(r.get() + 1);
            Poller::current().unwrap().unregister();
            PollerStatus::Busy
        })
    })
    .unwrap();
    for _ in 0..5 {
        h.t(0).poll(0);
    }
    assert_eq!(runs.get(), 1);
    h.finish();
}

#[test]
fn poller_unregistering_another_poller_stops_it_in_the_same_poll() {
    let h = Harness::new(1);
    let (n_b, fb) = counter();
    let slot: Rc<Cell<Option<Poller>>> = Rc::new(Cell::new(None));
    let s = slot.clone();
    h.on(0, || {
        poller_register("a", 0, move || {
            if let Some(b) = s.take() {
                b.unregister();
            }
            PollerStatus::Idle
        })
        .unwrap();
        slot.set(Some(poller_register("b", 0, fb).unwrap()));
    });
    h.t(0).poll(0);
    h.t(0).poll(0);
    assert_eq!(n_b.get(), 0, "b was unregistered before its turn");
    h.assert_exit_blocked_by_the_poller_left();
}

trait FinishAll {
    fn assert_exit_blocked_by_the_poller_left(self);
}

impl FinishAll for Harness {
    /// Poller `a` is still registered: the thread must not finish exiting.
    fn assert_exit_blocked_by_the_poller_left(self) {
        let t = self.t(0).clone();
        t.exit();
        let mut polls = 0;
        while !t.is_exited() && polls < 1000 {
            t.poll(0);
            polls += 1;
        }
        assert!(!t.is_exited(), "a thread with a poller left must not exit");
        drop(t);
        drop(self);
    }
}

#[test]
fn paused_poller_does_not_run_until_resumed() {
    let h = Harness::new(1);
    let (n, f) = counter();
    let p = h.on(0, || poller_register("p", 0, f)).unwrap();
    h.t(0).poll(0);
    p.pause();
    assert!(p.is_paused());
    for _ in 0..3 {
        h.t(0).poll(0);
    }
    assert_eq!(n.get(), 1);
    p.resume();
    h.t(0).poll(0);
    assert_eq!(n.get(), 2);
    p.pause();
    h.t(0).poll(0);
    p.unregister();
    h.t(0).poll(0);
    assert_eq!(n.get(), 2);
    h.finish();
}

#[test]
fn poller_can_pause_itself() {
    let h = Harness::new(1);
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let p = h
        .on(0, || {
            poller_register("self-pause", 0, move || {
                r.set(r.get() + 1);
                Poller::current().unwrap().pause();
                PollerStatus::Busy
            })
        })
        .unwrap();
    for _ in 0..3 {
        h.t(0).poll(0);
    }
    assert_eq!(runs.get(), 1);
    p.resume();
    h.t(0).poll(0);
    assert_eq!(runs.get(), 2);
    p.unregister();
    h.finish();
}

#[test]
fn timed_pollers_run_in_deadline_order_after_their_period() {
    let h = Harness::new(1);
    let order = Rc::new(std::cell::RefCell::new(Vec::new()));
    let mut ps = Vec::new();
    // Periods far apart, so registration delays cannot reorder deadlines.
    for (name, us) in [("slow", 30_000u64), ("fast", 10_000), ("mid", 20_000)] {
        let o = order.clone();
        ps.push(
            h.on(0, || {
                poller_register(name, us, move || {
                    o.borrow_mut().push(name);
                    PollerStatus::Busy
                })
            })
            .unwrap(),
        );
    }
    h.t(0).poll(0);
    assert!(order.borrow().is_empty(), "no timed poller is due at once");
    std::thread::sleep(Duration::from_millis(40));
    h.t(0).poll(0);
    assert_eq!(*order.borrow(), vec!["fast", "mid", "slow"]);
    for p in ps {
        p.unregister();
    }
    h.finish();
}

#[test]
fn timed_poller_runs_about_once_per_period() {
    let h = Harness::new(1);
    let (n, f) = counter();
    let start = std::time::Instant::now();
    let p = h.on(0, || poller_register("t", 2000, f)).unwrap();
    while start.elapsed() < Duration::from_millis(21) {
        h.t(0).poll(0);
    }
    h.t(0).poll(0);
    let elapsed_ms = start.elapsed().as_millis() as u32;
    let runs = n.get();
    // It cannot run more often than its period allows (and it did run).
    assert!(
        runs >= 1 && runs <= elapsed_ms / 2,
        "ran {runs} times in {elapsed_ms} ms at a 2 ms period"
    );
    p.unregister();
    h.finish();
}

#[test]
fn poller_period_zero_is_untimed_and_too_long_is_an_error() {
    let h = Harness::new(1);
    let p = h
        .on(0, || poller_register("zero", 0, || PollerStatus::Idle))
        .unwrap();
    assert_eq!(p.period_us(), 0);
    let err = h
        .on(0, || {
            poller_register("huge", MAX_POLLER_PERIOD_US + 1, || PollerStatus::Idle)
        })
        .unwrap_err();
    assert!(
        matches!(err, ThreadError::PollerPeriodTooLong { .. }),
        "{err}"
    );
    let err = h
        .on(0, || {
            poller_register("max", u64::MAX, || PollerStatus::Idle)
        })
        .unwrap_err();
    assert!(matches!(err, ThreadError::PollerPeriodTooLong { .. }));
    let ok = h
        .on(0, || {
            poller_register("max", MAX_POLLER_PERIOD_US, || PollerStatus::Idle)
        })
        .unwrap();
    ok.unregister();
    p.unregister();
    h.finish();
}

#[test]
fn registering_without_a_current_thread_is_an_error() {
    let err = poller_register("orphan", 0, || PollerStatus::Idle).unwrap_err();
    assert!(matches!(err, ThreadError::NoCurrentThread), "{err}");
}

#[test]
fn idle_pollers_make_an_idle_poll() {
    let h = Harness::new(1);
    let p = h
        .on(0, || poller_register("idle", 0, || PollerStatus::Idle))
        .unwrap();
    h.poll_threads();
    assert!(!h.t(0).poll(0));
    p.unregister();
    h.finish();
}

#[test]
fn poller_registered_from_a_poller_runs_from_the_next_poll() {
    let h = Harness::new(1);
    let (n, f) = counter();
    let f = Cell::new(Some(f));
    let child: Rc<Cell<Option<Poller>>> = Rc::new(Cell::new(None));
    let c = child.clone();
    let parent = h
        .on(0, || {
            poller_register("parent", 0, move || {
                if let Some(f) = f.take() {
                    c.set(Some(poller_register("child", 0, f).unwrap()));
                }
                PollerStatus::Idle
            })
        })
        .unwrap();
    h.t(0).poll(0);
    assert_eq!(n.get(), 0);
    h.t(0).poll(0);
    assert_eq!(n.get(), 1);
    parent.unregister();
    child.take().unwrap().unregister();
    h.finish();
}

#[test]
fn resumed_timed_poller_waits_a_full_period_again() {
    let h = Harness::new(1);
    let (n, f) = counter();
    let p = h.on(0, || poller_register("t", 50_000, f)).unwrap();
    p.pause();
    std::thread::sleep(Duration::from_millis(60));
    h.t(0).poll(0);
    assert_eq!(n.get(), 0, "paused: its deadline passed but it did not run");
    p.resume();
    h.t(0).poll(0);
    assert_eq!(n.get(), 0, "resume re-arms one period from now");
    std::thread::sleep(Duration::from_millis(60));
    h.t(0).poll(0);
    assert_eq!(n.get(), 1);
    p.unregister();
    h.finish();
}

#[test]
fn unregistering_a_paused_poller_drops_its_closure() {
    let h = Harness::new(1);
    let token = Rc::new(());
    let t2 = token.clone();
    let p = h
        .on(0, || {
            poller_register("paused", 0, move || {
                let _keep = &t2;
                PollerStatus::Idle
            })
        })
        .unwrap();
    p.pause();
    h.t(0).poll(0);
    assert_eq!(Rc::strong_count(&token), 2);
    p.unregister();
    h.t(0).poll(0);
    assert_eq!(Rc::strong_count(&token), 1, "closure dropped");
    h.finish();
}

#[test]
fn current_poller_is_none_outside_a_poller() {
    let h = Harness::new(1);
    assert!(Poller::current().is_none());
    let seen = Rc::new(Cell::new(false));
    let s = seen.clone();
    h.t(0)
        .send_msg(move || assert!(Poller::current().is_none()))
        .unwrap();
    let p = h
        .on(0, || {
            poller_register("me", 0, move || {
                s.set(Poller::current().map(|p| p.name() == "me").unwrap_or(false));
                PollerStatus::Idle
            })
        })
        .unwrap();
    h.t(0).poll(0);
    assert!(seen.get());
    p.unregister();
    h.finish();
}

#[test]
fn timed_pollers_due_together_run_in_registration_order() {
    let h = Harness::new(1);
    let order = Rc::new(std::cell::RefCell::new(Vec::new()));
    let ps: Vec<_> = (0..5)
        .map(|i| {
            let o = order.clone();
            h.on(0, || {
                poller_register("same", 1000, move || {
                    o.borrow_mut().push(i);
                    PollerStatus::Idle
                })
            })
            .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(2));
    h.t(0).poll(0);
    let got = order.borrow().clone();
    // Registered microseconds apart, their deadlines are ordered the same way.
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    ps.iter().for_each(Poller::unregister);
    h.finish();
}

#[test]
fn next_poller_deadline_lets_a_host_sleep() {
    let h = Harness::new(1);
    let now = spdk_io::thread::ticks();
    assert_eq!(h.t(0).next_poller_deadline(now), None);
    let p = h
        .on(0, || poller_register("t", 5000, || PollerStatus::Idle))
        .unwrap();
    let d = h.t(0).next_poller_deadline(now).unwrap();
    let since = spdk_io::thread::ticks() - now;
    assert!(d > 0 && d <= 5_000_000 + since, "{d}");
    let u = h
        .on(0, || poller_register("u", 0, || PollerStatus::Idle))
        .unwrap();
    assert_eq!(h.t(0).next_poller_deadline(now), Some(0));
    p.unregister();
    u.unregister();
    h.finish();
}
