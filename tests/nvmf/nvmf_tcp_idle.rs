//! A poll group on a reactor: it spins while the reactor polls flat out
//! (`--busy-poll`, as SPDK's nvmf_tgt), and otherwise waits for its
//! sockets when idle — with the reactor's own sleep off (the target's
//! default) or on (`--interrupt-mode`) — and the next command wakes it.

use crate::nvmf_common;

use nvmf_common::{malloc, opts, qp_opts, random, write_read, HOSTNQN};
use spdk_io::env::{self, EnvOpts};
use spdk_io::nvme;
use spdk_io::nvmf::tcp::{PollGroup, PollGroupHandle, TcpTransport};
use spdk_io::nvmf::{SubsystemOpts, Target, TransportOpts};
use spdk_io::thread::{CpuMask, ReactorOpts, ReactorSet, ThreadHandle, ThreadOpts};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

thread_local! {
    /// The transport, kept alive on the reactor's thread that runs it.
    static TRANSPORT: RefCell<Option<TcpTransport>> = const { RefCell::new(None) };
}

/// A target whose poll group and listener run on one reactor.
struct ReactorTgt {
    rs: Option<ReactorSet>,
    thread: ThreadHandle,
    group: PollGroupHandle,
    target: Arc<Target>,
    addr: SocketAddr,
}

impl ReactorTgt {
    fn start(idle_backoff: Option<Duration>, poller_idle_wait: bool) -> ReactorTgt {
        env::init_once(EnvOpts::no_huge()).expect("env (no_huge)");
        let target = Target::new(TransportOpts::default()).unwrap();
        let rs = ReactorSet::start(
            CpuMask::single(0),
            ReactorOpts {
                pin: false,
                idle_backoff,
                idle_polls_before_backoff: 100,
                poller_idle_wait,
            },
        )
        .unwrap();
        let (tx, rx) = mpsc::channel();
        let tg = target.clone();
        let thread = rs
            .spawn_thread(
                0,
                ThreadOpts {
                    name: "nvmf_pg_reactor".into(),
                    ..ThreadOpts::default()
                },
                move || {
                    let group = PollGroup::start(tg.clone()).unwrap().detach();
                    let t = TcpTransport::new(tg, vec![group.clone()]).unwrap();
                    let addr = t.listen("127.0.0.1:0".parse().unwrap()).unwrap();
                    TRANSPORT.with(|k| *k.borrow_mut() = Some(t));
                    tx.send((group, addr)).unwrap();
                },
            )
            .unwrap();
        let (group, addr) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        ReactorTgt {
            rs: Some(rs),
            thread,
            group,
            target,
            addr,
        }
    }

    fn idle_waits(&self) -> u64 {
        self.group.stats().idle_waits.load(Ordering::Relaxed)
    }

    /// Idle time of the reactor loop so far, in ticks (nanoseconds).
    fn reactor_idle_ticks(&self) -> u64 {
        self.rs
            .as_ref()
            .and_then(|rs| rs.reactor_stats(0))
            .map_or(0, |s| s.idle_ticks)
    }
}

impl Drop for ReactorTgt {
    fn drop(&mut self) {
        self.group.stop();
        let (tx, rx) = mpsc::channel();
        let _ = self.thread.send_msg(move || {
            TRANSPORT.with(|k| drop(k.borrow_mut().take()));
            let _ = tx.send(());
        });
        let _ = rx.recv_timeout(Duration::from_secs(10));
        if let Some(rs) = self.rs.take() {
            rs.stop();
        }
    }
}

/// Polls `f` every 5 ms until it holds (bounded: 10 s).
fn wait_until(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_poll_group_on_a_reactor_polling_flat_out_never_waits_for_its_sockets() {
    let t = ReactorTgt::start(None, false);
    assert!(!t.rs.as_ref().unwrap().in_interrupt());
    // 50 ms of idle reactor time: two hundred times the idle spell after
    // which a group allowed to wait would have waited.
    wait_until("the reactor never went idle", || {
        t.reactor_idle_ticks() > 50_000_000
    });
    assert_eq!(
        t.idle_waits(),
        0,
        "the group waited on a busy-polling reactor"
    );
}

/// Serves a malloc namespace from `t`, and checks three times that the
/// idle group waited and then serves the next command.
fn waits_and_wakes(t: &ReactorTgt, tag: &str) {
    let nqn = format!("nqn.2016-06.io.spdk-io:reactor-idle-{tag}");
    let bdev = format!("NvmfReactorIdle{tag}");
    malloc(&bdev, 1024, 512);
    let s = t
        .target
        .create_subsystem(
            &nqn,
            SubsystemOpts {
                serial_number: "SPDKIO00000000000002".into(),
                model_number: "spdk-io nvmf test".into(),
                allow_any_host: true,
                max_namespaces: 1,
                ..SubsystemOpts::default()
            },
        )
        .unwrap();
    s.add_ns(&bdev, None, None, None).unwrap();
    s.add_listener(TcpTransport::listen_addr(t.addr));
    let trid: nvme::TransportId = format!(
        "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{} subnqn:{nqn} hostnqn:{HOSTNQN}",
        t.addr.port()
    )
    .parse()
    .unwrap();
    let c = nvme::connect(&trid, &opts(false)).unwrap();
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
    for round in 0..3u64 {
        let before = t.idle_waits();
        wait_until("the idle group never waited", || t.idle_waits() > before);
        write_read(&mut qp, &ns, round * 8, &random(4096, 100 + round));
    }
}

#[test]
fn by_default_an_idle_poll_group_waits_on_a_reactor_that_never_sleeps() {
    let t = ReactorTgt::start(None, true);
    assert!(!t.rs.as_ref().unwrap().in_interrupt());
    waits_and_wakes(&t, "default");
}

#[test]
fn in_interrupt_mode_an_idle_poll_group_waits_and_the_next_command_wakes_it() {
    let t = ReactorTgt::start(Some(Duration::from_micros(100)), true);
    assert!(t.rs.as_ref().unwrap().in_interrupt());
    waits_and_wakes(&t, "interrupt");
}
