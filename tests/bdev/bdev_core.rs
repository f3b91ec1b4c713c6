//! The bdev core: registry, descriptors, claims, argument checks,
//! completion rules and statistics, over the null and malloc modules.

use crate::common;

use common::*;
use spdk_io::bdev::{
    self, malloc::MallocOpts, null::NullOpts, BdevError, IoBuf, IoData, IoStatus, IoType,
};
use spdk_io::thread::Thread;
use std::cell::Cell;
use std::rc::Rc;

fn null(name: &str, blocks: u64) -> std::sync::Arc<bdev::Bdev> {
    bdev::null::create(NullOpts::new(name, blocks, 512)).unwrap()
}

fn malloc(name: &str, blocks: u64, bs: u32) -> std::sync::Arc<bdev::Bdev> {
    dma_env();
    bdev::malloc::create(MallocOpts::new(name, blocks, bs)).unwrap()
}

#[test]
fn opening_an_unknown_bdev_is_not_found() {
    let e = bdev::open("no_such_bdev_here", false).err().unwrap();
    assert_eq!(e, BdevError::NotFound("no_such_bdev_here".into()));
    assert!(e.to_string().contains("no_such_bdev_here"));
}

#[test]
fn bdev_is_found_by_name_alias_and_uuid() {
    let n = uniq("Null");
    let b = null(&n, 1024);
    assert!(bdev::get_by_name(&n).is_some());
    assert!(bdev::get_by_name(&b.uuid().to_string()).is_some());
    let dup = bdev::null::create(NullOpts::new(n.clone(), 8, 512));
    assert_eq!(dup.err(), Some(BdevError::Exists(n.clone())));
    b.unregister();
    assert!(bdev::get_by_name(&n).is_none());
}

#[test]
fn write_through_read_only_desc_is_rejected_and_hands_the_buffer_back() {
    let n = uniq("Null");
    null(&n, 1024);
    let d = bdev::open(&n, false).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    let r = d
        .write_blocks(&ch, IoBuf::new(512), 0, 1, rec(&l))
        .unwrap_err();
    assert!(matches!(
        r.error,
        BdevError::ReadOnly {
            io_type: IoType::Write,
            ..
        }
    ));
    assert_eq!(r.data.len(), 512);
    assert!(r.cb.is_some());
    ch.poll();
    assert!(l.borrow().is_empty(), "a rejected I/O never completes");
}

