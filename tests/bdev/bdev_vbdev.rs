//! Virtual bdevs: split, passthru and error injection over malloc, NOMEM
//! retry through a vbdev, and hot remove with I/O in flight; the layer's
//! pass-through from a virtual bdev to its base (`pass_through`).

use crate::common;
mod pass_through;

use common::*;
use spdk_io::bdev::error_inject::{self, ErrorOpts, ErrorType};
use spdk_io::bdev::{
    self, malloc::MallocOpts, passthru::PassthruOpts, split::SplitOpts, BdevError, IoBuf, IoStatus,
    IoType,
};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

fn malloc(name: &str, blocks: u64) {
    dma_env();
    bdev::malloc::create(MallocOpts::new(name, blocks, 512)).unwrap();
}

/// An error-injection vbdev over a new malloc bdev of 64 blocks.
fn error_over_malloc() -> Arc<bdev::Bdev> {
    let base = uniq("Malloc");
    malloc(&base, 64);
    error_inject::create(ErrorOpts::new(base)).unwrap()
}

#[test]
fn split_parts_map_to_consecutive_ranges_of_the_base() {
    let base = uniq("Malloc");
    malloc(&base, 1024);
    let parts = bdev::split::create(SplitOpts::new(base.clone(), 4)).unwrap();
    assert_eq!(parts.len(), 4);
    assert_eq!(parts[2].name(), format!("{base}p2"));
    assert_eq!(parts[2].num_blocks(), 256);
    assert_eq!(
        bdev::get_by_name(&base).unwrap().claimed_by().as_deref(),
        Some("split")
    );
    // Write through part 2, read through the base at 2 * 256 + 7.
    let dp = bdev::open(parts[2].name(), true).unwrap();
    let cp = dp.get_io_channel().unwrap();
    let l = log();
    dp.write_blocks(&cp, IoBuf::from_vec(vec![0xab; 512]), 7, 1, rec(&l))
        .unwrap();
    poll_until(&cp, || l.borrow().len() == 1);
    let db = bdev::open(&base, false).unwrap();
    let cb = db.get_io_channel().unwrap();
    db.read_blocks(&cb, IoBuf::new(512), 512 + 7, 1, rec(&l))
        .unwrap();
    poll_until(&cb, || l.borrow().len() == 2);
    let c = l.borrow_mut().pop().unwrap();
    assert!(c.data.into_buf().unwrap().iter().all(|&b| b == 0xab));
    // A part is bounded by its own size.
    let e = dp
        .read_blocks(&cp, IoBuf::new(512), 256, 1, rec(&l))
        .unwrap_err()
        .error;
    assert!(matches!(e, BdevError::OutOfRange { .. }));
    // Claimed base cannot be opened for writing.
    assert!(matches!(
        bdev::open(&base, true).err(),
        Some(BdevError::Claimed { .. })
    ));
}

