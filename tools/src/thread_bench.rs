//! `spdk-io thread-bench`: the thread layer's costs — message rate (one
//! sender to one receiver, on one reactor and across two), poller loop
//! cost, io_channel get/put cost, async spawn+complete cost.

use clap::Args;
use serde::Serialize;
use spdk_io::thread::{
    io_device_register, poller_register, spawn_local, CpuMask, IoDeviceKey, Poller, PollerStatus,
    ReactorOpts, ReactorSet, Thread, ThreadError, ThreadOpts,
};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `spdk-io thread-bench`.
#[derive(Args, Debug)]
pub struct ThreadBenchArgs {
    /// Messages sent in each message-rate run (at least 1).
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    messages: u64,
    /// Iterations of each single-thread micro benchmark (at least 1; the
    /// costlier ones run a fraction of it, never fewer than one).
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    iterations: u64,
    /// Reactor cores for the message-rate runs (sender on the first, receiver on the second).
    #[arg(long, default_value = "0x3")]
    cores: String,
    /// Do not pin reactors to their cores.
    #[arg(long)]
    no_pin: bool,
    /// Runs of each benchmark; the fastest is reported (the machine may be shared).
    #[arg(long, default_value_t = 3)]
    repeat: u32,
    /// Only run benchmarks whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One measured figure.
#[derive(Serialize, Debug)]
struct Figure {
    name: String,
    ops: u64,
    seconds: f64,
    ns_per_op: f64,
    ops_per_sec: f64,
}

impl Figure {
    /// The figure of `ops` operations (at least one: the arguments refuse
    /// zero) in `elapsed`.
    fn new(name: &str, ops: u64, elapsed: Duration) -> Figure {
        let s = elapsed.as_secs_f64();
        Figure {
            name: name.into(),
            ops,
            seconds: s,
            ns_per_op: s * 1e9 / ops as f64,
            ops_per_sec: ops as f64 / s,
        }
    }
}

/// Runs the benchmarks and prints them.
pub fn run(args: ThreadBenchArgs) -> Result<(), String> {
    let cores = CpuMask::parse(&args.cores)?;
    let list: Vec<usize> = cores.iter().collect();
    if list.len() < 2 {
        return Err(format!("--cores {} names fewer than two cores", args.cores));
    }
    type Bench<'a> = Box<dyn Fn() -> Result<Figure, String> + 'a>;
    let a = &args;
    let one = [list[0]];
    let two = [list[0], list[1]];
    let benches: Vec<(&str, Bench)> = vec![
        (
            "msg_rate_one_reactor",
            Box::new(move || msg_rate("msg_rate_one_reactor", a, &one).map_err(|e| e.to_string())),
        ),
        (
            "msg_rate_two_reactors",
            Box::new(move || msg_rate("msg_rate_two_reactors", a, &two).map_err(|e| e.to_string())),
        ),
        (
            "poll_iteration_0_pollers",
            Box::new(move || Ok(poller_loop(0, a.iterations))),
        ),
        (
            "poll_iteration_1_pollers",
            Box::new(move || Ok(poller_loop(1, a.iterations))),
        ),
        (
            "poll_iteration_8_pollers",
            Box::new(move || Ok(poller_loop(8, a.iterations))),
        ),
        (
            "io_channel_get_put",
            Box::new(move || Ok(channel_get_put(a.iterations))),
        ),
        (
            "io_channel_create_destroy",
            Box::new(move || Ok(channel_create_destroy((a.iterations / 10).max(1)))),
        ),
        (
            "async_spawn_complete",
            Box::new(move || Ok(spawn_complete((a.iterations / 4).max(1)))),
        ),
        (
            "async_send_round_trip_same_thread",
            Box::new(move || Ok(send_round_trip((a.iterations / 4).max(1)))),
        ),
        (
            "async_send_round_trip_two_reactors",
            Box::new(move || {
                send_round_trip_cross(a, &two, (a.iterations / 20).max(1))
                    .map_err(|e| e.to_string())
            }),
        ),
    ];
    let mut figs = Vec::new();
    for (name, bench) in &benches {
        if args.only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let mut best: Option<Figure> = None;
        for _ in 0..args.repeat.max(1) {
            let f = bench()?;
            if best.as_ref().map_or(true, |b| f.ns_per_op < b.ns_per_op) {
                best = Some(f);
            }
        }
        figs.extend(best);
    }
    let load = std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| {
        l.split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
    });
    if args.json {
        let out = serde_json::json!({
            "config": {
                "messages": args.messages,
                "iterations": args.iterations,
                "cores": args.cores,
                "pinned": !args.no_pin,
                "best_of_runs": args.repeat.max(1),
                "load_average_1m": load,
            },
            "results": figs,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
    } else {
        if let Some(l) = load {
            println!(
                "# best of {} runs; 1-minute load average {l:.2}",
                args.repeat.max(1)
            );
        }
        println!(
            "{:<32} {:>12} {:>12} {:>16}",
            "benchmark", "ops", "ns/op", "ops/s"
        );
        for f in &figs {
            println!(
                "{:<32} {:>12} {:>12.1} {:>16.0}",
                f.name, f.ops, f.ns_per_op, f.ops_per_sec
            );
        }
    }
    Ok(())
}

static RECEIVED: AtomicU64 = AtomicU64::new(0);

/// One sender thread floods one receiver thread; both on `cores[0]` or the
/// receiver on `cores[1]`. Messages are sent from a poller of the sender
/// until the ring is full, as an SPDK app would.
fn msg_rate(name: &str, args: &ThreadBenchArgs, cores: &[usize]) -> Result<Figure, ThreadError> {
    let mut mask = CpuMask::new();
    cores.iter().for_each(|&c| mask.set(c));
    let opts = ReactorOpts {
        pin: !args.no_pin,
        idle_backoff: None,
        ..ReactorOpts::default()
    };
    let rs = ReactorSet::start(mask, opts)?;
    RECEIVED.store(0, Ordering::SeqCst);
    let total = args.messages;
    let topts = |n: &str| ThreadOpts {
        name: n.into(),
        msg_ring_size: 65_536,
        ..ThreadOpts::default()
    };
    let rx = rs.spawn_thread(*cores.last().unwrap_or(&0), topts("receiver"), || {})?;
    let start = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let st = start.clone();
    rs.spawn_thread(cores[0], topts("sender"), move || {
        let sent = Rc::new(Cell::new(0u64));
        *st.lock().unwrap() = Some(Instant::now());
        let _ = poller_register("flood", 0, move || {
            let mut n = sent.get();
            while n < total {
                if rx
                    .send_msg(move || {
                        // One writer, messages in order: message n finds n before it.
                        debug_assert_eq!(RECEIVED.load(Ordering::Relaxed), n);
                        RECEIVED.store(n + 1, Ordering::Relaxed);
                    })
                    .is_err()
                {
                    break;
                }
                n += 1;
            }
            sent.set(n);
            if n == total {
                if let Some(p) = Poller::current() {
                    p.unregister();
                }
            }
            PollerStatus::Busy
        });
    })?;
    while RECEIVED.load(Ordering::Relaxed) < total {
        std::thread::sleep(Duration::from_micros(200));
    }
    let elapsed = start
        .lock()
        .unwrap()
        .map(|s| s.elapsed())
        .unwrap_or_default();
    rs.stop();
    Ok(Figure::new(name, total, elapsed))
}

fn poller_loop(pollers: usize, iterations: u64) -> Figure {
    let t = Thread::new("poller-bench");
    let ps: Vec<_> = (0..pollers)
        .map(|_| {
            t.enter(|| poller_register("idle", 0, || PollerStatus::Idle))
                .unwrap()
        })
        .collect();
    let start = Instant::now();
    // As a reactor polls: each poll starts where the previous one ended.
    let mut now = spdk_io::thread::ticks();
    for _ in 0..iterations {
        t.poll_at(0, now);
        now = t.last_poll_end();
    }
    let f = Figure::new(
        &format!("poll_iteration_{pollers}_pollers"),
        iterations,
        start.elapsed(),
    );
    ps.iter().for_each(Poller::unregister);
    finish(t);
    f
}

fn channel_get_put(iterations: u64) -> Figure {
    let t = Thread::new("channel-bench");
    let dev = io_device_register(IoDeviceKey::unique(), "bench", || Ok(0u64), |_| {}).unwrap();
    let held = t.enter(|| dev.get_io_channel()).unwrap();
    let start = Instant::now();
    t.enter(|| {
        for _ in 0..iterations {
            let ch = dev.get_io_channel().unwrap();
            drop(ch);
        }
    });
    let f = Figure::new("io_channel_get_put", iterations, start.elapsed());
    t.enter(|| drop(held));
    t.poll(0);
    t.enter(|| dev.unregister(|| {})).unwrap();
    finish(t);
    f
}

fn channel_create_destroy(iterations: u64) -> Figure {
    let t = Thread::new("channel-cycle-bench");
    let dev =
        io_device_register(IoDeviceKey::unique(), "bench-cycle", || Ok(0u64), |_| {}).unwrap();
    let start = Instant::now();
    for _ in 0..iterations {
        t.enter(|| drop(dev.get_io_channel().unwrap()));
        t.poll(0);
    }
    let f = Figure::new("io_channel_create_destroy", iterations, start.elapsed());
    t.enter(|| dev.unregister(|| {})).unwrap();
    finish(t);
    f
}

fn spawn_complete(iterations: u64) -> Figure {
    let t = Thread::new("spawn-bench");
    let start = Instant::now();
    for _ in 0..iterations {
        t.enter(|| spawn_local(async { 1u64 }).unwrap());
        t.poll(0);
    }
    let f = Figure::new("async_spawn_complete", iterations, start.elapsed());
    finish(t);
    f
}

fn send_round_trip(iterations: u64) -> Figure {
    let t = Thread::new("send-bench");
    let h = t.handle();
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    t.enter(|| {
        spawn_local(async move {
            for i in 0..iterations {
                let v = Thread::send(&h, move || i).await.unwrap();
                debug_assert_eq!(v, i);
            }
            d.set(true);
        })
        .unwrap()
    });
    let start = Instant::now();
    while !done.get() {
        t.poll(0);
    }
    let f = Figure::new(
        "async_send_round_trip_same_thread",
        iterations,
        start.elapsed(),
    );
    finish(t);
    f
}

/// Ping-pong latency: a task on the first core awaits `Thread::send` to a
/// thread on the second core, one request at a time.
fn send_round_trip_cross(
    args: &ThreadBenchArgs,
    cores: &[usize],
    iterations: u64,
) -> Result<Figure, ThreadError> {
    let mut mask = CpuMask::new();
    cores.iter().for_each(|&c| mask.set(c));
    let opts = ReactorOpts {
        pin: !args.no_pin,
        idle_backoff: None,
        ..ReactorOpts::default()
    };
    let rs = ReactorSet::start(mask, opts)?;
    let server = rs.spawn_thread(
        cores[1],
        ThreadOpts {
            name: "server".into(),
            ..ThreadOpts::default()
        },
        || {},
    )?;
    let (tx, rx) = std::sync::mpsc::channel();
    rs.spawn_thread(
        cores[0],
        ThreadOpts {
            name: "client".into(),
            ..ThreadOpts::default()
        },
        move || {
            let _ = spawn_local(async move {
                let start = Instant::now();
                for i in 0..iterations {
                    let _ = Thread::send(&server, move || i).await;
                }
                let _ = tx.send(start.elapsed());
            });
        },
    )?;
    let elapsed = rx
        .recv()
        .map_err(|_| ThreadError::Reactor("the client thread died".into()))?;
    rs.stop();
    Ok(Figure::new(
        "async_send_round_trip_two_reactors",
        iterations,
        elapsed,
    ))
}

fn finish(t: Thread) {
    t.exit();
    while !t.is_exited() {
        t.poll(0);
    }
    let _ = t.destroy();
}
