//! What the bdev benches share: a task that resubmits a random 4 KiB-block
//! read from its own completion (as `spdk-io bdevperf` does), and the
//! thread's CPU clock. Included with `#[path]`.

use spdk_io::bdev::{Channel, Desc, IoBuf, IoCompletion, IoDone};
use std::cell::Cell;
use std::rc::Rc;

/// The state every task of one run shares.
pub struct Ctx {
    pub desc: Desc,
    pub ch: Channel,
    /// Reads still to submit.
    pub left: Cell<u64>,
    /// xorshift state for the next block.
    pub rng: Cell<u64>,
    /// Blocks to pick from.
    pub blocks: u64,
    /// Reads submitted so far.
    pub submitted: Cell<u64>,
}

impl Ctx {
    /// A run of `ios` reads on `desc` through `ch`, `qd` of them started by hand.
    pub fn new(desc: Desc, ch: Channel, blocks: u64, ios: u64, qd: u64) -> Rc<Ctx> {
        Rc::new(Ctx {
            desc,
            ch,
            left: Cell::new(ios.saturating_sub(qd)),
            rng: Cell::new(0x9e37_79b9),
            blocks,
            submitted: Cell::new(qd),
        })
    }

    /// The next block to read.
    pub fn next_block(&self) -> u64 {
        next(&self.rng) % self.blocks
    }
}

/// One xorshift step.
pub fn next(x: &Cell<u64>) -> u64 {
    let mut v = x.get();
    v ^= v << 13;
    v ^= v >> 7;
    v ^= v << 17;
    x.set(v);
    v
}

/// One in-flight read that resubmits itself until the run is done.
pub struct Task {
    pub ctx: Rc<Ctx>,
}

impl IoDone for Task {
    fn io_done(self: Box<Self>, c: IoCompletion) {
        let ctx = self.ctx.clone();
        let left = ctx.left.get();
        if left == 0 {
            return;
        }
        ctx.left.set(left - 1);
        ctx.submitted.set(ctx.submitted.get() + 1);
        let buf = c.data.into_buf().unwrap_or_else(|| IoBuf::new(4096));
        let lba = ctx.next_block();
        if let Err(r) = ctx.desc.read_blocks(&ctx.ch, buf, lba, 1, self) {
            panic!("resubmit: {}", r.error);
        }
    }
}

/// This thread's CPU time in ns.
pub fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}
