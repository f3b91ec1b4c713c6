//! What happens when an attached controller is lost (SPDK's bdev_nvme
//! reset and reconnect policy): the controller behind a name ([`Link`]),
//! its state, and the recovery loop.
//!
//! A channel that sees its queue pair fail (the connection lost, the
//! controller gone) reports it; the link leaves `enabled` and a worker
//! thread tries to bring the controller back at once, then every
//! `reconnect_delay_sec` until `ctrlr_loss_timeout_sec` has passed since
//! the loss (−1: forever), when the controller and its bdevs are deleted.
//! Meanwhile I/O is held (the channel answers NOMEM, so the bdev layer
//! queues and resubmits it) until `fast_io_fail_timeout_sec` has passed,
//! after which it fails at once. With `ctrlr_loss_timeout_sec` 0 there is
//! one attempt; if it fails the controller stays `failed` and its I/O
//! fails. Over PCIe a reset brings the controller back (its queue pairs
//! recover by themselves); over fabrics a new association replaces it
//! (Connect, bring-up, Identify), and each channel moves to a queue pair
//! of the new controller when it sees the link's epoch change.

use super::attach::AttachOpts;
use crate::bdev::{BdevError, Result};
use crate::nvme::{self, Controller, NvmeError, TransportType};
use crate::thread::ThreadHandle;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// SPDK's I/O error resiliency options of `bdev_nvme_attach_controller`
/// (and the defaults of `bdev_nvme_set_options`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReconnectOpts {
    /// Seconds to keep trying before the controller is deleted; −1
    /// forever, 0 no reconnect.
    pub ctrlr_loss_timeout_sec: i32,
    /// Seconds between reconnect attempts (0 only with no reconnect).
    pub reconnect_delay_sec: u32,
    /// Seconds after the loss from which I/O fails instead of waiting (0:
    /// it waits until the controller is back or deleted).
    pub fast_io_fail_timeout_sec: u32,
}

impl ReconnectOpts {
    /// SPDK's checks (`bdev_nvme_check_io_error_resiliency_params`), with
    /// its messages.
    pub fn validate(&self) -> Result<()> {
        let (loss, delay, fio) = (
            self.ctrlr_loss_timeout_sec,
            self.reconnect_delay_sec,
            self.fast_io_fail_timeout_sec,
        );
        let why = if loss < -1 {
            Some("ctrlr_loss_timeout_sec can't be less than -1.")
        } else if loss != 0 && delay == 0 {
            Some("reconnect_delay_sec can't be 0 if ctrlr_loss_timeout_sec is not 0.")
        } else if loss > 0 && delay > loss as u32 {
            Some("reconnect_delay_sec can't be more than ctrlr_loss_timeout_sec.")
        } else if loss != 0 && fio != 0 && fio < delay {
            Some("reconnect_delay_sec can't be more than fast_io_fail_timeout_sec.")
        } else if loss > 0 && fio > loss as u32 {
            Some("fast_io_fail_timeout_sec can't be more than ctrlr_loss_timeout_sec.")
        } else if loss == 0 && (delay != 0 || fio != 0) {
            Some("Both reconnect_delay_sec and fast_io_fail_timeout_sec must be 0 if ctrlr_loss_timeout_sec is 0.")
        } else {
            None
        };
        match why {
            Some(m) => Err(BdevError::InvalidParam(m.into())),
            None => Ok(()),
        }
    }
}

/// The state of a link, as `bdev_nvme_get_controllers` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LinkState {
    /// Working.
    Enabled = 0,
    /// A reset or reconnect attempt is running.
    Resetting = 1,
    /// Waiting `reconnect_delay_sec` before the next attempt.
    ReconnectDelayed = 2,
    /// Given up (no reconnect configured): I/O fails.
    Failed = 3,
    /// Being deleted (detach, or the loss timeout passed).
    Deleting = 4,
}

impl LinkState {
    fn from_u8(v: u8) -> LinkState {
        match v {
            0 => LinkState::Enabled,
            1 => LinkState::Resetting,
            2 => LinkState::ReconnectDelayed,
            3 => LinkState::Failed,
            _ => LinkState::Deleting,
        }
    }

    /// SPDK's name (`nvme_ctrlr_get_state_str`).
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Enabled => "enabled",
            LinkState::Resetting => "resetting",
            LinkState::ReconnectDelayed => "reconnect_is_delayed",
            LinkState::Failed => "failed",
            LinkState::Deleting => "deleting",
        }
    }
}

/// What a channel does with an I/O while its controller is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hold {
    /// Keep it (NOMEM: the bdev layer resubmits it).
    Wait,
    /// Fail it now.
    Fail,
}

