//! Splitting at the module's max transfer size and optimal boundary, and
//! NOMEM retry, against a recording module written with the module API.

use crate::common;

use common::*;
use spdk_io::bdev::{
    self, Bdev, BdevOps, BdevProps, Completer, IoBuf, IoRequest, IoStatus, IoType, ModuleChannel,
};
use std::sync::{Arc, Mutex};

/// Records every request it gets; the first `nomem` requests report NOMEM.
struct Recorder {
    seen: Arc<Mutex<Vec<(u64, u64)>>>,
    nomem: Arc<Mutex<u32>>,
}

struct RecorderChannel {
    seen: Arc<Mutex<Vec<(u64, u64)>>>,
    nomem: Arc<Mutex<u32>>,
    done: Completer,
}

impl ModuleChannel for RecorderChannel {
    fn submit_request(&mut self, mut io: IoRequest<'_>) {
        let mut n = self.nomem.lock().unwrap();
        if *n > 0 {
            *n -= 1;
            self.done.complete(io.id, IoStatus::NoMem);
            return;
        }
        self.seen
            .lock()
            .unwrap()
            .push((io.offset_blocks, io.num_blocks));
        // Stamp each block of a read with its block number.
        if io.io_type == IoType::Read {
            let (first, bs) = (io.offset_blocks, io.block_size as usize);
            let mut at = 0usize;
            io.for_each_mut(|seg| {
                for (i, b) in seg.iter_mut().enumerate() {
                    *b = (first + ((at + i) / bs) as u64) as u8;
                }
                at += seg.len();
            });
        }
        self.done.complete(io.id, IoStatus::Success);
    }
}

impl BdevOps for Recorder {
    fn io_type_supported(&self, t: IoType) -> bool {
        matches!(t, IoType::Read | IoType::Write)
    }
    fn get_io_channel(&self, done: Completer) -> bdev::Result<Box<dyn ModuleChannel>> {
        Ok(Box::new(RecorderChannel {
            seen: self.seen.clone(),
            nomem: self.nomem.clone(),
            done,
        }))
    }
}

type Seen = Arc<Mutex<Vec<(u64, u64)>>>;

fn recorder(max_rw: u64, boundary: u64, nomem: u32) -> (Arc<Bdev>, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut p = BdevProps::new(uniq("Rec"), 512, 1024);
    p.max_rw_size = max_rw;
    p.optimal_io_boundary = boundary;
    p.split_on_optimal_io_boundary = boundary != 0;
    let b = Bdev::register(
        p,
        "recorder",
        Box::new(Recorder {
            seen: seen.clone(),
            nomem: Arc::new(Mutex::new(nomem)),
        }),
    )
    .unwrap();
    (b, seen)
}

#[test]
fn io_larger_than_max_rw_size_is_split_into_max_sized_pieces() {
    let (b, seen) = recorder(8, 0, 0);
    let d = bdev::open(b.name(), true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    d.read_blocks(&ch, IoBuf::new(20 * 512), 3, 20, rec(&l))
        .unwrap();
    poll_until(&ch, || l.borrow().len() == 1);
    assert_eq!(*seen.lock().unwrap(), vec![(3, 8), (11, 8), (19, 4)]);
    let c = l.borrow_mut().pop().unwrap();
    assert!(c.success());
    assert_eq!(
        (c.offset_blocks, c.num_blocks),
        (3, 20),
        "the caller sees one I/O"
    );
    let buf = c.data.into_buf().unwrap();
    for blk in 0..20 {
        assert_eq!(
            buf[blk * 512],
            (3 + blk) as u8,
            "each piece landed at its offset in the buffer"
        );
    }
    assert_eq!(ch.iostat().num_read_ops, 1);
}

#[test]
fn io_crossing_the_optimal_boundary_is_split_at_it() {
    let (b, seen) = recorder(0, 16, 0);
    let d = bdev::open(b.name(), true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    d.write_blocks(&ch, IoBuf::new(40 * 512), 10, 40, rec(&l))
        .unwrap();
    d.write_blocks(&ch, IoBuf::new(16 * 512), 32, 16, rec(&l))
        .unwrap();
    poll_until(&ch, || l.borrow().len() == 2);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(10, 6), (16, 16), (32, 16), (48, 2), (32, 16)]
    );
}

#[test]
fn vectored_io_is_split_across_buffer_edges() {
    let (b, seen) = recorder(3, 0, 0);
    let d = bdev::open(b.name(), true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    let bufs = vec![IoBuf::new(512), IoBuf::new(2048), IoBuf::new(1024)];
    d.readv_blocks(&ch, bufs, 0, 7, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 1);
    assert_eq!(*seen.lock().unwrap(), vec![(0, 3), (3, 3), (6, 1)]);
    let c = l.borrow_mut().pop().unwrap();
    let bytes: Vec<u8> = c.data.into_bufs().iter().flat_map(|b| b.to_vec()).collect();
    let firsts: Vec<u8> = bytes.chunks(512).map(|c| c[0]).collect();
    assert_eq!(firsts, vec![0, 1, 2, 3, 4, 5, 6]);
}

#[test]
fn split_continues_when_the_pool_is_smaller_than_the_piece_count() {
    let (b, seen) = recorder(1, 0, 0);
    let d = bdev::open(b.name(), true).unwrap();
    let ch = d.get_io_channel_sized(3).unwrap();
    let l = log();
    d.read_blocks(&ch, IoBuf::new(10 * 512), 0, 10, rec(&l))
        .unwrap();
    poll_until(&ch, || l.borrow().len() == 1);
    assert!(l.borrow()[0].success());
    assert_eq!(seen.lock().unwrap().len(), 10);
    assert_eq!(ch.free_requests(), 3);
}

#[test]
fn nomem_completion_is_retried_after_io_drains_and_succeeds() {
    let (b, seen) = recorder(0, 0, 3);
    let d = bdev::open(b.name(), true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    for i in 0..5 {
        d.read_blocks(&ch, IoBuf::new(512), i, 1, rec(&l)).unwrap();
    }
    poll_until(&ch, || l.borrow().len() == 5);
    assert!(
        statuses(&l).iter().all(|s| s.is_success()),
        "the submitter never sees NOMEM"
    );
    let mut offs: Vec<u64> = seen.lock().unwrap().iter().map(|s| s.0).collect();
    offs.sort();
    assert_eq!(
        offs,
        vec![0, 1, 2, 3, 4],
        "every I/O reached the module exactly once successfully"
    );
}

#[test]
fn a_request_reused_after_being_a_split_piece_reads_into_its_own_buffer_start() {
    let (b, _seen) = recorder(2, 0, 0);
    let d = bdev::open(b.name(), true).unwrap();
    let ch = d.get_io_channel_sized(2).unwrap();
    let l = log();
    // Parent in one request, its pieces (at byte offsets 1024, 2048...) in the other.
    d.read_blocks(&ch, IoBuf::new(6 * 512), 0, 6, rec(&l))
        .unwrap();
    poll_until(&ch, || l.borrow().len() == 1);
    for i in 0..2 {
        d.read_blocks(&ch, IoBuf::new(512), 9 + i, 1, rec(&l))
            .unwrap();
    }
    poll_until(&ch, || l.borrow().len() == 3);
    for c in l.borrow_mut().drain(1..) {
        let buf = c.data.into_buf().unwrap();
        assert_eq!(
            buf[0], c.offset_blocks as u8,
            "data landed at the start of the buffer"
        );
    }
}
