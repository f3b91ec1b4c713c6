//! The env in `no_huge` mode (ordinary pinned memory, IOVA = VA): the DMA
//! allocator, translation, pools, registered memory and DMA mappers, with no
//! hugepages and no device.

use crate::env_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use spdk_io::env::{self, DmaBuf, DmaMapper, DmaPool, EnvError, EnvOpts, IovaMode};

fn setup() {
    env::init_once(EnvOpts::no_huge()).expect("no_huge env");
}

#[test]
fn no_huge_env_uses_iova_equal_to_va() {
    setup();
    assert!(env::is_initialized());
    assert_eq!(env::iova_mode(), IovaMode::Va);
    let b = DmaBuf::alloc(4096, 4096).unwrap();
    assert_eq!(b.iova(), b.as_ptr() as u64);
    assert_eq!(b.contiguous_len(0), 4096);
    assert_eq!(b.contiguous_len(100), 3996);
}

#[test]
fn init_twice_is_an_error_but_init_once_is_not() {
    setup();
    assert!(matches!(
        env::init(EnvOpts::no_huge()),
        Err(EnvError::AlreadyInitialized)
    ));
    env::init_once(EnvOpts::no_huge()).unwrap();
}

#[test]
fn buffers_of_many_sizes_honour_alignment_and_translate() {
    setup();
    let mut bufs = Vec::new();
    for &len in &[
        1usize,
        63,
        512,
        4096,
        5000,
        65536,
        1 << 20,
        3 << 20,
        17 << 20,
    ] {
        for &align in &[1usize, 64, 4096, 1 << 20, 2 << 20] {
            let mut b = DmaBuf::alloc(len, align).unwrap();
            assert_eq!(b.len(), len);
            assert_eq!(b.as_ptr() as usize % align, 0, "len {len} align {align}");
            b[0] = 0xa5;
            b[len - 1] = 0x5a;
            for off in (0..len).step_by(4096).chain([len - 1]) {
                let va = b.as_ptr() as u64 + off as u64;
                assert_eq!(b.iova_at(off), va);
                assert_eq!(env::vtophys(va as *const u8), Some(va));
                assert_eq!(b.contiguous_len(off), len - off);
            }
            bufs.push(b);
        }
    }
    // no two live buffers overlap
    let mut spans: Vec<(usize, usize)> = bufs
        .iter()
        .map(|b| (b.as_ptr() as usize, b.len()))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "overlapping buffers {w:?}");
    }
}

#[test]
fn zeroed_buffers_are_zero_even_when_memory_is_reused() {
    setup();
    for _ in 0..4 {
        let mut dirty = DmaBuf::alloc(8192, 4096).unwrap();
        dirty.fill(0xff);
        drop(dirty);
        let z = DmaBuf::alloc_zeroed(8192, 4096).unwrap();
        assert!(z.iter().all(|&b| b == 0));
    }
}

#[test]
fn bad_sizes_and_alignments_are_errors() {
    setup();
    assert!(matches!(
        DmaBuf::alloc(0, 64),
        Err(EnvError::InvalidSize { .. })
    ));
    assert!(matches!(
        DmaBuf::alloc(usize::MAX / 2, 64),
        Err(EnvError::InvalidSize { .. })
    ));
    assert!(matches!(
        DmaBuf::alloc(64, 3),
        Err(EnvError::InvalidAlignment { .. })
    ));
    let e = DmaBuf::alloc(64, 4 << 20).unwrap_err();
    assert!(matches!(e, EnvError::InvalidAlignment { max, .. } if max == 2 << 20));
    assert!(e.to_string().contains("power of two"), "{e}");
}

#[test]
fn iova_to_vaddr_accepts_only_ranges_inside_dma_memory() {
    setup();
    let b = DmaBuf::alloc(16384, 4096).unwrap();
    let p = env::iova_to_vaddr(b.iova_at(100), 200).unwrap();
    assert_eq!(p.as_ptr() as usize, b.as_ptr() as usize + 100);
    let stack = 0u64;
    let sva = &stack as *const u64 as u64;
    assert_eq!(env::iova_to_vaddr(sva, 8), None);
    assert_eq!(env::vtophys(&stack as *const u64 as *const u8), None);
    assert_eq!(env::iova_to_vaddr(u64::MAX - 4, 16), None);
}

