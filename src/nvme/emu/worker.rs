//! The worker thread: watches CC for enable / disable / shutdown, polls the
//! doorbells, fetches and dispatches commands, and backs off when idle.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::controller::Shared;
use super::events::AsyncEvent;
use super::execute::Held;
use super::features::Features;
use super::logpage::ErrorLog;
use super::queues::{CompQueue, SubQueue};
use super::regs::{self, CSTS_CFS, CSTS_RDY, CSTS_SHST_COMPLETE};
use super::shadow::DbBuf;
use super::stats::bump;
use super::Sqe;

/// Where the controller is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// CC.EN = 0.
    Disabled,
    /// CC.EN = 1, waiting for the ready delay to pass.
    Enabling { ready_at: Instant },
    /// CC.EN = 1 with a configuration the controller refuses: RDY stays 0.
    Rejected,
    /// CSTS.RDY = 1, processing commands.
    Ready,
    /// CSTS.CFS = 1: nothing is processed until CC.EN goes to 0.
    Fatal,
    /// Shutdown complete: nothing is processed until CC.EN goes to 0.
    ShutDown,
}

/// Commands fetched from one SQ per pass, so one busy queue cannot starve the others.
const BATCH: usize = 256;

/// The controller's execution state, owned by the worker thread.
pub(crate) struct Worker {
    pub(super) sh: Arc<Shared>,
    pub(super) state: State,
    /// Memory page size from CC.MPS.
    pub(super) page: usize,
    pub(super) sqs: Vec<Option<SubQueue>>,
    pub(super) cqs: Vec<Option<CompQueue>>,
    pub(super) dbbuf: Option<DbBuf>,
    pub(super) held: Held,
    pub(super) features: Features,
    pub(super) errlog: ErrorLog,
    pub(super) events: VecDeque<AsyncEvent>,
    /// Event types (bit = type) reported and not yet cleared by reading their log page.
    pub(super) event_mask: u8,
    /// Namespaces changed since the Changed Namespace List was last read.
    pub(super) changed_ns: Vec<u32>,
    /// Staging buffer for admin data (identify data, log pages, DSM ranges).
    pub(super) scratch: Vec<u8>,
}

impl Worker {
    pub(crate) fn new(sh: Arc<Shared>) -> Self {
        let n = sh.cfg.max_io_queue_pairs as usize + 1;
        Self {
            state: State::Disabled,
            page: 4096,
            sqs: (0..n).map(|_| None).collect(),
            cqs: (0..n).map(|_| None).collect(),
            dbbuf: None,
            held: Held {
                aers: Vec::with_capacity(8),
                delayed: Vec::with_capacity(64),
                lost: Vec::with_capacity(64),
                abort_pending: Vec::with_capacity(8),
                reposts: Vec::new(),
            },
            features: Features::new(&sh.cfg),
            errlog: ErrorLog::default(),
            events: VecDeque::with_capacity(64),
            event_mask: 0,
            changed_ns: Vec::with_capacity(1024),
            scratch: vec![0; 4096],
            sh,
        }
    }

    /// Runs until the controller is dropped.
    pub(crate) fn run(mut self) {
        let mut idle = 0u32;
        while !self.sh.stop.load(Ordering::Acquire) {
            if self.step() {
                idle = 0;
                continue;
            }
            idle = idle.saturating_add(1);
            if idle < 200 {
                std::hint::spin_loop();
            } else if idle < 400 {
                std::thread::yield_now();
            } else {
                // ~0.1 s of 50 µs naps, ~1 s of 500 µs naps, then 2 ms naps.
                let mut nap = match idle {
                    ..2_000 => Duration::from_micros(50),
                    2_000..4_000 => Duration::from_micros(500),
                    _ => Duration::from_millis(2),
                };
                if let Some(due) = self.next_deadline() {
                    // Wake for a deadline, but never spin on one that has
                    // passed and cannot be served yet (never-ready, BME off).
                    let left = due.saturating_duration_since(Instant::now());
                    nap = nap.min(left.max(Duration::from_micros(20)));
                }
                std::thread::park_timeout(nap);
            }
        }
        // Leave host memory alone from here on: forget every queue.
        self.reset_queues();
    }

