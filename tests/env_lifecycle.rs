//! The env's life cycle in one process: refused options, init, mappers seeing
//! every region, fini returning everything, and init again. One test, because
//! the env is process-global.

mod env_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use spdk_io::env::{self, DmaBuf, DmaMapper, EnvError, EnvOpts, IovaMode};

#[derive(Default)]
struct Recorder {
    maps: Mutex<BTreeMap<u64, usize>>,
}

impl DmaMapper for Recorder {
    fn dma_map(&self, _vaddr: usize, iova: u64, len: usize) -> std::io::Result<()> {
        self.maps.lock().unwrap().insert(iova, len);
        Ok(())
    }
    fn dma_unmap(&self, iova: u64, len: usize) -> std::io::Result<()> {
        let mut m = self.maps.lock().unwrap();
        match m.remove(&iova) {
            Some(l) if l == len => Ok(()),
            _ => Err(std::io::Error::other("unmap of something never mapped")),
        }
    }
}

#[test]
fn env_refuses_bad_options_then_inits_finis_and_inits_again() {
    // Before init: allocation is an error that says what to do.
    assert!(!env::is_initialized());
    let e = DmaBuf::alloc(4096, 4096).unwrap_err();
    assert!(matches!(e, EnvError::NotInitialized));
    assert!(e.to_string().contains("env::init"), "{e}");

    // no_huge memory cannot be used with physical addresses.
    let opts = EnvOpts {
        iova_mode: Some(IovaMode::Pa),
        ..EnvOpts::no_huge()
    };
    let e = env::init(opts).unwrap_err();
    assert!(matches!(e, EnvError::NoHugeNeedsIommu));
    assert!(e.to_string().contains("hugepages"), "{e}");
    assert!(!env::is_initialized());

    // A huge_dir that is not hugetlbfs is refused, naming the mount command.
    let plain = env_support::temp_dir("plain");
    env_support::ensure_hugepages(8);
    let opts = EnvOpts {
        huge_dir: Some(plain.clone()),
        ..EnvOpts::default()
    };
    let e = env::init(opts).unwrap_err();
    assert!(matches!(e, EnvError::NotHugetlbfs { .. }), "{e}");
    assert!(e.to_string().contains("mount -t hugetlbfs"), "{e}");
    let _ = std::fs::remove_dir(&plain);

    // Up, with 8 MiB reserved up front.
    env::init(EnvOpts {
        mem_size_mb: 8,
        ..EnvOpts::no_huge()
    })
    .unwrap();
    assert_eq!(env::mem_stats().unwrap().mapped, 8 << 20);
    let rec = Arc::new(Recorder::default());
    env::register_dma_mapper(rec.clone()).unwrap();
    assert_eq!(
        rec.maps.lock().unwrap().len(),
        1,
        "the reserved region is mapped"
    );
    let kept = DmaBuf::alloc(16 << 20, 4096).unwrap();
    assert_eq!(
        rec.maps.lock().unwrap().len(),
        2,
        "the grown region is mapped"
    );
    let kept_addr = kept.as_ptr();

    // fini with a buffer alive: the buffer stays usable; everything goes when it drops.
    env::fini();
    assert!(!env::is_initialized());
    assert_eq!(env::vtophys(kept_addr), None);
    assert_eq!(rec.maps.lock().unwrap().len(), 2);
    assert_eq!(kept[0], 0);
    drop(kept);
    assert!(
        rec.maps.lock().unwrap().is_empty(),
        "teardown unmaps every region"
    );

    // And up again: the mapper, still registered, gets the new env's memory.
    env::init(EnvOpts::no_huge()).unwrap();
    let b = DmaBuf::alloc(4096, 4096).unwrap();
    assert_eq!(env::vtophys(b.as_ptr()), Some(b.as_ptr() as u64));
    assert_eq!(
        rec.maps.lock().unwrap().len(),
        1,
        "a mapper outlives an env"
    );
    let as_mapper: Arc<dyn DmaMapper> = rec.clone();
    assert!(env::unregister_dma_mapper(&as_mapper));
    assert!(rec.maps.lock().unwrap().is_empty());
    drop(b);
    env::fini();
}