#[test]
fn extents_cover_a_range_exactly() {
    setup();
    let b = DmaBuf::alloc(3 * 4096, 4096).unwrap();
    let ex: Vec<(u64, usize)> = b.extents(10, 3 * 4096 - 20).collect();
    assert_eq!(ex, vec![(b.iova_at(10), 3 * 4096 - 20)]);
}

#[test]
fn pool_elements_are_distinct_and_return_on_drop() {
    setup();
    let pool = DmaPool::new(100, 4096, 4096).unwrap();
    assert_eq!(
        (pool.count(), pool.available(), pool.elem_size()),
        (100, 100, 4096)
    );
    let mut elems: Vec<_> = (0..100).map(|_| pool.get().unwrap()).collect();
    assert_eq!(pool.available(), 0);
    let e = pool.get().err().expect("pool should be exhausted");
    assert!(matches!(
        e,
        EnvError::PoolExhausted {
            count: 100,
            elem_size: 4096
        }
    ));
    let mut addrs: Vec<usize> = elems.iter().map(|e| e.as_ptr() as usize).collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 100);
    for e in &mut elems {
        assert_eq!(e.as_ptr() as usize % 4096, 0);
        assert_eq!(e.iova(), env::vtophys(e.as_ptr()).unwrap());
        let i = e.index() as u8;
        e.fill(i);
    }
    for e in &elems {
        assert!(e.iter().all(|&b| b == e.index() as u8), "elements overlap");
    }
    elems.truncate(10);
    assert_eq!(pool.available(), 90);
    drop(elems);
    assert_eq!(pool.available(), 100);
}

#[test]
fn pool_of_odd_sized_elements_never_crosses_a_page() {
    setup();
    let pool = DmaPool::new(1000, 3000, 64).unwrap();
    let elems: Vec<_> = (0..1000).map(|_| pool.get().unwrap()).collect();
    for e in &elems {
        let start = e.as_ptr() as usize;
        assert_eq!(start / (2 << 20), (start + 2999) / (2 << 20));
    }
}

#[test]
fn registered_user_memory_translates_until_unregistered() {
    setup();
    let layout = std::alloc::Layout::from_size_align(64 << 10, 4096).unwrap();
    // SAFETY: non-zero size layout; freed below with the same layout.
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    assert!(!p.is_null());
    assert_eq!(env::vtophys(p), None);
    env::mem_register(p, 64 << 10).unwrap();
    // SAFETY: inside the 64 KiB allocation.
    let q = unsafe { p.add(5000) };
    assert_eq!(env::vtophys(q), Some(q as u64));
    assert!(env::iova_to_vaddr(p as u64, 64 << 10).is_some());
    assert_eq!(
        env::vtophys_len(q, 1 << 20),
        Some((q as u64, (64 << 10) - 5000)),
        "clipped at the region's end"
    );
    assert_eq!(env::vtophys_len(q, 100), Some((q as u64, 100)));
    assert!(matches!(
        env::mem_register(q, 4096),
        Err(EnvError::Unaligned { .. })
    ));
    // SAFETY: inside the allocation, 4 KiB aligned.
    let r = unsafe { p.add(4096) };
    assert!(matches!(
        env::mem_register(r, 4096),
        Err(EnvError::Overlap { .. })
    ));
    assert!(matches!(
        env::mem_unregister(p, 4096),
        Err(EnvError::NotRegistered { .. })
    ));
    env::mem_unregister(p, 64 << 10).unwrap();
    assert_eq!(env::vtophys(q), None);
    // SAFETY: allocated above with this layout, unregistered, not used any more.
    unsafe { std::alloc::dealloc(p, layout) };
}

/// A mapper that records what is mapped into it, like an IOMMU would.
#[derive(Default)]
struct Recorder {
    maps: Mutex<BTreeMap<u64, (usize, usize)>>,
}

