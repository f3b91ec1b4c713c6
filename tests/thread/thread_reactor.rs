//! Reactors: threads placed on cores, cross-reactor messages, moving a
//! thread keeps its pollers and messages, clean stop.

use spdk_io::thread::{
    poller_register, CpuMask, PollerStatus, ReactorOpts, ReactorSet, Thread, ThreadError,
    ThreadOpts,
};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn opts() -> ReactorOpts {
    ReactorOpts {
        // Tests share a small machine: don't pin, back off quickly.
        pin: false,
        idle_backoff: Some(Duration::from_micros(200)),
        idle_polls_before_backoff: 100,
        poller_idle_wait: true,
    }
}

fn two_cores() -> CpuMask {
    CpuMask::parse("0x3").unwrap()
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Thread options with `name` and the defaults.
fn named(name: &str) -> ThreadOpts {
    ThreadOpts {
        name: name.into(),
        ..Default::default()
    }
}

#[test]
fn thread_runs_its_init_message_on_its_reactor() {
    let rs = ReactorSet::start(two_cores(), opts()).unwrap();
    assert_eq!(rs.cores(), vec![0, 1]);
    let (tx, rx) = mpsc::channel();
    rs.spawn_thread(1, named("app"), move || {
        let t = Thread::current().unwrap();
        tx.send((t.name().to_string(), ReactorSet::current_core()))
            .unwrap();
    })
    .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(20)).unwrap(),
        ("app".to_string(), Some(1))
    );
    assert_eq!(rs.thread_count(1), Some(1));
    rs.stop();
}

#[test]
fn messages_cross_reactors_and_come_back() {
    let rs = ReactorSet::start(two_cores(), opts()).unwrap();
    let b = rs.spawn_thread(1, named("b"), || {}).unwrap();
    let (tx, rx) = mpsc::channel();
    rs.spawn_thread(0, named("a"), move || {
        let me = Thread::current().unwrap().handle();
        for i in 0..1000u64 {
            let me = me.clone();
            let tx = tx.clone();
            b.send_msg(move || {
                assert_eq!(ReactorSet::current_core(), Some(1));
                me.send_msg(move || tx.send(i).unwrap()).unwrap();
            })
            .unwrap();
        }
    })
    .unwrap();
    let got: Vec<u64> = (0..1000)
        .map(|_| rx.recv_timeout(Duration::from_secs(20)).unwrap())
        .collect();
    assert_eq!(
        got,
        (0..1000).collect::<Vec<_>>(),
        "per-sender order holds across reactors"
    );
    rs.stop();
}

#[test]
fn moving_a_thread_keeps_its_pollers_and_messages() {
    let rs = ReactorSet::start(two_cores(), opts()).unwrap();
    let runs_on = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let r = runs_on.clone();
    let quit = Arc::new(AtomicUsize::new(0));
    let q = quit.clone();
    let t = rs
        .spawn_thread(0, named("mover"), move || {
            poller_register("where", 0, move || {
                let core = ReactorSet::current_core().unwrap();
                r[core].fetch_add(1, Ordering::SeqCst);
                if q.load(Ordering::SeqCst) == 1 {
                    spdk_io::thread::Poller::current().unwrap().unregister();
                }
                PollerStatus::Idle
            })
            .unwrap();
        })
        .unwrap();
    wait_until("the poller to run on core 0", || {
        runs_on[0].load(Ordering::SeqCst) > 0
    });
    let moved = Arc::new(AtomicUsize::new(0));
    let m = moved.clone();
    // SAFETY: the thread holds only a poller closure capturing an Arc of
    // atomics: nothing in it is shared with its reactor's OS thread.
    unsafe {
        rs.move_thread(&t, 1, move |res| {
            res.unwrap();
            m.store(1, Ordering::SeqCst);
        })
    }
    .unwrap();
    // Messages sent while the thread is in transit are kept, in order.
    let (tx, rx) = mpsc::channel();
    for i in 0..100 {
        let tx = tx.clone();
        t.send_msg(move || tx.send((i, ReactorSet::current_core())).unwrap())
            .unwrap();
    }
    wait_until("the move", || moved.load(Ordering::SeqCst) == 1);
    let got: Vec<_> = (0..100)
        .map(|_| rx.recv_timeout(Duration::from_secs(20)).unwrap())
        .collect();
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        (0..100).collect::<Vec<_>>()
    );
    let before = runs_on[1].load(Ordering::SeqCst);
    wait_until("the poller to run on core 1", || {
        runs_on[1].load(Ordering::SeqCst) > before
    });
    let on0 = runs_on[0].load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        runs_on[0].load(Ordering::SeqCst),
        on0,
        "no longer runs on core 0"
    );
    assert_eq!(rs.thread_count(0), Some(0));
    assert_eq!(rs.thread_count(1), Some(1));
    quit.store(1, Ordering::SeqCst);
    let t2 = t.clone();
    wait_until("the thread to exit on its own", move || {
        let _ = t2.send_msg(|| Thread::current().unwrap().exit());
        t2.is_exited()
    });
    rs.stop();
}

