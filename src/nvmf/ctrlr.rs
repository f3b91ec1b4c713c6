//! The controller a host sees (SPDK's `spdk_nvmf_ctrlr`): made by Connect
//! on an admin queue, named by its controller ID; its properties (CAP, VS,
//! CC, CSTS), feature values, the I/O queues connected to it and the
//! namespaces changed since the host last read the Changed Namespace List.

use super::abort::AbortBox;
use super::status::{sc, sct, Completion};
use super::subsystem::Subsystem;
use crate::nvme::spec::{Cap, Cc, Csts};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Where a queue pair came from: the listener it reached, the host's
/// address and the poll group thread serving it
/// (`nvmf_subsystem_get_qpairs` reports them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOrigin {
    /// The target's address the connection reached.
    pub listen: SocketAddr,
    /// The host's address.
    pub peer: SocketAddr,
    /// Name of the thread serving the queue.
    pub thread: String,
}

/// Property offsets (NVMe over Fabrics: the controller registers).
pub mod prop {
    /// CAP, 8 bytes.
    pub const CAP: u32 = 0x00;
    /// VS, 4 bytes.
    pub const VS: u32 = 0x08;
    /// CC, 4 bytes.
    pub const CC: u32 = 0x14;
    /// CSTS, 4 bytes.
    pub const CSTS: u32 = 0x1c;
}

/// NVMe version the controller reports: 1.3.0.
pub const VERSION: u32 = 0x0001_0300;
/// Keep Alive Support granularity in 100 ms units (KAS).
pub const KAS: u16 = 10;
/// Asynchronous Event Requests a controller holds at once (AERL + 1).
pub const MAX_AERS: usize = 4;

/// Asynchronous event completions (Dword 0: type, information, log page)
/// and the Asynchronous Event Configuration bits that enable them.
pub mod aen {
    /// Notice, Namespace Attribute Changed, Changed Namespace List (04h).
    pub const NS_ATTRIBUTE_CHANGED: u32 = 0x02 | 0x04 << 16;
    /// Notice, Asymmetric Namespace Access Change, ANA log page (0Ch).
    pub const ANA_CHANGE: u32 = 0x02 | 0x03 << 8 | 0x0c << 16;
    /// AEC: Namespace Attribute Notices.
    pub const AEC_NS_ATTRIBUTE: u32 = 1 << 8;
    /// AEC: ANA Change Notices.
    pub const AEC_ANA_CHANGE: u32 = 1 << 11;
}

/// A controller's mutable state.
#[derive(Debug)]
pub struct CtrlrState {
    /// Controller Configuration.
    pub cc: Cc,
    /// Controller Status.
    pub csts: Csts,
    /// Keep Alive Timeout in ms (0: none).
    pub kato_ms: u32,
    /// Asynchronous Event Configuration (Set Features 0Bh).
    pub aec: u32,
    /// Volatile Write Cache enabled (Set Features 06h).
    pub vwc: bool,
    /// Number of I/O queues granted (Set Features 07h), 1's based.
    pub num_io_queues: u16,
    /// Queue pairs connected (the admin queue first), by queue ID.
    pub qpairs: Vec<(u16, QueueOrigin)>,
    /// Namespaces changed since the Changed Namespace List was last read.
    pub changed_ns: Vec<u32>,
    /// Asynchronous events waiting for an AER (their completion Dword 0).
    pub events: Vec<u32>,
    /// Last Keep Alive (or any admin command).
    pub last_keep_alive: Instant,
}

/// A controller.
#[derive(Debug)]
pub struct Ctrlr {
    cntlid: u16,
    subsys: Arc<Subsystem>,
    hostnqn: String,
    hostid: [u8; 16],
    listen: SocketAddr,
    cap: Cap,
    failed: AtomicBool,
    event: AtomicBool,
    state: Mutex<CtrlrState>,
    aborts: AbortBox,
}

