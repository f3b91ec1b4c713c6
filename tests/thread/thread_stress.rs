//! Stress: several OS threads each send ≥ 100,000 messages to one thread
//! through a small ring (so RingFull and retry happen); every message must
//! run exactly once and in per-sender order.

use spdk_io::thread::{Msg, Thread, ThreadError, ThreadHandle, ThreadOpts};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

const SENDERS: usize = 4;
const PER_SENDER: u64 = 100_000;

struct Tally {
    next: Vec<AtomicU64>,
    ran: AtomicU64,
    out_of_order: AtomicU64,
}

fn send_all(h: ThreadHandle, tally: Arc<Tally>, sender: usize) -> u64 {
    let mut retries = 0;
    for seq in 0..PER_SENDER {
        let t = tally.clone();
        let mut msg = Msg::new(move || {
            if t.next[sender].load(Ordering::Relaxed) != seq {
                t.out_of_order.fetch_add(1, Ordering::Relaxed);
            }
            t.next[sender].store(seq + 1, Ordering::Relaxed);
            t.ran.fetch_add(1, Ordering::Relaxed);
        });
        loop {
            match h.try_send(msg) {
                Ok(()) => break,
                Err((back, ThreadError::RingFull { .. })) => {
                    retries += 1;
                    msg = back;
                    std::thread::yield_now();
                }
                Err((_, e)) => panic!("unexpected send error: {e}"),
            }
        }
    }
    retries
}

#[test]
fn every_message_from_every_sender_runs_exactly_once_in_order() {
    let t = Thread::with_opts(ThreadOpts {
        name: "sink".into(),
        msg_ring_size: 1024,
        ..ThreadOpts::default()
    });
    let tally = Arc::new(Tally {
        next: (0..SENDERS).map(|_| AtomicU64::new(0)).collect(),
        ran: AtomicU64::new(0),
        out_of_order: AtomicU64::new(0),
    });
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let h = t.handle();
            let tally = tally.clone();
            std::thread::spawn(move || send_all(h, tally, s))
        })
        .collect();
    let total = SENDERS as u64 * PER_SENDER;
    while tally.ran.load(Ordering::Relaxed) < total {
        t.poll(64);
    }
    let retries: u64 = senders.into_iter().map(|j| j.join().unwrap()).sum();
    while t.poll(0) {}
    assert_eq!(
        tally.ran.load(Ordering::Relaxed),
        total,
        "no message lost or duplicated"
    );
    assert_eq!(tally.out_of_order.load(Ordering::Relaxed), 0);
    for n in &tally.next {
        assert_eq!(n.load(Ordering::Relaxed), PER_SENDER);
    }
    eprintln!("{total} messages, {retries} RingFull retries");
    t.exit();
    while !t.is_exited() {
        t.poll(0);
    }
    t.destroy().unwrap();
}

