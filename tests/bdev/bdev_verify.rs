//! Verify runs: many I/O in flight writing distinct patterns at random
//! offsets and reading them back, over malloc, split, passthru and file
//! bdevs, and from two OS threads at once on one malloc bdev.

use crate::common;

use common::*;
use spdk_io::bdev::{self, Channel, Desc, IoBuf, IoCompletion};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Writes `ios` random 1–8 block patterns (never two in flight on the same
/// blocks) with up to `qd` in flight, then reads every written extent back.
fn verify(desc: &Desc, ch: &Channel, first: u64, blocks: u64, ios: usize, qd: usize, seed: u64) {
    let bs = desc.bdev().block_size() as usize;
    let written: Rc<RefCell<HashMap<u64, u8>>> = Rc::default(); // block -> pattern byte
    let busy: Rc<RefCell<Vec<bool>>> = Rc::new(RefCell::new(vec![false; blocks as usize]));
    let errors = Rc::new(RefCell::new(Vec::<String>::new()));
    let (mut rng, mut issued, inflight) = (seed | 1, 0usize, Rc::new(RefCell::new(0usize)));
    while issued < ios || *inflight.borrow() > 0 {
        while issued < ios && *inflight.borrow() < qd {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let n = 1 + rng % 8;
            let off = rng % (blocks - n);
            if busy.borrow()[off as usize..(off + n) as usize]
                .iter()
                .any(|&b| b)
            {
                break;
            }
            busy.borrow_mut()[off as usize..(off + n) as usize].fill(true);
            let pat = (rng >> 40) as u8 | 1;
            let (w, b, inf) = (written.clone(), busy.clone(), inflight.clone());
            let errs = errors.clone();
            *inflight.borrow_mut() += 1;
            issued += 1;
            desc.write_blocks(
                ch,
                IoBuf::from_vec(vec![pat; n as usize * bs]),
                first + off,
                n,
                Box::new(move |c: IoCompletion| {
                    if c.success() {
                        for k in off..off + n {
                            w.borrow_mut().insert(k, pat);
                        }
                    } else {
                        errs.borrow_mut()
                            .push(format!("write at {off} failed: {:?}", c.status));
                    }
                    b.borrow_mut()[off as usize..(off + n) as usize].fill(false);
                    *inf.borrow_mut() -= 1;
                }),
            )
            .unwrap();
        }
        ch.poll();
    }
    assert!(errors.borrow().is_empty(), "{:?}", errors.borrow());
    let blocks_written: Vec<(u64, u8)> = written.borrow().iter().map(|(k, v)| (*k, *v)).collect();
    let l = log();
    for (k, _) in &blocks_written {
        while ch.free_requests() == 0 {
            ch.poll();
        }
        desc.read_blocks(ch, IoBuf::new(bs), first + k, 1, rec(&l))
            .unwrap();
    }
    poll_until(ch, || l.borrow().len() == blocks_written.len());
    let want: HashMap<u64, u8> = blocks_written.into_iter().collect();
    for c in l.borrow_mut().drain(..) {
        assert!(c.success());
        let k = c.offset_blocks - first;
        let buf = c.data.into_buf().unwrap();
        assert!(
            buf.iter().all(|&x| x == want[&k]),
            "block {k}: read back differs from the last write"
        );
    }
}

fn malloc(name: &str, blocks: u64) {
    dma_env();
    bdev::malloc::create({
        let mut o = bdev::malloc::MallocOpts::new(name, blocks, 512);
        o.optimal_io_boundary = 8;
        o
    })
    .unwrap();
}

#[test]
fn verify_over_malloc_split_and_passthru() {
    malloc("VerM0", 4096);
    malloc("VerM1", 2048);
    bdev::split::create(bdev::split::SplitOpts::new("VerM0", 2)).unwrap();
    bdev::passthru::create(bdev::passthru::PassthruOpts::new("VerM1", "VerPT")).unwrap();
    for (name, seed) in [("VerM0p0", 1), ("VerM0p1", 2), ("VerPT", 3)] {
        let d = bdev::open(name, true).unwrap();
        let ch = d.get_io_channel().unwrap();
        verify(&d, &ch, 0, d.bdev().num_blocks(), 3000, 32, seed);
    }
    let s = bdev::get_iostat_json(Some("VerPT")).unwrap();
    assert_eq!(s["bdevs"][0]["num_write_ops"], 3000);
    assert_eq!(s["tick_rate"], 1_000_000_000u64);
}

#[test]
fn verify_over_a_file_bdev() {
    let dir = std::env::temp_dir().join(format!("spdk-io-bdev-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("verify.img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    bdev::file::create(
        bdev::file::FileOpts::new("VerFile", path.display().to_string()),
        "bdev_aio_create",
    )
    .unwrap();
    let d = bdev::open("VerFile", true).unwrap();
    let ch = d.get_io_channel().unwrap();
    verify(&d, &ch, 0, d.bdev().num_blocks(), 1000, 16, 9);
    drop(ch);
    let _ = std::fs::remove_file(&path);
    // The directory goes with its last file (other tests may still use it).
    if let Some(d) = path.parent() {
        let _ = std::fs::remove_dir(d);
    }
}

#[test]
fn two_threads_verify_disjoint_halves_of_one_malloc_bdev() {
    malloc("VerShared", 8192);
    let workers: Vec<_> = (0..2u64)
        .map(|t| {
            std::thread::spawn(move || {
                let d = bdev::open("VerShared", true).unwrap();
                let ch = d.get_io_channel().unwrap();
                verify(&d, &ch, t * 4096, 4096, 3000, 32, 11 + t);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn two_threads_writing_interleaved_blocks_read_back_exactly_on_a_third() {
    // Thread t writes every block b with b % 2 == t, all in flight at once
    // with the other thread's writes to the neighbouring blocks; a third
    // thread then reads the whole disk back.
    const BLOCKS: u64 = 2048;
    malloc("VerInterleaved", BLOCKS);
    fn pattern(b: u64) -> u8 {
        (b as u8).wrapping_mul(31) | 1
    }
    let workers: Vec<_> = (0..2u64)
        .map(|t| {
            std::thread::spawn(move || {
                let d = bdev::open("VerInterleaved", true).unwrap();
                let ch = d.get_io_channel().unwrap();
                let l = log();
                for b in (t..BLOCKS).step_by(2) {
                    while ch.free_requests() == 0 {
                        ch.poll();
                    }
                    let buf = IoBuf::from_vec(vec![pattern(b); 512]);
                    d.write_blocks(&ch, buf, b, 1, rec(&l)).unwrap();
                    ch.poll();
                }
                poll_until(&ch, || l.borrow().len() == (BLOCKS / 2) as usize);
                assert!(l.borrow().iter().all(|c| c.success()));
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    std::thread::spawn(|| {
        let d = bdev::open("VerInterleaved", false).unwrap();
        let ch = d.get_io_channel().unwrap();
        let l = log();
        d.read_blocks(&ch, IoBuf::new(512 * BLOCKS as usize), 0, BLOCKS, rec(&l))
            .unwrap();
        poll_until(&ch, || l.borrow().len() == 1);
        let c = l.borrow_mut().pop().unwrap();
        assert!(c.success());
        let buf = c.data.into_buf().unwrap();
        for (b, block) in buf.chunks(512).enumerate() {
            let want = pattern(b as u64);
            assert!(
                block.iter().all(|&x| x == want),
                "block {b}: expected every byte {want:#x}"
            );
        }
    })
    .join()
    .unwrap();
}
