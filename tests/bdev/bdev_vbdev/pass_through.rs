//! The bdev layer's pass-through ([`PassThrough`]), through a small virtual
//! bdev written here as a module would write one: each request is passed
//! to the base's module channel when the base's channel allows it, else
//! submitted through the base's descriptor; it counts which way each went.

use super::common::*;
use spdk_io::bdev::error_inject::{self, ErrorOpts, ErrorType};
use spdk_io::bdev::{
    self, Bdev, BdevOps, BdevProps, Completer, Desc, IoBuf, IoCompletion, IoRequest, IoStatus,
    IoType, ModuleChannel, PassThrough,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Which way the requests of a [`Pt`] bdev went.
#[derive(Default)]
struct Ways {
    passed: AtomicU64,
    whole: AtomicU64,
}

impl Ways {
    fn get(&self) -> (u64, u64) {
        (
            self.passed.load(Ordering::SeqCst),
            self.whole.load(Ordering::SeqCst),
        )
    }
}

/// A virtual bdev over `desc`'s bdev, `shift` blocks in.
struct Pt {
    desc: Desc,
    shift: u64,
    ways: Arc<Ways>,
}

struct PtChannel {
    desc: Desc,
    pt: PassThrough,
    done: Completer,
    shift: u64,
    ways: Arc<Ways>,
}

impl ModuleChannel for PtChannel {
    fn submit_request(&mut self, mut io: IoRequest<'_>) {
        let (off, n) = (io.offset_blocks + self.shift, io.num_blocks);
        if io.io_type != IoType::Reset && self.pt.submit(&mut io, off, n) {
            self.ways.passed.fetch_add(1, Ordering::SeqCst);
            return;
        }
        self.ways.whole.fetch_add(1, Ordering::SeqCst);
        let (id, done) = (io.id, self.done.clone());
        let Some(data) = io.take_data() else {
            return done.complete(id, IoStatus::Failed);
        };
        let cb = Box::new(move |c: IoCompletion| done.complete_with_data(id, c.status, c.data));
        let ch = self.pt.channel();
        let r = if io.io_type == IoType::Reset {
            self.desc.reset(ch, cb)
        } else {
            self.desc.submit(ch, io.io_type, off, n, data, cb)
        };
        if let Err(rej) = r {
            self.done.complete_with_data(id, IoStatus::Failed, rej.data);
        }
    }
    fn poll(&mut self) -> usize {
        self.pt.channel().poll()
    }
    fn shutdown(&mut self) -> bool {
        self.pt.drain()
    }
}

impl BdevOps for Pt {
    fn io_type_supported(&self, t: IoType) -> bool {
        self.desc.bdev().io_type_supported(t)
    }
    fn get_io_channel(&self, done: Completer) -> bdev::Result<Box<dyn ModuleChannel>> {
        let ch = self.desc.get_io_channel()?;
        Ok(Box::new(PtChannel {
            pt: PassThrough::new(&self.desc, ch, Box::new(done.clone()))?,
            desc: self.desc.clone(),
            done,
            shift: self.shift,
            ways: self.ways.clone(),
        }))
    }
}

/// A [`Pt`] bdev of `blocks` blocks over `base` (opened writable unless
/// `read_only`), `shift` blocks in, split by the layer at `max_rw` blocks.
fn pt_over(
    base: &str,
    blocks: u64,
    shift: u64,
    read_only: bool,
    max_rw: u64,
) -> (Arc<Bdev>, Arc<Ways>) {
    let desc = bdev::open(base, !read_only).unwrap();
    let bs = desc.bdev().block_size();
    let mut p = BdevProps::new(uniq("Pt"), bs, blocks);
    p.max_rw_size = max_rw;
    let ways = Arc::new(Ways::default());
    let ops = Pt {
        desc,
        shift,
        ways: ways.clone(),
    };
    (Bdev::register(p, "pt_test", Box::new(ops)).unwrap(), ways)
}

fn malloc(blocks: u64) -> String {
    dma_env();
    let name = uniq("PtMalloc");
    bdev::malloc::create(bdev::malloc::MallocOpts::new(&name, blocks, 512)).unwrap();
    name
}

fn filled(byte: u8, blocks: usize) -> IoBuf {
    IoBuf::from_vec(vec![byte; blocks * 512])
}

#[test]
fn a_passed_request_keeps_its_buffer_and_counts_on_both_bdevs() {
    let base = malloc(256);
    let (top, ways) = pt_over(&base, 128, 64, false, 0);
    let d = bdev::open(top.name(), true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    d.write_blocks(&ch, filled(0x5a, 4), 8, 4, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 1);
    d.read_blocks(&ch, IoBuf::new(2048), 8, 4, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 2);
    assert!(statuses(&l).iter().all(|s| s.is_success()));
    let back = l.borrow_mut().pop().unwrap().data.into_buf().unwrap();
    assert!(
        back.iter().all(|&b| b == 0x5a),
        "read back what was written"
    );
    assert_eq!(ways.get(), (2, 0), "both passed through");
    // On the base, 64 blocks further in.
    let db = bdev::open(&base, false).unwrap();
    let cb = db.get_io_channel().unwrap();
    db.read_blocks(&cb, IoBuf::new(512), 64 + 11, 1, rec(&l))
        .unwrap();
    poll_until(&cb, || l.borrow().len() == 2);
    let c = l.borrow_mut().pop().unwrap();
    assert!(c.data.into_buf().unwrap().iter().all(|&b| b == 0x5a));
    let (t, b) = (top.iostat(), bdev::get_by_name(&base).unwrap().iostat());
    assert_eq!((t.num_write_ops, t.bytes_written), (1, 2048));
    assert_eq!((t.num_read_ops, t.bytes_read), (1, 2048));
    assert_eq!((b.num_write_ops, b.bytes_written), (1, 2048));
    assert_eq!(
        (b.num_read_ops, b.bytes_read),
        (2, 2560),
        "the pass-through's read and ours"
    );
    assert_eq!(ch.outstanding(), 0);
}

#[test]
fn what_the_base_channel_must_see_whole_takes_the_ordinary_path() {
    // A read-only base: a write is not passed, and the descriptor refuses it.
    let base = malloc(64);
    let (ro, ways) = pt_over(&base, 64, 0, true, 0);
    let d = bdev::open(ro.name(), true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    d.write_blocks(&ch, filled(1, 1), 0, 1, rec(&l)).unwrap();
    d.read_blocks(&ch, IoBuf::new(512), 0, 1, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 2);
    assert_eq!(statuses(&l), vec![IoStatus::Failed, IoStatus::Success]);
    assert_eq!(ways.get(), (1, 1));
    drop((ch, d));
    ro.unregister();

    // A base that splits at 4 blocks: an 8-block read goes whole to the base,
    // whose two pieces the base's own module passes on to the malloc.
    let base = malloc(64);
    let (mid, mid_ways) = pt_over(&base, 64, 0, false, 4);
    let (top, ways) = pt_over(mid.name(), 64, 0, false, 0);
    let d = bdev::open(top.name(), true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    d.write_blocks(&ch, filled(7, 8), 2, 8, rec(&l)).unwrap();
    d.read_blocks(&ch, IoBuf::new(4 * 512), 20, 4, rec(&l))
        .unwrap();
    poll_until(&ch, || l.borrow().len() == 2);
    assert!(statuses(&l).iter().all(|s| s.is_success()));
    assert_eq!(ways.get(), (1, 1), "the 8-block write went whole");
    assert_eq!(mid_ways.get(), (3, 0), "two pieces and the read passed");
    d.read_blocks(&ch, IoBuf::new(8 * 512), 2, 8, rec(&l))
        .unwrap();
    poll_until(&ch, || l.borrow().len() == 3);
    let back = l.borrow_mut().pop().unwrap().data.into_buf().unwrap();
    assert!(back.iter().all(|&b| b == 7), "the split write landed");

    // A range lock held on the base: writes wait behind it on the ordinary
    // path; reads, which it does not fence, still pass.
    let base = malloc(64);
    let (top, ways) = pt_over(&base, 64, 0, false, 0);
    let d = bdev::open(top.name(), true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let db = bdev::open(&base, true).unwrap();
    let cb = db.get_io_channel().unwrap();
    let locked = std::rc::Rc::new(std::cell::Cell::new(false));
    let lk = locked.clone();
    db.lock_lba_range(&cb, 0, 16, move |r| {
        r.unwrap();
        lk.set(true)
    })
    .unwrap();
    poll_until(&cb, || locked.get());
    let l = log();
    d.write_blocks(&ch, filled(9, 1), 3, 1, rec(&l)).unwrap();
    d.read_blocks(&ch, IoBuf::new(512), 3, 1, rec(&l)).unwrap();
    for _ in 0..1000 {
        ch.poll();
        cb.poll();
    }
    assert_eq!(
        statuses(&l),
        vec![IoStatus::Success],
        "only the read is done"
    );
    assert_eq!(ways.get(), (1, 1));
    db.unlock_lba_range(&cb, 0, 16).unwrap();
    for _ in 0..100_000 {
        if l.borrow().len() == 2 {
            break;
        }
        ch.poll();
        cb.poll();
    }
    assert_eq!(
        statuses(&l),
        vec![IoStatus::Success; 2],
        "the write went on after the unlock"
    );
}

#[test]
fn nomem_from_the_base_module_is_retried_by_the_virtual_bdev_channel() {
    let base = malloc(64);
    let ee = error_inject::create(ErrorOpts::new(base)).unwrap();
    let (top, ways) = pt_over(ee.name(), 64, 0, false, 0);
    let d = bdev::open(top.name(), true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    d.write_blocks(&ch, filled(3, 2), 4, 2, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 1);
    error_inject::inject_error(ee.name(), None, ErrorType::Nomem, 5).unwrap();
    for i in 0..3 {
        d.read_blocks(&ch, IoBuf::new(512), 4 + i % 2, 1, rec(&l))
            .unwrap();
    }
    poll_until(&ch, || l.borrow().len() == 4);
    assert!(
        statuses(&l).iter().all(|s| s.is_success()),
        "NOMEM is retried, never reported"
    );
    assert!(l.borrow()[1..].iter().all(|c| c.data.len() == 512));
    let (passed, whole) = ways.get();
    assert_eq!((passed, whole), (4 + 5, 0), "each retry passed again");
    let (t, e) = (top.iostat(), ee.iostat());
    assert_eq!(
        (t.num_read_ops, e.num_read_ops),
        (3, 3),
        "NOMEM not counted"
    );
    assert_eq!((t.num_io_errors, e.num_io_errors), (0, 0));
}

#[test]
fn a_reset_of_the_base_aborts_the_passed_requests_it_holds() {
    let base = malloc(64);
    let ee = error_inject::create(ErrorOpts::new(base)).unwrap();
    let de = bdev::open(ee.name(), true).unwrap();
    let ce = de.get_io_channel().unwrap();
    let (top, ways) = pt_over(ee.name(), 64, 0, false, 0);
    let d = bdev::open(top.name(), true).unwrap();
    let ch = d.get_io_channel().unwrap();
    error_inject::inject_error(ee.name(), Some(IoType::Read), ErrorType::Pending, 2).unwrap();
    let l = log();
    d.read_blocks(&ch, IoBuf::new(512), 0, 1, rec(&l)).unwrap();
    d.read_blocks(&ch, IoBuf::new(512), 1, 1, rec(&l)).unwrap();
    for _ in 0..100 {
        ch.poll();
    }
    assert!(l.borrow().is_empty(), "held by the error bdev");
    assert_eq!(ch.outstanding(), 2);
    let r = log();
    de.reset(&ce, rec(&r)).unwrap();
    for _ in 0..100_000 {
        if l.borrow().len() == 2 && r.borrow().len() == 1 {
            break;
        }
        ce.poll();
        ch.poll();
    }
    assert_eq!(statuses(&r), vec![IoStatus::Success], "the base's reset");
    assert_eq!(statuses(&l), vec![IoStatus::Aborted; 2]);
    assert!(
        l.borrow().iter().all(|c| c.data.len() == 512),
        "buffers come back"
    );
    assert_eq!(ways.get(), (2, 0));
    d.read_blocks(&ch, IoBuf::new(512), 2, 1, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 3);
    assert_eq!(
        l.borrow()[2].status,
        IoStatus::Success,
        "passes again after the thaw"
    );
    assert_eq!(ways.get(), (3, 0));
}

#[test]
fn removing_the_base_completes_each_passed_request_once() {
    let base = malloc(64);
    let ee = error_inject::create(ErrorOpts::new(base.clone())).unwrap();
    let (top, ways) = pt_over(ee.name(), 64, 0, false, 0);
    let d = bdev::open(top.name(), true).unwrap();
    let ch = d.get_io_channel().unwrap();
    error_inject::inject_error(ee.name(), None, ErrorType::Pending, 4).unwrap();
    let l = log();
    for i in 0..4 {
        d.write_blocks(&ch, filled(i as u8, 1), i, 1, rec(&l))
            .unwrap();
    }
    for _ in 0..100 {
        ch.poll();
    }
    assert!(l.borrow().is_empty(), "held by the error bdev");
    bdev::get_by_name(&base).unwrap().unregister();
    assert!(
        bdev::get_by_name(ee.name()).is_none(),
        "the error bdev went with its base"
    );
    poll_until(&ch, || l.borrow().len() >= 4);
    for _ in 0..100 {
        ch.poll();
    }
    let mut offs: Vec<u64> = l.borrow().iter().map(|c| c.offset_blocks).collect();
    offs.sort();
    assert_eq!(offs, vec![0, 1, 2, 3], "each I/O completed exactly once");
    assert!(statuses(&l).iter().all(|s| *s == IoStatus::Aborted));
    assert!(
        l.borrow().iter().all(|c| c.data.len() == 512),
        "buffers come back"
    );
    assert_eq!(ways.get(), (4, 0));
    // Its base gone, the next one is not passed and fails.
    d.write_blocks(&ch, filled(9, 1), 5, 1, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 5);
    assert_eq!(l.borrow()[4].status, IoStatus::Failed);
    assert_eq!(ways.get(), (4, 1));
    assert_eq!(ch.outstanding(), 0);
}

#[test]
fn closing_the_virtual_channel_lets_the_base_finish_its_passed_requests_first() {
    let base = malloc(64);
    let (top, _ways) = pt_over(&base, 64, 0, false, 0);
    let d = bdev::open(top.name(), true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    for i in 0..3 {
        d.write_blocks(&ch, filled(1, 1), i, 1, rec(&l)).unwrap();
    }
    // Closed with all three in flight (nobody polled).
    drop(ch);
    let b = bdev::get_by_name(&base).unwrap().iostat();
    assert_eq!(
        b.num_write_ops, 3,
        "the base finished them before the buffers went"
    );
}
