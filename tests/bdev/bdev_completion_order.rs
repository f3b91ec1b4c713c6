//! Completion order and timing on one channel: I/Os a module completes in
//! order are delivered in that order (none overtaken by a later one, none
//! starved), and each I/O is timed from its own submission, so no
//! latency reads 0 because of a stale or early clock.

use crate::common;

use common::*;
use spdk_io::bdev::{
    self, Bdev, BdevOps, BdevProps, Channel, Completer, Desc, IoBuf, IoCompletion, IoId, IoRequest,
    IoStatus, IoType, ModuleChannel,
};
use spdk_io::thread::ticks;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// A device that finishes its queued requests strictly in submission
/// order, at most `per_poll` of them per poll (a queue that drains slower
/// than it fills, so completions come in batches of different sizes).
struct InOrder {
    per_poll: usize,
}

struct InOrderChannel {
    queued: VecDeque<IoId>,
    per_poll: usize,
    done: Completer,
}

impl ModuleChannel for InOrderChannel {
    fn submit_request(&mut self, io: IoRequest<'_>) {
        self.queued.push_back(io.id);
    }
    fn poll(&mut self) -> usize {
        let n = self.per_poll.min(self.queued.len());
        for id in self.queued.drain(..n) {
            self.done.complete(id, IoStatus::Success);
        }
        n
    }
}

impl BdevOps for InOrder {
    fn io_type_supported(&self, t: IoType) -> bool {
        t == IoType::Read
    }
    fn get_io_channel(&self, done: Completer) -> bdev::Result<Box<dyn ModuleChannel>> {
        Ok(Box::new(InOrderChannel {
            queued: VecDeque::new(),
            per_poll: self.per_poll,
            done,
        }))
    }
}

fn open(name: &str) -> (Desc, Channel) {
    let d = bdev::open(name, false).unwrap();
    let ch = d.get_io_channel().unwrap();
    (d, ch)
}

/// Keeps `depth` reads in flight until `total` were submitted: read `n`
/// reads block `n` and its completion logs `n` and submits read
/// `n + depth`, as bdevperf resubmits from completions.
fn read_chain(d: &Desc, ch: &Channel, n: u64, depth: u64, total: u64, log: &Rc<RefCell<Vec<u64>>>) {
    let (d2, ch2, log2) = (d.clone(), ch.clone(), log.clone());
    let cb = move |c: IoCompletion| {
        assert!(c.success());
        log2.borrow_mut().push(c.offset_blocks);
        if n + depth < total {
            read_chain(&d2, &ch2, n + depth, depth, total, &log2);
        }
    };
    d.read_blocks(ch, IoBuf::new(512), n, 1, Box::new(cb))
        .unwrap();
}

fn assert_in_order(name: &str, depth: u64, total: u64) {
    let (d, ch) = open(name);
    let log = Rc::new(RefCell::new(Vec::new()));
    for n in 0..depth {
        read_chain(&d, &ch, n, depth, total, &log);
    }
    poll_until(&ch, || log.borrow().len() as u64 == total);
    let got = log.borrow().clone();
    let want: Vec<u64> = (0..total).collect();
    assert_eq!(got, want, "completions out of submission order on {name}");
}

#[test]
fn completions_of_an_in_order_module_are_delivered_in_submission_order() {
    for per_poll in [1, 7, 128] {
        let b = Bdev::register(
            BdevProps::new(uniq("InOrder"), 512, 4096),
            "in_order",
            Box::new(InOrder { per_poll }),
        )
        .unwrap();
        assert_in_order(b.name(), 128, 2048);
    }
}

#[test]
fn completions_of_malloc_and_null_are_delivered_in_submission_order() {
    assert_in_order(&new_malloc(4096, 512), 128, 2048);
    assert_in_order(&new_null("OrderNull", 4096), 128, 2048);
}

#[test]
fn an_io_submitted_outside_a_poll_is_timed_from_its_submission() {
    let (d, ch) = open(&new_null("Clock", 64));
    // The channel's last poll (its creation) is long past.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    let before = ticks();
    d.read_blocks(
        &ch,
        IoBuf::new(512),
        0,
        1,
        Box::new(move |c: IoCompletion| {
            *g.borrow_mut() = Some((c.submit_tick, c.complete_tick));
        }),
    )
    .unwrap();
    poll_until(&ch, || got.borrow().is_some());
    let after = ticks();
    let (submit, complete) = got.borrow().unwrap();
    assert!(
        before <= submit,
        "submission stamped {} ns before it happened",
        before - submit
    );
    assert!(submit <= complete && complete <= after);
}

