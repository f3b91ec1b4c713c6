//! Helpers shared by the bdev tests (included with `mod common;`).
#![allow(dead_code)]

use spdk_io::bdev::{Channel, IoCompletion, IoStatus};
use std::cell::RefCell;
use std::rc::Rc;

/// Polls `ch` until `done()` holds; fails after 60 s (a real device under
/// an emulator can be slow, but never that slow).
pub fn poll_until(ch: &Channel, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        for _ in 0..1024 {
            if done() {
                return;
            }
            ch.poll();
        }
        if std::time::Instant::now() > deadline {
            panic!("condition not reached after 60 s of polling");
        }
    }
}

/// A place completions are recorded in.
pub type Log = Rc<RefCell<Vec<IoCompletion>>>;

pub fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

/// A callback that records its completion into `log`.
pub fn rec(log: &Log) -> Box<dyn spdk_io::bdev::IoDone> {
    let l = log.clone();
    Box::new(move |c: IoCompletion| l.borrow_mut().push(c))
}

/// Statuses of the recorded completions.
pub fn statuses(log: &Log) -> Vec<IoStatus> {
    log.borrow().iter().map(|c| c.status).collect()
}

/// A name unique within the test process.
pub fn uniq(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Brings up DMA memory (ordinary pinned pages) for malloc bdevs; shared
/// by every test of the process.
pub fn dma_env() {
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
}
