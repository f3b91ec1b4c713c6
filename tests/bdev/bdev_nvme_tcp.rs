//! The nvme bdev over NVMe/TCP against spdk-io's own target on 127.0.0.1:
//! attach by transport ID, and SPDK's reconnect policy when the target goes
//! away mid-I/O (I/O held until the controller is back, or failed after
//! `fast_io_fail_timeout_sec`, the controller deleted after
//! `ctrlr_loss_timeout_sec`); the admin queue polled by the module (keep
//! alive at the KATO, namespaces added and removed on the target showing
//! up as bdevs added and removed).

use crate::common;
use crate::nvmf_common;

use common::{log, poll_until, rec, Log};
use nvmf_common::{malloc, Tgt, HOSTNQN};
use spdk_io::bdev::{self, nvme, Channel, Desc, IoBuf, IoStatus};
use spdk_io::nvmf::{Subsystem, SubsystemOpts, TransportOpts};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Exports malloc bdev `bdev` as `nqn` on `t`.
fn export(t: &Tgt, nqn: &str, bdev: &str) {
    export_max(t, nqn, bdev, 1);
}

/// A target on 127.0.0.1 exporting a new malloc bdev `bdev` of `blocks`
/// 512-byte blocks as `nqn`.
fn exported(nqn: &str, bdev: &str, blocks: u64) -> Tgt {
    malloc(bdev, blocks, 512);
    let t = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    export(&t, nqn, bdev);
    t
}

/// [`export`] into a subsystem of up to `max` namespaces.
fn export_max(t: &Tgt, nqn: &str, bdev: &str, max: u32) -> Arc<Subsystem> {
    let s = t
        .target
        .create_subsystem(
            nqn,
            SubsystemOpts {
                serial_number: "SPDKIO00000000000042".into(),
                model_number: "spdk-io reconnect test".into(),
                allow_any_host: true,
                max_namespaces: max,
                ..SubsystemOpts::default()
            },
        )
        .unwrap();
    s.add_ns(bdev, None, None, None).unwrap();
    s.add_listener(spdk_io::nvmf::tcp::TcpTransport::listen_addr(t.addr));
    s
}

fn attach(t: &Tgt, name: &str, nqn: &str, r: nvme::ReconnectOpts) -> Desc {
    let mut o = nvme::AttachOpts::new(name, t.trid(nqn, HOSTNQN));
    o.reconnect = r;
    let b = nvme::attach_controller(o).expect("attach over TCP");
    assert_eq!(b.len(), 1);
    bdev::open(&format!("{name}n1"), true).unwrap()
}

fn state(name: &str) -> Option<nvme::LinkState> {
    nvme::controllers(Some(name)).ok().map(|c| c[0].state)
}

/// Polls `ch` for `d` (the channel keeps its held I/O cycling).
fn poll_for(ch: &Channel, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        ch.poll();
    }
}

/// Reads the 4 KiB at LBA 160 (the 20th write of [`writes`]) and checks
/// that every byte is `tag`.
fn assert_write_20_holds(d: &Desc, ch: &Channel, tag: u8) {
    let r = log();
    d.read_blocks(ch, IoBuf::dma(4096, 4096).unwrap(), 8 * 20, 8, rec(&r))
        .unwrap();
    poll_until(ch, || r.borrow().len() == 1);
    let c = r.borrow_mut().pop().unwrap();
    assert!(c.success(), "{:?}", c.status);
    assert!(c.data.into_buf().unwrap().iter().all(|&b| b == tag));
}

/// Keeps `depth` 4 KiB writes of `tag` in flight at LBAs 0.. until `n`
/// have been submitted.
fn writes(d: &Desc, ch: &Channel, l: &Log, from: u64, n: u64, tag: u8) {
    for i in from..from + n {
        let mut b = IoBuf::dma(4096, 4096).unwrap();
        b.fill(tag);
        d.write_blocks(ch, b, (i % 64) * 8, 8, rec(l)).unwrap();
    }
}