impl DmaMapper for Recorder {
    fn dma_map(&self, vaddr: usize, iova: u64, len: usize) -> std::io::Result<()> {
        let mut m = self.maps.lock().unwrap();
        assert!(m.insert(iova, (vaddr, len)).is_none(), "mapped twice");
        Ok(())
    }
    fn dma_unmap(&self, iova: u64, len: usize) -> std::io::Result<()> {
        let mut m = self.maps.lock().unwrap();
        match m.remove(&iova) {
            Some((_, l)) if l == len => Ok(()),
            _ => Err(std::io::Error::other("unmap of something never mapped")),
        }
    }
}

impl Recorder {
    fn covers(&self, iova: u64, len: usize) -> bool {
        let m = self.maps.lock().unwrap();
        m.range(..=iova)
            .next_back()
            .is_some_and(|(&s, &(_, l))| iova + len as u64 <= s + l as u64)
    }
}

#[test]
fn a_dma_mapper_gets_existing_and_future_regions() {
    setup();
    let before = DmaBuf::alloc(4096, 4096).unwrap();
    let rec = Arc::new(Recorder::default());
    let as_mapper: Arc<dyn DmaMapper> = rec.clone();
    env::register_dma_mapper(as_mapper.clone()).unwrap();
    assert!(rec.covers(before.iova(), before.len()));
    // larger than any region so far: forces the heap to grow
    let after = DmaBuf::alloc(40 << 20, 4096).unwrap();
    assert!(rec.covers(after.iova(), after.len()));
    assert!(env::unregister_dma_mapper(&as_mapper));
    assert!(rec.maps.lock().unwrap().is_empty(), "everything unmapped");
    assert!(!env::unregister_dma_mapper(&as_mapper));
}

#[test]
fn a_failing_mapper_is_refused_with_an_error() {
    setup();
    struct Refuser;
    impl DmaMapper for Refuser {
        fn dma_map(&self, _: usize, _: u64, _: usize) -> std::io::Result<()> {
            Err(std::io::Error::from_raw_os_error(libc_enomem()))
        }
        fn dma_unmap(&self, _: u64, _: usize) -> std::io::Result<()> {
            Ok(())
        }
    }
    let _b = DmaBuf::alloc(64, 64).unwrap();
    let e = env::register_dma_mapper(Arc::new(Refuser)).unwrap_err();
    assert!(matches!(e, EnvError::Mapper { .. }));
    assert!(e.to_string().contains("ulimit"), "{e}");
}

fn libc_enomem() -> i32 {
    12
}

#[test]
fn dma_buffers_move_between_threads() {
    setup();
    let mut b = DmaBuf::alloc(4096, 64).unwrap();
    b[0] = 7;
    let b = std::thread::spawn(move || {
        assert_eq!(b[0], 7);
        b
    })
    .join()
    .unwrap();
    assert_eq!(b[0], 7);
}

#[test]
fn dma_memory_lies_within_a_39_bit_iommu_reach() {
    setup();
    let b = DmaBuf::alloc(3 << 20, 4096).unwrap();
    assert!(
        b.iova_at(b.len() - 1) < 1 << 39,
        "IOVA = VA must fit intel-iommu's 39 bits"
    );
}

#[test]
fn hugepage_counts_come_from_sysfs() {
    let root = env_support::temp_dir("hugecounts");
    let d = root.join("kernel/mm/hugepages/hugepages-2048kB");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("nr_hugepages"), "512\n").unwrap();
    std::fs::write(d.join("free_hugepages"), "500\n").unwrap();
    let c = env::hugepage_counts_at(&root, env::HugePageSize::Size2M);
    assert_eq!((c.total, c.free), (512, 500));
    let none = env::hugepage_counts_at(&root, env::HugePageSize::Size1G);
    assert_eq!(
        (none.total, none.free),
        (0, 0),
        "missing size counts as none"
    );
    std::fs::remove_dir_all(&root).unwrap();
}
