//! The NVMe-oF target over TCP on 127.0.0.1, driven by spdk-io's own
//! NVMe/TCP initiator: Connect and bring-up, Identify, random data written
//! and read back (in-capsule, by R2T, with and without digests), the other
//! I/O commands, the allow list, two subsystems on two poll groups, an
//! idle poll group that waits for its sockets and wakes for the next command,
//! more large I/Os in flight than the shared buffer pool holds.

use crate::nvmf_common;

use nvmf_common::{opts, qp_opts, random, subsystem, wait, write_read, Done, Tgt, HOSTNQN};
use spdk_io::env::DmaBuf;
use spdk_io::nvme::{self, Controller, NvmeError};
use spdk_io::nvmf::TransportOpts;
use std::cell::RefCell;
use std::rc::Rc;

fn verify(digests: bool) {
    let t = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    let nqn = if digests {
        "nqn.2016-06.io.spdk-io:verify-dg"
    } else {
        "nqn.2016-06.io.spdk-io:verify"
    };
    let bdev = if digests {
        "NvmfMallocDg"
    } else {
        "NvmfMalloc"
    };
    subsystem(&t, nqn, bdev, 8192, true);
    let c = nvme::connect(&t.trid(nqn, HOSTNQN), &opts(digests)).unwrap();
    assert_eq!(c.data().serial(), "SPDKIO00000000000001");
    assert_eq!(c.data().model(), "spdk-io nvmf test");
    assert_eq!(c.data().subsystem_nqn(), nqn);
    assert_eq!(c.namespace_ids(), vec![1]);
    let ns = c.namespace(1).unwrap();
    assert_eq!((ns.block_size(), ns.num_blocks()), (512, 8192));
    let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
    // 2 KiB goes in the capsule (4 KiB in-capsule size); 64 KiB and
    // 128 KiB go by R2T and H2CData.
    for (lba, len) in [(0u64, 2048usize), (64, 65536), (1000, 131072), (8191, 512)] {
        write_read(&mut qp, &ns, lba, &random(len, lba));
    }
    assert_eq!(qp.outstanding(), 0);
}

#[test]
fn the_initiator_writes_and_reads_back_random_data_through_the_target() {
    verify(false);
}

#[test]
fn with_header_and_data_digests_data_reads_back_equal() {
    verify(true);
}

#[test]
fn write_zeroes_flush_and_deallocate_complete_and_zeroes_read_back() {
    let t = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    let nqn = "nqn.2016-06.io.spdk-io:cmds";
    subsystem(&t, nqn, "NvmfMallocCmds", 2048, true);
    let c = nvme::connect(&t.trid(nqn, HOSTNQN), &opts(false)).unwrap();
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
    write_read(&mut qp, &ns, 16, &random(8192, 5));
    let done: Done = Rc::new(RefCell::new(Vec::new()));
    let d = done.clone();
    qp.write_zeroes(&ns, 16, 16, move |_, c| d.borrow_mut().push(c))
        .map_err(|e| e.error)
        .unwrap();
    let d = done.clone();
    qp.flush_ns(&ns, move |_, c| d.borrow_mut().push(c))
        .map_err(|e| e.error)
        .unwrap();
    let d = done.clone();
    qp.deallocate(&ns, &[(100, 8), (200, 8)], move |_, c| {
        d.borrow_mut().push(c)
    })
    .map_err(|e| e.error)
    .unwrap();
    wait(&mut qp, &done, 3);
    for c in done.borrow_mut().drain(..) {
        c.result.unwrap();
    }
    let d = done.clone();
    qp.read(
        &ns,
        DmaBuf::alloc(8192, 4096).unwrap(),
        16,
        16,
        move |_, c| d.borrow_mut().push(c),
    )
    .map_err(|e| e.error)
    .unwrap();
    wait(&mut qp, &done, 1);
    let r = done.borrow_mut().pop().unwrap();
    assert!(r.buf.into_dma_buf().unwrap().iter().all(|&b| b == 0));
}