#[test]
fn out_of_range_unaligned_and_wrong_length_io_are_rejected() {
    let n = uniq("Null");
    null(&n, 100);
    let d = bdev::open(&n, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    let e = d
        .read_blocks(&ch, IoBuf::new(1024), 99, 2, rec(&l))
        .unwrap_err()
        .error;
    assert!(
        matches!(
            e,
            BdevError::OutOfRange {
                offset_blocks: 99,
                num_blocks: 2,
                bdev_blocks: 100,
                ..
            }
        ),
        "{e}"
    );
    let e = d
        .read_blocks(&ch, IoBuf::new(512), u64::MAX, 1, rec(&l))
        .unwrap_err()
        .error;
    assert!(matches!(e, BdevError::OutOfRange { .. }));
    let e = d
        .read(&ch, IoBuf::new(512), 100, rec(&l))
        .unwrap_err()
        .error;
    assert!(
        matches!(
            e,
            BdevError::Unaligned {
                what: "offset",
                value: 100,
                ..
            }
        ),
        "{e}"
    );
    let e = d.read(&ch, IoBuf::new(500), 0, rec(&l)).unwrap_err().error;
    assert!(
        matches!(e, BdevError::Unaligned { what: "length", .. }),
        "{e}"
    );
    let e = d
        .read_blocks(&ch, IoBuf::new(512), 0, 2, rec(&l))
        .unwrap_err()
        .error;
    assert_eq!(
        e,
        BdevError::BufferLength {
            want: 1024,
            got: 512
        }
    );
    let e = d
        .read_blocks(&ch, IoBuf::new(0), 0, 0, rec(&l))
        .unwrap_err()
        .error;
    assert!(matches!(e, BdevError::OutOfRange { num_blocks: 0, .. }));
    let e = d
        .compare_blocks(&ch, IoBuf::new(512), 0, 1, rec(&l))
        .unwrap_err()
        .error;
    assert!(matches!(
        e,
        BdevError::Unsupported {
            io_type: IoType::Compare,
            ..
        }
    ));
    ch.poll();
    assert!(l.borrow().is_empty());
}

#[test]
fn a_channel_of_another_bdev_is_rejected() {
    let (a, b) = (uniq("Null"), uniq("Null"));
    null(&a, 8);
    null(&b, 8);
    let da = bdev::open(&a, false).unwrap();
    let chb = bdev::open(&b, false).unwrap().get_io_channel().unwrap();
    let e = da
        .read_blocks(&chb, IoBuf::new(512), 0, 1, Box::new(|_| {}))
        .unwrap_err()
        .error;
    assert!(matches!(e, BdevError::WrongChannel { .. }));
}

#[test]
fn second_claim_fails_and_claimed_bdev_cannot_be_opened_for_writing() {
    let n = uniq("Null");
    null(&n, 8);
    let d1 = bdev::open(&n, true).unwrap();
    d1.claim("vbdev_a").unwrap();
    let d2 = bdev::open(&n, false).unwrap();
    assert_eq!(
        d2.claim("vbdev_b"),
        Err(BdevError::Claimed {
            bdev: n.clone(),
            module: "vbdev_a".into()
        })
    );
    assert!(matches!(
        bdev::open(&n, true).err(),
        Some(BdevError::Claimed { .. })
    ));
    drop(d1);
    assert!(
        bdev::open(&n, true).is_ok(),
        "closing the claiming descriptor releases the claim"
    );
}

#[test]
fn completion_never_runs_inside_submit_but_on_the_next_poll() {
    let n = uniq("Null");
    null(&n, 64);
    let d = bdev::open(&n, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    d.write_blocks(
        &ch,
        IoBuf::new(512),
        3,
        1,
        Box::new(move |c: bdev::IoCompletion| {
            assert!(c.success());
            assert_eq!(
                (c.io_type, c.offset_blocks, c.num_blocks),
                (IoType::Write, 3, 1)
            );
            assert_eq!(c.data.len(), 512, "the buffer comes back");
            f.set(true);
        }),
    )
    .unwrap();
    assert!(!fired.get());
    assert_eq!(ch.outstanding(), 1);
    assert_eq!(ch.poll(), 1);
    assert!(fired.get());
    assert_eq!(ch.outstanding(), 0);
}

#[test]
fn iostat_counts_ops_bytes_and_latency_per_channel_and_per_bdev() {
    let n = uniq("Null");
    let b = null(&n, 64);
    let d = bdev::open(&n, true).unwrap();
    let l = log();
    {
        let ch = d.get_io_channel().unwrap();
        for i in 0..4 {
            d.read_blocks(&ch, IoBuf::new(1024), i * 2, 2, rec(&l))
                .unwrap();
        }
        d.write_blocks(&ch, IoBuf::new(512), 0, 1, rec(&l)).unwrap();
        d.unmap_blocks(&ch, 0, 8, rec(&l)).unwrap();
        d.flush_blocks(&ch, 0, 64, rec(&l)).unwrap();
        poll_until(&ch, || l.borrow().len() == 7);
        let s = ch.iostat();
        assert_eq!((s.num_read_ops, s.bytes_read), (4, 4096));
        assert_eq!((s.num_write_ops, s.bytes_written), (1, 512));
        assert_eq!((s.num_unmap_ops, s.bytes_unmapped), (1, 4096));
        assert_eq!(s.num_other_ops, 1);
        assert!(s.max_read_latency_ticks >= s.min_read_latency_ticks);
    }
    let ch2 = d.get_io_channel().unwrap();
    d.read_blocks(&ch2, IoBuf::new(512), 0, 1, rec(&l)).unwrap();
    poll_until(&ch2, || l.borrow().len() == 8);
    let total = b.iostat();
    assert_eq!(
        total.num_read_ops, 5,
        "a closed channel's counts stay in the bdev's total"
    );
}

#[test]
fn malloc_reads_back_what_was_written_including_vectored_io() {
    let n = uniq("Malloc");
    malloc(&n, 256, 512);
    let d = bdev::open(&n, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    let mut w = IoBuf::new(2048);
    w.iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i % 251) as u8);
    let expect = w.to_vec();
    d.write_blocks(&ch, w, 10, 4, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 1);
    d.readv_blocks(
        &ch,
        vec![
            IoBuf::from_vec(vec![0; 512]),
            IoBuf::from_vec(vec![0; 1536]),
        ],
        10,
        4,
        rec(&l),
    )
    .unwrap();
    poll_until(&ch, || l.borrow().len() == 2);
    let c = l.borrow_mut().pop().unwrap();
    assert!(c.success());
    let got: Vec<u8> = c.data.into_bufs().iter().flat_map(|b| b.to_vec()).collect();
    assert_eq!(got, expect);
}

#[test]
fn malloc_compare_unmap_write_zeroes_and_compare_and_write() {
    let n = uniq("Malloc");
    malloc(&n, 64, 4096);
    let d = bdev::open(&n, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    let ones = || IoBuf::from_vec(vec![1u8; 4096]);
    d.write_blocks(&ch, ones(), 5, 1, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 1);
    d.compare_blocks(&ch, ones(), 5, 1, rec(&l)).unwrap();
    d.compare_blocks(&ch, IoBuf::new(4096), 5, 1, rec(&l))
        .unwrap();
    poll_until(&ch, || l.borrow().len() == 3);
    assert_eq!(statuses(&l)[1..], [IoStatus::Success, IoStatus::Miscompare]);
    // compare-and-write: a matching compare writes, a stale one does not.
    d.compare_and_write_blocks(&ch, ones(), IoBuf::from_vec(vec![2; 4096]), 5, 1, rec(&l))
        .unwrap();
    d.compare_and_write_blocks(&ch, ones(), IoBuf::from_vec(vec![3; 4096]), 5, 1, rec(&l))
        .unwrap();
    poll_until(&ch, || l.borrow().len() == 5);
    assert_eq!(statuses(&l)[3..], [IoStatus::Success, IoStatus::Miscompare]);
    d.compare_blocks(&ch, IoBuf::from_vec(vec![2; 4096]), 5, 1, rec(&l))
        .unwrap();
    d.write_zeroes_blocks(&ch, 5, 1, rec(&l)).unwrap();
    d.compare_blocks(&ch, IoBuf::new(4096), 5, 1, rec(&l))
        .unwrap();
    d.write_blocks(&ch, ones(), 6, 1, rec(&l)).unwrap();
    d.unmap_blocks(&ch, 6, 1, rec(&l)).unwrap();
    d.compare_blocks(&ch, IoBuf::new(4096), 6, 1, rec(&l))
        .unwrap();
    poll_until(&ch, || l.borrow().len() == 11);
    assert!(
        statuses(&l)[5..].iter().all(|s| *s == IoStatus::Success),
        "{:?}",
        statuses(&l)
    );
}

#[test]
fn malloc_io_takes_effect_and_completes_in_submission_order() {
    // Reads of a whole request wait for the channel's next poll (their
    // copies overlap there); anything submitted after them must still see
    // the disk as if each I/O ran in turn, and complete in that order.
    let n = uniq("Malloc");
    malloc(&n, 64, 4096);
    let d = bdev::open(&n, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    d.write_blocks(&ch, filled(4096, 1), 7, 1, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 1);
    // Before the next poll: read (old data), write, read (new data), a
    // batch of reads of other blocks, a zeroing, a read of the zeroes.
    d.read_blocks(&ch, IoBuf::new(4096), 7, 1, rec(&l)).unwrap();
    d.write_blocks(&ch, filled(4096, 2), 7, 1, rec(&l)).unwrap();
    d.read_blocks(&ch, IoBuf::new(4096), 7, 1, rec(&l)).unwrap();
    for b in 0..5 {
        d.read_blocks(&ch, IoBuf::new(4096), 20 + b, 1, rec(&l))
            .unwrap();
    }
    d.write_zeroes_blocks(&ch, 7, 1, rec(&l)).unwrap();
    d.read_blocks(&ch, filled(4096, 9), 7, 1, rec(&l)).unwrap();
    assert_eq!(ch.outstanding(), 10);
    poll_until(&ch, || l.borrow().len() == 11);
    assert_eq!(ch.outstanding(), 0);
    let done = l.borrow();
    let order: Vec<(IoType, u64)> = done[1..]
        .iter()
        .map(|c| (c.io_type, c.offset_blocks))
        .collect();
    let mut want = vec![(IoType::Read, 7), (IoType::Write, 7), (IoType::Read, 7)];
    want.extend((0..5).map(|b| (IoType::Read, 20 + b)));
    want.extend([(IoType::WriteZeroes, 7), (IoType::Read, 7)]);
    assert_eq!(order, want, "completions in submission order");
    assert!(done.iter().all(|c| c.success()));
    let bytes = |i: usize| match &done[i].data {
        IoData::Buf(b) => b.to_vec(),
        other => panic!("read {i} handed back {other:?}"),
    };
    assert_eq!(bytes(1), vec![1; 4096], "the read before the write");
    assert_eq!(bytes(3), vec![2; 4096], "the read after the write");
    assert_eq!(bytes(4), vec![0; 4096], "a block never written");
    assert_eq!(bytes(10), vec![0; 4096], "the read after the zeroing");
}

#[test]
fn io_wait_entry_runs_when_the_pool_frees_up() {
    let n = uniq("Null");
    null(&n, 64);
    let d = bdev::open(&n, true).unwrap();
    let ch = d.get_io_channel_sized(4).unwrap();
    let l = log();
    for i in 0..4 {
        d.read_blocks(&ch, IoBuf::new(512), i, 1, rec(&l)).unwrap();
    }
    let r = d
        .read_blocks(&ch, IoBuf::new(512), 4, 1, rec(&l))
        .unwrap_err();
    assert_eq!(r.error, BdevError::NoMem);
    let (d2, ch2, l2) = (d.clone(), ch.clone(), l.clone());
    let buf = r.data;
    ch.queue_io_wait(move || {
        d2.submit(&ch2, IoType::Read, 4, 1, buf, rec(&l2)).unwrap();
    });
    poll_until(&ch, || l.borrow().len() == 5);
    assert_eq!(l.borrow()[4].offset_blocks, 4);
    assert!(statuses(&l).iter().all(|s| s.is_success()));
}

#[test]
fn unregister_notifies_every_open_descriptor_and_fails_new_io() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let n = uniq("Null");
    let b = null(&n, 64);
    let hits = Arc::new(AtomicU32::new(0));
    let (h1, h2) = (hits.clone(), hits.clone());
    let d1 = bdev::open_ext(&n, true, move |ev, _| {
        assert_eq!(ev, bdev::BdevEvent::Remove);
        h1.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let _d2 = bdev::open_ext(&n, false, move |_, _| {
        h2.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let ch = d1.get_io_channel().unwrap();
    b.unregister();
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let e = d1
        .read_blocks(&ch, IoBuf::new(512), 0, 1, Box::new(|_| {}))
        .unwrap_err()
        .error;
    assert_eq!(e, BdevError::Removed(n.clone()));
    assert!(bdev::open(&n, false).is_err());
}

#[test]
fn dropped_future_still_completes_and_frees_its_request() {
    let n = uniq("Null");
    null(&n, 64);
    let d = bdev::open(&n, true).unwrap();
    let ch = d.get_io_channel_sized(2).unwrap();
    let f = d.submit_async(&ch, IoType::Read, 0, 1, IoData::Buf(IoBuf::new(512)));
    drop(f);
    ch.poll();
    assert_eq!(ch.outstanding(), 0);
}

#[test]
fn get_io_channel_returns_the_threads_channel_while_it_lives() {
    let n = uniq("Null");
    null(&n, 64);
    let d = bdev::open(&n, true).unwrap();
    let (t1, t2) = (Thread::new("first"), Thread::new("second"));
    let (a, b) = t1.enter(|| {
        let a = d.get_io_channel().unwrap();
        let b = bdev::open(&n, false).unwrap().get_io_channel().unwrap();
        (a, b)
    });
    d.read_blocks(&a, IoBuf::new(512), 0, 1, Box::new(|_| {}))
        .unwrap();
    assert_eq!(b.outstanding(), 1, "one channel per bdev per thread");
    let other = t2.enter(|| d.get_io_channel().unwrap());
    assert_eq!(
        other.outstanding(),
        0,
        "another thread gets its own channel"
    );
    while t1.poll(0) {}
    t1.enter(|| drop((a, b)));
    t2.enter(|| drop(other));
    t1.poll(0);
    let c = t1.enter(|| d.get_io_channel().unwrap());
    assert_eq!(
        c.iostat().num_read_ops,
        0,
        "a new channel once the old one is gone"
    );
    t1.enter(|| drop(c));
    // Outside any lightweight thread there is no thread to share with.
    let (x, y) = (d.get_io_channel().unwrap(), d.get_io_channel().unwrap());
    d.read_blocks(&x, IoBuf::new(512), 0, 1, Box::new(|_| {}))
        .unwrap();
    assert_eq!(
        y.outstanding(),
        0,
        "outside threads each call makes a channel"
    );
    x.poll();
    for t in [t1, t2] {
        t.shutdown().unwrap();
        t.destroy().unwrap();
    }
}
