//! The order of a channel poll as a module sees it: `poll` reaps, the
//! completions run (and resubmit), `reap_more` reaps what finished
//! meanwhile, those completions run, and only then `flush` publishes the
//! resubmissions of both rounds, once. Checked against a module whose
//! "device" the test finishes requests on by hand.

use crate::common;

use common::*;
use spdk_io::bdev::{
    self, Bdev, BdevOps, BdevProps, Channel, Completer, Desc, IoBuf, IoCompletion, IoId, IoRequest,
    IoStatus, IoType, ModuleChannel,
};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

/// What the module's device holds, and what the module was asked to do.
#[derive(Default)]
struct Dev {
    /// Submitted, not finished: (id, offset).
    queued: Vec<(IoId, u64)>,
    /// Finished, not reaped yet.
    finished: Vec<IoId>,
    /// Calls into the module, in order: "submit N", "poll", "reap_more", "flush".
    events: Vec<String>,
}

impl Dev {
    /// Finishes the queued request at `offset`.
    fn finish(&mut self, offset: u64) {
        let i = self
            .queued
            .iter()
            .position(|&(_, o)| o == offset)
            .expect("queued");
        let (id, _) = self.queued.remove(i);
        self.finished.push(id);
    }
}

type Shared = Arc<Mutex<Dev>>;

struct Deferred(Shared);

struct DeferredChannel {
    dev: Shared,
    done: Completer,
}

impl DeferredChannel {
    fn report(&mut self, what: &str) -> usize {
        let mut d = self.dev.lock().unwrap();
        d.events.push(what.into());
        let ids: Vec<IoId> = d.finished.drain(..).collect();
        drop(d);
        for &id in &ids {
            self.done.complete(id, IoStatus::Success);
        }
        ids.len()
    }
}

impl ModuleChannel for DeferredChannel {
    fn submit_request(&mut self, io: IoRequest<'_>) {
        let mut d = self.dev.lock().unwrap();
        d.events.push(format!("submit {}", io.offset_blocks));
        d.queued.push((io.id, io.offset_blocks));
    }
    fn poll(&mut self) -> usize {
        self.report("poll")
    }
    fn reap_more(&mut self) -> usize {
        self.report("reap_more")
    }
    fn flush(&mut self) {
        self.dev.lock().unwrap().events.push("flush".into());
    }
}

impl BdevOps for Deferred {
    fn io_type_supported(&self, t: IoType) -> bool {
        t == IoType::Read
    }
    fn get_io_channel(&self, done: Completer) -> bdev::Result<Box<dyn ModuleChannel>> {
        Ok(Box::new(DeferredChannel {
            dev: self.0.clone(),
            done,
        }))
    }
}

fn setup() -> (Shared, Desc, Channel) {
    let dev = Shared::default();
    let b = Bdev::register(
        BdevProps::new(uniq("Deferred"), 512, 1024),
        "deferred",
        Box::new(Deferred(dev.clone())),
    )
    .unwrap();
    let d = bdev::open(b.name(), false).unwrap();
    let ch = d.get_io_channel().unwrap();
    (dev, d, ch)
}

/// Takes the events recorded so far.
fn events(dev: &Shared) -> Vec<String> {
    std::mem::take(&mut dev.lock().unwrap().events)
}

/// A read of block `offset` whose completion is logged and resubmits a read
/// of block `offset + 100`; with `finish`, the completion also finishes
/// the device's request at that offset (work the device completes while
/// the first round's completions run).
fn read_resubmitting(
    dev: &Shared,
    d: &Desc,
    ch: &Channel,
    offset: u64,
    finish: Option<u64>,
    log: &Rc<RefCell<Vec<u64>>>,
) {
    let (dev2, d2, ch2, log2) = (dev.clone(), d.clone(), ch.clone(), log.clone());
    let cb = move |c: IoCompletion| {
        assert!(c.success());
        log2.borrow_mut().push(c.offset_blocks);
        if let Some(o) = finish {
            dev2.lock().unwrap().finish(o);
        }
        d2.read_blocks(&ch2, IoBuf::new(512), offset + 100, 1, Box::new(|_| {}))
            .unwrap();
    };
    d.read_blocks(ch, IoBuf::new(512), offset, 1, Box::new(cb))
        .unwrap();
}

#[test]
fn work_finished_during_the_completions_is_reaped_before_the_one_flush() {
    let (dev, d, ch) = setup();
    let log = Rc::new(RefCell::new(Vec::new()));
    read_resubmitting(&dev, &d, &ch, 1, Some(2), &log);
    read_resubmitting(&dev, &d, &ch, 2, None, &log);
    assert_eq!(events(&dev), ["submit 1", "submit 2"]);
    dev.lock().unwrap().finish(1);
    assert_eq!(ch.poll(), 2, "both reads complete in one channel poll");
    assert_eq!(*log.borrow(), [1, 2]);
    assert_eq!(
        events(&dev),
        ["poll", "submit 101", "reap_more", "submit 102", "flush"],
        "the straggler is reaped before the flush, which comes once"
    );
}

