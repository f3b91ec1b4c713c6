//! The NVMe driver against QEMU's emulated controllers in the test guest
//! (`qemu/run-tests`). Ignored on the host: they need vfio-pci or
//! uio_pci_generic bound controllers named by the SPDK_IO_TEST_NVME* variables.

mod nvme_common;

use nvme_common::*;
use spdk_io::env::{self, DmaBuf, EnvOpts};
use spdk_io::nvme::spec::Sqe;
use spdk_io::nvme::{self, Controller, ControllerOpts, IoBuf, NvmeError, QPairOpts, TransportId};
use spdk_io::pci::{PciAddress, Sysfs};

const NEEDS: &str = "needs a vfio-bound NVMe: run qemu/run-tests";

fn bdf(var: &str) -> PciAddress {
    let v = std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: this test runs in the QEMU guest (qemu/run-tests), which sets it")
    });
    v.parse()
        .unwrap_or_else(|e| panic!("{var}={v:?} is not a PCI address: {e}"))
}

fn attach(var: &str) -> Controller {
    env::init_once(EnvOpts::default()).expect("env init (hugepages at /dev/hugepages?)");
    let trid = TransportId::pcie(bdf(var));
    nvme::connect(&trid, &ControllerOpts::default())
        .unwrap_or_else(|e| panic!("attaching {trid}: {e}"))
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn identify_reports_what_qemu_was_given() {
    let _ = NEEDS;
    let a = attach("SPDK_IO_TEST_NVME");
    assert_eq!(a.data().serial(), "SPDKIOA0001");
    assert_eq!(a.data().model(), "QEMU NVMe Ctrl");
    assert_eq!(a.namespace_ids(), vec![1]);
    let ns = a.namespace(1).unwrap();
    assert_eq!((ns.size_bytes(), ns.block_size()), (64 << 20, 512));
    assert!(matches!(a.namespace(2), Err(NvmeError::NoSuchNamespace(2))));
    assert!(a.smart_health().is_ok());
    drop(a);

    let b = attach("SPDK_IO_TEST_NVME_2NS");
    assert_eq!(b.data().serial(), "SPDKIOB0002");
    assert_eq!(b.namespace_ids(), vec![1, 2]);
    let (n1, n2) = (b.namespace(1).unwrap(), b.namespace(2).unwrap());
    assert_eq!((n1.size_bytes(), n1.block_size()), (32 << 20, 4096));
    assert_eq!((n2.size_bytes(), n2.block_size()), (16 << 20, 512));
    drop(b);

    let c = attach("SPDK_IO_TEST_NVME_SMALL");
    assert_eq!(c.data().serial(), "SPDKIOC0003");
    assert_eq!(c.data().mdts, 1);
    assert_eq!(c.max_transfer_size(), 8192);
    assert_eq!(c.max_io_qpairs(), 2);
    let ns = c.namespace(1).unwrap();
    assert_eq!((ns.size_bytes(), ns.block_size()), (16 << 20, 4096));
    let q1 = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    let q2 = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    let e = c.alloc_io_qpair(QPairOpts::default()).unwrap_err();
    assert!(matches!(e, NvmeError::NoFreeQueue(2)), "{e}");
    drop((q1, q2));
    c.alloc_io_qpair(QPairOpts::default())
        .expect("a freed queue ID is reused");
}

/// Random data at random LBAs, sizes from one block to several times MDTS.
fn random_round_trips(var: &str, nsid: u32, ios: usize, seed: u64) {
    let c = attach(var);
    let ns = c.namespace(nsid).unwrap();
    let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    let bs = ns.block_size() as u64;
    let max_blocks = (4 * c.max_transfer_size() as u64 / bs).max(1);
    let mut rng = Rng(seed);
    for i in 0..ios {
        let n = 1 + rng.below(max_blocks.min(ns.num_blocks()));
        let lba = rng.below(ns.num_blocks() - n + 1);
        // Buffers start at a random dword offset: PRP1 with an offset.
        let off = (rng.below(16) * 4) as usize * if i % 2 == 0 { 1 } else { 0 };
        let len = (n * bs) as usize;
        let mut w = DmaBuf::alloc(len + off, 4096).unwrap();
        fill(&mut w[off..], seed + i as u64);
        let want = w[off..].to_vec();
        let ws = nvme::DmaSlice::new(w, off..off + len).unwrap();
        let s = slot();
        qp.write(&ns, ws, lba, n as u32, into_slot(&s)).unwrap();
        wait(&mut qp, &s).result.unwrap();
        let r = read_sync(
            &mut qp,
            &ns,
            DmaBuf::alloc_zeroed(len, 4096).unwrap(),
            lba,
            n as u32,
        )
        .unwrap();
        assert_same(
            &r,
            &want,
            &format!("{var} ns {nsid}: {n} blocks at LBA {lba}"),
        );
    }
    // The last blocks of the namespace too.
    let n = 2u32.min(ns.num_blocks() as u32);
    let lba = ns.num_blocks() - n as u64;
    let w = patterned(n as usize * bs as usize, seed ^ 0xee);
    let want = w.to_vec();
    write_sync(&mut qp, &ns, w, lba, n).unwrap();
    let r = read_sync(
        &mut qp,
        &ns,
        DmaBuf::alloc_zeroed(want.len(), 4096).unwrap(),
        lba,
        n,
    )
    .unwrap();
    assert_same(&r, &want, "last blocks");
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn random_data_reads_back_equal_512b_namespace() {
    random_round_trips("SPDK_IO_TEST_NVME", 1, 40, 11);
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn random_data_reads_back_equal_on_both_namespaces() {
    random_round_trips("SPDK_IO_TEST_NVME_2NS", 1, 30, 21);
    random_round_trips("SPDK_IO_TEST_NVME_2NS", 2, 30, 22);
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn io_above_small_mdts_is_split_and_reads_back_equal() {
    random_round_trips("SPDK_IO_TEST_NVME_SMALL", 1, 40, 31);
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn vectored_io_over_several_segments_reads_back_equal() {
    let c = attach("SPDK_IO_TEST_NVME");
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    let segs: Vec<_> = [4096usize, 8192, 4096, 16384]
        .iter()
        .enumerate()
        .map(|(i, &l)| nvme::DmaSlice::from(patterned(l, 100 + i as u64)))
        .collect();
    let want: Vec<u8> = segs.iter().flat_map(|s| s.as_slice().to_vec()).collect();
    let blocks = (want.len() / 512) as u32;
    let s = slot();
    qp.writev(&ns, segs, 777, blocks, into_slot(&s)).unwrap();
    wait(&mut qp, &s).result.unwrap();
    let rsegs: Vec<_> = [16384usize, 4096, 12288]
        .iter()
        .map(|&l| nvme::DmaSlice::from(DmaBuf::alloc_zeroed(l, 4096).unwrap()))
        .collect();
    qp.readv(&ns, rsegs, 777, blocks, into_slot(&s)).unwrap();
    let c = wait(&mut qp, &s);
    c.result.unwrap();
    let got: Vec<u8> = c
        .buf
        .into_vec()
        .iter()
        .flat_map(|s| s.as_slice().to_vec())
        .collect();
    assert_same(&got, &want, "readv after writev");
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn deallocate_and_write_zeroes_then_read() {
    let c = attach("SPDK_IO_TEST_NVME_2NS");
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    let len = 8 * 4096;
    write_sync(&mut qp, &ns, patterned(len, 5), 100, 8).unwrap();
    cmd_sync(&mut qp, |qp, s| qp.write_zeroes(&ns, 100, 8, into_slot(&s))).unwrap();
    let r = read_sync(&mut qp, &ns, patterned(len, 6), 100, 8).unwrap();
    assert!(
        r.iter().all(|&b| b == 0),
        "write zeroes then read gives zeroes"
    );

    write_sync(&mut qp, &ns, patterned(len, 7), 200, 8).unwrap();
    cmd_sync(&mut qp, |qp, s| {
        qp.deallocate(&ns, &[(200, 8)], into_slot(&s))
    })
    .unwrap();
    let r = read_sync(&mut qp, &ns, patterned(len, 8), 200, 8).unwrap();
    // Deallocated blocks read as zeroes, or keep their data when the drive
    // ignores discards (QEMU's default discard=ignore): never anything else.
    let zeroes = r.iter().all(|&b| b == 0);
    assert!(
        zeroes || r[..] == patterned(len, 7)[..],
        "deallocated blocks read neither zeroes nor their old data"
    );
    cmd_sync(&mut qp, |qp, s| qp.flush_ns(&ns, into_slot(&s))).unwrap();
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn out_of_range_lba_is_refused_and_the_device_says_lba_out_of_range() {
    let c = attach("SPDK_IO_TEST_NVME");
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    let e = qp
        .read(&ns, patterned(1024, 1), ns.num_blocks() - 1, 2, |_, _| {})
        .unwrap_err();
    assert!(matches!(e.error, NvmeError::LbaOutOfRange { .. }));
    assert_eq!(e.buf.len(), 1024, "the buffer comes back");
    // The same read sent raw: the controller's own status, decoded by name.
    let mut sqe = Sqe::new(spdk_io::nvme::spec::NvmOpcode::Read as u8, ns.id());
    sqe.set_slba(ns.num_blocks());
    sqe.cdw12 = 0;
    let s = slot();
    qp.submit_raw(sqe, IoBuf::from(patterned(512, 2)), into_slot(&s))
        .unwrap();
    let err = wait(&mut qp, &s).result.unwrap_err();
    assert_eq!(err.status().unwrap().name(), "LBA Out of Range", "{err}");
    assert!(err.to_string().contains("LBA Out of Range"), "{err}");
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn data_persists_across_a_controller_reset() {
    let c = attach("SPDK_IO_TEST_NVME");
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    let w = patterned(64 * 1024, 99);
    let want = w.to_vec();
    write_sync(&mut qp, &ns, w, 4096, 128).unwrap();
    c.reset().unwrap();
    // The qpair notices the reset and re-creates its queues.
    qp.process_completions(0).unwrap();
    let r = read_sync(
        &mut qp,
        &ns,
        DmaBuf::alloc_zeroed(want.len(), 4096).unwrap(),
        4096,
        128,
    )
    .unwrap();
    assert_same(&r, &want, "after reset");
}

const CHILD_VAR: &str = "SPDK_IO_NVME_CHILD_ROLE";
const PHASE_VAR: &str = "SPDK_IO_NVME_CHILD_PHASE";

/// Runs test `name` of this binary again in a child process with `var=value`
/// and asserts that it passed.
fn run_child(name: &str, var: &str, value: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            name,
            "--include-ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(var, value)
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "child process ({var}={value}) failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Both phases run in child processes, so this process holds no VFIO group
/// (the env keeps a group open for the life of a process, and a group can
/// be open in one process at a time). Named to run before the tests that
/// attach in this process.
#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn across_processes_data_written_by_one_reads_back_in_another() {
    let name = "across_processes_data_written_by_one_reads_back_in_another";
    let (lba, blocks, seed) = (20_000u64, 64u32, 4242u64);
    let len = blocks as usize * 512;
    match std::env::var(CHILD_VAR).as_deref() {
        Ok("write") => {
            let c = attach("SPDK_IO_TEST_NVME");
            let ns = c.namespace(1).unwrap();
            let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
            write_sync(&mut qp, &ns, patterned(len, seed), lba, blocks).unwrap();
            // qpair and controller dropped: queues deleted, controller shut down.
        }
        Ok("verify") => {
            let c = attach("SPDK_IO_TEST_NVME");
            let ns = c.namespace(1).unwrap();
            let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
            let r = read_sync(
                &mut qp,
                &ns,
                DmaBuf::alloc_zeroed(len, 4096).unwrap(),
                lba,
                blocks,
            )
            .unwrap();
            assert_same(&r, &patterned(len, seed), "read by the second process");
        }
        Ok(other) => panic!("unknown {CHILD_VAR}={other}"),
        Err(_) => {
            let _ = bdf("SPDK_IO_TEST_NVME");
            run_child(name, CHILD_VAR, "write");
            run_child(name, CHILD_VAR, "verify");
        }
    }
}

fn user_driver() -> &'static str {
    match std::env::var("SPDK_IO_TEST_MODE").as_deref() {
        Ok("uio") => "uio_pci_generic",
        Ok("vfio") => "vfio-pci",
        other => {
            panic!("SPDK_IO_TEST_MODE must be vfio or uio (got {other:?}); set by qemu/run-tests")
        }
    }
}

fn kernel_block_device(addr: PciAddress) -> std::path::PathBuf {
    let sysfs = Sysfs::default();
    sysfs
        .bind_kernel(addr, "nvme")
        .unwrap_or_else(|e| panic!("binding {addr} to the kernel nvme driver: {e}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(b) = sysfs.block_devices(addr).first() {
            let p = std::path::PathBuf::from(format!("/dev/{b}"));
            if p.exists() {
                return p;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no /dev/nvmeXnY appeared for {addr} after binding to nvme"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn open_direct(path: &std::path::Path, write: bool) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    // The node can exist a moment before the namespace is ready (ENXIO).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(libc::O_DIRECT)
            .open(path)
        {
            Ok(f) => return f,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => panic!("opening {} with O_DIRECT: {e}", path.display()),
        }
    }
}

/// Gives the controller back to the user-space driver when dropped, so a
/// failing assertion does not leave it on the kernel driver for later tests.
struct Rebind {
    addr: PciAddress,
    driver: &'static str,
}

impl Drop for Rebind {
    fn drop(&mut self) {
        if let Err(e) =
            Sysfs::default().bind(self.addr, self.driver, &spdk_io::pci::system_mounts())
        {
            eprintln!("binding {} back to {}: {e}", self.addr, self.driver);
        }
    }
}

/// The kernel-interop test's spdk-io phases run in child processes: the env
/// keeps a VFIO group open for the life of the process, and a group whose
/// device was rebound (vfio-pci -> nvme -> vfio-pci) cannot be used again by
/// the process that held it. Named to run before the tests that attach in
/// this process.
#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn across_drivers_data_crosses_between_spdk_io_and_the_kernel() {
    use std::os::unix::fs::FileExt;
    let name = "across_drivers_data_crosses_between_spdk_io_and_the_kernel";
    let var = "SPDK_IO_TEST_NVME";
    let (lba, blocks) = (50_000u64, 32u32);
    let len = blocks as usize * 512;
    match std::env::var(PHASE_VAR).as_deref() {
        Ok("write") => {
            let c = attach(var);
            let ns = c.namespace(1).unwrap();
            let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
            write_sync(&mut qp, &ns, patterned(len, 1111), lba, blocks).unwrap();
            return;
        }
        Ok("read") => {
            let c = attach(var);
            let ns = c.namespace(1).unwrap();
            let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
            let at = lba + blocks as u64;
            let r = read_sync(
                &mut qp,
                &ns,
                DmaBuf::alloc_zeroed(len, 4096).unwrap(),
                at,
                blocks,
            )
            .unwrap();
            assert_same(&r, &patterned(len, 2222), "spdk-io read of kernel data");
            return;
        }
        Ok(other) => panic!("unknown {PHASE_VAR}={other}"),
        Err(_) => {}
    }
    let addr = bdf(var);
    let driver = user_driver();
    env::init_once(EnvOpts::default()).expect("env init");
    // spdk-io writes (child process).
    run_child(name, PHASE_VAR, "write");
    // The kernel reads it back, and writes the next range.
    let rebind = Rebind { addr, driver };
    let dev = kernel_block_device(addr);
    let mut buf = DmaBuf::alloc_zeroed(len, 4096).unwrap();
    {
        let f = open_direct(&dev, true);
        f.read_exact_at(&mut buf, lba * 512).unwrap();
        assert_same(&buf, &patterned(len, 1111), "kernel read of spdk-io data");
        let k = patterned(len, 2222);
        f.write_all_at(&k, (lba + blocks as u64) * 512).unwrap();
        f.sync_all().unwrap();
    }
    drop(rebind);
    let f = Sysfs::default().function(addr).unwrap();
    assert_eq!(f.driver.as_deref(), Some(driver), "rebound to {driver}");
    // spdk-io reads what the kernel wrote (child process).
    run_child(name, PHASE_VAR, "read");
}