#[test]
fn io_held_while_the_target_is_away_completes_once_when_it_is_back() {
    let nqn = "nqn.2016-06.io.spdk-io:reconnect";
    let t = exported(nqn, "RcMalloc", 8192);
    let addr = t.addr;
    let d = attach(
        &t,
        "Rc",
        nqn,
        nvme::ReconnectOpts {
            ctrlr_loss_timeout_sec: 30,
            reconnect_delay_sec: 1,
            fast_io_fail_timeout_sec: 0,
        },
    );
    let ch = d.get_io_channel().unwrap();
    let l = log();
    writes(&d, &ch, &l, 0, 16, 0x5a);
    poll_until(&ch, || l.borrow().len() == 16);
    assert!(l.borrow().iter().all(|c| c.status == IoStatus::Success));

    // The target goes away with 32 writes in flight, a heap-buffer write
    // (bounced) and a flush among them.
    writes(&d, &ch, &l, 16, 30, 0xa5);
    d.write_blocks(&ch, IoBuf::from_vec(vec![0xa5; 4096]), 8 * 46, 8, rec(&l))
        .unwrap();
    d.flush_blocks(&ch, 0, 8192, rec(&l)).unwrap();
    drop(t);
    poll_for(&ch, Duration::from_millis(1500));
    let st = state("Rc");
    assert!(
        matches!(
            st,
            Some(nvme::LinkState::Resetting | nvme::LinkState::ReconnectDelayed)
        ),
        "{st:?}"
    );
    // A reset asked for meanwhile is refused as busy, as SPDK refuses it.
    let e = nvme::reset_controller("Rc").unwrap_err();
    assert_eq!(bdev::rpc::errno_of(&e), 16, "{e}");
    let done_while_away = l.borrow().len();
    assert!(
        done_while_away < 48,
        "held I/O does not complete while the target is away"
    );
    assert!(
        l.borrow().iter().all(|c| c.status == IoStatus::Success),
        "nothing failed: it is held"
    );

    // Back on the same address: every held write completes once, with success.
    let t = Tgt::start(TransportOpts::default(), 1, &addr.to_string());
    export(&t, nqn, "RcMalloc");
    poll_until(&ch, || l.borrow().len() >= 48);
    poll_for(&ch, Duration::from_millis(200));
    assert_eq!(l.borrow().len(), 48, "each I/O completes exactly once");
    assert!(
        l.borrow().iter().all(|c| c.status == IoStatus::Success),
        "{:?}",
        common::statuses(&l)
    );
    assert_eq!(state("Rc"), Some(nvme::LinkState::Enabled));

    // I/O resumes: the data written before and after the outage is there.
    assert_write_20_holds(&d, &ch, 0xa5);
    drop(ch);
    drop(d);
    nvme::detach_controller("Rc").unwrap();
    drop(t);
}

#[test]
fn after_fast_io_fail_io_fails_and_after_the_loss_timeout_the_controller_is_deleted() {
    let nqn = "nqn.2016-06.io.spdk-io:lost";
    let t = exported(nqn, "LostMalloc", 4096);
    let d = attach(
        &t,
        "Lost",
        nqn,
        nvme::ReconnectOpts {
            ctrlr_loss_timeout_sec: 3,
            reconnect_delay_sec: 1,
            fast_io_fail_timeout_sec: 1,
        },
    );
    let ch = d.get_io_channel().unwrap();
    let l = log();
    writes(&d, &ch, &l, 0, 8, 1);
    poll_until(&ch, || l.borrow().len() == 8);
    writes(&d, &ch, &l, 8, 8, 2);
    drop(t);
    // Held at first, then failed once fast_io_fail_timeout_sec has passed.
    poll_until(&ch, || l.borrow().len() == 16);
    assert!(
        l.borrow()[8..].iter().all(|c| c.status == IoStatus::Failed),
        "{:?}",
        common::statuses(&l)
    );
    // New I/O fails at once now.
    writes(&d, &ch, &l, 16, 1, 3);
    poll_until(&ch, || l.borrow().len() == 17);
    assert_eq!(l.borrow()[16].status, IoStatus::Failed);
    // Past ctrlr_loss_timeout_sec the controller and its bdev are deleted.
    let start = Instant::now();
    while state("Lost").is_some() {
        ch.poll();
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the controller was not deleted: {:?}",
            state("Lost")
        );
    }
    assert!(bdev::get_by_name("Lostn1").is_none());
    drop(ch);
    drop(d);
}

