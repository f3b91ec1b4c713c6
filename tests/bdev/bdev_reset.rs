//! Bdev reset as SPDK's bdev.c does it, with walks over every channel:
//! freeze (queued I/O aborted), drain or not, the module's reset, thaw.
//! Checked against a module whose channels hold I/O until told, on two
//! lightweight threads: every I/O completes exactly once, the reset after
//! them, I/O submitted during the reset is aborted, and a module that
//! never completes anything cannot hang a reset.

use crate::common;

use common::*;
use spdk_io::bdev::{
    self, Bdev, BdevOps, BdevProps, Channel, Completer, Desc, IoBuf, IoId, IoRequest, IoStatus,
    IoType, ModuleChannel,
};
use spdk_io::thread::Thread;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the module's channels behave, shared by all of them.
#[derive(Default)]
struct Cfg {
    /// Reads and writes complete at once (otherwise they are held).
    complete_io: bool,
    /// Held reads and writes complete (successfully) at the next poll.
    release: bool,
    /// Reads and writes are refused with NOMEM.
    nomem: bool,
    /// Resets complete at once (otherwise they are held too).
    complete_resets: bool,
    /// A reset's walk may abort what channels hold.
    abort_on_reset: bool,
    /// Reads and writes the module was handed.
    submitted: usize,
    /// Resets the module was handed.
    resets: usize,
}

type Shared = Arc<Mutex<Cfg>>;

struct Holder(Shared);

struct HolderChannel {
    cfg: Shared,
    done: Completer,
    held: Vec<IoId>,
}

impl ModuleChannel for HolderChannel {
    fn submit_request(&mut self, io: IoRequest<'_>) {
        let mut c = self.cfg.lock().unwrap();
        if io.io_type == IoType::Reset {
            c.resets += 1;
            if c.complete_resets {
                self.done.complete(io.id, IoStatus::Success);
            } else {
                self.held.push(io.id);
            }
            return;
        }
        c.submitted += 1;
        if c.nomem {
            self.done.complete(io.id, IoStatus::NoMem);
        } else if c.complete_io {
            self.done.complete(io.id, IoStatus::Success);
        } else {
            self.held.push(io.id);
        }
    }

    fn poll(&mut self) -> usize {
        if !self.cfg.lock().unwrap().release || self.held.is_empty() {
            return 0;
        }
        let n = self.held.len();
        for id in self.held.drain(..) {
            self.done.complete(id, IoStatus::Success);
        }
        n
    }

    fn abort_held(&mut self) {
        if self.cfg.lock().unwrap().abort_on_reset {
            for id in self.held.drain(..) {
                self.done.complete(id, IoStatus::Aborted);
            }
        }
    }
}

impl BdevOps for Holder {
    fn io_type_supported(&self, t: IoType) -> bool {
        matches!(t, IoType::Read | IoType::Write | IoType::Reset)
    }
    fn get_io_channel(&self, done: Completer) -> bdev::Result<Box<dyn ModuleChannel>> {
        Ok(Box::new(HolderChannel {
            cfg: self.0.clone(),
            done,
            held: Vec::new(),
        }))
    }
}

/// A holder bdev with `props` changed by `f`, and a writable descriptor.
fn holder(cfg: Cfg, f: impl FnOnce(&mut BdevProps)) -> (Shared, Desc) {
    let cfg = Shared::new(Mutex::new(cfg));
    let mut p = BdevProps::new(uniq("Holder"), 512, 1024);
    f(&mut p);
    let b = Bdev::register(p, "holder", Box::new(Holder(cfg.clone()))).unwrap();
    (cfg, bdev::open(b.name(), true).unwrap())
}

/// Reads `n` blocks from `start` on `ch` (on thread `t`), each logged.
fn reads(t: &Thread, d: &Desc, ch: &Channel, start: u64, n: u64, l: &Log) {
    t.enter(|| {
        for i in start..start + n {
            d.read_blocks(ch, IoBuf::new(512), i, 1, rec(l)).unwrap();
        }
    });
}

/// The recorded completions of one type, by offset.
fn by_offset(l: &Log, t: IoType) -> Vec<(u64, IoStatus)> {
    let mut v: Vec<_> = l
        .borrow()
        .iter()
        .filter(|c| c.io_type == t)
        .map(|c| (c.offset_blocks, c.status))
        .collect();
    v.sort_by_key(|(o, _)| *o);
    v
}