#[test]
fn senders_racing_an_exit_either_deliver_or_get_an_error() {
    // Each message is counted when sent successfully and when run: at the
    // end the counts match, whatever the interleaving with exit.
    for round in 0..20 {
        let t = Thread::with_opts(ThreadOpts {
            name: format!("exiting{round}"),
            msg_ring_size: 256,
            ..ThreadOpts::default()
        });
        let accepted = Arc::new(AtomicUsize::new(0));
        let ran = Arc::new(AtomicUsize::new(0));
        let senders: Vec<_> = (0..3)
            .map(|_| {
                let h = t.handle();
                let (a, r) = (accepted.clone(), ran.clone());
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        let r = r.clone();
                        match h.send_msg(move || {
                            r.fetch_add(1, Ordering::SeqCst);
                        }) {
                            Ok(()) => {
                                a.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(ThreadError::RingFull { .. }) => std::thread::yield_now(),
                            Err(ThreadError::Exited { .. }) => return,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        for _ in 0..50 {
            t.poll(0);
        }
        t.exit();
        while !t.is_exited() {
            t.poll(0);
        }
        for s in senders {
            s.join().unwrap();
        }
        assert_eq!(
            ran.load(Ordering::SeqCst),
            accepted.load(Ordering::SeqCst),
            "an accepted message was lost at exit"
        );
        t.destroy().unwrap();
    }
}

#[test]
fn for_each_channel_walks_complete_while_channels_churn_on_two_reactors() {
    use spdk_io::thread::{
        io_device_register, poller_register, CpuMask, IoChannel, IoDeviceKey, Poller, PollerStatus,
        ReactorOpts, ReactorSet,
    };
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    let rs = ReactorSet::start(
        CpuMask::parse("0x3").unwrap(),
        ReactorOpts {
            pin: false,
            idle_backoff: Some(Duration::from_micros(50)),
            idle_polls_before_backoff: 1000,
            poller_idle_wait: true,
        },
    )
    .unwrap();
    let dev = io_device_register(IoDeviceKey::unique(), "churn", || Ok(0u64), |_| {}).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for i in 0..6 {
        let (d, s) = (dev.clone(), stop.clone());
        threads.push(
            rs.spawn_thread(
                i % 2,
                ThreadOpts {
                    name: format!("churn{i}"),
                    ..Default::default()
                },
                move || {
                    // Every few polls, take or drop this thread's channel.
                    let held: Rc<RefCell<Option<IoChannel<u64>>>> = Rc::new(RefCell::new(None));
                    let mut n = 0u64;
                    poller_register("churn", 0, move || {
                        n += 1;
                        if s.load(Ordering::Relaxed) {
                            held.borrow_mut().take();
                            Poller::current().unwrap().unregister();
                            Thread::current().unwrap().exit();
                        } else if n % (7 + i as u64) == 0 {
                            let mut h = held.borrow_mut();
                            if h.take().is_none() {
                                *h = d.get_io_channel().ok();
                            }
                        }
                        PollerStatus::Busy
                    })
                    .unwrap();
                },
            )
            .unwrap(),
        );
    }
    let walks = 300;
    let completed = Arc::new(AtomicUsize::new(0));
    let visits = Arc::new(AtomicUsize::new(0));
    let (c, v, d) = (completed.clone(), visits.clone(), dev.clone());
    let origin = rs
        .spawn_thread(
            0,
            ThreadOpts {
                name: "walker".into(),
                ..Default::default()
            },
            move || {
                fn launch(
                    d: spdk_io::thread::IoDevice<u64>,
                    left: usize,
                    c: Arc<AtomicUsize>,
                    v: Arc<AtomicUsize>,
                ) {
                    if left == 0 {
                        return;
                    }
                    let (d2, c2, v2) = (d.clone(), c.clone(), v.clone());
                    d.for_each_channel(
                        move |ch, it| {
                            *ch.ctx_mut() += 1;
                            v2.fetch_add(1, Ordering::Relaxed);
                            it.continue_with(0)
                        },
                        move |status| {
                            assert_eq!(status, 0);
                            c2.fetch_add(1, Ordering::SeqCst);
                            launch(d2, left - 1, c, v);
                        },
                    )
                    .unwrap();
                }
                launch(d, walks, c, v);
            },
        )
        .unwrap();
    let start = Instant::now();
    while completed.load(Ordering::SeqCst) < walks {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "walks stalled at {}",
            completed.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::SeqCst);
    let unregistered = Arc::new(AtomicUsize::new(0));
    let u = unregistered.clone();
    let d = dev.clone();
    origin
        .send_msg(move || {
            d.unregister(move || {
                u.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        })
        .unwrap();
    while unregistered.load(Ordering::SeqCst) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "unregister never completed"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(dev.channel_count(), 0);
    eprintln!(
        "{walks} walks, {} channel visits",
        visits.load(Ordering::Relaxed)
    );
    for t in &threads {
        while !t.is_exited() {
            assert!(start.elapsed() < Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    rs.stop();
}
