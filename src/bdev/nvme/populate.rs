//! A controller's bdevs kept in step with its namespaces (SPDK's
//! `nvme_ctrlr_populate_namespaces`, run on a Namespace Attribute Changed
//! notice and after a reconnect): a namespace that appeared gets a bdev, a
//! bdev whose namespace went away is unregistered (hot remove: its open
//! descriptors are told), and a namespace whose size changed resizes its
//! bdev (`notify_blockcnt_change`; shrinking an open bdev is refused and
//! logged, as SPDK does).

use super::bdev::{register_ns, NsRefused};
use super::ctrlrs;
use super::reconnect::Link;
use crate::bdev::get_by_name;
use std::sync::Arc;

/// One step of bringing the bdevs in line with the namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// Namespace `nsid` is new: register its bdev.
    Add(u32),
    /// Namespace `nsid` is gone: unregister its bdev.
    Remove(u32),
    /// Namespace `nsid` now has this many blocks.
    Resize(u32, u64),
}

/// What turns bdevs of `(nsid, blocks)` into the namespaces `now` of
/// `(nsid, blocks)`: removals first, then resizes, then additions, each by
/// NSID.
pub(super) fn plan(have: &[(u32, u64)], now: &[(u32, u64)]) -> Vec<Change> {
    let find = |l: &[(u32, u64)], id: u32| l.iter().find(|(n, _)| *n == id).map(|(_, b)| *b);
    let mut out = Vec::new();
    for &(nsid, blocks) in have {
        match find(now, nsid) {
            None => out.push(Change::Remove(nsid)),
            Some(b) if b != blocks => out.push(Change::Resize(nsid, b)),
            Some(_) => {}
        }
    }
    for &(nsid, _) in now {
        if find(have, nsid).is_none() {
            out.push(Change::Add(nsid));
        }
    }
    out.sort_by_key(|c| match *c {
        Change::Remove(n) => (0, n),
        Change::Resize(n, _) => (1, n),
        Change::Add(n) => (2, n),
    });
    out
}

/// Reconciles `link`'s bdevs on the thread it was attached from (by
/// message), or here when it was attached outside any lightweight thread.
pub(super) fn reconcile_on_home(link: &Arc<Link>) {
    if let Some(home) = &link.home {
        let weak = Arc::downgrade(link);
        let sent = home.send_msg(move || {
            if let Some(l) = weak.upgrade() {
                reconcile(&l);
            }
        });
        match sent {
            Ok(()) => return,
            Err(e) => log::warn!(
                "nvme bdev {}: namespace change not sent to thread {}: {e}; applying it here",
                link.name,
                home.name()
            ),
        }
    }
    reconcile(link);
}

/// Registers, unregisters and resizes `link`'s bdevs to match the
/// namespaces its controller reports now.
pub(super) fn reconcile(link: &Arc<Link>) {
    if link.is_stopped() {
        return;
    }
    let (Ok(c), Some(bdevs)) = (link.controller(), ctrlrs::bdevs_of(link)) else {
        return;
    };
    let namespaces = c.namespaces();
    let have: Vec<(u32, u64)> = bdevs
        .iter()
        .filter_map(|(nsid, n)| Some((*nsid, get_by_name(n)?.num_blocks())))
        .collect();
    let now: Vec<(u32, u64)> = namespaces
        .iter()
        .map(|ns| (ns.id(), ns.num_blocks()))
        .collect();
    let name_of = |nsid: u32| {
        bdevs
            .iter()
            .find(|(n, _)| *n == nsid)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    };
    let trid = c.trid().clone();
    for change in plan(&have, &now) {
        match change {
            Change::Remove(nsid) => {
                log::info!("nvme bdev {}: namespace {nsid} was removed", link.name);
                ctrlrs::forget_bdev(link, nsid);
                if let Some(b) = get_by_name(&name_of(nsid)) {
                    b.unregister();
                }
            }
            Change::Resize(nsid, blocks) => {
                let Some(b) = get_by_name(&name_of(nsid)) else {
                    continue;
                };
                log::info!(
                    "nvme bdev {}: namespace {nsid} resized: bdev {} from {} to {blocks} blocks",
                    link.name,
                    b.name(),
                    b.num_blocks()
                );
                if let Err(e) = b.notify_blockcnt_change(blocks) {
                    log::error!("nvme bdev {}: {e}", link.name);
                }
            }
            Change::Add(nsid) => {
                let Some(ns) = namespaces.iter().find(|n| n.id() == nsid) else {
                    continue;
                };
                log::info!("nvme bdev {}: namespace {nsid} was added", link.name);
                match register_ns(link, ns.clone(), &Some(trid.clone())) {
                    Ok((_, b)) => {
                        ctrlrs::forget_bdev(link, nsid);
                        if !ctrlrs::add_bdev(link, nsid, b.name()) {
                            b.unregister();
                        }
                    }
                    Err(NsRefused::Unusable(_)) => {}
                    Err(NsRefused::Register(e)) => {
                        log::error!("nvme bdev {}: namespace {nsid}: {e}", link.name)
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{plan, Change};

    #[test]
    fn unchanged_namespaces_need_nothing() {
        assert!(plan(&[(1, 100), (2, 50)], &[(2, 50), (1, 100)]).is_empty());
    }

    #[test]
    fn a_new_namespace_is_added_and_a_gone_one_removed_removals_first() {
        assert_eq!(
            plan(&[(1, 100), (3, 10)], &[(1, 100), (2, 8)]),
            vec![Change::Remove(3), Change::Add(2)]
        );
    }

    #[test]
    fn a_namespace_of_another_size_is_resized() {
        assert_eq!(
            plan(&[(1, 100), (2, 50)], &[(1, 200), (2, 50)]),
            vec![Change::Resize(1, 200)]
        );
    }

    #[test]
    fn every_bdev_goes_when_no_namespace_is_left() {
        assert_eq!(
            plan(&[(2, 1), (1, 1)], &[]),
            vec![Change::Remove(1), Change::Remove(2)]
        );
    }
}