#[test]
fn a_resubmission_from_a_completion_is_timed_from_that_completions_batch() {
    let (d, ch) = open(&new_null("Resubmit", 64));
    let stamps = Rc::new(RefCell::new(Vec::new()));
    let (d2, ch2, s2) = (d.clone(), ch.clone(), stamps.clone());
    let first = move |c: IoCompletion| {
        s2.borrow_mut().push((c.submit_tick, c.complete_tick));
        let s3 = s2.clone();
        d2.read_blocks(
            &ch2,
            IoBuf::new(512),
            1,
            1,
            Box::new(move |c: IoCompletion| s3.borrow_mut().push((c.submit_tick, c.complete_tick))),
        )
        .unwrap();
    };
    d.read_blocks(&ch, IoBuf::new(512), 0, 1, Box::new(first))
        .unwrap();
    poll_until(&ch, || stamps.borrow().len() == 2);
    let s = stamps.borrow();
    // The second read was submitted in the first one's completion batch
    // and takes that batch's clock read: not before the first read was
    // submitted, not after the first read's callback began (the first read,
    // submitted outside any batch, is timed to its own callback), and it
    // completed no earlier than it was submitted.
    assert!(s[1].0 >= s[0].0 && s[1].0 <= s[0].1, "{s:?}");
    assert!(s[1].1 >= s[1].0, "{s:?}");
}

/// The first I/Os of a job are submitted from a message on the channel's
/// thread, and the null bdev completes them within that same thread poll:
/// timed against the poll's start they read 0 (bdevperf's minimum of
/// 0.0 µs at any queue depth); timed from their submission they do not.
#[test]
fn ios_submitted_and_completed_within_one_thread_poll_do_not_time_at_zero() {
    use spdk_io::thread::Thread;
    use std::sync::{Arc, Mutex};
    let name = new_null("SamePoll", 64);
    let t = Thread::new("same_poll");
    let lat: Arc<Mutex<Vec<u64>>> = Arc::default();
    let l = lat.clone();
    t.send_msg(move || {
        let (d, ch) = open(&name);
        for i in 0..8 {
            let (l2, d2, ch2) = (l.clone(), d.clone(), ch.clone());
            let cb = move |c: IoCompletion| {
                let _keep = (d2, ch2);
                l2.lock().unwrap().push(c.latency_ticks());
            };
            d.read_blocks(&ch, IoBuf::new(512), i, 1, Box::new(cb))
                .unwrap();
        }
    })
    .unwrap();
    for _ in 0..100_000 {
        if lat.lock().unwrap().len() == 8 {
            break;
        }
        t.poll(0);
    }
    let got = lat.lock().unwrap().clone();
    assert_eq!(got.len(), 8, "the reads did not complete");
    assert!(got.iter().all(|&l| l > 0), "latencies of 0 ticks: {got:?}");
    t.exit();
    for _ in 0..100_000 {
        if t.is_exited() {
            break;
        }
        t.poll(0);
    }
    t.destroy().unwrap();
}

/// A burst of I/Os submitted one by one from outside the channel's
/// completions (a job's first queue-depth I/Os, a target's poller) that
/// completes in one batch: each is timed to its own callback, so the
/// callbacks that ran before it count, as SPDK reads the clock at each
/// completion. Timed to the batch's start, the last of a burst of 128
/// read about 2 µs at queue depth 128 (bdevperf's implausible minimum).
#[test]
fn a_burst_submitted_outside_completions_is_timed_to_each_ios_own_callback() {
    const N: u64 = 16;
    const SPIN: u64 = 20_000;
    let (d, ch) = open(&new_null("Burst", 64));
    // (submit tick, complete tick, clock at the callback's start)
    let got = Rc::new(RefCell::new(Vec::new()));
    for i in 0..N {
        let g = got.clone();
        let cb = move |c: IoCompletion| {
            let entered = ticks();
            g.borrow_mut()
                .push((c.submit_tick, c.complete_tick, entered));
            // A callback that takes its time (it resubmits, verifies...).
            while ticks() < entered + SPIN {}
        };
        d.read_blocks(&ch, IoBuf::new(512), i, 1, Box::new(cb))
            .unwrap();
    }
    poll_until(&ch, || got.borrow().len() as u64 == N);
    let g = got.borrow();
    for k in 1..g.len() {
        let (_, complete, entered) = g[k];
        assert!(
            complete <= entered,
            "I/O {k} completed after its callback began: {g:?}"
        );
        assert!(
            complete >= g[k - 1].2 + SPIN,
            "I/O {k} timed before the callbacks ahead of it ran: {g:?}"
        );
    }
    let (submit, complete, _) = g[g.len() - 1];
    assert!(
        complete - submit >= (N - 1) * SPIN,
        "the last of the burst timed at {} ns, though {} callbacks of {SPIN} ns ran before it",
        complete - submit,
        N - 1
    );
}