impl Ctrlr {
    /// A controller for `hostnqn` on `subsys`, made by an admin queue
    /// from `admin`, with queues of up to `max_queue_depth` entries and
    /// `max_io_queues` I/O queues.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cntlid: u16,
        subsys: Arc<Subsystem>,
        hostnqn: String,
        hostid: [u8; 16],
        admin: QueueOrigin,
        kato_ms: u32,
        max_queue_depth: u16,
        max_io_queues: u16,
    ) -> Ctrlr {
        let cap = Cap(0)
            .with_field(0, 16, max_queue_depth as u64 - 1) // MQES
            .with_field(16, 1, 1) // CQR
            .with_field(24, 8, 1) // TO: 500 ms
            .with_field(37, 8, 1); // CSS: NVM command set
        Ctrlr {
            cntlid,
            subsys,
            hostnqn,
            hostid,
            listen: admin.listen,
            cap,
            failed: AtomicBool::new(false),
            event: AtomicBool::new(false),
            aborts: AbortBox::default(),
            state: Mutex::new(CtrlrState {
                cc: Cc(0),
                csts: Csts(0),
                kato_ms: round_kato(kato_ms),
                aec: 0,
                vwc: false,
                num_io_queues: max_io_queues,
                qpairs: vec![(0, admin)],
                changed_ns: Vec::new(),
                events: Vec::new(),
                last_keep_alive: Instant::now(),
            }),
        }
    }

    /// The controller ID.
    pub fn cntlid(&self) -> u16 {
        self.cntlid
    }
    /// Its subsystem.
    pub fn subsystem(&self) -> &Arc<Subsystem> {
        &self.subsys
    }
    /// The host NQN that made it.
    pub fn hostnqn(&self) -> &str {
        &self.hostnqn
    }
    /// The host identifier of the Connect data.
    pub fn hostid(&self) -> [u8; 16] {
        self.hostid
    }
    /// The listener its admin queue reached (its ANA state is this
    /// listener's).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }
    /// CAP.
    pub fn cap(&self) -> Cap {
        self.cap
    }
    /// Abort requests between its admin queue and its I/O queues.
    pub fn aborts(&self) -> &AbortBox {
        &self.aborts
    }
    /// True when I/O queue `qid` is connected.
    pub fn has_io_queue(&self, qid: u16) -> bool {
        qid != 0 && self.lock().qpairs.iter().any(|(q, _)| *q == qid)
    }
    /// Its state, locked (admin commands and Connect only).
    pub fn lock(&self) -> MutexGuard<'_, CtrlrState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True once the controller is torn down (admin queue gone, keep
    /// alive expired): its I/O queues close.
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
    /// Tears the controller down: it leaves its subsystem and its queues close.
    pub fn fail(&self) {
        if !self.failed.swap(true, Ordering::AcqRel) {
            self.subsys.remove_controller(self.cntlid);
        }
    }

    /// Records that namespace `nsid` changed (added, removed, resized).
    pub(crate) fn ns_changed(&self, nsid: u32) {
        let mut st = self.lock();
        if st.changed_ns.len() <= 1024 && !st.changed_ns.contains(&nsid) {
            st.changed_ns.push(nsid);
        }
        // AEC bit 8: Namespace Attribute Notices.
        if st.aec & aen::AEC_NS_ATTRIBUTE != 0 {
            self.post(&mut st, aen::NS_ATTRIBUTE_CHANGED);
        }
    }

    /// Records that an ANA state the controller reports changed.
    pub(crate) fn ana_changed(&self) {
        let mut st = self.lock();
        // AEC bit 11: ANA Change Notices.
        if st.aec & aen::AEC_ANA_CHANGE != 0 {
            self.post(&mut st, aen::ANA_CHANGE);
        }
    }

    /// Queues event `dw0` for the next AER (once while it waits).
    fn post(&self, st: &mut CtrlrState, dw0: u32) {
        if !st.events.contains(&dw0) {
            st.events.push(dw0);
        }
        self.event.store(true, Ordering::Release);
    }

    /// Takes the oldest pending asynchronous event (one atomic load when
    /// there is none): the admin queue completes an AER with it.
    pub(crate) fn take_event(&self) -> Option<u32> {
        if !self.event.load(Ordering::Acquire) {
            return None;
        }
        let mut st = self.lock();
        let e = (!st.events.is_empty()).then(|| st.events.remove(0));
        if st.events.is_empty() {
            self.event.store(false, Ordering::Release);
        }
        e
    }

    /// Property Get of `size` (4 or 8) bytes at `ofst`.
    pub fn get_property(&self, ofst: u32, size: u8) -> Result<u64, Completion> {
        let st = self.lock();
        let (v, width) = match ofst {
            prop::CAP => (self.cap.0, 8),
            prop::VS => (VERSION as u64, 4),
            prop::CC => (st.cc.0 as u64, 4),
            prop::CSTS => (st.csts.0 as u64, 4),
            _ => return Err(invalid_property()),
        };
        if size != width {
            return Err(invalid_property());
        }
        Ok(v)
    }

    /// Property Set of `size` bytes at `ofst`: only CC is writable.
    /// Enabling sets CSTS.RDY, disabling clears it, a shutdown
    /// notification completes at once (CSTS.SHST = 2).
    pub fn set_property(&self, ofst: u32, size: u8, value: u64) -> Result<(), Completion> {
        if ofst != prop::CC || size != 4 {
            return Err(invalid_property());
        }
        let new = Cc(value as u32);
        let mut st = self.lock();
        let old = st.cc;
        if new.en() == 1 && old.en() == 0 {
            if new.iosqes() != 6 || new.iocqes() != 4 || new.mps() != 0 {
                log::warn!(
                    "controller {}: enable with IOSQES {} IOCQES {} MPS {} refused",
                    self.cntlid,
                    new.iosqes(),
                    new.iocqes(),
                    new.mps()
                );
                st.csts = Csts(st.csts.0 | 1 << 1); // CFS
                st.cc = new;
                return Ok(());
            }
            st.csts = Csts(st.csts.0 | 1); // RDY
        } else if new.en() == 0 && old.en() == 1 {
            st.csts = Csts(0);
        }
        if new.shn() != 0 && old.shn() == 0 {
            st.csts = Csts((st.csts.0 & !(3 << 2)) | (2 << 2)); // SHST complete
        }
        st.cc = new;
        Ok(())
    }

    /// True when CC.EN and CSTS.RDY are set.
    pub fn is_enabled(&self) -> bool {
        let st = self.lock();
        st.cc.en() == 1 && st.csts.rdy() == 1
    }

    /// Adds I/O queue `qid` from `origin` (Connect on an I/O queue).
    pub(crate) fn add_io_queue(&self, qid: u16, origin: QueueOrigin) -> Result<(), Completion> {
        let mut st = self.lock();
        if qid == 0 || qid > st.num_io_queues {
            return Err(Completion::error(
                sct::COMMAND_SPECIFIC,
                sc::INVALID_QUEUE_IDENTIFIER,
            ));
        }
        if st.qpairs.iter().any(|(q, _)| *q == qid) {
            return Err(Completion::generic(sc::COMMAND_SEQUENCE_ERROR));
        }
        st.qpairs.push((qid, origin));
        Ok(())
    }

    /// Forgets I/O queue `qid` (its connection closed).
    pub(crate) fn remove_io_queue(&self, qid: u16) {
        self.lock().qpairs.retain(|(q, _)| *q != qid);
    }

    /// I/O queues connected.
    pub fn num_io_qpairs(&self) -> usize {
        self.lock().qpairs.iter().filter(|(q, _)| *q != 0).count()
    }

    /// Notes a keep alive.
    pub fn keep_alive(&self) {
        self.lock().last_keep_alive = Instant::now();
    }

    /// True when a keep-alive timeout is set and nothing came for that
    /// long (plus one KAS of slack).
    pub fn keep_alive_expired(&self, now: Instant) -> bool {
        let st = self.lock();
        st.kato_ms != 0
            && now.duration_since(st.last_keep_alive).as_millis()
                > st.kato_ms as u128 + KAS as u128 * 100
    }
}