#[test]
fn moving_to_a_core_without_reactor_or_outside_the_mask_is_an_error() {
    let rs = ReactorSet::start(CpuMask::single(0), opts()).unwrap();
    let t = rs.spawn_thread(0, ThreadOpts::default(), || {}).unwrap();
    // SAFETY: the thread is empty.
    let err = unsafe { rs.move_thread(&t, 5, |_| {}) }.unwrap_err();
    assert!(err.to_string().contains("no reactor on core 5"), "{err}");
    let err = rs
        .spawn_thread(
            0,
            ThreadOpts {
                cpumask: CpuMask::single(3),
                ..Default::default()
            },
            || {},
        )
        .unwrap_err();
    assert!(matches!(err, ThreadError::Reactor(_)), "{err}");
    rs.stop();
}

#[test]
fn moving_an_unknown_thread_reports_it() {
    let rs = ReactorSet::start(two_cores(), opts()).unwrap();
    let stray = Thread::new("stray");
    let (tx, rx) = mpsc::channel();
    // SAFETY: the thread is on no reactor; nothing moves.
    unsafe {
        rs.move_thread(&stray.handle(), 1, move |r| {
            tx.send(r.map_err(|e| e.to_string())).unwrap()
        })
    }
    .unwrap();
    let res = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(res.unwrap_err().contains("on no reactor"));
    rs.stop();
}

#[test]
fn stop_exits_every_thread_cleanly() {
    let rs = ReactorSet::start(two_cores(), opts()).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            rs.spawn_thread(
                i % 2,
                ThreadOpts {
                    name: format!("t{i}"),
                    ..Default::default()
                },
                || {},
            )
            .unwrap()
        })
        .collect();
    wait_until("threads placed", || {
        rs.thread_count(0) == Some(2) && rs.thread_count(1) == Some(2)
    });
    rs.stop();
    for h in handles {
        assert!(h.is_exited());
        assert!(h.send_msg(|| {}).is_err());
    }
}

#[test]
fn a_thread_that_exits_itself_is_reaped_by_its_reactor() {
    let rs = ReactorSet::start(CpuMask::single(0), opts()).unwrap();
    let h = rs
        .spawn_thread(0, ThreadOpts::default(), || {
            Thread::current().unwrap().exit()
        })
        .unwrap();
    wait_until("the thread to exit", || h.is_exited());
    wait_until("the reactor to reap it", || rs.thread_count(0) == Some(0));
    rs.stop();
}

#[test]
fn empty_core_mask_is_an_error() {
    assert!(ReactorSet::start(CpuMask::new(), opts()).is_err());
}

#[test]
fn pinned_reactor_runs_on_its_core() {
    let o = ReactorOpts {
        pin: true,
        ..opts()
    };
    let rs = ReactorSet::start(CpuMask::single(0), o).unwrap();
    let (tx, rx) = mpsc::channel();
    rs.spawn_thread(0, ThreadOpts::default(), move || {
        let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
        let cpus: Vec<usize> = (0..nix::sched::CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect();
        tx.send(cpus).unwrap();
    })
    .unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(20)).unwrap(), vec![0]);
    rs.stop();
}

#[test]
fn async_tasks_complete_across_reactors() {
    let rs = ReactorSet::start(two_cores(), opts()).unwrap();
    let b = rs.spawn_thread(1, named("b"), || {}).unwrap();
    let (tx, rx) = mpsc::channel();
    rs.spawn_thread(0, named("a"), move || {
        spdk_io::thread::spawn_local(async move {
            let mut sum = 0u64;
            for i in 0..2_000u64 {
                // Each await is woken from the other reactor's OS thread.
                sum += Thread::send(&b, move || {
                    assert_eq!(ReactorSet::current_core(), Some(1));
                    i
                })
                .await
                .unwrap();
            }
            assert_eq!(ReactorSet::current_core(), Some(0));
            tx.send(sum).unwrap();
        })
        .unwrap();
    })
    .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(60)).unwrap(),
        (0..2_000u64).sum::<u64>()
    );
    rs.stop();
}

#[test]
fn spawn_anywhere_spreads_threads_within_their_cpumask() {
    let rs = ReactorSet::start(two_cores(), opts()).unwrap();
    for i in 0..4 {
        rs.spawn_thread_anywhere(
            ThreadOpts {
                name: format!("s{i}"),
                ..Default::default()
            },
            || {},
        )
        .unwrap();
    }
    let pinned = rs
        .spawn_thread_anywhere(
            ThreadOpts {
                name: "only1".into(),
                cpumask: CpuMask::single(1),
                ..Default::default()
            },
            || {
                assert_eq!(ReactorSet::current_core(), Some(1));
            },
        )
        .unwrap();
    wait_until("threads placed", || {
        rs.thread_count(0) == Some(2) && rs.thread_count(1) == Some(3)
    });
    let err = rs
        .spawn_thread_anywhere(
            ThreadOpts {
                cpumask: CpuMask::single(7),
                ..Default::default()
            },
            || {},
        )
        .unwrap_err();
    assert!(err.to_string().contains("cpumask"), "{err}");
    rs.stop();
    assert!(pinned.is_exited());
}

