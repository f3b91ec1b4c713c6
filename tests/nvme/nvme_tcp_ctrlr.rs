//! The controller and queue-pair API over NVMe/TCP against a scripted
//! subsystem on 127.0.0.1: attach by transport ID (Fabrics Connect,
//! bring-up over Property Get/Set, Identify), I/O queue pairs as their own
//! connections, reads and writes in-capsule and by R2T, split I/O, a
//! refused Connect named, a lost connection failing its I/O once; reset
//! and reconnect, asynchronous events and `process_completions(max)`
//! against spdk-io's target (`nvme_tcp_ctrlr/reset.rs`, `events.rs`).

#[path = "nvme_tcp_ctrlr/events.rs"]
mod events;
use crate::nvme_tcp_common;
#[path = "nvme_tcp_ctrlr/reset.rs"]
mod reset;

use nvme_tcp_common::target::{self, TargetOpts, MODEL, SERIAL, SUBNQN};
use spdk_io::env::{self, DmaBuf, EnvOpts};
use spdk_io::nvme::{self, ControllerOpts, IoCompletion, NvmeError, QPair, QPairOpts, TransportId};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

fn trid(addr: std::net::SocketAddr, subnqn: &str) -> TransportId {
    format!(
        "trtype:TCP adrfam:IPv4 traddr:{} trsvcid:{} subnqn:{subnqn} hostnqn:nqn.2024-01.io.spdk-io:host",
        addr.ip(),
        addr.port()
    )
    .parse()
    .unwrap()
}

fn opts() -> ControllerOpts {
    ControllerOpts {
        admin_timeout: Duration::from_secs(10),
        header_digest: true,
        data_digest: true,
        ..ControllerOpts::default()
    }
}

type Done = Rc<RefCell<Vec<IoCompletion>>>;

fn collector() -> Done {
    Rc::new(RefCell::new(Vec::new()))
}

