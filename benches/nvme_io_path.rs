//! The NVMe I/O path on the host, against the software controller: the
//! same 4 KiB random-read loop at one queue depth, once straight on a
//! queue pair and once through the bdev layer's nvme bdev. Prints the
//! submitting thread's CPU time per I/O for both, as JSON, so the cost the
//! bdev layer adds to the driver can be compared (and profiled: the
//! controller runs on its own thread, outside the measured one).
//!
//! `cargo bench --bench nvme_io_path [-- IOS [QD [ROUNDS [qpair|bdev [lockstep]]]]]`
//!
//! `lockstep` polls only once the controller has posted a completion for
//! every command in flight, so each poll reaps a full batch: with an
//! instruction-counting profiler restricted to the poll and submit calls,
//! that gives the busy path's cost per I/O without idle polls.

#[path = "common/resubmit.rs"]
mod resubmit;

use resubmit::{cpu_ns, next, Ctx, Task};
use spdk_io::bdev::{self, IoBuf};
use spdk_io::env::DmaBuf;
use spdk_io::nvme::emu::EmuController;
use spdk_io::nvme::{Controller, ControllerOpts, QPairOpts};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

const BLOCKS: u64 = 4096;

fn report(path: &str, ios: u64, t0: Instant, c0: u64) -> serde_json::Value {
    let (wall, cpu) = (t0.elapsed().as_nanos() as f64, (cpu_ns() - c0) as f64);
    let n = ios as f64;
    serde_json::json!({"path": path, "ios": ios, "wall_ns_per_io": wall / n,
        "cpu_ns_per_io": cpu / n})
}

/// Straight on a queue pair: the completion callback hands the buffer back
/// and the loop resubmits, as `spdk-io perf` does.
fn raw(ctrlr: &Controller, emu: Option<&EmuController>, ios: u64, qd: u32) -> serde_json::Value {
    let ns = ctrlr.namespace(1).expect("namespace 1");
    let mut qp = ctrlr
        .alloc_io_qpair(QPairOpts {
            delay_cmd_submit: true,
            ..QPairOpts::default()
        })
        .expect("qpair");
    let free = Rc::new(RefCell::new(Vec::new()));
    for _ in 0..qd {
        free.borrow_mut()
            .push(DmaBuf::alloc(4096, 4096).expect("buffer"));
    }
    let rng = Cell::new(0x9e37_79b9u64);
    let (mut submitted, done) = (0u64, Rc::new(Cell::new(0u64)));
    let base = emu.map_or(0, |e| e.stats().completions);
    let (t0, c0) = (Instant::now(), cpu_ns());
    while done.get() < ios {
        while submitted < ios {
            let Some(b) = free.borrow_mut().pop() else {
                break;
            };
            let (f, d) = (free.clone(), done.clone());
            qp.read(&ns, b, next(&rng) % BLOCKS, 1, move |_, c| {
                d.set(d.get() + 1);
                if let Some(b) = c.buf.into_dma_buf() {
                    f.borrow_mut().push(b);
                }
            })
            .expect("submit");
            submitted += 1;
        }
        if let Some(e) = emu {
            qp.flush();
            wait_posted(e, base + submitted);
        }
        qp.process_completions(0).expect("poll");
    }
    report("qpair", ios, t0, c0)
}

/// Waits until the controller has posted `n` completions in all.
fn wait_posted(e: &EmuController, n: u64) {
    while e.stats().completions < n {
        std::hint::spin_loop();
    }
}

/// Through the nvme bdev: each completion callback resubmits, as
/// `spdk-io bdevperf` does.
fn through_bdev(name: &str, emu: Option<&EmuController>, ios: u64, qd: u32) -> serde_json::Value {
    let desc = bdev::open(name, false).expect("open");
    let ch = desc.get_io_channel().expect("channel");
    let base = emu.map_or(0, |e| e.stats().completions);
    let ctx = Ctx::new(desc, ch, BLOCKS, ios, qd as u64);
    let (t0, c0) = (Instant::now(), cpu_ns());
    for i in 0..qd as u64 {
        let t = Box::new(Task { ctx: ctx.clone() });
        let buf = IoBuf::dma(4096, 4096).expect("buffer");
        if let Err(r) = ctx.desc.read_blocks(&ctx.ch, buf, i, 1, t) {
            panic!("submit: {}", r.error);
        }
    }
    // Rings the doorbell of the first batch (submissions wait for a poll).
    ctx.ch.poll();
    while ctx.ch.outstanding() > 0 {
        if let Some(e) = emu {
            wait_posted(e, base + ctx.submitted.get());
        }
        ctx.ch.poll();
    }
    report("bdev", ios, t0, c0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (ios, qd, rounds) = (num(0, 2_000_000), num(1, 32) as u32, num(2, 3));
    let only = args.get(3).map(String::as_str).unwrap_or("both");
    let lockstep = args.get(4).is_some_and(|a| a == "lockstep");
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
    let emu = Arc::new(
        EmuController::builder()
            .serial("BENCHEMU")
            .shadow_doorbells(true)
            .namespace(4096, BLOCKS)
            .build()
            .expect("software controller"),
    );
    let raw_ctrlr = Controller::attach(emu.clone(), ControllerOpts::default()).expect("attach");
    let emu2 = Arc::new(
        EmuController::builder()
            .serial("BENCHEMU2")
            .shadow_doorbells(true)
            .namespace(4096, BLOCKS)
            .build()
            .expect("software controller"),
    );
    let c2 = Controller::attach(emu2.clone(), ControllerOpts::default()).expect("attach");
    let (e1, e2) = if lockstep {
        (Some(&*emu), Some(&*emu2))
    } else {
        (None, None)
    };
    bdev::nvme::register_controller("BenchNvme", c2, None).expect("register");
    let mut out = Vec::new();
    for _ in 0..rounds {
        if only != "bdev" {
            out.push(raw(&raw_ctrlr, e1, ios, qd));
        }
        if only != "qpair" {
            out.push(through_bdev("BenchNvmen1", e2, ios, qd));
        }
    }
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
}
