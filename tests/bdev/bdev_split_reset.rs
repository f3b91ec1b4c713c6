//! A split I/O caught by a reset while some of its pieces wait: for a free
//! request (a channel with a small pool), for NOMEM retry, or in the
//! module. The parent completes exactly once, `Aborted`, only after every
//! piece it issued came back; no piece is issued after the freeze; every
//! request returns to the pool, and the channel works again after.

use crate::common;

use common::*;
use spdk_io::bdev::{
    self, Bdev, BdevOps, BdevProps, Channel, Completer, Desc, IoBuf, IoId, IoRequest, IoStatus,
    IoType, ModuleChannel,
};
use spdk_io::thread::Thread;
use std::sync::{Arc, Mutex};

/// How the module's channels behave, shared by all of them.
#[derive(Default)]
struct Cfg {
    /// Reads are held until `release` (otherwise they complete at once).
    hold: bool,
    /// Held reads complete (successfully) at the next poll.
    release: bool,
    /// Reads are refused with NOMEM.
    nomem: bool,
    /// A reset's walk takes back (aborted) what the channels hold.
    abort_on_reset: bool,
    /// Reads the module accepted (not refused with NOMEM).
    accepted: usize,
    /// Reads refused with NOMEM.
    refused: usize,
    /// Reads held right now.
    held: usize,
}

type Shared = Arc<Mutex<Cfg>>;

struct Piecewise(Shared);

struct PiecewiseChannel {
    cfg: Shared,
    done: Completer,
    held: Vec<IoId>,
}

impl ModuleChannel for PiecewiseChannel {
    fn submit_request(&mut self, io: IoRequest<'_>) {
        let mut c = self.cfg.lock().unwrap();
        if io.io_type == IoType::Reset {
            self.done.complete(io.id, IoStatus::Success);
        } else if c.nomem {
            c.refused += 1;
            self.done.complete(io.id, IoStatus::NoMem);
        } else if c.hold {
            c.accepted += 1;
            c.held += 1;
            self.held.push(io.id);
        } else {
            c.accepted += 1;
            self.done.complete(io.id, IoStatus::Success);
        }
    }

    fn poll(&mut self) -> usize {
        let mut c = self.cfg.lock().unwrap();
        if !c.release || self.held.is_empty() {
            return 0;
        }
        let n = self.held.len();
        c.held -= n;
        for id in self.held.drain(..) {
            self.done.complete(id, IoStatus::Success);
        }
        n
    }

    fn abort_held(&mut self) {
        let mut c = self.cfg.lock().unwrap();
        if c.abort_on_reset {
            c.held -= self.held.len();
            for id in self.held.drain(..) {
                self.done.complete(id, IoStatus::Aborted);
            }
        }
    }
}

impl BdevOps for Piecewise {
    fn io_type_supported(&self, t: IoType) -> bool {
        matches!(t, IoType::Read | IoType::Reset)
    }
    fn get_io_channel(&self, done: Completer) -> bdev::Result<Box<dyn ModuleChannel>> {
        Ok(Box::new(PiecewiseChannel {
            cfg: self.0.clone(),
            done,
            held: Vec::new(),
        }))
    }
}

/// A bdev that splits every I/O into one-block pieces, and a writable
/// descriptor of it.
fn piecewise(cfg: Cfg) -> (Shared, Desc) {
    let cfg = Shared::new(Mutex::new(cfg));
    let mut p = BdevProps::new(uniq("Piecewise"), 512, 1024);
    p.max_rw_size = 1;
    let b = Bdev::register(p, "piecewise", Box::new(Piecewise(cfg.clone()))).unwrap();
    (cfg, bdev::open(b.name(), true).unwrap())
}

/// More rounds of polls, for anything that would complete twice or late.
fn settle(ts: &[&Thread]) {
    for _ in 0..100 {
        for t in ts {
            t.poll(0);
        }
    }
}

/// Channel `a` (3 requests) on thread `t1` for the split, channel `b`
/// (the default pool) on `t2` for the reset: `a` has no request left for it.
struct Two {
    t1: Thread,
    t2: Thread,
    a: Channel,
    b: Channel,
}

impl Two {
    fn new(d: &Desc) -> Two {
        let (t1, t2) = (Thread::new("split_a"), Thread::new("split_b"));
        let a = t1.enter(|| d.get_io_channel_sized(3).unwrap());
        let b = t2.enter(|| d.get_io_channel().unwrap());
        Two { t1, t2, a, b }
    }

    fn threads(&self) -> [&Thread; 2] {
        [&self.t1, &self.t2]
    }

    /// A 10-block read on `a`: the parent and two pieces take the pool.
    fn split_read(&self, d: &Desc, l: &Log) {
        self.t1.enter(|| {
            d.read_blocks(&self.a, IoBuf::new(10 * 512), 0, 10, rec(l))
                .unwrap()
        });
    }

    /// A reset from `b`; polls until it completed.
    fn reset(&self, d: &Desc) -> IoStatus {
        let r = log();
        self.t2.enter(|| d.reset(&self.b, rec(&r)).unwrap());
        poll_threads(&self.threads(), || !r.borrow().is_empty());
        assert_eq!(r.borrow().len(), 1, "the reset, once");
        r.take()[0].status
    }

    fn finish(self) {
        self.t1.enter(|| drop(self.a));
        self.t2.enter(|| drop(self.b));
        for t in [self.t1, self.t2] {
            t.shutdown().unwrap();
            t.destroy().unwrap();
        }
    }
}