    /// The next moment something is due that the worker can act on.
    fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Enabling { ready_at } if !self.sh.faults.never_ready() => Some(ready_at),
            State::Ready if self.sh.pci.bus_master() => {
                self.held.delayed.iter().map(|d| d.due).min()
            }
            _ => None,
        }
    }

    /// One pass over registers and queues; true if anything happened.
    fn step(&mut self) -> bool {
        let sh = self.sh.clone();
        let regs = &sh.regs;
        let cc = regs.load(regs::CC);
        let en = cc & 1 != 0;
        let shn = cc >> 14 & 0x3;
        let mut worked = false;

        if !en && self.state != State::Disabled {
            self.reset_queues();
            regs.set_csts(CSTS_RDY | CSTS_CFS, false);
            self.state = State::Disabled;
            return true;
        }
        if en && self.state == State::Disabled {
            self.state = match self.configure(cc) {
                Ok(()) => State::Enabling {
                    ready_at: Instant::now() + self.sh.cfg.ready_delay,
                },
                Err(why) => {
                    log::warn!("nvme emu {}: CC.EN=1 refused: {why}", self.sh.address);
                    State::Rejected
                }
            };
            worked = true;
        }
        let shst = regs.load(regs::CSTS) & CSTS_SHST_COMPLETE != 0;
        if shn != 0 && !shst {
            if matches!(self.state, State::Ready | State::Enabling { .. }) {
                self.state = State::ShutDown;
            }
            regs.set_csts(CSTS_SHST_COMPLETE, true);
            return true;
        }
        if shn == 0 && shst {
            regs.set_csts(CSTS_SHST_COMPLETE, false);
            worked = true;
        }
        if let State::Enabling { ready_at } = self.state {
            if Instant::now() >= ready_at && !self.sh.faults.never_ready() {
                self.state = State::Ready;
                regs.set_csts(CSTS_RDY, true);
                worked = true;
            }
        }
        if self.sh.faults.take_fatal_now() && self.state == State::Ready {
            self.go_fatal("fault injected");
            return true;
        }
        if self.state == State::Ready && self.sh.pci.bus_master() {
            worked |= self.process();
        }
        worked
    }

    /// Checks CC and the admin queue registers at CC.EN 0→1 and sets up the admin queues.
    fn configure(&mut self, cc: u32) -> Result<(), String> {
        let regs = &self.sh.regs;
        let css = cc >> 4 & 0x7;
        let mps = cc >> 7 & 0xf;
        let ams = cc >> 11 & 0x7;
        let iosqes = cc >> 16 & 0xf;
        let iocqes = cc >> 20 & 0xf;
        if css != 0 {
            return Err(format!(
                "CC.CSS {css}: only the NVM command set (0) is supported"
            ));
        }
        if ams != 0 {
            return Err(format!(
                "CC.AMS {ams}: only round robin arbitration (0) is supported"
            ));
        }
        if mps > 4 {
            return Err(format!(
                "CC.MPS {mps}: outside CAP.MPSMIN 0 ..= CAP.MPSMAX 4"
            ));
        }
        if iosqes != 6 || iocqes != 4 {
            return Err(format!(
                "CC.IOSQES {iosqes} / CC.IOCQES {iocqes}: must be 6 (64-byte SQEs) and 4 (16-byte CQEs)"
            ));
        }
        self.page = 4096 << mps;
        let aqa = regs.load(regs::AQA);
        let asqs = (aqa & 0xfff) as u16;
        let acqs = (aqa >> 16 & 0xfff) as u16;
        let asq = regs.load64(regs::ASQ);
        let acq = regs.load64(regs::ACQ);
        if asqs == 0 || acqs == 0 {
            return Err(format!(
                "AQA {aqa:#x}: admin queues need at least 2 entries"
            ));
        }
        if asq % self.page as u64 != 0 || acq % self.page as u64 != 0 {
            return Err(format!(
                "ASQ {asq:#x} / ACQ {acq:#x}: must be aligned to the {} byte page",
                self.page
            ));
        }
        self.cqs[0] = Some(CompQueue::new(acq, acqs + 1, false));
        self.sqs[0] = Some(SubQueue::new(asq, asqs + 1, 0));
        if let Some(cq) = self.cqs[0].as_mut() {
            cq.sqs = 1;
        }
        Ok(())
    }

    /// Forgets every queue and held command (controller reset or drop).
    pub(super) fn reset_queues(&mut self) {
        for q in self.sqs.iter_mut() {
            *q = None;
        }
        for q in self.cqs.iter_mut() {
            *q = None;
        }
        self.dbbuf = None;
        self.held.aers.clear();
        self.held.delayed.clear();
        self.held.lost.clear();
        self.held.abort_pending.clear();
        self.held.reposts.clear();
        self.features = Features::new(&self.sh.cfg);
        self.event_mask = 0;
        for off in (regs::DOORBELL_BASE..self.sh.regs.len()).step_by(4) {
            self.sh.regs.take_doorbell(off, || {});
        }
    }

    /// Enters Controller Fatal Status: stops all processing until reset.
    pub(super) fn go_fatal(&mut self, why: &str) {
        log::warn!(
            "nvme emu {}: controller fatal status: {why}",
            self.sh.address
        );
        self.state = State::Fatal;
        self.sh.regs.set_csts(CSTS_CFS, true);
    }

    /// Polls every queue once.
    fn process(&mut self) -> bool {
        let mut worked = self.poll_cq_heads();
        worked |= self.deliver_events();
        worked |= self.release_delayed();
        for qid in 0..self.sqs.len() as u16 {
            if self.state != State::Ready {
                break;
            }
            if self.sqs[qid as usize].is_some() {
                worked |= self.process_sq(qid);
            }
        }
        worked
    }

    /// Fetches and dispatches commands of SQ `qid` up to its tail. With
    /// shadow doorbells the tail is re-read after each command (see
    /// `shadow`); a queue that runs dry stays idle until an MMIO write.
    fn process_sq(&mut self, qid: u16) -> bool {
        let Some(mut tail) = self.sq_tail_for_pass(qid) else {
            return false;
        };
        let mut n = 0;
        // Bus Master Enable is checked before every fetch: once the host
        // clears it, no new DMA starts.
        while n < BATCH && self.state == State::Ready && self.sh.pci.bus_master() {
            let Some(sq) = self.sqs[qid as usize].as_mut() else {
                break;
            };
            if sq.head == tail {
                sq.active = false;
                break;
            }
            let cqid = sq.cqid;
            let cq_full = self.cqs[cqid as usize]
                .as_ref()
                .map_or(true, |cq| cq.full());
            if cq_full && !self.take_cq_head(cqid) {
                if qid != 0 {
                    bump(&self.sh.stats.cq_full_stalls, 1);
                }
                break;
            }
            let Some(sq) = self.sqs[qid as usize].as_mut() else {
                break;
            };
            let addr = sq.entry_addr(sq.head);
            let mut bytes = [0u8; super::sqe::SQE_SIZE];
            if super::dma::read(addr, &mut bytes).is_err() {
                bump(&self.sh.stats.dma_faults, 1);
                self.go_fatal("submission queue memory is not DMA memory");
                break;
            }
            sq.head = (sq.head + 1) % sq.size;
            self.dispatch(qid, Sqe::from_bytes(&bytes));
            n += 1;
            match self.refresh_sq_tail(qid) {
                Some(t) => tail = t,
                None => break,
            }
        }
        n > 0
    }
}
