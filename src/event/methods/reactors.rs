//! Reactor and thread listings (SPDK's `framework_get_reactors`,
//! `thread_get_stats`, `thread_get_pollers`, `thread_get_io_channels`):
//! each thread is asked on its own reactor, one after another, and the
//! answers are gathered on the app thread.

use super::{boxed, no_params};
use crate::event::ctx;
use crate::rpc::{Method, MethodFuture, MethodStates};
use crate::thread::{threads, PollerInfo, PollerKind, ReactorSet, Thread, TICKS_HZ};
use serde_json::{json, Value};

/// What one thread says about itself.
struct ThreadReport {
    core: Option<usize>,
    tid: i32,
    name: String,
    id: u64,
    cpumask: String,
    busy: u64,
    idle: u64,
    pollers: Vec<PollerInfo>,
    channels: Vec<Value>,
}

/// A mask as SPDK's `spdk_cpuset_fmt` writes it: hex without `0x` (`"3"`).
fn spdk_cpuset_fmt(hex: &str) -> String {
    hex.trim_start_matches("0x").to_string()
}

/// Asks every live thread for its report (threads that exit meanwhile are
/// left out).
async fn reports() -> Vec<ThreadReport> {
    let mut out = Vec::new();
    for h in threads() {
        let r = Thread::send(&h, || {
            let t = Thread::current()?;
            let s = t.stats();
            Some(ThreadReport {
                core: ReactorSet::current_core(),
                tid: nix::unistd::gettid().as_raw(),
                name: t.name().to_string(),
                id: t.id(),
                cpumask: spdk_cpuset_fmt(&t.cpumask().to_string()),
                busy: s.busy_ticks,
                idle: s.idle_ticks,
                pollers: t.pollers(),
                channels: t
                    .io_channels()
                    .into_iter()
                    .map(|c| json!({"name": c.name, "ref": c.ref_count}))
                    .collect(),
            })
        })
        .await;
        if let Ok(Some(r)) = r {
            out.push(r);
        }
    }
    out
}

fn count(r: &ThreadReport, k: PollerKind) -> usize {
    r.pollers.iter().filter(|p| p.kind == k).count()
}

fn thread_get_stats(params: Value) -> MethodFuture {
    boxed(async move {
        no_params(&params, "'thread_get_stats' requires no arguments")?;
        let threads: Vec<Value> = reports()
            .await
            .iter()
            .map(|r| {
                json!({
                    "name": r.name, "id": r.id, "cpumask": r.cpumask,
                    "busy": r.busy, "idle": r.idle,
                    "active_pollers_count": count(r, PollerKind::Active),
                    "timed_pollers_count": count(r, PollerKind::Timed),
                    "paused_pollers_count": count(r, PollerKind::Paused),
                })
            })
            .collect();
        Ok(json!({"tick_rate": TICKS_HZ, "threads": threads}))
    })
}

fn pollers_of(r: &ThreadReport, k: PollerKind) -> Vec<Value> {
    r.pollers
        .iter()
        .filter(|p| p.kind == k)
        .enumerate()
        .map(|(i, p)| {
            let mut v = json!({
                "name": p.name, "id": i + 1,
                "state": if k == PollerKind::Paused { "paused" } else { "waiting" },
                "run_count": p.run_count, "busy_count": p.busy_count,
            });
            if p.period_us > 0 {
                v["period_ticks"] = json!(p.period_us * (TICKS_HZ / 1_000_000));
            }
            v
        })
        .collect()
}

fn thread_get_pollers(params: Value) -> MethodFuture {
    boxed(async move {
        no_params(&params, "'thread_get_pollers' requires no arguments")?;
        let threads: Vec<Value> = reports()
            .await
            .iter()
            .map(|r| {
                json!({
                    "name": r.name, "id": r.id,
                    "active_pollers": pollers_of(r, PollerKind::Active),
                    "timed_pollers": pollers_of(r, PollerKind::Timed),
                    "paused_pollers": pollers_of(r, PollerKind::Paused),
                })
            })
            .collect();
        Ok(json!({"tick_rate": TICKS_HZ, "threads": threads}))
    })
}

fn thread_get_io_channels(params: Value) -> MethodFuture {
    boxed(async move {
        no_params(&params, "'thread_get_io_channels' requires no arguments")?;
        let threads: Vec<Value> = reports()
            .await
            .into_iter()
            .map(|r| json!({"name": r.name, "io_channels": r.channels}))
            .collect();
        Ok(json!({"tick_rate": TICKS_HZ, "threads": threads}))
    })
}

fn framework_get_reactors(params: Value) -> MethodFuture {
    boxed(async move {
        no_params(&params, "`framework_get_reactors` requires no arguments")?;
        let c = ctx::get()?;
        let reports = reports().await;
        let set = c.reactors.upgrade();
        let reactors: Vec<Value> = c
            .cores
            .iter()
            .map(|core| {
                let stats = set.as_ref().and_then(|s| s.reactor_stats(core)).unwrap_or_default();
                let mine: Vec<&ThreadReport> = reports.iter().filter(|r| r.core == Some(core)).collect();
                let cpu = super::proc_stat::since_start(core);
                json!({
                    "lcore": core,
                    "tid": mine.first().map_or(0, |r| r.tid),
                    "busy": stats.busy_ticks, "idle": stats.idle_ticks,
                    "in_interrupt": set.as_ref().is_some_and(|s| s.in_interrupt()), "irq": cpu.irq, "sys": cpu.sys, "usr": cpu.usr,
                    "lw_threads": mine.iter().map(|r| json!({
                        "name": r.name, "id": r.id, "cpumask": r.cpumask, "elapsed": r.busy + r.idle,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok(json!({"tick_rate": TICKS_HZ, "pid": std::process::id(), "reactors": reactors}))
    })
}

pub(super) fn methods() -> Vec<Method> {
    let rt = MethodStates::RUNTIME;
    vec![
        Method {
            name: "framework_get_reactors",
            states: rt,
            handler: framework_get_reactors,
        },
        Method {
            name: "thread_get_stats",
            states: rt,
            handler: thread_get_stats,
        },
        Method {
            name: "thread_get_pollers",
            states: rt,
            handler: thread_get_pollers,
        },
        Method {
            name: "thread_get_io_channels",
            states: rt,
            handler: thread_get_io_channels,
        },
    ]
}