fn wait(qp: &mut QPair, done: &Done, n: usize) {
    let start = Instant::now();
    while done.borrow().len() < n {
        qp.process_completions(0).unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "I/O did not complete"
        );
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

#[test]
fn a_tcp_controller_attaches_and_identifies_as_configured() {
    env::init_once(EnvOpts::no_huge()).unwrap();
    let t = target::start(TargetOpts::default());
    let c = nvme::connect(&trid(t.addr, SUBNQN), &opts()).unwrap();
    assert_eq!(c.data().serial(), SERIAL);
    assert_eq!(c.data().model(), MODEL);
    assert_eq!(c.namespace_ids(), vec![1]);
    let ns = c.namespace(1).unwrap();
    assert_eq!((ns.block_size(), ns.num_blocks()), (512, 8192));
    assert_eq!(c.max_io_qpairs(), 4);
    assert_eq!(
        c.trid().hostnqn.as_deref(),
        Some("nqn.2024-01.io.spdk-io:host")
    );
}

#[test]
fn a_wrong_subsystem_nqn_is_refused_by_name() {
    env::init_once(EnvOpts::no_huge()).unwrap();
    let t = target::start(TargetOpts::default());
    let e = nvme::connect(&trid(t.addr, "nqn.2024-01.io.spdk-io:nope"), &opts()).unwrap_err();
    assert!(matches!(e, NvmeError::ConnectRefused(_)), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("Connect Invalid Parameters") && msg.contains("nqn.2024-01.io.spdk-io:nope"),
        "{msg}"
    );
}

#[test]
fn nobody_listening_is_a_connect_error_naming_the_address() {
    env::init_once(EnvOpts::no_huge()).unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let e = nvme::connect(&trid(addr, SUBNQN), &opts()).unwrap_err();
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
}

#[test]
fn data_written_over_tcp_reads_back_in_capsule_by_r2t_and_split() {
    env::init_once(EnvOpts::no_huge()).unwrap();
    let t = target::start(TargetOpts::default());
    let c = nvme::connect(&trid(t.addr, SUBNQN), &opts()).unwrap();
    let ns = c.namespace(1).unwrap();
    let mut qp = c
        .alloc_io_qpair(QPairOpts {
            io_queue_size: 32,
            ..QPairOpts::default()
        })
        .unwrap();
    assert_eq!(
        t.connects.load(std::sync::atomic::Ordering::Acquire),
        2,
        "admin + I/O Connect"
    );
    let done = collector();
    // 2 KiB fits the 4 KiB capsule; 64 KiB goes by R2T in two R2Ts of 32 KiB.
    for (lba, len, seed) in [(0u64, 2048usize, 1u8), (100, 65536, 2)] {
        let data = pattern(len, seed);
        let mut buf = DmaBuf::alloc(len, 4096).unwrap();
        buf.copy_from_slice(&data);
        let d = done.clone();
        qp.write(&ns, buf, lba, (len / 512) as u32, move |_, c| {
            d.borrow_mut().push(c)
        })
        .map_err(|e| e.error)
        .unwrap();
        wait(&mut qp, &done, 1);
        let w = done.borrow_mut().pop().unwrap();
        w.result.unwrap();
        assert_eq!(
            &t.disk.lock().unwrap()[lba as usize * 512..][..len],
            &data[..],
            "on the target's disk"
        );
        let rbuf = DmaBuf::alloc_zeroed(len, 4096).unwrap();
        let d = done.clone();
        qp.read(&ns, rbuf, lba, (len / 512) as u32, move |_, c| {
            d.borrow_mut().push(c)
        })
        .map_err(|e| e.error)
        .unwrap();
        wait(&mut qp, &done, 1);
        let r = done.borrow_mut().pop().unwrap();
        r.result.unwrap();
        let back = r.buf.into_dma_buf().unwrap();
        assert!(back[..] == data[..], "{len} bytes read back");
    }
    assert_eq!(qp.outstanding(), 0);
}

#[test]
fn io_larger_than_the_transfer_limit_is_split_and_each_child_finds_its_data() {
    env::init_once(EnvOpts::no_huge()).unwrap();
    let t = target::start(TargetOpts {
        mdts: 1, // 8 KiB per command
        ..TargetOpts::default()
    });
    let c = nvme::connect(&trid(t.addr, SUBNQN), &opts()).unwrap();
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
    assert_eq!(qp.max_transfer_size(), 8192);
    // Two segments, 64 KiB: eight children, each sent from and read into
    // its own part of the parent's buffers.
    let data = pattern(65536, 9);
    let segs = [&data[..20480], &data[20480..]].map(|part| {
        let mut b = DmaBuf::alloc(part.len(), 4096).unwrap();
        b.copy_from_slice(part);
        nvme::DmaSlice::from(b)
    });
    let done = collector();
    let d = done.clone();
    qp.writev(&ns, segs.into(), 8, 128, move |_, c| d.borrow_mut().push(c))
        .map_err(|e| e.error)
        .unwrap();
    wait(&mut qp, &done, 1);
    done.borrow_mut().pop().unwrap().result.unwrap();
    assert!(t.disk.lock().unwrap()[4096..4096 + 65536] == data[..]);
    let segs = [12288, 53248].map(|n| nvme::DmaSlice::from(DmaBuf::alloc_zeroed(n, 4096).unwrap()));
    let d = done.clone();
    qp.readv(&ns, segs.into(), 8, 128, move |_, c| d.borrow_mut().push(c))
        .map_err(|e| e.error)
        .unwrap();
    wait(&mut qp, &done, 1);
    let r = done.borrow_mut().pop().unwrap();
    r.result.unwrap();
    let back: Vec<u8> = r
        .buf
        .into_vec()
        .iter()
        .flat_map(|s| s.as_slice().to_vec())
        .collect();
    assert!(back == data, "split read lands in both segments in order");
}

fn qp_opts() -> QPairOpts {
    QPairOpts {
        io_queue_size: 64,
        ..QPairOpts::default()
    }
}

#[test]
fn a_lost_connection_fails_every_io_in_flight_exactly_once() {
    env::init_once(EnvOpts::no_huge()).unwrap();
    let t = target::start(TargetOpts::default());
    let c = nvme::connect(&trid(t.addr, SUBNQN), &opts()).unwrap();
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
    let done = collector();
    for i in 0..8u64 {
        let d = done.clone();
        qp.read(&ns, DmaBuf::alloc(512, 4096).unwrap(), i, 1, move |_, c| {
            d.borrow_mut().push(c)
        })
        .map_err(|e| e.error)
        .unwrap();
    }
    t.disconnect();
    let start = Instant::now();
    while done.borrow().len() < 8 {
        // Polls before the reset is seen may still complete some reads.
        let _ = qp.process_completions(0);
        assert!(start.elapsed() < Duration::from_secs(10), "I/O hung");
    }
    for _ in 0..3 {
        let _ = qp.process_completions(0);
    }
    let done = done.borrow();
    assert_eq!(done.len(), 8, "each I/O completed exactly once");
    let lost = done
        .iter()
        .filter(|c| matches!(c.result, Err(NvmeError::ConnectionLost)))
        .count();
    assert!(lost > 0, "the I/O in flight failed with ConnectionLost");
    assert_eq!(qp.outstanding(), 0);
    assert!(!qp.is_connected(), "the queue pair reports the loss");
    let e = qp
        .read(&ns, DmaBuf::alloc(512, 4096).unwrap(), 0, 1, |_, _| {})
        .unwrap_err();
    assert!(matches!(e.error, NvmeError::ConnectionLost), "{}", e.error);
}

#[test]
fn tagged_io_is_sent_from_and_read_into_the_lent_bytes_split_or_not() {
    env::init_once(EnvOpts::no_huge()).unwrap();
    let t = target::start(TargetOpts {
        mdts: 1, // 8 KiB per command: a 16 KiB I/O is split in two
        ..TargetOpts::default()
    });
    let c = nvme::connect(&trid(t.addr, SUBNQN), &opts()).unwrap();
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
    let data = pattern(16384, 5);
    let mut wbuf = DmaBuf::alloc_zeroed(32768, 4096).unwrap();
    wbuf[4096..20480].copy_from_slice(&data);
    let mut tags = Vec::new();
    let poll_for = |qp: &mut QPair, tags: &mut Vec<(u64, bool)>, n: usize| {
        let start = Instant::now();
        while tags.len() < n {
            qp.process_completions_tagged(0, |tag, r| tags.push((tag, r.is_ok())))
                .unwrap();
            assert!(start.elapsed() < Duration::from_secs(10), "tagged I/O hung");
        }
    };
    // SAFETY: wbuf outlives the I/O and is not touched until its tag is reported.
    unsafe { qp.rw_tagged(&ns, nvme::RwOp::Write, &wbuf, 4096..20480, 16, 32, 7) }.unwrap();
    poll_for(&mut qp, &mut tags, 1);
    assert_eq!(tags.pop(), Some((7, true)));
    assert!(t.disk.lock().unwrap()[16 * 512..16 * 512 + 16384] == data[..]);
    for (lba, len) in [(16u64, 16384usize), (20, 4096)] {
        let rbuf = DmaBuf::alloc_zeroed(32768, 4096).unwrap();
        // SAFETY: rbuf outlives the I/O and is not read until its tag is reported.
        unsafe {
            qp.rw_tagged(
                &ns,
                nvme::RwOp::Read,
                &rbuf,
                8192..8192 + len,
                lba,
                (len / 512) as u32,
                8,
            )
        }
        .unwrap();
        poll_for(&mut qp, &mut tags, 1);
        assert_eq!(tags.pop(), Some((8, true)));
        let off = (lba as usize - 16) * 512;
        assert!(
            rbuf[8192..8192 + len] == data[off..off + len],
            "{len} bytes read into the lent range"
        );
        assert!(
            rbuf[..8192]
                .iter()
                .chain(&rbuf[8192 + len..])
                .all(|&b| b == 0),
            "nothing outside it"
        );
    }
}

#[test]
fn the_discovery_controller_lists_the_subsystem_as_a_transport_id() {
    env::init_once(EnvOpts::no_huge()).unwrap();
    let t = target::start(TargetOpts::default());
    let d: TransportId = format!(
        "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{}",
        t.addr.port()
    )
    .parse()
    .unwrap();
    let c = nvme::connect(&d, &ControllerOpts::default()).unwrap();
    assert_eq!(
        c.namespace_ids(),
        Vec::<u32>::new(),
        "a discovery controller has no namespaces"
    );
    let log = c.discovery_log().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].subnqn, SUBNQN);
    let trid = log[0].trid().unwrap();
    let mut want = self::trid(t.addr, SUBNQN);
    want.hostnqn = None;
    assert_eq!(trid, want);
    // The entry connects.
    let sub = nvme::connect(&trid, &ControllerOpts::default()).unwrap();
    assert_eq!(sub.namespace_ids(), vec![1]);
}

#[test]
fn with_a_keep_alive_timeout_polling_the_admin_queue_sends_keep_alive_every_half_kato() {
    env::init_once(EnvOpts::no_huge()).unwrap();
    let t = target::start(TargetOpts::default());
    let c = nvme::connect(
        &trid(t.addr, SUBNQN),
        &ControllerOpts {
            keep_alive_timeout_ms: 100,
            ..opts()
        },
    )
    .unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(400) {
        c.process_admin_completions().unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let n = t.keep_alives.load(std::sync::atomic::Ordering::Acquire);
    // Every 50 ms over 400 ms: about 8 (bounded loosely: no timing is asserted tightly).
    assert!((2..=9).contains(&n), "{n} Keep Alive commands");
    let quiet = nvme::connect(&trid(t.addr, SUBNQN), &opts()).unwrap();
    let before = t.keep_alives.load(std::sync::atomic::Ordering::Acquire);
    for _ in 0..20 {
        quiet.process_admin_completions().unwrap();
    }
    assert_eq!(
        t.keep_alives.load(std::sync::atomic::Ordering::Acquire),
        before,
        "no KATO, no Keep Alive"
    );
}
