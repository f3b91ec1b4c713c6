//! `Desc::submit_from`: the data is taken from the caller's place,
//! whatever the outcome, and comes back with the completion or the
//! refusal; the pool's requests are reused in turn.

use crate::common;

use common::*;
use spdk_io::bdev::{self, null::NullOpts, BdevError, Channel, Desc, IoBuf, IoData, IoType};

/// A new null bdev of 64 blocks of 512 bytes, opened, and a channel to it.
fn null_channel() -> (Desc, Channel) {
    let n = uniq("Null");
    bdev::null::create(NullOpts::new(n.clone(), 64, 512)).unwrap();
    let d = bdev::open(&n, false).unwrap();
    let ch = d.get_io_channel().unwrap();
    (d, ch)
}

#[test]
fn submit_from_takes_the_data_and_the_completion_hands_it_back() {
    let (d, ch) = null_channel();
    let l = log();
    let mut data = IoData::Buf(IoBuf::new(1024));
    d.submit_from(&ch, IoType::Read, 4, 2, &mut data, rec(&l))
        .unwrap();
    assert!(
        matches!(data, IoData::None),
        "taken from the caller's place"
    );
    assert_eq!(ch.poll(), 1);
    let c = l.borrow_mut().pop().unwrap();
    assert!(c.success());
    assert_eq!((c.offset_blocks, c.num_blocks), (4, 2));
    assert_eq!(c.data.len(), 1024, "the buffer comes back");
    assert_eq!(ch.outstanding(), 0);
}

#[test]
fn submit_from_refused_hands_the_data_back_in_the_rejection() {
    let (d, ch) = null_channel();
    let l = log();
    // One block asked for, two blocks of buffer.
    let mut data = IoData::Buf(IoBuf::new(1024));
    let r = d
        .submit_from(&ch, IoType::Read, 0, 1, &mut data, rec(&l))
        .unwrap_err();
    assert!(matches!(
        r.error,
        BdevError::BufferLength {
            want: 512,
            got: 1024
        }
    ));
    assert!(matches!(data, IoData::None));
    assert_eq!(r.data.len(), 1024);
    assert!(r.cb.is_some());
    assert_eq!(ch.poll(), 0);
    assert!(l.borrow().is_empty(), "a refused I/O never completes");
}

#[test]
fn a_full_pool_refuses_with_nomem_and_every_freed_request_is_reused() {
    let (d, ch) = null_channel();
    let size = ch.pool_size();
    let l = log();
    for round in 0..3 {
        for i in 0..size {
            let mut data = IoData::Buf(IoBuf::new(512));
            d.submit_from(&ch, IoType::Read, (i % 64) as u64, 1, &mut data, rec(&l))
                .unwrap_or_else(|e| panic!("round {round}, I/O {i}: {e}"));
        }
        assert_eq!(ch.free_requests(), 0);
        let mut data = IoData::Buf(IoBuf::new(512));
        let r = d
            .submit_from(&ch, IoType::Read, 0, 1, &mut data, rec(&l))
            .unwrap_err();
        assert_eq!(r.error, BdevError::NoMem);
        assert_eq!(r.data.len(), 512);
        assert_eq!(ch.poll(), size);
        assert_eq!(ch.free_requests(), size);
        assert_eq!(l.borrow().len(), size * (round + 1));
    }
}
