//! The admin queue poller of an attached controller (SPDK's
//! `bdev_nvme_poll_adminq`, every `nvme_adminq_poll_period_us`): it reaps
//! admin completions, which sends Keep Alive at half the KATO over fabrics
//! and handles Asynchronous Event Requests; a Namespace Attribute Changed
//! notice makes the module reconcile the controller's bdevs with its
//! namespaces (`populate.rs`); a failed admin queue (the connection lost,
//! a fatal status) starts the recovery even when no I/O is running.
//!
//! It runs on an OS thread of its own rather than as a poller of the app
//! thread because the driver's admin path waits (a Keep Alive, the log page
//! and Identify commands of a rescan), and a reactor must never wait. The
//! bdev changes themselves are made on the thread the controller was
//! attached from, by message, when there is one. The thread holds the
//! link weakly and is joined at detach, so the controller is always shut
//! down by whoever detaches it.

use super::reconnect::{Link, LinkState};
use super::{ctrlrs, populate, revive};
use crate::nvme::NvmeError;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// SPDK's default `nvme_adminq_poll_period_us`.
pub(super) const POLL_PERIOD: Duration = Duration::from_millis(10);

/// Starts the admin queue poller of `link` (once per link).
pub(super) fn start(link: &Arc<Link>) {
    let weak = Arc::downgrade(link);
    let r = std::thread::Builder::new()
        .name(format!("nvme-adminq-{}", link.name))
        .spawn(move || run(weak));
    match r {
        Ok(h) => *link.adminq.lock().unwrap_or_else(|p| p.into_inner()) = Some(h),
        Err(e) => log::error!(
            "nvme bdev {}: no admin queue poller ({e}): no keep alive or namespace events",
            link.name
        ),
    }
}

impl Link {
    /// Waits for the admin queue poller to end (after [`Link::stop`]);
    /// nothing to wait for when called from the poller itself.
    pub(super) fn join_adminq(&self) {
        let h = self.adminq.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = h {
            if h.thread().id() == std::thread::current().id() {
                return;
            }
            if h.join().is_err() {
                log::error!("nvme bdev {}: the admin queue poller panicked", self.name);
            }
        }
    }
}

/// The poller's loop: one poll per period until the link is stopped or gone.
fn run(weak: Weak<Link>) {
    let mut seen_epoch = None;
    loop {
        std::thread::sleep(POLL_PERIOD);
        let Some(link) = weak.upgrade() else { return };
        if link.is_stopped() {
            return;
        }
        poll(&link, &mut seen_epoch);
    }
}

/// One poll of `link`'s admin queue. `seen_epoch` is the controller the
/// AER callback was registered on: a controller that replaced it gets the
/// callback, and its namespaces are reconciled (they may have changed
/// while the link was down).
fn poll(link: &Arc<Link>, seen_epoch: &mut Option<u64>) {
    if link.state() != LinkState::Enabled {
        return;
    }
    let Ok(c) = link.controller() else { return };
    let epoch = link.epoch();
    if *seen_epoch != Some(epoch) {
        let flag = link.ns_changed.clone();
        c.register_aer_callback(move |ev| {
            if ev.is_namespace_attribute_changed() {
                flag.store(true, Ordering::Release);
            }
        });
        if seen_epoch.is_some() {
            link.ns_changed.store(true, Ordering::Release);
        }
        *seen_epoch = Some(epoch);
    }
    match c.process_admin_completions() {
        Ok(_) => {}
        Err(e) if revive::is_path_error(&e) || matches!(e, NvmeError::ControllerFatal) => {
            link.report_lost(&format!("admin queue: {e}"), ctrlrs::delete_lost);
            return;
        }
        Err(e) => log::debug!("nvme bdev {}: admin queue: {e}", link.name),
    }
    drop(c);
    if link.ns_changed.swap(false, Ordering::AcqRel) {
        populate::reconcile_on_home(link);
    }
}
