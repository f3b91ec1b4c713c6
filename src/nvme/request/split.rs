//! Splitting: a parent request waits for the child commands of an I/O
//! larger than the maximum transfer size, completing once, after the last,
//! with the first failure.

use super::{RequestPool, FREE, NO_PARENT};
use crate::env::DmaBuf;
use crate::nvme::NvmeError;

impl RequestPool {
    /// Takes a new child of `parent` covering bytes from `data_off` of the
    /// parent's data, with `opc`; returns its CID and PRP list page.
    pub(crate) fn alloc_child(
        &mut self,
        parent: u16,
        data_off: u32,
        opc: u8,
    ) -> Option<(u16, &mut DmaBuf, u64)> {
        let pslot = parent & self.slot_mask;
        let (cid, r) = self.take()?;
        r.parent = pslot;
        r.data_off = data_off;
        r.opc = opc;
        Some((cid, &mut r.page, r.page_iova))
    }

    /// Sets how many children `parent` waits for.
    pub(crate) fn set_children(&mut self, parent: u16, n: u16) {
        if let Some(r) = self.live_mut(parent) {
            r.children_left = n;
            r.child_error = None;
        }
    }

    /// Takes back a split that could not be queued: its children and the
    /// parent go back to the free list.
    pub(crate) fn abandon_split(&mut self, parent: u16) {
        let pslot = parent & self.slot_mask;
        // Not per I/O (a failed split): a list is fine here.
        let children: Vec<u16> = self
            .reqs
            .iter()
            .filter(|r| r.live != FREE && r.parent == pslot)
            .map(|r| r.live as u16)
            .collect();
        for cid in children {
            self.release(cid);
        }
        self.release(parent);
    }

    /// Completes child `cid` of the parent in slot `pslot` with `result`:
    /// frees it and, when it was the last one, returns the parent's CID and
    /// the split's result (its first failure).
    pub(crate) fn child_done(
        &mut self,
        cid: u16,
        pslot: u16,
        result: Result<(), NvmeError>,
    ) -> Option<(u16, Result<(), NvmeError>)> {
        self.release(cid);
        let p = self.reqs.get_mut(pslot as usize)?;
        if p.live == FREE {
            return None;
        }
        if let Err(e) = result {
            p.child_error.get_or_insert(e);
        }
        p.children_left = p.children_left.saturating_sub(1);
        if p.children_left > 0 {
            return None;
        }
        let r = p.child_error.take().map_or(Ok(()), Err);
        Some((p.live as u16, r))
    }

    /// Where the data of `cid` lives: the request whose buffer holds it
    /// (itself, or the parent of a split) and the byte offset there.
    pub(crate) fn data_owner(&self, cid: u16) -> Option<(u16, u32)> {
        let r = self.live(cid)?;
        if r.parent == NO_PARENT {
            return Some((cid, 0));
        }
        let p = self.reqs.get(r.parent as usize)?;
        (p.live != FREE).then_some((p.live as u16, r.data_off))
    }
}