#[test]
fn moving_a_thread_keeps_its_channels_and_tasks() {
    use spdk_io::thread::{io_device_register, IoDeviceKey};
    let rs = ReactorSet::start(two_cores(), opts()).unwrap();
    let dev = io_device_register(
        IoDeviceKey::unique(),
        "mover-dev",
        || Ok(Vec::<usize>::new()),
        |_| {},
    )
    .unwrap();
    let d = dev.clone();
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let t = rs
        .spawn_thread(0, named("mover2"), move || {
            let ch = d.get_io_channel().unwrap();
            ch.ctx_mut().push(ReactorSet::current_core().unwrap());
            spdk_io::thread::spawn_local(async move {
                ready_tx.send(()).unwrap();
                // Sleeps across the move: its timer poller moves too.
                spdk_io::thread::sleep(Duration::from_millis(30))
                    .await
                    .unwrap();
                ch.ctx_mut().push(ReactorSet::current_core().unwrap());
                let seen = ch.ctx().clone();
                drop(ch);
                tx.send(seen).unwrap();
                Thread::current().unwrap().exit();
            })
            .unwrap();
        })
        .unwrap();
    ready_rx.recv_timeout(Duration::from_secs(20)).unwrap();
    // SAFETY: the thread holds a channel, a task and its timer, all of the
    // thread layer's own types or Send values: nothing shared with the OS thread.
    unsafe { rs.move_thread(&t, 1, |r| r.unwrap()) }.unwrap();
    let seen = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(
        seen,
        vec![0, 1],
        "same channel context, used on core 0 then core 1"
    );
    wait_until("the thread to exit", || t.is_exited());
    assert_eq!(dev.channel_count(), 0);
    rs.stop();
}

#[test]
fn reactor_stats_split_busy_and_idle_time() {
    let rs = ReactorSet::start(two_cores(), opts()).unwrap();
    let quit = Arc::new(AtomicUsize::new(0));
    let q = quit.clone();
    rs.spawn_thread(0, named("busy"), move || {
        poller_register("spin", 0, move || {
            if q.load(Ordering::SeqCst) == 1 {
                spdk_io::thread::Poller::current().unwrap().unregister();
            }
            std::hint::black_box((0..100u64).sum::<u64>());
            PollerStatus::Busy
        })
        .unwrap();
    })
    .unwrap();
    rs.spawn_thread(1, named("idle"), || {}).unwrap();
    wait_until("core 0 busy time", || {
        rs.reactor_stats(0).unwrap().busy_ticks > 1_000_000
    });
    wait_until("core 1 idle time", || {
        rs.reactor_stats(1).unwrap().idle_ticks > 0
    });
    assert_eq!(
        rs.reactor_stats(0).unwrap().idle_ticks,
        0,
        "core 0 never had an idle iteration"
    );
    assert!(rs.reactor_stats(7).is_none());
    quit.store(1, Ordering::SeqCst);
    rs.stop();
}

#[test]
fn a_poller_sees_whether_the_other_threads_of_its_reactor_did_work() {
    use spdk_io::thread::reactor_idle_iterations;
    use std::sync::atomic::AtomicBool;
    assert_eq!(reactor_idle_iterations(), None, "not on a reactor here");
    let rs = ReactorSet::start(CpuMask::parse("0x1").unwrap(), opts()).unwrap();
    let busy = Arc::new(AtomicBool::new(true));
    let polls = Arc::new(AtomicU64::new(0));
    let (b, p) = (busy.clone(), polls.clone());
    rs.spawn_thread(0, named("neighbour"), move || {
        poller_register("work", 0, move || {
            p.fetch_add(1, Ordering::SeqCst);
            if b.load(Ordering::SeqCst) {
                PollerStatus::Busy
            } else {
                PollerStatus::Idle
            }
        })
        .unwrap();
    })
    .unwrap();
    wait_until("the neighbour to work", || polls.load(Ordering::SeqCst) > 0);
    // What the watcher saw while the neighbour worked (0 = an iteration
    // with work just ended) and afterwards (the longest idle run).
    let (seen_busy, seen_idle) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (sb, si, b2) = (seen_busy.clone(), seen_idle.clone(), busy.clone());
    rs.spawn_thread(0, named("watcher"), move || {
        poller_register("look", 0, move || {
            let n = u64::from(reactor_idle_iterations().expect("on a reactor"));
            if b2.load(Ordering::SeqCst) {
                sb.fetch_max(n + 1, Ordering::SeqCst);
            } else {
                si.fetch_max(n, Ordering::SeqCst);
            }
            PollerStatus::Idle
        })
        .unwrap();
    })
    .unwrap();
    wait_until("the watcher to run beside the busy neighbour", || {
        seen_busy.load(Ordering::SeqCst) > 0
    });
    assert_eq!(
        seen_busy.load(Ordering::SeqCst),
        1,
        "an iteration in which the neighbour worked is never idle"
    );
    busy.store(false, Ordering::SeqCst);
    wait_until("idle iterations to be counted", || {
        seen_idle.load(Ordering::SeqCst) >= 10
    });
    rs.stop();
}