#[test]
fn a_read_past_the_end_fails_with_lba_out_of_range_and_the_queue_goes_on() {
    let t = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    let nqn = "nqn.2016-06.io.spdk-io:range";
    subsystem(&t, nqn, "NvmfMallocRange", 1024, true);
    let c = nvme::connect(&t.trid(nqn, HOSTNQN), &opts(false)).unwrap();
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
    // The initiator checks ranges itself: send the raw command instead.
    let done: Done = Rc::new(RefCell::new(Vec::new()));
    let mut sqe = nvme::spec::Sqe::new(nvme::spec::NvmOpcode::Read as u8, 1);
    sqe.set_slba(1020);
    sqe.cdw12 = 7;
    let d = done.clone();
    qp.submit_raw(
        sqe,
        nvme::IoBuf::Single(DmaBuf::alloc(4096, 4096).unwrap().into()),
        move |_, c| d.borrow_mut().push(c),
    )
    .map_err(|e| e.error)
    .unwrap();
    wait(&mut qp, &done, 1);
    let r = done.borrow_mut().pop().unwrap();
    let msg = r.result.unwrap_err().to_string();
    assert!(msg.contains("LBA Out of Range"), "{msg}");
    write_read(&mut qp, &ns, 0, &random(4096, 9));
}

#[test]
fn an_unknown_subsystem_is_refused_at_connect_by_name() {
    let t = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    let e = nvme::connect(
        &t.trid("nqn.2016-06.io.spdk-io:none", HOSTNQN),
        &opts(false),
    )
    .unwrap_err();
    assert!(matches!(e, NvmeError::ConnectRefused(_)), "{e}");
    assert!(e.to_string().contains("Connect Invalid Parameters"), "{e}");
}

#[test]
fn the_allow_list_refuses_an_unlisted_host_and_admits_a_listed_one() {
    let t = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    let nqn = "nqn.2016-06.io.spdk-io:allow";
    subsystem(&t, nqn, "NvmfMallocAllow", 1024, false);
    let e = nvme::connect(&t.trid(nqn, HOSTNQN), &opts(false)).unwrap_err();
    assert!(e.to_string().contains("Connect Invalid Host"), "{e}");
    t.target.find(nqn).unwrap().add_host(HOSTNQN).unwrap();
    let c = nvme::connect(&t.trid(nqn, HOSTNQN), &opts(false)).unwrap();
    assert_eq!(c.namespace_ids(), vec![1]);
}

#[test]
fn two_subsystems_on_two_poll_groups_each_serve_their_namespace() {
    let t = Tgt::start(TransportOpts::default(), 2, "127.0.0.1:0");
    let (a, b) = (
        "nqn.2016-06.io.spdk-io:two-a",
        "nqn.2016-06.io.spdk-io:two-b",
    );
    subsystem(&t, a, "NvmfMallocTwoA", 1024, true);
    subsystem(&t, b, "NvmfMallocTwoB", 2048, true);
    let ca = nvme::connect(&t.trid(a, HOSTNQN), &opts(false)).unwrap();
    let cb = nvme::connect(&t.trid(b, HOSTNQN), &opts(false)).unwrap();
    let (na, nb) = (ca.namespace(1).unwrap(), cb.namespace(1).unwrap());
    assert_eq!((na.num_blocks(), nb.num_blocks()), (1024, 2048));
    let mut qa = ca.alloc_io_qpair(qp_opts()).unwrap();
    let mut qb = cb.alloc_io_qpair(qp_opts()).unwrap();
    let (da, db) = (random(16384, 1), random(16384, 2));
    write_read(&mut qa, &na, 8, &da);
    write_read(&mut qb, &nb, 8, &db);
    write_read(&mut qa, &na, 8, &da);
    let per_group: Vec<usize> = t.group_conns.iter().map(|g| g.connections()).collect();
    assert_eq!(
        per_group.iter().sum::<usize>(),
        4,
        "two admin + two I/O queues"
    );
    assert!(
        per_group.iter().all(|&n| n == 2),
        "round robin: {per_group:?}"
    );
}

#[test]
fn the_discovery_log_lists_the_subsystem_at_its_listener() {
    let t = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    let nqn = "nqn.2016-06.io.spdk-io:disc";
    subsystem(&t, nqn, "NvmfMallocDisc", 1024, true);
    let c: Controller =
        nvme::connect(&t.trid(spdk_io::nvmf::DISCOVERY_NQN, HOSTNQN), &opts(false)).unwrap();
    assert_eq!(c.data().cntrltype, 2, "a discovery controller");
    let log = c.get_log_page(0x70, 0, 2048).unwrap();
    assert_eq!(
        u64::from_le_bytes(log[8..16].try_into().unwrap()),
        1,
        "NUMREC"
    );
    let e = &log[1024..];
    assert_eq!(&e[256..256 + nqn.len()], nqn.as_bytes());
    let port = t.addr.port().to_string();
    assert_eq!(&e[32..32 + port.len()], port.as_bytes());
}