#[test]
fn a_reap_that_finds_nothing_still_flushes_once_and_an_idle_poll_only_polls() {
    let (dev, d, ch) = setup();
    let log = Rc::new(RefCell::new(Vec::new()));
    read_resubmitting(&dev, &d, &ch, 1, None, &log);
    events(&dev);
    assert_eq!(ch.poll(), 0);
    assert_eq!(
        events(&dev),
        ["poll"],
        "nothing reaped: no reap_more, no flush"
    );
    dev.lock().unwrap().finish(1);
    assert_eq!(ch.poll(), 1);
    assert_eq!(events(&dev), ["poll", "submit 101", "reap_more", "flush"]);
    assert_eq!(*log.borrow(), [1]);
    // The resubmitted read is still the device's, not lost or completed.
    assert_eq!(dev.lock().unwrap().queued.len(), 1);
}

/// A read on `ch` whose completion logs its ticks and resubmits itself
/// until `left` runs out.
fn chain(
    d: &Desc,
    ch: &Channel,
    left: Rc<std::cell::Cell<u32>>,
    log: Rc<RefCell<Vec<(u64, u64)>>>,
) {
    let (d2, ch2) = (d.clone(), ch.clone());
    let cb = move |c: IoCompletion| {
        assert!(c.success());
        log.borrow_mut().push((c.submit_tick, c.complete_tick));
        if left.get() > 0 {
            left.set(left.get() - 1);
            chain(&d2, &ch2, left, log);
        }
    };
    d.read_blocks(ch, IoBuf::new(512), 0, 1, Box::new(cb))
        .unwrap();
}

#[test]
fn a_module_that_completes_on_submit_runs_a_chain_of_resubmissions_in_rounds_of_one_poll() {
    let n = uniq("Null");
    bdev::null::create(bdev::null::NullOpts::new(&n, 64, 512)).unwrap();
    let d = bdev::open(&n, false).unwrap();
    let ch = d.get_io_channel().unwrap();
    let left = Rc::new(std::cell::Cell::new(299));
    let log = Rc::new(RefCell::new(Vec::new()));
    chain(&d, &ch, left.clone(), log.clone());
    // Queue depth 1: each completion's resubmission is already reported
    // when its callback returns, and completes in the same poll.
    // How many rounds fit in a poll depends on the poll's time budget;
    // at least one extra round always runs, and never more than the
    // poll's count budget.
    let first = ch.poll();
    assert!(
        first > 1 && first <= 1024,
        "one poll completes a bounded run of rounds, not one I/O: {first}"
    );
    let mut polls = 1;
    while log.borrow().len() < 300 {
        assert!(polls < 300, "the chain keeps going poll after poll");
        assert!(ch.poll() >= 1);
        polls += 1;
    }
    assert_eq!(ch.poll(), 0, "the chain ended after 300 reads");
    assert_eq!(left.get(), 0);
    // Each round has its own clock read: an I/O's completion is not before
    // its submission; an I/O submitted from a callback is stamped with its
    // round's read and completes with the next round's, so each one
    // starts where the one before it completed (the first, submitted
    // outside any poll, completes at a clock read of its own).
    let l = log.borrow();
    assert!(l.iter().all(|(s, c)| s <= c), "{l:?}");
    for w in l[1..].windows(2) {
        assert_eq!(w[0].1, w[1].0, "{w:?}");
    }
}

#[test]
fn a_module_that_copies_when_reaped_completes_a_chain_of_resubmissions_within_one_poll() {
    let n = uniq("Malloc");
    dma_env();
    bdev::malloc::create(bdev::malloc::MallocOpts::new(&n, 64, 512)).unwrap();
    let d = bdev::open(&n, false).unwrap();
    let ch = d.get_io_channel().unwrap();
    let left = Rc::new(std::cell::Cell::new(299));
    let log = Rc::new(RefCell::new(Vec::new()));
    chain(&d, &ch, left.clone(), log.clone());
    // Malloc copies a read when the channel reaps it: the poll's first
    // reap copies the first read, its callback resubmits, and the poll
    // reaps again, round after round, instead of leaving the read for the
    // thread's next poll. Whatever the poll's time budget allows, the
    // rounds after the first reap always include one beyond `reap_more`'s.
    let first = ch.poll();
    assert!(
        (3..=1024).contains(&first),
        "one poll completes the first read and at least two resubmissions: {first}"
    );
    let mut polls = 1;
    while log.borrow().len() < 300 {
        assert!(polls < 300, "the chain keeps going poll after poll");
        assert!(ch.poll() >= 1);
        polls += 1;
    }
    assert_eq!(ch.poll(), 0, "the chain ended after 300 reads");
    assert_eq!(left.get(), 0);
    let l = log.borrow();
    assert!(l.iter().all(|(s, c)| s <= c), "{l:?}");
}