/// After the reset: a 10-block read on `a` completes whole.
fn channel_works_again(two: &Two, d: &Desc, cfg: &Shared) {
    {
        let mut c = cfg.lock().unwrap();
        c.hold = false;
        c.nomem = false;
        c.accepted = 0;
    }
    let l = log();
    two.split_read(d, &l);
    poll_threads(&two.threads(), || !l.borrow().is_empty());
    assert_eq!(statuses(&l), vec![IoStatus::Success]);
    assert_eq!(cfg.lock().unwrap().accepted, 10, "ten one-block pieces");
    assert_eq!(two.a.free_requests(), 3);
}

#[test]
fn a_split_waiting_for_requests_is_aborted_once_by_a_reset_and_gives_every_request_back() {
    let (cfg, d) = piecewise(Cfg {
        hold: true,
        abort_on_reset: true,
        ..Cfg::default()
    });
    let two = Two::new(&d);
    let l = log();
    two.split_read(&d, &l);
    poll_threads(&two.threads(), || cfg.lock().unwrap().held == 2);
    settle(&two.threads());
    assert_eq!(
        cfg.lock().unwrap().accepted,
        2,
        "two pieces in the module, eight wait for a request"
    );
    assert!(l.borrow().is_empty());
    assert_eq!(two.a.free_requests(), 0);

    assert_eq!(two.reset(&d), IoStatus::Success);
    poll_threads(&two.threads(), || !l.borrow().is_empty());
    settle(&two.threads());
    assert_eq!(statuses(&l), vec![IoStatus::Aborted], "the parent, once");
    let c = cfg.lock().unwrap();
    assert_eq!(
        (c.accepted, c.held),
        (2, 0),
        "no piece issued after the freeze"
    );
    drop(c);
    assert_eq!(two.a.free_requests(), 3, "every request is back");
    channel_works_again(&two, &d, &cfg);
    two.finish();
}

#[test]
fn a_split_whose_pieces_the_module_keeps_through_a_reset_completes_aborted_after_them() {
    let (cfg, d) = piecewise(Cfg {
        hold: true,
        ..Cfg::default()
    });
    let two = Two::new(&d);
    let l = log();
    two.split_read(&d, &l);
    poll_threads(&two.threads(), || cfg.lock().unwrap().held == 2);

    assert_eq!(two.reset(&d), IoStatus::Success);
    settle(&two.threads());
    assert!(
        l.borrow().is_empty(),
        "the parent waits for the pieces still in the module"
    );
    assert_eq!(two.a.free_requests(), 0);
    cfg.lock().unwrap().release = true;
    poll_threads(&two.threads(), || !l.borrow().is_empty());
    settle(&two.threads());
    assert_eq!(statuses(&l), vec![IoStatus::Aborted], "the parent, once");
    assert_eq!(cfg.lock().unwrap().accepted, 2, "the rest was never issued");
    assert_eq!(two.a.free_requests(), 3, "every request is back");
    cfg.lock().unwrap().release = false;
    channel_works_again(&two, &d, &cfg);
    two.finish();
}

#[test]
fn a_split_whose_pieces_wait_for_nomem_retry_and_for_requests_is_aborted_once_by_a_reset() {
    let (cfg, d) = piecewise(Cfg {
        nomem: true,
        ..Cfg::default()
    });
    let two = Two::new(&d);
    let l = log();
    two.split_read(&d, &l);
    // Both pieces were refused, and retried and refused again.
    poll_threads(&two.threads(), || cfg.lock().unwrap().refused >= 4);
    assert!(l.borrow().is_empty(), "NOMEM pieces wait for retry");
    assert_eq!(two.a.free_requests(), 0);

    assert_eq!(two.reset(&d), IoStatus::Success);
    poll_threads(&two.threads(), || !l.borrow().is_empty());
    settle(&two.threads());
    assert_eq!(statuses(&l), vec![IoStatus::Aborted], "the parent, once");
    assert_eq!(cfg.lock().unwrap().accepted, 0);
    assert_eq!(two.a.free_requests(), 3, "every request is back");
    channel_works_again(&two, &d, &cfg);
    two.finish();
}

#[test]
fn a_split_whose_every_piece_waits_for_nomem_retry_is_aborted_once_by_its_own_channels_reset() {
    let (cfg, d) = piecewise(Cfg {
        nomem: true,
        ..Cfg::default()
    });
    let t = Thread::new("split_own");
    let ch = t.enter(|| d.get_io_channel().unwrap());
    let pool = ch.free_requests();
    let l = log();
    t.enter(|| {
        d.read_blocks(&ch, IoBuf::new(8 * 512), 0, 8, rec(&l))
            .unwrap()
    });
    poll_threads(&[&t], || cfg.lock().unwrap().refused >= 16);
    assert!(l.borrow().is_empty());
    assert_eq!(ch.free_requests(), pool - 9, "the parent and its 8 pieces");

    let r = log();
    t.enter(|| d.reset(&ch, rec(&r)).unwrap());
    poll_threads(&[&t], || !r.borrow().is_empty() && !l.borrow().is_empty());
    settle(&[&t]);
    assert_eq!(statuses(&l), vec![IoStatus::Aborted], "the parent, once");
    assert_eq!(statuses(&r), vec![IoStatus::Success]);
    assert_eq!(cfg.lock().unwrap().accepted, 0);
    assert_eq!(ch.free_requests(), pool, "every request is back");
    t.enter(|| drop(ch));
    t.shutdown().unwrap();
    t.destroy().unwrap();
}
