//! What an NVMe/TCP queue pair reads of its requests: the buffers it
//! sends from and receives into (a TCP pool's CIDs are slot indexes).

use super::RequestPool;
use crate::nvme::buffer::IoBuf;

impl RequestPool {
    /// Records the bytes a tagged I/O lent (NVMe/TCP: the connection moves them).
    pub(crate) fn lend(&mut self, cid: u16, start: *mut u8, len: usize) {
        if let Some(r) = self.live_mut(cid) {
            r.lent = (start, len);
        }
    }

    /// The buffer owned by `cid`.
    pub(crate) fn buf(&self, cid: u16) -> Option<&IoBuf> {
        self.live(cid).map(|r| &r.buf)
    }

    /// The buffer owned by `cid`, mutable.
    pub(crate) fn buf_mut(&mut self, cid: u16) -> Option<&mut IoBuf> {
        self.live_mut(cid).map(|r| &mut r.buf)
    }

    /// The bytes `cid` borrowed ([`RequestPool::lend`]); null when none.
    pub(crate) fn lent(&self, cid: u16) -> Option<(*mut u8, usize)> {
        self.live(cid).map(|r| r.lent)
    }

    /// The PRP list page of `cid` (Dataset Management ranges), read-only.
    pub(crate) fn page_bytes(&self, cid: u16) -> Option<&[u8]> {
        self.live(cid).map(|r| &r.page[..])
    }
}
