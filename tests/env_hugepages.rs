//! The env over 2 MiB hugepages (MAP_HUGETLB), IOVA mode chosen automatically:
//! VA behind an IOMMU, physical addresses otherwise. Reserves hugepages itself
//! when run as root; fails with the fix otherwise. Runs on the host and in the
//! QEMU guest.

mod env_support;

use spdk_io::env::{self, DmaBuf, DmaPool, EnvError, EnvOpts, IovaMode};

const HUGE: usize = 2 << 20;

fn setup() {
    env_support::ensure_hugepages(96);
    env::init_once(EnvOpts::default()).expect("hugepage env");
}

/// The IOVA the env must report for `va`: the address itself in VA mode,
/// the physical address from pagemap in PA mode.
fn expected_iova(va: usize) -> u64 {
    match env::iova_mode() {
        IovaMode::Va => va as u64,
        IovaMode::Pa => env_support::pagemap_phys(va),
    }
}

#[test]
fn every_4k_page_of_multi_hugepage_buffers_translates_correctly() {
    setup();
    for &len in &[HUGE + 4096, 3 * HUGE, 5 * HUGE + 512] {
        let mut b = DmaBuf::alloc(len, 4096).unwrap();
        b.fill(0x3c);
        let base = b.as_ptr() as usize;
        for off in (0..len).step_by(4096) {
            let want = expected_iova(base + off);
            assert_eq!(b.iova_at(off), want, "len {len} off {off:#x}");
            assert_eq!(env::vtophys((base + off) as *const u8), Some(want));
            assert_eq!(
                b.iova_at(off + 17.min(len - off - 1)),
                want + 17.min((len - off - 1) as u64)
            );
        }
        // contiguous_len agrees with the page table
        let mut off = 0;
        while off < len {
            let n = b.contiguous_len(off);
            assert!(n > 0 && off + n <= len);
            for p in (off..off + n).step_by(4096) {
                assert_eq!(b.iova_at(p), b.iova_at(off) + (p - off) as u64);
            }
            if off + n < len {
                assert_ne!(
                    b.iova_at(off + n),
                    b.iova_at(off) + n as u64,
                    "run ends too early"
                );
            }
            let back = env::iova_to_vaddr(b.iova_at(off), n).expect("extent maps back");
            assert_eq!(back.as_ptr() as usize, base + off);
            off += n;
        }
        let (iova, n) = env::vtophys_len(b.as_ptr(), len).unwrap();
        assert_eq!((iova, n), (b.iova(), b.contiguous_len(0)));
        let total: usize = b.extents(0, len).map(|(_, n)| n).sum();
        assert_eq!(total, len);
    }
}

#[test]
fn buffers_aligned_to_their_size_are_contiguous() {
    setup();
    for shift in 9..=21 {
        let len = 1usize << shift;
        let b = DmaBuf::alloc(len, len).unwrap();
        assert_eq!(b.contiguous_len(0), len, "len {len}");
    }
}

#[test]
fn alloc_free_stress_over_many_sizes_reuses_memory() {
    setup();
    let sizes = [
        512usize,
        4096,
        8192,
        65536,
        131072,
        1 << 20,
        HUGE,
        3 * HUGE + 4096,
    ];
    let mut live: Vec<DmaBuf> = Vec::new();
    for round in 0..6 {
        for (i, &len) in sizes.iter().enumerate() {
            let align = if i % 2 == 0 { 4096 } else { 512 };
            let mut b = DmaBuf::alloc(len, align).unwrap();
            let tag = (round * 16 + i) as u8;
            b.fill(tag);
            live.push(b);
        }
        // free every other buffer, check the rest kept their contents
        let mut k = 0;
        live.retain(|_| {
            k += 1;
            k % 2 == 0
        });
        for b in &live {
            let t = b[0];
            assert!(b.iter().all(|&x| x == t), "buffer contents disturbed");
            assert_eq!(b.iova(), expected_iova(b.as_ptr() as usize));
        }
    }
    drop(live);
    let after_first = env::mem_stats().unwrap().mapped;
    for _ in 0..5 {
        let bufs: Vec<_> = sizes
            .iter()
            .map(|&l| DmaBuf::alloc(l, 4096).unwrap())
            .collect();
        drop(bufs);
    }
    assert!(
        env::mem_stats().unwrap().mapped <= after_first + 16 * HUGE,
        "freed memory is not reused"
    );
}

#[test]
fn asking_for_more_than_the_machine_has_is_an_error() {
    setup();
    let e = DmaBuf::alloc(64 << 30, 4096).unwrap_err();
    assert!(matches!(e, EnvError::OutOfMemory { .. }), "{e}");
    assert!(e.to_string().contains("spdk-io setup"), "{e}");
    // the env still works
    DmaBuf::alloc(4096, 4096).unwrap();
}

#[test]
fn hugepage_alignment_is_offered() {
    setup();
    let b = DmaBuf::alloc(HUGE, HUGE).unwrap();
    assert_eq!(b.as_ptr() as usize % HUGE, 0);
    assert_eq!(b.contiguous_len(0), HUGE);
}

#[test]
fn pool_elements_translate_like_buffers() {
    setup();
    let pool = DmaPool::new(2000, 4096, 4096).unwrap();
    let elems: Vec<_> = (0..2000).map(|_| pool.get().unwrap()).collect();
    for e in &elems {
        assert_eq!(e.iova(), expected_iova(e.as_ptr() as usize));
    }
}

#[test]
fn hugepage_memory_lies_within_a_39_bit_iommu_reach() {
    setup();
    let b = DmaBuf::alloc(5 * HUGE, HUGE).unwrap();
    assert!(
        (b.as_ptr() as usize + b.len()) < 1 << 39,
        "IOVA = VA must fit intel-iommu's 39 bits"
    );
}

#[test]
fn pool_elements_of_odd_size_are_each_iova_contiguous() {
    setup();
    let pool = DmaPool::new(1500, 3000, 64).unwrap();
    let elems: Vec<_> = (0..1500).map(|_| pool.get().unwrap()).collect();
    for e in &elems {
        assert_eq!(
            e.iova_at(2999),
            e.iova() + 2999,
            "element {} split",
            e.index()
        );
        assert_eq!(e.iova_at(2999), expected_iova(e.as_ptr() as usize + 2999));
    }
}
