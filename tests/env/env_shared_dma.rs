//! `SharedDmaBuf`: DMA memory several OS threads copy into and out of at
//! once without a lock; out-of-range copies are errors, never panics.

use spdk_io::env::{self, EnvError, EnvOpts, SharedDmaBuf};
use std::sync::Arc;

fn setup() {
    env::init_once(EnvOpts::no_huge()).expect("env (no_huge)");
}

#[test]
fn new_shared_buffer_reads_back_zeroes_and_knows_its_iova() {
    setup();
    let m = SharedDmaBuf::alloc_zeroed(3 * 4096 + 100, 4096).unwrap();
    assert_eq!(m.len(), 3 * 4096 + 100);
    let mut all = vec![0xffu8; m.len()];
    m.read_at(0, &mut all).unwrap();
    assert!(all.iter().all(|&b| b == 0));
    assert_eq!(
        Some(m.iova_at(4096)),
        env::vtophys(m.as_ptr().wrapping_add(4096))
    );
}

#[test]
fn write_read_fill_zero_and_compare_round_trip() {
    setup();
    let m = SharedDmaBuf::alloc_zeroed(8192, 64).unwrap();
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 + 1) as u8).collect();
    m.write_at(1234, &data).unwrap();
    let mut back = vec![0u8; 3000];
    m.read_at(1234, &mut back).unwrap();
    assert_eq!(back, data);
    assert!(m.compare_at(1234, &data).unwrap());
    let mut other = data.clone();
    other[2999] ^= 1;
    assert!(!m.compare_at(1234, &other).unwrap());
    m.fill_zero(2000, 100).unwrap();
    m.read_at(1234, &mut back).unwrap();
    assert!(back[766..866].iter().all(|&b| b == 0));
    assert_eq!(back[765], data[765]);
    assert_eq!(back[866], data[866]);
}

#[test]
fn copies_beyond_the_end_are_out_of_bounds_errors_and_change_nothing() {
    setup();
    let m = SharedDmaBuf::alloc_zeroed(4096, 64).unwrap();
    let mut b = [0u8; 16];
    let e = m.read_at(4090, &mut b).unwrap_err();
    assert!(
        matches!(
            e,
            EnvError::OutOfBounds {
                off: 4090,
                len: 16,
                size: 4096
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("4096"), "{e}");
    assert!(m.write_at(4081, &[1u8; 16]).is_err());
    assert!(m.write_at(usize::MAX, &[1u8; 2]).is_err());
    assert!(m.fill_zero(1, usize::MAX).is_err());
    assert!(m.compare_at(4096, &[0]).is_err());
    // Up to the last byte is fine, and the refused write left nothing behind.
    m.read_at(4080, &mut b).unwrap();
    assert_eq!(b, [0u8; 16]);
    m.read_at(4096, &mut []).unwrap();
}

#[test]
fn prefetch_of_any_range_changes_nothing_and_never_fails() {
    setup();
    let m = SharedDmaBuf::alloc_zeroed(8192, 64).unwrap();
    m.write_at(100, &[7u8; 300]).unwrap();
    // Inside, straddling the end, past the end, empty, and overflowing.
    m.prefetch(0, 8192);
    m.prefetch(8000, 4096);
    m.prefetch(9000, 64);
    m.prefetch(50, 0);
    m.prefetch(usize::MAX - 10, 100);
    let mut back = vec![0u8; 8192];
    m.read_at(0, &mut back).unwrap();
    assert!(back[..100].iter().all(|&b| b == 0));
    assert!(back[100..400].iter().all(|&b| b == 7));
    assert!(back[400..].iter().all(|&b| b == 0));
}

#[test]
fn two_threads_writing_interleaved_disjoint_ranges_read_back_exactly() {
    setup();
    // 100-byte pieces: neighbours from different threads share cache lines.
    const PIECE: usize = 100;
    const PIECES: usize = 4000;
    let m = Arc::new(SharedDmaBuf::alloc_zeroed(PIECE * PIECES, 64).unwrap());
    let writers: Vec<_> = (0..2usize)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                for round in 0..20u8 {
                    for p in (t..PIECES).step_by(2) {
                        let v = (p as u8) ^ round ^ (t as u8 * 0x80);
                        m.write_at(p * PIECE, &[v; PIECE]).unwrap();
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let mut piece = [0u8; PIECE];
    for p in 0..PIECES {
        m.read_at(p * PIECE, &mut piece).unwrap();
        let want = (p as u8) ^ 19 ^ ((p % 2) as u8 * 0x80);
        assert!(
            piece.iter().all(|&b| b == want),
            "piece {p}: expected every byte {want:#x}, got {piece:?}"
        );
    }
}

#[test]
fn long_writes_at_any_alignment_read_back_exactly() {
    setup();
    let m = SharedDmaBuf::alloc_zeroed(1 << 20, 4096).unwrap();
    // Long and aligned (the streaming path, with and without a tail),
    // long and unaligned, and short.
    for (i, &(off, len)) in [
        (0, 2048),
        (64, 4096 + 37),
        (4096, 65536),
        (4097, 8192),
        (128, 100),
    ]
    .iter()
    .enumerate()
    {
        let data: Vec<u8> = (0..len).map(|k| (k * 13 + i * 7 + 1) as u8).collect();
        m.write_at(off, &data).unwrap();
        let mut back = vec![0u8; len + 128];
        m.read_at(off - off.min(64), &mut back[..len + off.min(64)])
            .unwrap();
        assert_eq!(
            &back[off.min(64)..off.min(64) + len],
            &data[..],
            "write of {len} at {off}"
        );
        assert!(m.compare_at(off, &data).unwrap());
    }
}