fn two_threads(d: &Desc) -> (Thread, Thread, Channel, Channel) {
    let (t1, t2) = (Thread::new("reset_a"), Thread::new("reset_b"));
    let a = t1.enter(|| d.get_io_channel().unwrap());
    let b = t2.enter(|| d.get_io_channel().unwrap());
    (t1, t2, a, b)
}

fn finish(t1: Thread, t2: Thread, a: Channel, b: Channel) {
    t1.enter(|| drop(a));
    t2.enter(|| drop(b));
    for t in [t1, t2] {
        t.shutdown().unwrap();
        t.destroy().unwrap();
    }
}

#[test]
fn a_reset_aborts_io_outstanding_on_two_threads_once_and_completes_after_it() {
    let (cfg, d) = holder(
        Cfg {
            complete_resets: true,
            abort_on_reset: true,
            ..Cfg::default()
        },
        |_| {},
    );
    let (t1, t2, a, b) = two_threads(&d);
    let l = log();
    reads(&t1, &d, &a, 0, 3, &l);
    reads(&t2, &d, &b, 10, 3, &l);
    poll_threads(&[&t1, &t2], || cfg.lock().unwrap().submitted == 6);
    t1.enter(|| d.reset(&a, rec(&l)).unwrap());
    poll_threads(&[&t1, &t2], || {
        l.borrow().iter().any(|c| c.io_type == IoType::Reset)
    });
    // A few more rounds: nothing completes twice.
    for _ in 0..50 {
        t1.poll(0);
        t2.poll(0);
    }
    let v = l.borrow();
    assert_eq!(v.len(), 7, "six reads and the reset, each once");
    assert_eq!(v.last().unwrap().io_type, IoType::Reset, "the reset last");
    assert_eq!(v.last().unwrap().status, IoStatus::Success);
    drop(v);
    let want: Vec<_> = [0, 1, 2, 10, 11, 12]
        .into_iter()
        .map(|o| (o, IoStatus::Aborted))
        .collect();
    assert_eq!(by_offset(&l, IoType::Read), want);
    assert_eq!(
        cfg.lock().unwrap().resets,
        1,
        "one reset reached the module"
    );
    // I/O after the reset goes through on both threads.
    cfg.lock().unwrap().complete_io = true;
    l.borrow_mut().clear();
    reads(&t1, &d, &a, 20, 2, &l);
    reads(&t2, &d, &b, 30, 2, &l);
    poll_threads(&[&t1, &t2], || l.borrow().len() == 4);
    assert!(statuses(&l).iter().all(|s| *s == IoStatus::Success));
    finish(t1, t2, a, b);
}

#[test]
fn io_submitted_during_a_reset_completes_aborted_and_a_second_reset_shares_the_first() {
    let (cfg, d) = holder(
        Cfg {
            complete_io: true,
            ..Cfg::default()
        },
        |_| {},
    );
    let (t1, t2, a, b) = two_threads(&d);
    let l = log();
    t1.enter(|| d.reset(&a, rec(&l)).unwrap());
    // The module holds the reset: every channel is frozen by then.
    poll_threads(&[&t1, &t2], || cfg.lock().unwrap().resets == 1);
    reads(&t1, &d, &a, 0, 2, &l);
    reads(&t2, &d, &b, 10, 2, &l);
    t2.enter(|| d.reset(&b, rec(&l)).unwrap());
    poll_threads(&[&t1, &t2], || l.borrow().len() == 4);
    assert_eq!(
        by_offset(&l, IoType::Read),
        vec![
            (0, IoStatus::Aborted),
            (1, IoStatus::Aborted),
            (10, IoStatus::Aborted),
            (11, IoStatus::Aborted)
        ]
    );
    assert_eq!(cfg.lock().unwrap().submitted, 0, "none reached the module");
    // The module completes the reset: both resets complete with its status.
    cfg.lock().unwrap().release = true;
    poll_threads(&[&t1, &t2], || {
        l.borrow()
            .iter()
            .filter(|c| c.io_type == IoType::Reset)
            .count()
            == 2
    });
    assert!(statuses(&l)[4..].iter().all(|s| *s == IoStatus::Success));
    assert_eq!(cfg.lock().unwrap().resets, 1, "the second reset waited");
    l.borrow_mut().clear();
    reads(&t1, &d, &a, 0, 1, &l);
    reads(&t2, &d, &b, 1, 1, &l);
    poll_threads(&[&t1, &t2], || l.borrow().len() == 2);
    assert_eq!(statuses(&l), vec![IoStatus::Success; 2]);
    finish(t1, t2, a, b);
}

