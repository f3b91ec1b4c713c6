//! Allocation counting: the hot paths of the thread layer allocate nothing
//! after warm-up, counting the allocations made by the test's own OS
//! thread while a section runs.

use crate::counting::allocations_in;
use spdk_io::thread::{
    io_device_register, poller_register, spawn_local, yield_now, IoDeviceKey, PollerStatus, Thread,
};
use std::cell::Cell;

fn drain(t: &Thread) {
    while t.poll(0) {}
}

/// Spawns `work` on `t` behind a gate, once a finished task has warmed
/// the slab's free list (its slot is recycled): the task is polled ten
/// times at the gate, then the gate opens and the caller measures the polls
/// that run `work`.
fn spawn_warm(t: &Thread, work: impl std::future::Future<Output = ()> + 'static) {
    let go = std::rc::Rc::new(Cell::new(false));
    let g = go.clone();
    t.enter(|| spawn_local(async {}).unwrap());
    drain(t);
    t.enter(|| {
        spawn_local(async move {
            while !g.get() {
                yield_now().await;
            }
            work.await;
        })
    })
    .unwrap();
    for _ in 0..10 {
        t.poll(0);
    }
    go.set(true);
}

/// Exits `t`, runs what is left on it and destroys it.
fn finish(t: Thread) {
    t.exit();
    drain(&t);
    t.destroy().unwrap();
}

#[test]
fn small_messages_cost_no_allocation() {
    let t = Thread::new("alloc-msg");
    let h = t.handle();
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let n = allocations_in(|| {
        for i in 0..10_000u64 {
            let c = counter.clone();
            // 8 (Arc) + 8 (u64) + 32 of padding-free payload = 48 bytes.
            let payload = [i; 4];
            h.send_msg(move || {
                c.fetch_add(
                    payload[0] + payload[3] - 2 * i + 1,
                    std::sync::atomic::Ordering::Relaxed,
                );
            })
            .unwrap();
            if i % 1024 == 1023 {
                drain(&t);
            }
        }
        drain(&t);
    });
    assert_eq!(counter.load(std::sync::atomic::Ordering::Relaxed), 10_000);
    assert_eq!(n, 0, "10,000 inline messages allocated {n} times");
    finish(t);
}

#[test]
fn large_messages_fall_back_to_one_allocation_each() {
    let t = Thread::new("alloc-big");
    let n = allocations_in(|| {
        for i in 0..100u64 {
            let big = [i; 16];
            t.send_msg(move || assert_eq!(big[15], i)).unwrap();
        }
        drain(&t);
    });
    assert_eq!(n, 100);
    finish(t);
}

#[test]
fn poller_loop_costs_no_allocation() {
    let t = Thread::new("alloc-poller");
    let hits = std::rc::Rc::new(Cell::new(0u64));
    let hh = hits.clone();
    let p = t
        .enter(|| {
            poller_register("count", 0, move || {
                hh.set(hh.get() + 1);
                PollerStatus::Busy
            })
        })
        .unwrap();
    let timed = t
        .enter(|| poller_register("timed", 1, || PollerStatus::Idle))
        .unwrap();
    t.poll(0);
    let n = allocations_in(|| {
        for _ in 0..10_000 {
            t.poll(0);
        }
    });
    assert_eq!(hits.get(), 10_001);
    assert_eq!(n, 0, "10,000 polls allocated {n} times");
    p.unregister();
    timed.unregister();
    finish(t);
}

#[test]
fn getting_and_putting_a_held_channel_costs_no_allocation() {
    let t = Thread::new("alloc-channel");
    let dev = io_device_register(IoDeviceKey::unique(), "dev", || Ok(0u64), |_| {}).unwrap();
    let held = t.enter(|| dev.get_io_channel()).unwrap();
    // Warm the deferred-put queue once.
    t.enter(|| drop(dev.get_io_channel().unwrap()));
    drain(&t);
    let n = allocations_in(|| {
        t.enter(|| {
            for _ in 0..10_000 {
                let ch = dev.get_io_channel().unwrap();
                *ch.ctx_mut() += 1;
            }
        });
        drain(&t);
    });
    assert_eq!(*held.ctx(), 10_000);
    assert_eq!(n, 0, "10,000 get/put allocated {n} times");
    t.enter(|| drop(held));
    drain(&t);
    t.enter(|| dev.unregister(|| {})).unwrap();
    finish(t);
}

#[test]
fn awaiting_local_wakes_costs_no_allocation_beyond_the_task() {
    let t = Thread::new("alloc-async");
    let done = std::rc::Rc::new(Cell::new(false));
    let d = done.clone();
    spawn_warm(&t, async move {
        for _ in 0..10_000 {
            yield_now().await;
        }
        d.set(true);
    });
    let n = allocations_in(|| {
        while !done.get() {
            t.poll(0);
        }
    });
    assert_eq!(n, 0, "10,000 awaits allocated {n} times");
    finish(t);
}

#[test]
fn spawning_a_task_costs_a_fixed_number_of_allocations() {
    let t = Thread::new("alloc-spawn");
    // Warm the slab and ready queue.
    t.enter(|| spawn_local(async {}).unwrap());
    drain(&t);
    let n = allocations_in(|| {
        for _ in 0..100 {
            t.enter(|| spawn_local(async { 1u32 }).unwrap());
            drain(&t);
        }
    });
    // The future, its join state and its waker: three per task.
    assert_eq!(n, 300, "100 spawns allocated {n} times");
    finish(t);
}

#[test]
fn thread_send_costs_one_allocation_per_round_trip() {
    let t = Thread::new("alloc-send");
    let h = t.handle();
    let done = std::rc::Rc::new(Cell::new(0u64));
    let d = done.clone();
    spawn_warm(&t, async move {
        for i in 0..1000u64 {
            let v = Thread::send(&h, move || i * 2).await.unwrap();
            d.set(d.get() + v);
        }
    });
    let n = allocations_in(|| while t.poll(0) {});
    assert_eq!(done.get(), 999 * 1000);
    assert_eq!(
        n, 1000,
        "1000 round trips allocated {n} times (the reply slot each)"
    );
    finish(t);
}

#[test]
fn a_full_ring_refuses_without_allocating() {
    let t = spdk_io::thread::Thread::with_opts(spdk_io::thread::ThreadOpts {
        name: "alloc-full".into(),
        msg_ring_size: 4,
        ..Default::default()
    });
    let h = t.handle();
    for _ in 0..4 {
        h.send_msg(|| {}).unwrap();
    }
    let mut refused = 0;
    let n = allocations_in(|| {
        for _ in 0..1000 {
            match h.try_send(spdk_io::thread::Msg::new(|| {})) {
                Err((_msg, spdk_io::thread::ThreadError::RingFull { .. })) => refused += 1,
                other => panic!(
                    "expected RingFull, got {:?}",
                    other.err().map(|e| e.1.to_string())
                ),
            }
        }
    });
    assert_eq!(refused, 1000);
    assert_eq!(n, 0, "1000 refusals allocated {n} times");
    finish(t);
}
