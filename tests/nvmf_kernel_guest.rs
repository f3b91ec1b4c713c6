//! spdk-io's NVMe-oF target served to Linux's own NVMe/TCP initiator
//! (nvme-tcp) in the test guest, on 127.0.0.1: the kernel connects
//! through `/dev/nvme-fabrics`, the namespace appears as a block device
//! of the exported size, random data written through it with O_DIRECT
//! reads back equal (also after a disconnect and reconnect), a namespace
//! added while connected appears (namespace-attribute-changed event, the
//! kernel rescans), the allow list refuses an unlisted host NQN, and the
//! kernel reads the discovery log. Ignored on the host: run
//! `qemu/run-tests --only nvmf_kernel_guest --mode vfio`.

mod nvmf_common;

use nvmf_common::{malloc, random, Tgt};
use spdk_io::nvmf::tcp::TcpTransport;
use spdk_io::nvmf::{SubsystemOpts, TransportOpts, DISCOVERY_NQN};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

const NEEDS: &str = "needs Linux's nvme-tcp: qemu/run-tests --only nvmf_kernel_guest --mode vfio";
const HOST: &str = "nqn.2024-01.io.spdk-io:kernel-host";

/// Loads nvme-tcp and what it needs (the guest's module list), once.
fn load_nvme_tcp() {
    let list = std::fs::read_to_string("/etc/modules/nvme-tcp")
        .unwrap_or_else(|e| panic!("/etc/modules/nvme-tcp: {e} ({NEEDS})"));
    for line in list.lines().filter(|l| !l.trim().is_empty()) {
        let name = Path::new(line)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(line)
            .trim_end_matches(".ko")
            .replace('-', "_");
        if Path::new("/sys/module").join(&name).exists() {
            continue;
        }
        let st = std::process::Command::new("insmod")
            .arg(Path::new("/lib/modules").join(line))
            .status()
            .expect("insmod");
        assert!(st.success(), "insmod {line} failed");
    }
    assert!(
        Path::new("/dev/nvme-fabrics").exists(),
        "no /dev/nvme-fabrics"
    );
}

/// A controller the kernel made; deleted on drop.
struct KernelCtrlr {
    instance: u32,
}