#[test]
fn a_reset_aborts_io_waiting_for_nomem_retry() {
    let (cfg, d) = holder(
        Cfg {
            nomem: true,
            complete_resets: true,
            ..Cfg::default()
        },
        |_| {},
    );
    let t = Thread::new("reset_nomem");
    let ch = t.enter(|| d.get_io_channel().unwrap());
    let l = log();
    reads(&t, &d, &ch, 0, 4, &l);
    poll_threads(&[&t], || cfg.lock().unwrap().submitted >= 8);
    assert!(l.borrow().is_empty(), "NOMEM I/O waits for retry");
    t.enter(|| d.reset(&ch, rec(&l)).unwrap());
    poll_threads(&[&t], || l.borrow().len() == 5);
    assert_eq!(by_offset(&l, IoType::Read).len(), 4);
    assert!(by_offset(&l, IoType::Read)
        .iter()
        .all(|(_, s)| *s == IoStatus::Aborted));
    assert_eq!(statuses(&l)[4], IoStatus::Success, "the reset, after them");
    t.enter(|| drop(ch));
    t.shutdown().unwrap();
    t.destroy().unwrap();
}

#[test]
fn a_module_that_never_completes_fails_the_reset_after_its_timeout_and_thaws() {
    let (cfg, d) = holder(Cfg::default(), |p| {
        p.module_reset_timeout = Some(Duration::from_millis(200))
    });
    let (t1, t2, a, b) = two_threads(&d);
    let l = log();
    reads(&t1, &d, &a, 0, 1, &l);
    reads(&t2, &d, &b, 1, 1, &l);
    let t0 = Instant::now();
    t1.enter(|| d.reset(&a, rec(&l)).unwrap());
    poll_threads(&[&t1, &t2], || !l.borrow().is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(200));
    assert_eq!(statuses(&l), vec![IoStatus::Failed], "only the reset");
    assert_eq!(cfg.lock().unwrap().resets, 1);
    // Thawed: new I/O reaches the module again (which holds it).
    reads(&t2, &d, &b, 2, 1, &l);
    poll_threads(&[&t1, &t2], || cfg.lock().unwrap().submitted == 3);
    // The module's late reports are refused as stale, the held reads finish once.
    cfg.lock().unwrap().release = true;
    poll_threads(&[&t1, &t2], || l.borrow().len() == 4);
    for _ in 0..20 {
        t1.poll(0);
        t2.poll(0);
    }
    assert_eq!(l.borrow().len(), 4);
    finish(t1, t2, a, b);
}

#[test]
fn with_a_drain_timeout_io_that_drains_in_time_spares_the_module_its_reset() {
    let (cfg, d) = holder(Cfg::default(), |p| p.reset_io_drain_timeout = 5);
    let (t1, t2, a, b) = two_threads(&d);
    let l = log();
    reads(&t1, &d, &a, 0, 1, &l);
    reads(&t2, &d, &b, 1, 1, &l);
    t1.enter(|| d.reset(&a, rec(&l)).unwrap());
    for _ in 0..50 {
        t1.poll(0);
        t2.poll(0);
    }
    assert!(l.borrow().is_empty(), "the reset waits for the reads");
    cfg.lock().unwrap().release = true;
    poll_threads(&[&t1, &t2], || l.borrow().len() == 3);
    assert_eq!(
        statuses(&l),
        vec![IoStatus::Success; 3],
        "the reads, then the reset"
    );
    assert_eq!(l.borrow()[2].io_type, IoType::Reset);
    assert_eq!(cfg.lock().unwrap().resets, 0, "no reset reached the module");
    finish(t1, t2, a, b);
}