#[test]
fn an_ipv6_listener_serves_the_initiator() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    }
    let t = Tgt::start(TransportOpts::default(), 1, "[::1]:0");
    let nqn = "nqn.2016-06.io.spdk-io:v6";
    subsystem(&t, nqn, "NvmfMallocV6", 1024, true);
    let c = nvme::connect(&t.trid(nqn, HOSTNQN), &opts(false)).unwrap();
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
    write_read(&mut qp, &ns, 0, &random(4096, 6));
}

/// Submits `sqe` with `data` (a copy in DMA memory); its completion goes to `done`.
fn raw(qp: &mut nvme::QPair, sqe: nvme::spec::Sqe, data: &[u8], done: &Done) {
    let mut b = DmaBuf::alloc(data.len(), 4096).unwrap();
    b.copy_from_slice(data);
    let d = done.clone();
    qp.submit_raw(sqe, nvme::IoBuf::Single(b.into()), move |_, c| {
        d.borrow_mut().push(c)
    })
    .map_err(|e| e.error)
    .unwrap();
}

/// A fused Compare (FUSE first) and Write (FUSE second) of one block at `lba`.
fn fused_pair(qp: &mut nvme::QPair, lba: u64, expect: &[u8], new: &[u8]) -> (Done, Done) {
    let (a, b): (Done, Done) = Default::default();
    let mut cmp = nvme::spec::Sqe::new(nvme::spec::NvmOpcode::Compare as u8, 1);
    cmp.set_slba(lba);
    cmp.set_fuse(1);
    let mut wr = nvme::spec::Sqe::new(nvme::spec::NvmOpcode::Write as u8, 1);
    wr.set_slba(lba);
    wr.set_fuse(2);
    raw(qp, cmp, expect, &a);
    raw(qp, wr, new, &b);
    let start = std::time::Instant::now();
    while a.borrow().is_empty() || b.borrow().is_empty() {
        qp.process_completions(0).unwrap();
        assert!(
            start.elapsed().as_secs() < 20,
            "fused pair did not complete"
        );
    }
    (a, b)
}

#[test]
fn a_fused_compare_and_write_writes_only_when_the_compare_matches() {
    let t = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    let nqn = "nqn.2016-06.io.spdk-io:fused";
    subsystem(&t, nqn, "NvmfMallocFused", 1024, true);
    let c = nvme::connect(&t.trid(nqn, HOSTNQN), &opts(false)).unwrap();
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
    let (old, new, other) = (random(512, 1), random(512, 2), random(512, 3));
    write_read(&mut qp, &ns, 10, &old);
    let (a, b) = fused_pair(&mut qp, 10, &old, &new);
    a.borrow_mut().pop().unwrap().result.unwrap();
    b.borrow_mut().pop().unwrap().result.unwrap();
    assert!(nvmf_common::read(&mut qp, &ns, 10, 512) == new, "written");
    // The compare no longer matches: nothing is written.
    let (a, b) = fused_pair(&mut qp, 10, &old, &other);
    let s = a.borrow_mut().pop().unwrap().result.unwrap_err();
    let s = s.status().expect("an NVMe status");
    assert_eq!((s.sct.raw(), s.sc), (2, 0x85), "Compare Failure");
    let s = b.borrow_mut().pop().unwrap().result.unwrap_err();
    let s = s.status().expect("an NVMe status");
    assert_eq!(
        (s.sct.raw(), s.sc),
        (0, 0x09),
        "Aborted due to Failed Fused Command"
    );
    assert!(nvmf_common::read(&mut qp, &ns, 10, 512) == new, "unchanged");
    // A second half without a first is Missing Fused.
    let mut wr = nvme::spec::Sqe::new(nvme::spec::NvmOpcode::Write as u8, 1);
    wr.set_slba(10);
    wr.set_fuse(2);
    let done: Done = Default::default();
    raw(&mut qp, wr, &other, &done);
    wait(&mut qp, &done, 1);
    let s = done.borrow_mut().pop().unwrap().result.unwrap_err();
    assert_eq!(
        s.status().unwrap().sc,
        0x0a,
        "Aborted due to Missing Fused Command"
    );
    assert!(nvmf_common::read(&mut qp, &ns, 10, 512) == new, "unchanged");
}