#[test]
fn passthru_forwards_io_and_waits_for_a_missing_base() {
    let base = uniq("Malloc");
    let pt = uniq("PT");
    let made = bdev::passthru::create(PassthruOpts::new(base.clone(), pt.clone())).unwrap();
    assert!(made.is_none(), "created later, when the base appears");
    malloc(&base, 128);
    let b = bdev::get_by_name(&pt).expect("examine created the passthru");
    assert_eq!(b.num_blocks(), 128);
    let d = bdev::open(&pt, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    d.write_blocks(&ch, IoBuf::from_vec(vec![7; 1024]), 10, 2, rec(&l))
        .unwrap();
    poll_until(&ch, || l.borrow().len() == 1);
    d.read_blocks(&ch, IoBuf::new(1024), 10, 2, rec(&l))
        .unwrap();
    d.compare_blocks(&ch, IoBuf::from_vec(vec![7; 1024]), 10, 2, rec(&l))
        .unwrap();
    d.flush_blocks(&ch, 0, 128, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 4);
    assert!(statuses(&l).iter().all(|s| s.is_success()));
    assert!(l.borrow()[1].data.len() == 1024);
    assert_eq!(b.iostat().num_write_ops, 1);
    assert_eq!(bdev::get_by_name(&base).unwrap().iostat().num_read_ops, 1);
}

#[test]
fn injected_failure_and_nomem_through_the_error_vbdev() {
    let ee = error_over_malloc();
    let d = bdev::open(ee.name(), true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    error_inject::inject_error(ee.name(), Some(IoType::Write), ErrorType::Failure, 1).unwrap();
    d.write_blocks(&ch, IoBuf::new(512), 0, 1, rec(&l)).unwrap();
    d.write_blocks(&ch, IoBuf::new(512), 1, 1, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 2);
    assert_eq!(statuses(&l), vec![IoStatus::Failed, IoStatus::Success]);
    error_inject::inject_error(ee.name(), None, ErrorType::Nomem, 5).unwrap();
    for i in 0..3 {
        d.read_blocks(&ch, IoBuf::new(512), i, 1, rec(&l)).unwrap();
    }
    poll_until(&ch, || l.borrow().len() == 5);
    assert!(
        statuses(&l)[2..].iter().all(|s| s.is_success()),
        "NOMEM is retried, never reported"
    );
    assert_eq!(ee.iostat().num_io_errors, 1);
    assert!(error_inject::inject_error("nonexistent", None, ErrorType::Failure, 1).is_err());
}

#[test]
fn hot_remove_with_io_in_flight_completes_each_io_once_with_an_error() {
    let base = uniq("Malloc");
    malloc(&base, 64);
    let ee = error_inject::create(ErrorOpts::new(base.clone())).unwrap();
    let removed = Arc::new(AtomicU32::new(0));
    let r = removed.clone();
    let d = bdev::open_ext(ee.name(), true, move |ev, _| {
        assert_eq!(ev, bdev::BdevEvent::Remove);
        r.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    error_inject::inject_error(ee.name(), None, ErrorType::Pending, 8).unwrap();
    for i in 0..8 {
        d.write_blocks(&ch, IoBuf::new(512), i, 1, rec(&l)).unwrap();
    }
    for _ in 0..10 {
        ch.poll();
    }
    assert!(l.borrow().is_empty(), "held by the error bdev");
    assert_eq!(ch.outstanding(), 8);
    // The base goes away: the vbdev is unregistered, its user notified.
    bdev::get_by_name(&base).unwrap().unregister();
    assert_eq!(removed.load(Ordering::SeqCst), 1);
    assert!(bdev::get_by_name(ee.name()).is_none());
    poll_until(&ch, || l.borrow().len() >= 8);
    for _ in 0..10 {
        ch.poll();
    }
    let mut offs: Vec<u64> = l.borrow().iter().map(|c| c.offset_blocks).collect();
    offs.sort();
    assert_eq!(
        offs,
        (0..8).collect::<Vec<_>>(),
        "each I/O completed exactly once"
    );
    assert!(statuses(&l).iter().all(|s| *s == IoStatus::Aborted));
    assert!(
        l.borrow().iter().all(|c| c.data.len() == 512),
        "buffers come back"
    );
    assert_eq!(ch.outstanding(), 0);
    let e = d
        .write_blocks(&ch, IoBuf::new(512), 0, 1, rec(&l))
        .unwrap_err()
        .error;
    assert!(matches!(e, BdevError::Removed(_)));
}

#[test]
fn reset_aborts_io_held_by_the_error_vbdev() {
    let ee = error_over_malloc();
    let d = bdev::open(ee.name(), true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    error_inject::inject_error(ee.name(), Some(IoType::Read), ErrorType::Pending, 2).unwrap();
    d.read_blocks(&ch, IoBuf::new(512), 0, 1, rec(&l)).unwrap();
    d.read_blocks(&ch, IoBuf::new(512), 1, 1, rec(&l)).unwrap();
    d.reset(&ch, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 3);
    let mut st = statuses(&l);
    st.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(
        st,
        vec![IoStatus::Aborted, IoStatus::Aborted, IoStatus::Success]
    );
}

/// A callback that waits for another I/O by polling its channel by hand
/// runs a poll nested in the outer one. The nested poll handles the newer
/// report before the rest of the outer batch; every I/O must still get its
/// own buffer back (the passthru returns buffers with its reports).
#[test]
fn a_poll_nested_in_a_callback_hands_each_io_its_own_buffer() {
    use spdk_io::bdev::{Channel, Desc, IoCompletion, IoDone};
    use std::cell::RefCell;
    use std::rc::Rc;

    let base = uniq("Malloc");
    malloc(&base, 64);
    let pt = uniq("PT");
    bdev::passthru::create(PassthruOpts::new(base, pt.clone())).unwrap();
    let d = bdev::open(&pt, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let io: Rc<(Desc, Channel)> = Rc::new((d, ch));
    // (the byte an I/O's buffer was filled with, the first byte it came back with)
    let got: Rc<RefCell<Vec<(u8, u8)>>> = Rc::new(RefCell::new(Vec::new()));
    let write = |byte: u8, lba: u64, cb: Box<dyn IoDone>| {
        let r =
            io.0.write_blocks(&io.1, IoBuf::from_vec(vec![byte; 512]), lba, 1, cb);
        assert!(r.is_ok(), "write {byte} not submitted");
    };
    let record = |byte: u8| -> Box<dyn IoDone> {
        let g = got.clone();
        Box::new(move |c: IoCompletion| {
            assert!(c.success());
            let b = c.data.into_buf().expect("the buffer comes back");
            g.borrow_mut().push((byte, b[0]));
        })
    };
    // The first write's callback submits a fourth and polls until it is done.
    let (g, io2, rec4) = (got.clone(), io.clone(), record(4));
    let first: Box<dyn IoDone> = Box::new(move |c: IoCompletion| {
        let b = c.data.into_buf().expect("the buffer comes back");
        g.borrow_mut().push((1, b[0]));
        let r = io2
            .0
            .write_blocks(&io2.1, IoBuf::from_vec(vec![4; 512]), 4, 1, rec4);
        assert!(r.is_ok(), "write 4 not submitted");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !g.borrow().iter().any(|&(w, _)| w == 4) {
            assert!(
                std::time::Instant::now() < deadline,
                "the nested I/O never completed"
            );
            io2.1.poll();
        }
    });
    write(1, 1, first);
    write(2, 2, record(2));
    write(3, 3, record(3));
    poll_until(&io.1, || got.borrow().len() == 4);
    let mut seen = got.borrow().clone();
    let order: Vec<u8> = seen.iter().map(|&(w, _)| w).collect();
    assert_eq!(
        order,
        [1, 4, 2, 3],
        "the nested poll ran inside the first callback"
    );
    seen.sort();
    assert_eq!(
        seen,
        [(1, 1), (2, 2), (3, 3), (4, 4)],
        "an I/O got another's buffer"
    );
}
