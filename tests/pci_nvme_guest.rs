//! PCI access to QEMU's NVMe controller inside the test guest: registers,
//! config space, and DMA both ways through a queue programmed by hand.
//! Runs in both guest modes: vfio-pci (IOVA = VA) and uio_pci_generic (PA).

mod env_support;

use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::Arc;

use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};

use env_support::raw_nvme::{self, RawController, REG_CAP, REG_VS};
use spdk_io::env::{self, DmaBuf, EnvOpts, IovaMode};
use spdk_io::pci::{self, PciAddress, PciError};

const HUGE: usize = 2 << 20;

fn setup() -> PciAddress {
    let addr: PciAddress = env_support::test_var("SPDK_IO_TEST_NVME").parse().unwrap();
    env::init_once(EnvOpts::default()).expect("env with hugepages");
    let mode = env_support::test_var("SPDK_IO_TEST_MODE");
    let want = if mode == "uio" {
        IovaMode::Pa
    } else {
        IovaMode::Va
    };
    assert_eq!(
        env::iova_mode(),
        want,
        "automatic IOVA mode in guest mode {mode}"
    );
    addr
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn bar0_registers_are_qemus_nvme() {
    let addr = setup();
    let dev = pci::open(addr).unwrap();
    assert_eq!(dev.address(), addr);
    let mut id = [0u8; 4];
    dev.cfg_read(0, &mut id).unwrap();
    assert_eq!(
        u16::from_le_bytes([id[0], id[1]]),
        0x1b36,
        "QEMU's vendor id"
    );
    assert_eq!(
        u16::from_le_bytes([id[2], id[3]]),
        0x0010,
        "QEMU NVMe device id"
    );
    let mut class = [0u8; 4];
    dev.cfg_read(8, &mut class).unwrap();
    assert_eq!(u32::from_le_bytes(class) >> 8, 0x010802);
    let bar = dev.map_bar(0).unwrap();
    assert!(bar.len() >= 0x2000, "BAR0 holds registers and doorbells");
    let vs = bar.read32(REG_VS);
    assert_eq!(vs, 0x0001_0400, "NVMe 1.4");
    let cap = bar.read64(REG_CAP);
    assert_eq!(cap & 0xffff, 2047, "CAP.MQES: QEMU's default mqes");
    assert_eq!(cap >> 16 & 1, 1, "CAP.CQR");
    assert_eq!(cap >> 32 & 0xf, 0, "CAP.DSTRD");
    assert_eq!(cap >> 37 & 1, 1, "CAP.CSS: NVM command set");
    assert!(cap >> 24 & 0xff > 0, "CAP.TO");
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn config_space_writes_take_effect() {
    let addr = setup();
    let dev = pci::open(addr).unwrap();
    dev.enable_bus_master().unwrap();
    let mut cmd = [0u8; 2];
    dev.cfg_read(4, &mut cmd).unwrap();
    assert_eq!(
        u16::from_le_bytes(cmd) & 6,
        6,
        "memory space and bus master on"
    );
    let e = dev.cfg_read(4095, &mut [0u8; 4]).unwrap_err();
    assert!(matches!(e, PciError::ConfigRange { .. }), "{e}");
    assert!(matches!(dev.map_bar(6), Err(PciError::NoSuchBar { .. })));
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn opening_twice_gives_the_same_device() {
    let addr = setup();
    let a = pci::open(addr).unwrap();
    let b = pci::open(addr).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn an_opened_device_is_claimed_in_spdks_lock_file_with_this_pid() {
    let addr = setup();
    let _dev = pci::open(addr).unwrap();
    let path = pci::claim::lock_path(std::path::Path::new(pci::claim::LOCK_DIR), addr);
    let pid = std::fs::read(&path).unwrap();
    assert_eq!(
        i32::from_ne_bytes(pid[..4].try_into().unwrap()),
        std::process::id() as i32,
        "{}",
        path.display()
    );
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn opening_bad_addresses_explains_what_to_do() {
    setup();
    let e = pci::open("0000:ff:1f.7".parse().unwrap()).err().unwrap();
    assert!(matches!(e, PciError::NotFound { .. }), "{e}");
    // the host bridge has no user-space driver
    let e = pci::open("0000:00:00.0".parse().unwrap()).err().unwrap();
    assert!(matches!(e, PciError::NoUserspaceDriver { .. }), "{e}");
    assert!(e.to_string().contains("spdk-io setup"), "{e}");
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn identify_controller_lands_in_dma_memory_across_a_hugepage_boundary() {
    let addr = setup();
    let mut c = RawController::bring_up(pci::open(addr).unwrap());

    // One page, page aligned.
    let page = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let cqe = c.admin(raw_nvme::identify(1, 0, &page, 0));
    assert_eq!(cqe.status, 0, "Identify Controller status");
    assert_eq!(u16::from_le_bytes([page[0], page[1]]), 0x1b36, "VID");
    assert_eq!(raw_nvme::ascii(&page[4..24]), "SPDKIOA0001", "SN");
    assert_eq!(raw_nvme::ascii(&page[24..64]), "QEMU NVMe Ctrl", "MN");

    // Straddling two hugepages: PRP1 in the first, PRP2 in the second.
    let big = DmaBuf::alloc_zeroed(2 * HUGE, HUGE).unwrap();
    let off = HUGE - 2048;
    let cqe = c.admin(raw_nvme::identify(1, 0, &big, off));
    assert_eq!(cqe.status, 0);
    assert_eq!(
        &big[off..off + 4096],
        &page[..],
        "same page through two hugepages"
    );
    assert!(big[..off].iter().all(|&b| b == 0), "nothing written before");
    assert!(
        big[off + 4096..].iter().all(|&b| b == 0),
        "nothing written after"
    );
    c.disable();
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn written_data_reads_back_through_io_queues() {
    let addr = setup();
    let mut c = RawController::bring_up(pci::open(addr).unwrap());
    let mut io = c.create_io_queue(1);
    // 8 x 512 B blocks from a host buffer straddling a hugepage boundary.
    let mut src = DmaBuf::alloc(2 * HUGE, HUGE).unwrap();
    let off = HUGE - 1024;
    for (i, b) in src[off..off + 4096].iter_mut().enumerate() {
        *b = (i * 7 + 3) as u8;
    }
    let mut w = [0u32; 16];
    w[0] = 0x01; // Write
    w[1] = 1;
    raw_nvme::set_prp(&mut w, src.iova_at(off), src.iova_at(off + 1024));
    w[10] = 100; // SLBA
    w[12] = 7; // NLB, 0-based
    assert_eq!(c.submit_on(&mut io, w).status, 0, "Write");
    let dst = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let mut r = [0u32; 16];
    r[0] = 0x02; // Read
    r[1] = 1;
    raw_nvme::set_prp(&mut r, dst.iova(), 0);
    r[10] = 100;
    r[12] = 7;
    assert_eq!(c.submit_on(&mut io, r).status, 0, "Read");
    assert_eq!(&dst[..], &src[off..off + 4096]);
    c.disable();
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn registered_user_memory_is_reachable_by_the_device() {
    let addr = setup();
    // Hugepage memory, so it cannot move in PA mode either.
    let mut c = RawController::bring_up(pci::open(addr).unwrap());
    let len = HUGE;
    let p = map_hugepages(len);
    let region = UserRegion { p, len };
    env::mem_register(p, len).unwrap();
    let iova = env::vtophys(p).unwrap();
    let mut sqe = [0u32; 16];
    sqe[0] = 0x06;
    raw_nvme::set_prp(&mut sqe, iova, 0);
    sqe[10] = 1;
    assert_eq!(c.admin(sqe).status, 0);
    // SAFETY: p..p+4096 is inside the live mapping; the device has finished writing.
    let page = unsafe { std::slice::from_raw_parts(p, 4096) };
    assert_eq!(raw_nvme::ascii(&page[4..24]), "SPDKIOA0001");
    c.disable();
    env::mem_unregister(p, len).unwrap();
    drop(region);
}

struct UserRegion {
    p: *mut u8,
    len: usize,
}

impl Drop for UserRegion {
    fn drop(&mut self) {
        let p = NonNull::new(self.p.cast()).expect("a mapping is never at 0");
        // SAFETY: the mapping made in the test, no longer registered or used.
        let _ = unsafe { munmap(p, self.len) };
    }
}

/// A fresh private hugepage mapping of `len` bytes, below 2^39 so that
/// IOVA = VA fits QEMU's default 39-bit intel-iommu (MAP_FIXED_NOREPLACE:
/// at that address or not at all, as the env places its own DMA memory).
fn map_hugepages(len: usize) -> *mut u8 {
    let flags = MapFlags::MAP_PRIVATE
        | MapFlags::MAP_ANONYMOUS
        | MapFlags::MAP_HUGETLB
        | MapFlags::MAP_POPULATE
        | MapFlags::MAP_FIXED_NOREPLACE;
    // SAFETY: a new anonymous mapping; MAP_FIXED_NOREPLACE never replaces an existing one.
    let p = unsafe {
        mmap_anonymous(
            NonZeroUsize::new(0x70_0000_0000),
            NonZeroUsize::new(len).expect("a non-empty mapping"),
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            flags,
        )
    };
    p.unwrap_or_else(|e| panic!("hugepage mmap of {len:#x} bytes failed: {e}"))
        .as_ptr()
        .cast()
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn three_controllers_share_the_process_dma_memory() {
    setup();
    let names = [
        ("SPDK_IO_TEST_NVME", "SPDKIOA0001"),
        ("SPDK_IO_TEST_NVME_2NS", "SPDKIOB0002"),
        ("SPDK_IO_TEST_NVME_SMALL", "SPDKIOC0003"),
    ];
    let mut ctrls: Vec<RawController> = names
        .iter()
        .map(|(var, _)| {
            let a: PciAddress = env_support::test_var(var).parse().unwrap();
            RawController::bring_up(pci::open(a).unwrap())
        })
        .collect();
    // One buffer, three devices writing into different pages of it.
    let buf = DmaBuf::alloc_zeroed(3 * 4096, 4096).unwrap();
    for (i, c) in ctrls.iter_mut().enumerate() {
        assert_eq!(c.admin(raw_nvme::identify(1, 0, &buf, i * 4096)).status, 0);
    }
    for (i, (_, serial)) in names.iter().enumerate() {
        let page = &buf[i * 4096..(i + 1) * 4096];
        assert_eq!(raw_nvme::ascii(&page[4..24]), *serial);
    }
    for c in &ctrls {
        c.disable();
    }
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn device_writes_land_where_translation_says_in_buffers_of_many_sizes() {
    let addr = setup();
    let mut c = RawController::bring_up(pci::open(addr).unwrap());
    let reference = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    assert_eq!(c.admin(raw_nvme::identify(1, 0, &reference, 0)).status, 0);
    for &len in &[8192usize, 65536, HUGE + 8192, 3 * HUGE, 6 * HUGE + 4096] {
        let mut buf = DmaBuf::alloc(len, 512).unwrap();
        // every hugepage boundary inside the buffer, crossed 2 KiB before it, plus the ends
        let base = buf.as_ptr() as usize;
        let mut offs = vec![0, len - 4096];
        let mut b = (base / HUGE + 1) * HUGE;
        while b + 2048 <= base + len {
            offs.push(b - base - 2048);
            b += HUGE;
        }
        for off in offs {
            buf.fill(0xee);
            assert_eq!(c.admin(raw_nvme::identify(1, 0, &buf, off)).status, 0);
            assert_eq!(
                &buf[off..off + 4096],
                &reference[..],
                "len {len} off {off:#x}"
            );
            assert!(
                buf[..off].iter().all(|&x| x == 0xee),
                "bytes before disturbed"
            );
            assert!(
                buf[off + 4096..].iter().all(|&x| x == 0xee),
                "bytes after disturbed"
            );
        }
    }
    c.disable();
}
