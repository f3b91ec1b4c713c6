//! Multipath failover (SPDK's `multipath: "failover"`): a second
//! `bdev_nvme_attach_controller` of an attached name, to another address
//! of the same subsystem, adds that address as an alternate path instead
//! of a controller. The path is checked by connecting to it (the same
//! subsystem NQN and serial number), then that association is closed; when
//! the controller is lost, each reconnect attempt goes to the next path,
//! the one just lost last, and I/O resumes on whichever answers.

use super::attach::AttachOpts;
use super::ctrlrs;
use super::reconnect::Link;
use crate::bdev::{get_by_name, Bdev, BdevError, ErrorSource, Result};
use crate::nvme::{Controller, TransportId, TransportType};
use std::sync::Arc;

/// What `bdev_nvme_attach_controller` does with a name already attached
/// (SPDK's `multipath` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Multipath {
    /// A second attach of the name is refused (EEXIST).
    #[default]
    Disable,
    /// A second attach of the name adds an alternate path to fail over to.
    Failover,
}

impl Link {
    /// The path in use (fabrics attaches only).
    pub(super) fn active_path(&self) -> Option<TransportId> {
        self.paths
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first()
            .cloned()
    }

    /// Every path, the one in use first.
    pub(super) fn all_paths(&self) -> Vec<TransportId> {
        self.paths.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Moves on to the next path (the one in use goes last); nothing with
    /// one path.
    pub(super) fn fail_over(&self) {
        let mut p = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        if p.len() > 1 {
            p.rotate_left(1);
            log::warn!("nvme bdev {}: failing over to {}", self.name, p[0]);
        }
    }
}

/// True when `opts` asks to add a path to controller `opts.name`, which
/// exists.
pub(super) fn adds_path(opts: &AttachOpts) -> bool {
    opts.multipath == Multipath::Failover && ctrlrs::exists(&opts.name)
}

fn refused(opts: &AttachOpts, errno: i32, why: String) -> BdevError {
    BdevError::Os {
        op: "attach controller",
        path: format!("{} ({})", opts.name, opts.trid),
        source: ErrorSource::message(why, errno),
    }
}

/// Adds `opts.trid`, where `probe` (an association just made to it) was
/// reached, as an alternate path of controller `opts.name`; `probe` is
/// closed. Returns the controller's bdevs, as SPDK answers.
pub(super) fn add_path(opts: &AttachOpts, probe: Controller) -> Result<Vec<Arc<Bdev>>> {
    let link = ctrlrs::link(&opts.name)?;
    let Some(now) = link
        .active_path()
        .filter(|t| t.trtype == TransportType::Tcp)
    else {
        return Err(refused(
            opts,
            libc::EINVAL,
            format!(
                "controller {} is not attached over fabrics: no failover",
                opts.name
            ),
        ));
    };
    if link.all_paths().iter().any(|p| same_address(p, &opts.trid)) {
        return Err(refused(
            opts,
            libc::EALREADY,
            format!(
                "A controller named {} already exists with the specified network path",
                opts.name
            ),
        ));
    }
    let current = link
        .controller()
        .map_err(|e| refused(opts, libc::ENODEV, e.to_string()))?;
    if opts.trid.subnqn != now.subnqn || probe.data().serial() != current.data().serial() {
        return Err(refused(
            opts,
            libc::EINVAL,
            format!(
                "the path leads to another controller (subnqn {:?}, serial {:?}) than {} (subnqn {:?}, serial {:?})",
                opts.trid.subnqn.as_deref().unwrap_or(""),
                probe.data().serial(),
                opts.name,
                now.subnqn.as_deref().unwrap_or(""),
                current.data().serial()
            ),
        ));
    }
    drop(probe);
    link.paths
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(opts.trid.clone());
    log::info!(
        "nvme bdev {}: alternate path {} added",
        opts.name,
        opts.trid
    );
    let names = ctrlrs::controllers(Some(&opts.name))?
        .pop()
        .map(|c| c.bdevs)
        .unwrap_or_default();
    Ok(names.iter().filter_map(|n| get_by_name(n)).collect())
}

fn same_address(a: &TransportId, b: &TransportId) -> bool {
    a.traddr.eq_ignore_ascii_case(&b.traddr) && a.trsvcid == b.trsvcid
}