impl KernelCtrlr {
    /// Asks the kernel to connect (the write returns once the admin and
    /// I/O queues are up, or fails with the Connect's error).
    fn connect(port: u16, subnqn: &str, hostnqn: &str) -> std::io::Result<KernelCtrlr> {
        load_nvme_tcp();
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/nvme-fabrics")?;
        let opts = format!(
            "transport=tcp,traddr=127.0.0.1,trsvcid={port},nqn={subnqn},hostnqn={hostnqn},nr_io_queues=1,ctrl_loss_tmo=0"
        );
        f.write_all(opts.as_bytes())?;
        let mut answer = String::new();
        f.read_to_string(&mut answer)?;
        // "instance=N,cntlid=M"
        let instance = answer
            .trim()
            .split(',')
            .find_map(|kv| kv.strip_prefix("instance="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("/dev/nvme-fabrics answered '{answer}'"));
        Ok(KernelCtrlr { instance })
    }

    fn name(&self) -> String {
        format!("nvme{}", self.instance)
    }

    /// The block device of namespace `nsid` of subsystem `subnqn`, waited
    /// for up to `secs` seconds.
    fn block_device(subnqn: &str, nsid: u32, secs: u64) -> Option<String> {
        let start = Instant::now();
        loop {
            if let Some(d) = find_block_device(subnqn, nsid) {
                return Some(d);
            }
            if start.elapsed() > Duration::from_secs(secs) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for KernelCtrlr {
    fn drop(&mut self) {
        let p = format!("/sys/class/nvme/{}/delete_controller", self.name());
        let _ = std::fs::write(p, "1");
    }
}

fn sysfs(p: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The visible disk (`nvmeXnY`, not a hidden path `nvmeXcZnY`) of `nsid`
/// whose subsystem is `subnqn`.
fn find_block_device(subnqn: &str, nsid: u32) -> Option<String> {
    for e in std::fs::read_dir("/sys/block").ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("nvme") else {
            continue;
        };
        if rest.contains('c') {
            continue;
        }
        let dir = e.path();
        if sysfs(dir.join("device/subsysnqn")).as_deref() == Some(subnqn)
            && sysfs(dir.join("nsid")).and_then(|s| s.parse().ok()) == Some(nsid)
            && Path::new("/dev").join(&name).exists()
        {
            return Some(name);
        }
    }
    None
}

/// A buffer of `len` bytes aligned for O_DIRECT (4 KiB), inside `v`.
fn aligned(v: &mut Vec<u8>, len: usize) -> &mut [u8] {
    v.resize(len + 4096, 0);
    let off = v.as_ptr().align_offset(4096);
    &mut v[off..off + len]
}

fn open_direct(dev: &str) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(format!("/dev/{dev}"))
        .unwrap_or_else(|e| panic!("/dev/{dev}: {e}"))
}

fn write_direct(dev: &str, offset: u64, data: &[u8]) {
    let mut v = Vec::new();
    let b = aligned(&mut v, data.len());
    b.copy_from_slice(data);
    let f = open_direct(dev);
    f.write_all_at(b, offset)
        .unwrap_or_else(|e| panic!("writing {} bytes at {offset} to {dev}: {e}", data.len()));
}

fn read_direct(dev: &str, offset: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    let b = aligned(&mut v, len);
    let f = open_direct(dev);
    f.read_exact_at(b, offset)
        .unwrap_or_else(|e| panic!("reading {len} bytes at {offset} from {dev}: {e}"));
    b.to_vec()
}

/// A target with subsystem `nqn` exporting a new malloc bdev of
/// `blocks` 512 B blocks, allowing `hosts` (any host when empty).
fn target(nqn: &str, bdev: &str, blocks: u64, hosts: &[&str]) -> Tgt {
    let t = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    malloc(bdev, blocks, 512);
    let s = t
        .target
        .create_subsystem(
            nqn,
            SubsystemOpts {
                serial_number: "SPDKIOKERNEL0001".into(),
                model_number: "spdk-io kernel test".into(),
                allow_any_host: hosts.is_empty(),
                max_namespaces: 4,
                ..SubsystemOpts::default()
            },
        )
        .unwrap();
    for h in hosts {
        s.add_host(h).unwrap();
    }
    s.add_ns(bdev, None, None, None).unwrap();
    s.add_listener(TcpTransport::listen_addr(t.addr));
    t
}

#[test]
#[ignore = "needs Linux's nvme-tcp: qemu/run-tests --only nvmf_kernel_guest --mode vfio"]
fn the_kernel_initiator_reads_back_what_it_wrote_also_after_reconnecting() {
    let nqn = "nqn.2016-06.io.spdk-io:kernel-rw";
    let blocks = 32768u64; // 16 MiB
    let t = target(nqn, "KernelMalloc0", blocks, &[]);
    let port = t.addr.port();
    let c = KernelCtrlr::connect(port, nqn, HOST).expect("kernel connect");
    let dev = KernelCtrlr::block_device(nqn, 1, 20).expect("no block device for namespace 1");
    let sectors: u64 = sysfs(format!("/sys/block/{dev}/size"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(sectors * 512, blocks * 512, "{dev}: the exported size");
    assert_eq!(
        sysfs(format!("/sys/class/nvme/{}/serial", c.name())).as_deref(),
        Some("SPDKIOKERNEL0001")
    );
    // In the capsule (4 KiB), by R2T (1 MiB: several 128 KiB commands),
    // and the last block.
    let pieces = [
        (0u64, random(4096, 1)),
        (3 << 20, random(1 << 20, 2)),
        (blocks * 512 - 4096, random(4096, 3)),
    ];
    for (off, data) in &pieces {
        write_direct(&dev, *off, data);
    }
    for (off, data) in &pieces {
        assert!(
            read_direct(&dev, *off, data.len()) == *data,
            "{} bytes at {off} read back",
            data.len()
        );
    }
    drop(c);
    let start = Instant::now();
    while find_block_device(nqn, 1).is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{dev} still there after the disconnect"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _c = KernelCtrlr::connect(port, nqn, HOST).expect("kernel reconnect");
    let dev = KernelCtrlr::block_device(nqn, 1, 20).expect("no block device after reconnecting");
    for (off, data) in &pieces {
        assert!(
            read_direct(&dev, *off, data.len()) == *data,
            "{} bytes at {off} read back after reconnecting",
            data.len()
        );
    }
}

#[test]
#[ignore = "needs Linux's nvme-tcp: qemu/run-tests --only nvmf_kernel_guest --mode vfio"]
fn a_namespace_added_while_the_kernel_is_connected_appears_in_the_host() {
    let nqn = "nqn.2016-06.io.spdk-io:kernel-hotadd";
    let t = target(nqn, "KernelHotMalloc0", 8192, &[]);
    let _c = KernelCtrlr::connect(t.addr.port(), nqn, HOST).expect("kernel connect");
    KernelCtrlr::block_device(nqn, 1, 20).expect("no block device for namespace 1");
    assert!(find_block_device(nqn, 2).is_none());
    malloc("KernelHotMalloc1", 4096, 512);
    let s = t.target.find(nqn).unwrap();
    assert_eq!(
        s.add_ns("KernelHotMalloc1", Some(2), None, None).unwrap(),
        2
    );
    let dev = KernelCtrlr::block_device(nqn, 2, 30)
        .expect("namespace 2 did not appear: no namespace-attribute-changed event, or no rescan");
    let sectors: u64 = sysfs(format!("/sys/block/{dev}/size"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(sectors, 4096);
    let data = random(8192, 7);
    write_direct(&dev, 4096, &data);
    assert!(read_direct(&dev, 4096, 8192) == data);
    s.remove_ns(2).unwrap();
    let start = Instant::now();
    while find_block_device(nqn, 2).is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "namespace 2 still in the host after its removal"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs Linux's nvme-tcp: qemu/run-tests --only nvmf_kernel_guest --mode vfio"]
fn the_allow_list_refuses_an_unlisted_host_nqn_and_admits_a_listed_one() {
    let nqn = "nqn.2016-06.io.spdk-io:kernel-acl";
    let t = target(nqn, "KernelAclMalloc0", 4096, &[HOST]);
    let port = t.addr.port();
    let e = KernelCtrlr::connect(port, nqn, "nqn.2024-01.io.spdk-io:stranger")
        .err()
        .expect("an unlisted host connected");
    assert!(e.raw_os_error().is_some(), "{e}");
    assert!(find_block_device(nqn, 1).is_none());
    let _c = KernelCtrlr::connect(port, nqn, HOST).expect("a listed host is refused");
    KernelCtrlr::block_device(nqn, 1, 20).expect("no block device for the listed host");
}

/// NVME_IOCTL_ADMIN_CMD's argument (`struct nvme_passthru_cmd`).
#[repr(C)]
#[derive(Default)]
struct PassthruCmd {
    opcode: u8,
    flags: u8,
    rsvd1: u16,
    nsid: u32,
    cdw2: u32,
    cdw3: u32,
    metadata: u64,
    addr: u64,
    metadata_len: u32,
    data_len: u32,
    cdw10: u32,
    cdw11: u32,
    cdw12: u32,
    cdw13: u32,
    cdw14: u32,
    cdw15: u32,
    timeout_ms: u32,
    result: u32,
}
// NVME_IOCTL_ADMIN_CMD: `_IOWR('N', 0x41, struct nvme_passthru_cmd)`.
nix::ioctl_readwrite!(nvme_ioctl_admin_cmd, b'N', 0x41, PassthruCmd);
const _: () = assert!(
    std::mem::size_of::<PassthruCmd>() == 0x48,
    "the kernel's struct size"
);

/// Get Log Page `lid` of `len` bytes through the kernel's controller device.
fn get_log_page(ctrl: &str, lid: u8, len: usize) -> Vec<u8> {
    let f = OpenOptions::new()
        .read(true)
        .open(format!("/dev/{ctrl}"))
        .unwrap_or_else(|e| panic!("/dev/{ctrl}: {e}"));
    let mut buf = vec![0u8; len];
    let numd = (len / 4 - 1) as u32;
    let mut cmd = PassthruCmd {
        opcode: 0x02,
        addr: buf.as_mut_ptr() as u64,
        data_len: len as u32,
        cdw10: lid as u32 | (numd & 0xffff) << 16,
        cdw11: numd >> 16,
        timeout_ms: 10_000,
        ..PassthruCmd::default()
    };
    // SAFETY: `cmd` is a valid nvme_passthru_cmd whose addr/data_len name
    // `buf`, alive and not otherwise used until the ioctl returns.
    let r = unsafe { nvme_ioctl_admin_cmd(f.as_raw_fd(), &mut cmd) };
    assert_eq!(
        r,
        Ok(0),
        "Get Log Page {lid:#x} on {ctrl} (NVME_IOCTL_ADMIN_CMD)"
    );
    buf
}

#[test]
#[ignore = "needs Linux's nvme-tcp: qemu/run-tests --only nvmf_kernel_guest --mode vfio"]
fn the_kernel_reads_the_discovery_log_listing_the_subsystem() {
    let nqn = "nqn.2016-06.io.spdk-io:kernel-disc";
    let t = target(nqn, "KernelDiscMalloc0", 4096, &[]);
    let port = t.addr.port();
    let c = KernelCtrlr::connect(port, DISCOVERY_NQN, HOST).expect("discovery connect");
    assert_eq!(
        sysfs(format!("/sys/class/nvme/{}/subsysnqn", c.name())).as_deref(),
        Some(DISCOVERY_NQN)
    );
    let log = get_log_page(&c.name(), 0x70, 4096);
    let numrec = u64::from_le_bytes(log[8..16].try_into().unwrap());
    assert_eq!(numrec, 1, "one subsystem at one listener");
    let e = &log[1024..2048];
    let field = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .trim_end_matches(['\0', ' '])
            .to_string()
    };
    assert_eq!(e[0], 3, "TRTYPE TCP");
    assert_eq!(field(&e[256..512]), nqn);
    assert_eq!(field(&e[32..64]), port.to_string());
    assert_eq!(field(&e[512..768]), "127.0.0.1");
}