#[test]
fn with_a_drain_timeout_io_still_outstanding_when_it_expires_meets_the_module_reset() {
    let (cfg, d) = holder(
        Cfg {
            complete_resets: true,
            abort_on_reset: true,
            ..Cfg::default()
        },
        |p| p.reset_io_drain_timeout = 1,
    );
    let (t1, t2, a, b) = two_threads(&d);
    let l = log();
    reads(&t2, &d, &b, 1, 1, &l);
    let t0 = Instant::now();
    t1.enter(|| d.reset(&a, rec(&l)).unwrap());
    poll_threads(&[&t1, &t2], || l.borrow().len() == 2);
    assert!(t0.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        statuses(&l),
        vec![IoStatus::Aborted, IoStatus::Success],
        "the read, aborted by the module's reset, then the reset"
    );
    assert_eq!(cfg.lock().unwrap().resets, 1);
    finish(t1, t2, a, b);
}

#[test]
fn a_reset_on_a_channel_made_outside_any_thread_completes_and_thaws() {
    let (cfg, d) = holder(
        Cfg {
            complete_io: true,
            complete_resets: true,
            ..Cfg::default()
        },
        |_| {},
    );
    let ch = d.get_io_channel().unwrap();
    let l = log();
    d.reset(&ch, rec(&l)).unwrap();
    poll_until(&ch, || !l.borrow().is_empty());
    assert_eq!(statuses(&l), vec![IoStatus::Success]);
    d.read_blocks(&ch, IoBuf::new(512), 0, 1, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 2);
    assert_eq!(statuses(&l)[1], IoStatus::Success);
    assert_eq!(cfg.lock().unwrap().resets, 1);
}

#[test]
fn an_async_reset_resolves_with_the_reset_status_and_frees_its_request() {
    let (cfg, d) = holder(
        Cfg {
            complete_io: true,
            ..Cfg::default()
        },
        |p| p.module_reset_timeout = Some(Duration::from_millis(100)),
    );
    let t = Thread::new("reset_async");
    let r = t
        .block_on(async {
            let ch = d.get_io_channel().unwrap();
            let free = ch.free_requests();
            // The module holds the reset: it fails at the timeout.
            let failed = d.reset_async(&ch).await;
            cfg.lock().unwrap().complete_resets = true;
            let ok = d.reset_async(&ch).await;
            let read = d.read_blocks_async(&ch, IoBuf::new(512), 0, 1).await;
            (
                failed.err().map(|e| e.to_string()),
                ok.is_ok(),
                read.is_ok(),
                free == ch.free_requests(),
            )
        })
        .unwrap();
    assert!(r.0.is_some(), "the first reset failed");
    assert!(r.1 && r.2, "the second reset and a read after it succeed");
    assert!(r.3, "every request back in the pool");
    assert_eq!(cfg.lock().unwrap().resets, 2);
    t.shutdown().unwrap();
    t.destroy().unwrap();
}

#[test]
fn a_reset_aborts_io_waiting_for_qos_quota() {
    let (cfg, d) = holder(
        Cfg {
            complete_io: true,
            complete_resets: true,
            ..Cfg::default()
        },
        |_| {},
    );
    // 1000 I/O per second: one per 1 ms slice, the rest wait on the channel.
    d.bdev().set_qos_limits([Some(1000), None, None, None]);
    let t = Thread::new("reset_qos");
    let ch = t.enter(|| d.get_io_channel().unwrap());
    for _ in 0..20 {
        t.poll(0);
    }
    let l = log();
    reads(&t, &d, &ch, 0, 20, &l);
    t.enter(|| d.reset(&ch, rec(&l)).unwrap());
    poll_threads(&[&t], || l.borrow().len() == 21);
    for _ in 0..50 {
        t.poll(0);
    }
    let v = l.borrow();
    assert_eq!(v.len(), 21, "twenty reads and the reset, each once");
    assert_eq!(v[20].io_type, IoType::Reset, "the reset last");
    let aborted = v.iter().filter(|c| c.status == IoStatus::Aborted).count();
    let passed = cfg.lock().unwrap().submitted;
    assert_eq!(
        aborted + passed,
        20,
        "each read either reached the module or was aborted"
    );
    assert!(
        aborted >= 10,
        "the reads over quota were aborted ({aborted})"
    );
    drop(v);
    d.bdev().set_qos_limits([None; 4]);
    t.enter(|| drop(ch));
    t.shutdown().unwrap();
    t.destroy().unwrap();
}