/// A Property Get/Set of an unknown or read-only property, or of the
/// wrong size: Invalid Parameters (command specific, SPDK's answer).
fn invalid_property() -> Completion {
    Completion::error(
        sct::COMMAND_SPECIFIC,
        crate::nvme::tcp::fabrics::sc::INVALID_PARAMETERS,
    )
}

/// KATO rounded up to the KAS granularity (100 ms units), as SPDK does.
pub fn round_kato(ms: u32) -> u32 {
    let g = KAS as u32 * 100;
    ms.div_ceil(g).saturating_mul(g)
}

trait WithField {
    fn with_field(self, lo: u32, width: u32, v: u64) -> Self;
}

impl WithField for Cap {
    fn with_field(self, lo: u32, width: u32, v: u64) -> Cap {
        let mask = ((1u64 << width) - 1) << lo;
        Cap((self.0 & !mask) | ((v << lo) & mask))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nvmf::subsystem::{SubsystemOpts, SubsystemType};

    fn ctrlr() -> Ctrlr {
        let s = Subsystem::new(
            "nqn.2016-06.io.spdk:cnode1",
            SubsystemType::Nvme,
            SubsystemOpts::default(),
        )
        .unwrap();
        let o = QueueOrigin {
            listen: "127.0.0.1:4420".parse().unwrap(),
            peer: "127.0.0.1:50000".parse().unwrap(),
            thread: "test".into(),
        };
        Ctrlr::new(1, s, "nqn.2014-08.org:host".into(), [0; 16], o, 0, 128, 4)
    }

    #[test]
    fn cap_reports_mqes_cqr_timeout_and_the_nvm_command_set() {
        let c = ctrlr();
        let cap = Cap(c.get_property(prop::CAP, 8).unwrap());
        assert_eq!(cap.mqes(), 127);
        assert_eq!(cap.cqr(), 1);
        assert_eq!(cap.to(), 1);
        assert_eq!(cap.css() & 1, 1);
        assert_eq!(c.get_property(prop::VS, 4).unwrap(), 0x10300);
        assert!(c.get_property(prop::CAP, 4).is_err(), "CAP is 8 bytes");
        assert!(
            c.get_property(0x24, 4).is_err(),
            "AQA is not a fabrics property"
        );
    }

    #[test]
    fn enabling_sets_rdy_and_shutdown_completes_at_once() {
        let c = ctrlr();
        let cc = Cc(0).with_iosqes(6).with_iocqes(4).with_en(1);
        c.set_property(prop::CC, 4, cc.0 as u64).unwrap();
        assert_eq!(Csts(c.get_property(prop::CSTS, 4).unwrap() as u32).rdy(), 1);
        assert!(c.is_enabled());
        c.set_property(prop::CC, 4, cc.with_shn(1).0 as u64)
            .unwrap();
        assert_eq!(
            Csts(c.get_property(prop::CSTS, 4).unwrap() as u32).shst(),
            2
        );
        c.set_property(prop::CC, 4, 0).unwrap();
        assert_eq!(c.get_property(prop::CSTS, 4).unwrap(), 0);
        assert!(
            c.set_property(prop::CSTS, 4, 1).is_err(),
            "CSTS is read-only"
        );
    }

    #[test]
    fn enabling_with_wrong_queue_entry_sizes_sets_cfs() {
        let c = ctrlr();
        c.set_property(prop::CC, 4, Cc(0).with_en(1).0 as u64)
            .unwrap();
        let csts = Csts(c.get_property(prop::CSTS, 4).unwrap() as u32);
        assert_eq!((csts.rdy(), csts.cfs()), (0, 1));
    }

    #[test]
    fn io_queue_ids_beyond_the_granted_number_are_refused() {
        let c = ctrlr();
        let o = c.lock().qpairs[0].1.clone();
        assert!(c.add_io_queue(1, o.clone()).is_ok());
        assert_eq!(
            c.add_io_queue(1, o.clone()).unwrap_err().sc,
            sc::COMMAND_SEQUENCE_ERROR
        );
        assert_eq!(c.num_io_qpairs(), 1);
        assert_eq!(
            c.add_io_queue(5, o).unwrap_err().sc,
            sc::INVALID_QUEUE_IDENTIFIER
        );
        assert_eq!(round_kato(1), 1000);
        assert_eq!(round_kato(10_000), 10_000);
    }
}