/// The controller behind an attached name, replaceable when a fabrics
/// controller reconnects, with its recovery state.
pub(super) struct Link {
    pub(super) name: String,
    /// `None` once shut down (module fini).
    ctrlr: RwLock<Option<Arc<Controller>>>,
    /// Bumped each time the controller is replaced.
    epoch: AtomicU64,
    state: AtomicU8,
    fast_io_fail: AtomicBool,
    pub(super) opts: ReconnectOpts,
    /// How to connect again (fabrics); `None` for a controller handed in.
    pub(super) attach: Option<AttachOpts>,
    lost_at: Mutex<Option<Instant>>,
    /// Set at detach: a running recovery stops.
    stop: AtomicBool,
    /// Held by an attempt: resets and reconnects of one controller never
    /// overlap.
    attempting: Mutex<()>,
    /// The lightweight thread the controller was attached from, where
    /// namespace changes register and unregister bdevs (`None`: attached
    /// outside any; they are applied on the admin queue poller's thread).
    pub(super) home: Option<ThreadHandle>,
    /// The admin queue poller (`adminq.rs`), joined at detach.
    pub(super) adminq: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Set by the controller's AER callback on a Namespace Attribute
    /// Changed notice; the poller then reconciles the bdevs.
    pub(super) ns_changed: Arc<AtomicBool>,
    /// Fabrics: the controller's paths, the one in use first
    /// (`multipath: "failover"` adds more; `paths.rs`).
    pub(super) paths: Mutex<Vec<nvme::TransportId>>,
}

/// Deletes a controller whose loss timeout passed (set by `ctrlrs`).
pub(super) type DeleteFn = fn(&str);

impl Link {
    pub(super) fn new(name: &str, ctrlr: Arc<Controller>, attach: Option<AttachOpts>) -> Self {
        let paths = Mutex::new(attach.iter().map(|a| a.trid.clone()).collect());
        Link {
            name: name.to_string(),
            ctrlr: RwLock::new(Some(ctrlr)),
            epoch: AtomicU64::new(0),
            state: AtomicU8::new(LinkState::Enabled as u8),
            fast_io_fail: AtomicBool::new(false),
            opts: attach.as_ref().map(|a| a.reconnect).unwrap_or_default(),
            attach,
            lost_at: Mutex::new(None),
            stop: AtomicBool::new(false),
            attempting: Mutex::new(()),
            home: crate::thread::Thread::current().map(|t| t.handle()),
            adminq: Mutex::new(None),
            ns_changed: Arc::new(AtomicBool::new(false)),
            paths,
        }
    }

    /// The controller now; [`NvmeError::ControllerUnavailable`] once shut
    /// down.
    pub(super) fn controller(&self) -> std::result::Result<Arc<Controller>, NvmeError> {
        self.ctrlr
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(NvmeError::ControllerUnavailable)
    }