#[test]
fn reconnect_options_are_checked_as_spdk_checks_them() {
    let o = |l, r, f| nvme::ReconnectOpts {
        ctrlr_loss_timeout_sec: l,
        reconnect_delay_sec: r,
        fast_io_fail_timeout_sec: f,
    };
    for (opts, why) in [
        (o(-2, 1, 0), "ctrlr_loss_timeout_sec can't be less than -1."),
        (o(-1, 0, 0), "reconnect_delay_sec can't be 0 if ctrlr_loss_timeout_sec is not 0."),
        (o(10, 0, 0), "reconnect_delay_sec can't be 0 if ctrlr_loss_timeout_sec is not 0."),
        (o(5, 10, 0), "reconnect_delay_sec can't be more than ctrlr_loss_timeout_sec."),
        (o(10, 5, 2), "reconnect_delay_sec can't be more than fast_io_fail_timeout_sec."),
        (o(-1, 5, 2), "reconnect_delay_sec can't be more than fast_io_fail_timeout_sec."),
        (o(10, 2, 20), "fast_io_fail_timeout_sec can't be more than ctrlr_loss_timeout_sec."),
        (o(0, 1, 0), "Both reconnect_delay_sec and fast_io_fail_timeout_sec must be 0 if ctrlr_loss_timeout_sec is 0."),
    ] {
        let e = opts.validate().unwrap_err().to_string();
        assert!(e.contains(why), "{opts:?}: {e}");
    }
    for ok in [
        o(0, 0, 0),
        o(-1, 1, 0),
        o(-1, 1, 5),
        o(10, 2, 5),
        o(10, 10, 10),
    ] {
        ok.validate().unwrap();
    }
}

#[test]
fn a_bdev_reset_of_a_tcp_controller_makes_a_new_association_and_io_goes_on() {
    let nqn = "nqn.2016-06.io.spdk-io:reset";
    let t = exported(nqn, "RsMalloc", 4096);
    let d = attach(&t, "Rs", nqn, nvme::ReconnectOpts::default());
    let cntlid = |n: &str| nvme::controllers(Some(n)).unwrap()[0].ctrlr.data().cntlid;
    let before = cntlid("Rs");
    let ch = d.get_io_channel().unwrap();
    let l = log();
    writes(&d, &ch, &l, 0, 4, 7);
    d.reset(&ch, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 5);
    assert!(
        l.borrow().iter().all(|c| c.status == IoStatus::Success),
        "{:?}",
        common::statuses(&l)
    );
    assert_ne!(cntlid("Rs"), before, "a new controller on the target");
    // I/O goes on through a queue pair of the new association.
    writes(&d, &ch, &l, 4, 4, 8);
    poll_until(&ch, || l.borrow().len() == 9);
    assert!(
        l.borrow().iter().all(|c| c.status == IoStatus::Success),
        "{:?}",
        common::statuses(&l)
    );
    drop(ch);
    drop(d);
    nvme::detach_controller("Rs").unwrap();
}

