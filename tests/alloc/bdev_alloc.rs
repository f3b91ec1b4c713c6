//! Zero heap allocations per I/O through bdev + null, bdev + malloc,
//! bdev + nvme (the software controller, DMA buffers) and virtual bdevs
//! passing their requests through to a malloc base, counting the
//! allocations of the test's own OS thread.

use crate::counting::allocs;
use spdk_io::bdev::{
    self, malloc::MallocOpts, null::NullOpts, Channel, Desc, IoBuf, IoCompletion, IoDone,
};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

struct Ctx {
    desc: Desc,
    ch: Channel,
    left: Cell<u64>,
    done: Cell<u64>,
    /// Tasks that completed once `left` ran out, with their buffers: the
    /// next phase starts them again (none is lost between phases, however
    /// many completions one poll runs).
    parked: RefCell<Vec<(Box<Task>, IoBuf)>>,
}

/// An owned task: carries its buffer, resubmits itself on completion.
struct Task {
    ctx: Rc<Ctx>,
    off: u64,
    write: bool,
}

impl IoDone for Task {
    fn io_done(mut self: Box<Self>, c: IoCompletion) {
        assert!(c.success());
        let ctx = self.ctx.clone();
        ctx.done.set(ctx.done.get() + 1);
        let buf = c.data.into_buf().unwrap();
        if ctx.left.get() == 0 {
            // Within the vector's capacity: no allocation.
            ctx.parked.borrow_mut().push((self, buf));
            return;
        }
        ctx.left.set(ctx.left.get() - 1);
        self.off = (self.off + 7) % 1000;
        self.write = !self.write;
        let off = self.off;
        let r = if self.write {
            ctx.desc.write_blocks(&ctx.ch, buf, off, 1, self)
        } else {
            ctx.desc.read_blocks(&ctx.ch, buf, off, 1, self)
        };
        assert!(r.is_ok());
    }
}

/// Polls once; yields the CPU when nothing completed, so a device thread
/// (the software controller) sharing a single CPU gets to run.
fn poll(ch: &Channel) {
    if ch.poll() == 0 {
        std::thread::yield_now();
    }
}

/// Starts every parked task again with a read (the same one each was about
/// to choose); polls until each is back in flight.
fn relaunch(ctx: &Ctx) {
    loop {
        let next = ctx.parked.borrow_mut().pop();
        let Some((mut t, buf)) = next else { break };
        t.write = false;
        let off = t.off;
        ctx.desc.read_blocks(&ctx.ch, buf, off, 1, t).unwrap();
    }
}

/// Polls until every task is parked.
fn drain(ctx: &Ctx) {
    while ctx.ch.outstanding() > 0 {
        poll(&ctx.ch);
    }
}

/// Runs `ios` I/Os (after a warm-up) and returns the allocations they made.
fn run(name: &str, dma: bool, ios: u64) -> u64 {
    let desc = bdev::open(name, true).unwrap();
    let ch = desc.get_io_channel().unwrap();
    let ctx = Rc::new(Ctx {
        desc,
        ch,
        left: Cell::new(0),
        done: Cell::new(0),
        parked: RefCell::new(Vec::with_capacity(32)),
    });
    // Warm up: 32 tasks in flight for a while.
    ctx.left.set(10_000);
    for i in 0..32 {
        let t = Box::new(Task {
            ctx: ctx.clone(),
            off: i,
            write: false,
        });
        let buf = if dma {
            IoBuf::dma(512, 512).unwrap()
        } else {
            IoBuf::new(512)
        };
        ctx.desc.read_blocks(&ctx.ch, buf, i, 1, t).unwrap();
    }
    while ctx.left.get() > 0 {
        poll(&ctx.ch);
    }
    drain(&ctx);
    assert_eq!(ctx.parked.borrow().len(), 32, "every task parked");
    // Measure: `ios` more I/O with the same tasks.
    let before = allocs();
    ctx.left.set(ios);
    let start = ctx.done.get();
    relaunch(&ctx);
    while ctx.left.get() > 0 {
        poll(&ctx.ch);
    }
    let n = allocs() - before;
    assert!(ctx.done.get() - start >= ios);
    drain(&ctx);
    // The parked tasks hold the context: let them go.
    ctx.parked.borrow_mut().clear();
    n
}

#[test]
fn no_heap_allocation_per_io_through_null_and_malloc() {
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
    bdev::null::create(NullOpts::new("AllocNull", 1024, 512)).unwrap();
    bdev::malloc::create(MallocOpts::new("AllocMalloc", 1024, 512)).unwrap();
    assert_eq!(
        run("AllocNull", false, 100_000),
        0,
        "allocations during 100k I/O through bdev + null"
    );
    assert_eq!(
        run("AllocMalloc", false, 100_000),
        0,
        "allocations during 100k I/O through bdev + malloc"
    );
}

#[test]
fn no_heap_allocation_per_io_passed_through_passthru_and_split_to_malloc() {
    use spdk_io::bdev::{passthru::PassthruOpts, split::SplitOpts};
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
    bdev::malloc::create(MallocOpts::new("AllocPtBase", 1024, 512)).unwrap();
    bdev::passthru::create(PassthruOpts::new("AllocPtBase", "AllocPt")).unwrap();
    bdev::malloc::create(MallocOpts::new("AllocSplitBase", 2048, 512)).unwrap();
    bdev::split::create(SplitOpts::new("AllocSplitBase", 2)).unwrap();
    assert_eq!(
        run("AllocPt", false, 100_000),
        0,
        "allocations during 100k I/O through passthru + malloc"
    );
    assert_eq!(
        run("AllocSplitBasep1", false, 100_000),
        0,
        "allocations during 100k I/O through split + malloc"
    );
    let base = bdev::get_by_name("AllocPtBase").unwrap().iostat();
    let top = bdev::get_by_name("AllocPt").unwrap().iostat();
    assert_eq!(
        (base.num_read_ops, base.num_write_ops),
        (top.num_read_ops, top.num_write_ops),
        "every passthru I/O counted on its base too"
    );
}

#[test]
fn no_heap_allocation_per_io_through_the_nvme_bdev() {
    use spdk_io::nvme::{emu::EmuController, Controller, ControllerOpts};
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
    let e = std::sync::Arc::new(
        EmuController::builder()
            .serial("ALLOCEMU")
            .shadow_doorbells(true)
            .namespace(512, 2048)
            .build()
            .expect("emu"),
    );
    let c = Controller::attach(e, ControllerOpts::default()).expect("attach");
    bdev::nvme::register_controller("AllocNvme", c, None).expect("register");
    assert_eq!(
        run("AllocNvmen1", true, 20_000),
        0,
        "allocations during 20k I/O through bdev + nvme with DMA buffers"
    );
}