#[test]
fn a_host_reaching_the_target_through_a_listener_not_added_to_the_subsystem_is_refused() {
    let t = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    let nqn = "nqn.2016-06.io.spdk-io:listener";
    nvmf_common::malloc("NvmfMallocListener", 1024, 512);
    let s = t
        .target
        .create_subsystem(
            nqn,
            spdk_io::nvmf::SubsystemOpts {
                allow_any_host: true,
                ..Default::default()
            },
        )
        .unwrap();
    s.add_ns("NvmfMallocListener", None, None, None).unwrap();
    // Another port of the same address: not the one the host reaches.
    let mut elsewhere = t.addr;
    elsewhere.set_port(t.addr.port().wrapping_add(1).max(1));
    s.add_listener(spdk_io::nvmf::tcp::TcpTransport::listen_addr(elsewhere));
    let e = nvme::connect(&t.trid(nqn, HOSTNQN), &opts(false)).unwrap_err();
    assert!(matches!(e, NvmeError::ConnectRefused(_)), "{e}");
    assert!(e.to_string().contains("Invalid Host"), "{e}");
    s.add_listener(spdk_io::nvmf::tcp::TcpTransport::listen_addr(t.addr));
    let c = nvme::connect(&t.trid(nqn, HOSTNQN), &opts(false)).unwrap();
    assert_eq!(c.namespace_ids(), vec![1]);
}

#[test]
fn a_namespace_removed_while_io_queues_are_connected_releases_its_bdev() {
    let t = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    let nqn = "nqn.2016-06.io.spdk-io:remove-ns";
    // A passthru over a malloc: the passthru claims its base until the
    // last descriptor of the passthru closes.
    nvmf_common::subsystem(&t, nqn, "NvmfRmKeep", 1024, true);
    nvmf_common::malloc("NvmfRmBase", 1024, 512);
    spdk_io::bdev::passthru::create(spdk_io::bdev::passthru::PassthruOpts::new(
        "NvmfRmBase",
        "NvmfRmPt",
    ))
    .unwrap();
    let s = t.target.find(nqn).unwrap();
    assert_eq!(s.add_ns("NvmfRmPt", Some(2), None, None).unwrap(), 2);
    let c = nvme::connect(&t.trid(nqn, HOSTNQN), &opts(false)).unwrap();
    let ns2 = c.namespace(2).unwrap();
    let ns1 = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
    write_read(&mut qp, &ns2, 0, &random(4096, 4));
    s.remove_ns(2).unwrap();
    spdk_io::bdev::passthru::delete("NvmfRmPt").unwrap();
    let base = spdk_io::bdev::get_by_name("NvmfRmBase").unwrap();
    // The same queue keeps 8 reads of the other namespace in flight all
    // along: the removed one is closed all the same.
    let done: Done = Rc::new(RefCell::new(Vec::new()));
    let mut sent = 0usize;
    let start = std::time::Instant::now();
    while base.claimed_by().is_some() {
        assert!(
            start.elapsed().as_secs() < 10,
            "the I/O queue still holds the removed namespace's bdev"
        );
        while sent - done.borrow().len() < 8 {
            let d = done.clone();
            qp.read(
                &ns1,
                DmaBuf::alloc(4096, 4096).unwrap(),
                0,
                8,
                move |_, c| d.borrow_mut().push(c),
            )
            .map_err(|e| e.error)
            .unwrap();
            sent += 1;
        }
        qp.process_completions(0).unwrap();
    }
    wait(&mut qp, &done, sent);
    assert!(done.borrow().iter().all(|c| c.result.is_ok()));
    // The queue goes on with the other namespace.
    write_read(&mut qp, &ns1, 0, &random(4096, 5));
}