    /// Stops the link and takes its controller out (the module's fini:
    /// dropping it shuts the controller down even while a bdev of it is
    /// still open; that bdev's queue pairs then fail their I/O).
    pub(super) fn shut_down(&self) -> Option<Arc<Controller>> {
        self.stop();
        self.ctrlr.write().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// The epoch now (a channel compares it with its queue pair's).
    #[inline]
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The state now.
    pub fn state(&self) -> LinkState {
        LinkState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// What to do with I/O while the controller is not usable.
    pub(super) fn hold(&self) -> Hold {
        match self.state() {
            LinkState::Enabled => Hold::Wait,
            // Past fast_io_fail_timeout_sec I/O fails, during the
            // attempts as between them.
            LinkState::Resetting | LinkState::ReconnectDelayed
                if !self.fast_io_fail.load(Ordering::Acquire) =>
            {
                Hold::Wait
            }
            _ => Hold::Fail,
        }
    }

    /// True once detached or deleted.
    pub(super) fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Marks the link deleted: a recovery running stops at its next step.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.state
            .store(LinkState::Deleting as u8, Ordering::Release);
    }

    /// A channel saw the controller fail: starts the recovery unless one
    /// runs (or the link is failed or deleted).
    pub(super) fn report_lost(self: &Arc<Self>, why: &str, delete: DeleteFn) {
        let from = LinkState::Enabled as u8;
        if self
            .state
            .compare_exchange(
                from,
                LinkState::Resetting as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return;
        }
        log::warn!(
            "nvme bdev {}: controller lost ({why}): recovering",
            self.name
        );
        *self.lost_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let me = self.clone();
        let r =
            super::worker::spawn_detached(&format!("nvme-reconnect-{}", self.name), move || {
                me.recover(delete)
            });
        if let Err(e) = r {
            log::error!("nvme bdev {}: cannot start the recovery: {e}", self.name);
            self.state.store(LinkState::Failed as u8, Ordering::Release);
        }
    }

    /// One attempt to bring the controller back; `Ok` when it is.
    pub(super) fn attempt(&self) -> std::result::Result<(), NvmeError> {
        let _one = self.attempting.lock().unwrap_or_else(|p| p.into_inner());
        let c = self.controller()?;
        match (c.trid().trtype, &self.attach) {
            (TransportType::Tcp, Some(a)) => {
                let trid = self.active_path().unwrap_or_else(|| a.trid.clone());
                let fresh = Arc::new(nvme::connect(&trid, &a.controller_opts())?);
                let old = {
                    let mut slot = self.ctrlr.write().unwrap_or_else(|p| p.into_inner());
                    if slot.is_none() {
                        return Err(NvmeError::ControllerUnavailable);
                    }
                    slot.replace(fresh)
                };
                self.epoch.fetch_add(1, Ordering::AcqRel);
                // The lost association's controller goes here, off the I/O threads.
                drop((old, c));
                Ok(())
            }
            _ => c.reset(),
        }
    }

    /// True while a reset or reconnect runs or waits (a reset asked for
    /// then is refused as busy, as SPDK refuses it).
    pub(super) fn is_busy(&self) -> bool {
        matches!(
            self.state(),
            LinkState::Resetting | LinkState::ReconnectDelayed | LinkState::Deleting
        )
    }

    /// A reset asked for (`bdev_nvme_reset_controller`, a bdev reset), on
    /// the calling worker thread: `resetting` meanwhile, `enabled` after;
    /// if it fails, the recovery policy takes over.
    pub(super) fn reset_now(self: &Arc<Self>) -> std::result::Result<(), NvmeError> {
        let prev = self.state();
        if matches!(prev, LinkState::Enabled | LinkState::Failed) {
            self.state
                .store(LinkState::Resetting as u8, Ordering::Release);
        }
        let r = self.attempt();
        if self.stop.load(Ordering::Acquire) {
            return r;
        }
        match &r {
            Ok(()) => {
                self.fast_io_fail.store(false, Ordering::Release);
                self.state
                    .store(LinkState::Enabled as u8, Ordering::Release);
            }
            Err(e) => {
                self.state
                    .store(LinkState::Enabled as u8, Ordering::Release);
                self.report_lost(&format!("reset failed: {e}"), super::ctrlrs::delete_lost);
            }
        }
        r
    }

    /// The recovery loop (on its own OS thread): an attempt now, then one
    /// every `reconnect_delay_sec` until it works, the loss timeout
    /// passes (the controller is deleted) or the link is detached.
    fn recover(self: Arc<Self>, delete: DeleteFn) {
        let since = self
            .lost_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(Instant::now);
        loop {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            self.state
                .store(LinkState::Resetting as u8, Ordering::Release);
            // With alternate paths (multipath failover), each attempt
            // tries the next one, the path just lost last.
            self.fail_over();
            match self.attempt() {
                Ok(()) if !self.stop.load(Ordering::Acquire) => {
                    self.fast_io_fail.store(false, Ordering::Release);
                    self.state
                        .store(LinkState::Enabled as u8, Ordering::Release);
                    log::info!(
                        "nvme bdev {}: controller back after {:?}",
                        self.name,
                        since.elapsed()
                    );
                    return;
                }
                Ok(()) => return,
                Err(e) => log::warn!("nvme bdev {}: reconnect failed: {e}", self.name),
            }
            let o = self.opts;
            if o.reconnect_delay_sec == 0 {
                self.state.store(LinkState::Failed as u8, Ordering::Release);
                log::error!(
                    "nvme bdev {}: controller failed (no reconnect configured)",
                    self.name
                );
                return;
            }
            let elapsed = since.elapsed();
            if o.ctrlr_loss_timeout_sec > 0
                && elapsed >= Duration::from_secs(o.ctrlr_loss_timeout_sec as u64)
            {
                log::error!(
                    "nvme bdev {}: controller lost for {elapsed:?} (ctrlr_loss_timeout_sec {}): deleting it",
                    self.name,
                    o.ctrlr_loss_timeout_sec
                );
                self.stop();
                delete(&self.name);
                return;
            }
            if o.fast_io_fail_timeout_sec > 0
                && elapsed >= Duration::from_secs(o.fast_io_fail_timeout_sec as u64)
                && !self.fast_io_fail.swap(true, Ordering::AcqRel)
            {
                log::warn!(
                    "nvme bdev {}: fast_io_fail_timeout_sec passed: I/O fails until the controller is back",
                    self.name
                );
            }
            self.state
                .store(LinkState::ReconnectDelayed as u8, Ordering::Release);
            let until = Instant::now() + Duration::from_secs(o.reconnect_delay_sec as u64);
            while Instant::now() < until {
                if self.stop.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