/// Waits (up to 20 s) until `cond` holds, polling `ch` meanwhile.
fn wait_for(ch: Option<&Channel>, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(20), "{what}");
        match ch {
            Some(ch) => poll_for(ch, Duration::from_millis(5)),
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

#[test]
fn an_idle_association_is_kept_alive_at_the_kato_by_the_admin_queue_poller() {
    let nqn = "nqn.2016-06.io.spdk-io:kato";
    malloc("KaMalloc", 4096, 512);
    let t = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    let s = export_max(&t, nqn, "KaMalloc", 1);
    let mut o = nvme::AttachOpts::new("Ka", t.trid(nqn, HOSTNQN));
    o.keep_alive_timeout_ms = 1000;
    nvme::attach_controller(o).expect("attach over TCP");
    let cntlid = nvme::controllers(Some("Ka")).unwrap()[0]
        .ctrlr
        .data()
        .cntlid;
    // Three KATOs with no I/O: only Keep Alive keeps the target's
    // controller.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        s.controller(cntlid).is_some(),
        "the target tore the controller down: no keep alive"
    );
    let d = bdev::open("Kan1", true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    writes(&d, &ch, &l, 0, 4, 9);
    poll_until(&ch, || l.borrow().len() == 4);
    assert!(
        l.borrow().iter().all(|c| c.status == IoStatus::Success),
        "{:?}",
        common::statuses(&l)
    );
    assert_eq!(state("Ka"), Some(nvme::LinkState::Enabled));
    drop(ch);
    drop(d);
    nvme::detach_controller("Ka").unwrap();
}

#[test]
fn namespaces_added_to_and_removed_from_the_subsystem_come_and_go_as_bdevs() {
    let nqn = "nqn.2016-06.io.spdk-io:nschange";
    malloc("NsA", 4096, 512);
    malloc("NsB", 2048, 4096);
    let t = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    let s = export_max(&t, nqn, "NsA", 4);
    let mut o = nvme::AttachOpts::new("Nc", t.trid(nqn, HOSTNQN));
    o.reconnect = nvme::ReconnectOpts::default();
    assert_eq!(nvme::attach_controller(o).unwrap().len(), 1);

    // Added on the target: an AER, then a bdev of the new namespace's
    // geometry, listed under its controller.
    let nsid = s.add_ns("NsB", Some(3), None, None).unwrap();
    assert_eq!(nsid, 3);
    // Registered first, then listed under its controller: wait for both.
    wait_for(None, "no bdev for the added namespace", || {
        bdev::get_by_name("Ncn3").is_some()
            && nvme::controllers(Some("Nc")).unwrap()[0].bdevs.len() == 2
    });
    let b = bdev::get_by_name("Ncn3").unwrap();
    assert_eq!((b.block_size(), b.num_blocks()), (4096, 2048));
    assert_eq!(
        nvme::controllers(Some("Nc")).unwrap()[0].bdevs,
        vec!["Ncn1".to_string(), "Ncn3".to_string()]
    );
    // It takes I/O.
    round_trip_one("Ncn3");

    // Removed on the target: its bdev is hot-removed, an open descriptor
    // told; the other namespace goes on.
    let removed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = removed.clone();
    let d = bdev::open_ext("Ncn3", false, move |ev, _| {
        if ev == bdev::BdevEvent::Remove {
            r.store(true, std::sync::atomic::Ordering::Release);
        }
    })
    .unwrap();
    s.remove_ns(3).unwrap();
    // Unlisted first, then the open descriptor hears of it (the event is
    // delivered on the bdev's thread after the name is gone): wait for all.
    wait_for(None, "the removed namespace's bdev is still there", || {
        bdev::get_by_name("Ncn3").is_none()
            && nvme::controllers(Some("Nc")).unwrap()[0].bdevs.len() == 1
            && removed.load(std::sync::atomic::Ordering::Acquire)
    });
    drop(d);
    assert_eq!(
        nvme::controllers(Some("Nc")).unwrap()[0].bdevs,
        vec!["Ncn1".to_string()]
    );
    round_trip_one("Ncn1");
    nvme::detach_controller("Nc").unwrap();
}

/// One 4 KiB write of a pattern at LBA 0 of `name`, read back equal.
fn round_trip_one(name: &str) {
    let d = bdev::open(name, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    let mut w = IoBuf::dma(4096, 4096).unwrap();
    w.iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = i as u8 ^ 0x3c);
    let bs = d.bdev().block_size() as u64;
    d.write_blocks(&ch, w, 0, 4096 / bs, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 1);
    assert!(l.borrow()[0].success(), "{:?}", l.borrow()[0].status);
    d.read_blocks(&ch, IoBuf::dma(4096, 4096).unwrap(), 0, 4096 / bs, rec(&l))
        .unwrap();
    poll_until(&ch, || l.borrow().len() == 2);
    let c = l.borrow_mut().pop().unwrap();
    assert!(c.success(), "{:?}", c.status);
    let data = c.data.into_buf().unwrap();
    assert!(data.iter().enumerate().all(|(i, &b)| b == i as u8 ^ 0x3c));
}

#[test]
fn every_connection_of_an_attach_with_hostaddr_comes_from_that_source_address() {
    let nqn = "nqn.2016-06.io.spdk-io:hostaddr";
    malloc("HaMalloc", 4096, 512);
    let t = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    let s = export_max(&t, nqn, "HaMalloc", 1);
    let mut o = nvme::AttachOpts::new("Ha", t.trid(nqn, HOSTNQN));
    // Tests talk to 127.0.0.1 only: the source address is that one, given
    // explicitly (tests/nvme/sock_tcp.rs shows a source binding taking effect
    // with a fixed port).
    o.hostaddr = Some("127.0.0.1".into());
    nvme::attach_controller(o).expect("attach from 127.0.0.1");
    let d = bdev::open("Han1", true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    writes(&d, &ch, &l, 0, 2, 4);
    poll_until(&ch, || l.borrow().len() == 2);
    assert!(l.borrow().iter().all(|c| c.status == IoStatus::Success));
    let cntlid = nvme::controllers(Some("Ha")).unwrap()[0]
        .ctrlr
        .data()
        .cntlid;
    let peers: Vec<_> = s
        .controller(cntlid)
        .expect("the target's controller")
        .lock()
        .qpairs
        .iter()
        .map(|(_, q)| q.peer.ip().to_string())
        .collect();
    assert_eq!(peers, vec!["127.0.0.1", "127.0.0.1"], "admin and I/O queue");
    drop(ch);
    drop(d);
    nvme::detach_controller("Ha").unwrap();
}

#[test]
fn a_source_address_that_cannot_be_bound_or_is_of_another_family_fails_the_attach_saying_so() {
    let nqn = "nqn.2016-06.io.spdk-io:badhostaddr";
    let t = exported(nqn, "BhMalloc", 4096);
    // A source that cannot be bound: the target's own listening address
    // and port (tests use no address but the loopback's).
    let taken = t.addr.port().to_string();
    let busy = format!("binding the source address 127.0.0.1:{taken}");
    for (addr, port, why) in [
        ("127.0.0.1", Some(taken.as_str()), busy.as_str()),
        ("::1", None, "different families"),
        ("localhost", None, "is not an IPv4 or IPv6 address"),
        ("127.0.0.1", Some("port"), "is not a port number"),
    ] {
        let mut o = nvme::AttachOpts::new("Bh", t.trid(nqn, HOSTNQN));
        o.hostaddr = Some(addr.into());
        o.hostsvcid = port.map(str::to_string);
        let e = nvme::attach_controller(o).unwrap_err().to_string();
        assert!(e.contains(why), "{addr}: {e}");
        assert!(nvme::controllers(Some("Bh")).is_err());
    }
}

#[test]
fn with_failover_a_second_attach_adds_a_path_and_io_moves_to_it_when_the_first_goes() {
    let nqn = "nqn.2016-06.io.spdk-io:failover";
    malloc("FoMalloc", 4096, 512);
    // Two targets on two loopback ports export the same bdev under the
    // same subsystem NQN and serial number: two paths to one namespace.
    let t1 = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    export(&t1, nqn, "FoMalloc");
    let t2 = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    export(&t2, nqn, "FoMalloc");
    let reconnect = nvme::ReconnectOpts {
        ctrlr_loss_timeout_sec: 30,
        reconnect_delay_sec: 1,
        fast_io_fail_timeout_sec: 0,
    };
    let d = attach(&t1, "Fo", nqn, reconnect);
    let mut o = nvme::AttachOpts::new("Fo", t2.trid(nqn, HOSTNQN));
    o.reconnect = reconnect;
    o.multipath = nvme::Multipath::Failover;
    let b = nvme::attach_controller(o.clone()).expect("second path");
    assert_eq!(
        b.iter().map(|b| b.name().to_string()).collect::<Vec<_>>(),
        vec!["Fon1"]
    );
    // The same path twice is refused (EALREADY), as SPDK refuses it.
    let e = nvme::attach_controller(o).unwrap_err();
    assert_eq!(bdev::rpc::errno_of(&e), libc::EALREADY, "{e}");
    let port = |n: &str| {
        nvme::controllers(Some(n)).unwrap()[0]
            .trid
            .clone()
            .unwrap()
            .trsvcid
    };
    assert_eq!(port("Fo"), Some(t1.addr.port().to_string()));

    let ch = d.get_io_channel().unwrap();
    let l = log();
    writes(&d, &ch, &l, 0, 8, 0x11);
    poll_until(&ch, || l.borrow().len() == 8);
    // The first path goes away with writes in flight: they are held, then
    // completed through the second path.
    writes(&d, &ch, &l, 8, 16, 0x22);
    drop(t1);
    poll_until(&ch, || l.borrow().len() == 24);
    assert!(
        l.borrow().iter().all(|c| c.status == IoStatus::Success),
        "{:?}",
        common::statuses(&l)
    );
    assert_eq!(port("Fo"), Some(t2.addr.port().to_string()));
    assert_eq!(state("Fo"), Some(nvme::LinkState::Enabled));
    assert_write_20_holds(&d, &ch, 0x22);
    drop(ch);
    drop(d);
    nvme::detach_controller("Fo").unwrap();
}