#[test]
fn an_idle_poll_group_waits_for_its_sockets_and_wakes_for_the_next_command() {
    let t = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    let nqn = "nqn.2016-06.io.spdk-io:idle";
    subsystem(&t, nqn, "NvmfIdleMalloc", 1024, true);
    let c = nvme::connect(&t.trid(nqn, HOSTNQN), &opts(false)).unwrap();
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
    let waits = || {
        t.group_conns[0]
            .stats()
            .idle_waits
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    for round in 0..3u64 {
        // Quiet long enough for the group to wait (bounded: 10 s).
        let before = waits();
        let start = std::time::Instant::now();
        while waits() == before {
            assert!(
                start.elapsed().as_secs() < 10,
                "the idle group never waited"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // The next command is served as ever.
        write_read(&mut qp, &ns, round * 8, &random(4096, round));
    }
}

/// Large I/Os in flight on several queues at once, by index: submitted all
/// before any completion is awaited, then every queue polled until all
/// are done (bounded: 30 s).
fn many_at_once(
    qps: &mut [nvme::QPair],
    ns: &nvme::Namespace,
    ios: &[(usize, u64, Vec<u8>)],
    write: bool,
) -> Vec<(usize, nvme::IoCompletion)> {
    let done = Rc::new(RefCell::new(Vec::new()));
    for (k, (q, lba, data)) in ios.iter().enumerate() {
        let d = done.clone();
        let blocks = (data.len() / 512) as u32;
        let cb = move |_: &mut nvme::QPair, c: nvme::IoCompletion| d.borrow_mut().push((k, c));
        let r = if write {
            let mut buf = DmaBuf::alloc(data.len(), 4096).unwrap();
            buf.copy_from_slice(data);
            qps[*q].write(ns, buf, *lba, blocks, cb)
        } else {
            let buf = DmaBuf::alloc_zeroed(data.len(), 4096).unwrap();
            qps[*q].read(ns, buf, *lba, blocks, cb)
        };
        r.map_err(|e| e.error).unwrap();
    }
    let start = std::time::Instant::now();
    while done.borrow().len() < ios.len() {
        for qp in qps.iter_mut() {
            qp.process_completions(0).unwrap();
        }
        assert!(
            start.elapsed().as_secs() < 30,
            "{} of {} I/Os completed",
            done.borrow().len(),
            ios.len()
        );
    }
    let out = std::mem::take(&mut *done.borrow_mut());
    out
}

#[test]
fn large_ios_outnumbering_the_shared_buffers_wait_for_them_and_all_complete_with_their_data() {
    // Two 128 KiB buffers for the whole transport and no per-group cache;
    // two poll groups, each serving one I/O queue with 16 I/Os of 64 and
    // 128 KiB in flight: 32 commands for 2 buffers.
    let o = TransportOpts {
        num_shared_buffers: 2,
        buf_cache_size: 0,
        ..TransportOpts::default()
    };
    let t = Tgt::start(o, 2, "127.0.0.1:0");
    let nqn = "nqn.2016-06.io.spdk-io:pool";
    subsystem(&t, nqn, "NvmfPoolMalloc", 16384, true);
    let c = nvme::connect(&t.trid(nqn, HOSTNQN), &opts(false)).unwrap();
    let ns = c.namespace(1).unwrap();
    // Connections go round robin to the groups: admin, I/O 1 on the
    // second group, I/O 2 on the first.
    let mut qps: Vec<_> = (0..2)
        .map(|_| c.alloc_io_qpair(qp_opts()).unwrap())
        .collect();
    let ios: Vec<(usize, u64, Vec<u8>)> = (0..32usize)
        .map(|k| {
            let len = if k % 2 == 0 { 131072 } else { 65536 };
            let lba = k as u64 * 256;
            (k % 2, lba, random(len, lba + 1))
        })
        .collect();
    for (k, c) in many_at_once(&mut qps, &ns, &ios, true) {
        c.result
            .unwrap_or_else(|e| panic!("write {k} at LBA {}: {e}", ios[k].1));
    }
    for (k, c) in many_at_once(&mut qps, &ns, &ios, false) {
        c.result
            .unwrap_or_else(|e| panic!("read {k} at LBA {}: {e}", ios[k].1));
        let back = c.buf.into_dma_buf().unwrap();
        assert!(back[..] == ios[k].2[..], "read {k} at LBA {}", ios[k].1);
    }
    let waited: u64 = t
        .group_conns
        .iter()
        .map(|g| {
            g.stats()
                .pending_data_buffer
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    assert!(waited > 0, "no command waited for a shared buffer");
    let pool = t.target.buf_pool().unwrap();
    assert!(pool.created() <= 2, "{} buffers made", pool.created());
    for qp in qps.iter() {
        assert_eq!(qp.outstanding(), 0);
    }
}
