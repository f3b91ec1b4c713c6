//! Where C2H data lands: copied from the receive buffer into the
//! command's buffer segments, or — for large payloads when nothing else
//! is waiting — read from the socket straight into them.

use super::digest;
use super::error::TcpError;
use super::queue::{CommandBuffers, TcpQueue};
use super::queue_recv::DataRx;

/// C2H data of at least this many bytes still to come, with nothing
/// else waiting in the receive buffer, is read from the socket straight
/// into the command's buffer (one copy fewer for large reads).
pub(super) const DIRECT_MIN: u32 = 16 * 1024;

impl TcpQueue {
    /// One read from the socket straight into command `rx.cid`'s buffer
    /// at `rx.off` (at most the PDU's data left): the bytes read, 0 when
    /// nothing was waiting.
    pub(super) fn recv_direct<B: CommandBuffers + ?Sized>(
        &mut self,
        bufs: &mut B,
        rx: &mut DataRx,
    ) -> Result<usize, TcpError> {
        let Some(dest) = segment_at(bufs, rx.cid, rx.off as usize) else {
            let why = format!("command {} has no buffer for its C2H data", rx.cid);
            return Err(self.bad_peer(why));
        };
        let want = dest.len().min(rx.left as usize);
        let n = match self.sock.recv(&mut dest[..want]) {
            Ok(n) => n,
            Err(e) => return Err(self.fail(e.into())),
        };
        if self.recv_framing.ddgst {
            rx.crc = digest::crc32c_append(rx.crc, &dest[..n]);
        }
        rx.off += n as u32;
        rx.left -= n as u32;
        self.direct_bytes += n as u64;
        Ok(n)
    }
}

/// The rest of the segment of command `cid`'s data that holds byte `off`.
fn segment_at<B: CommandBuffers + ?Sized>(bufs: &mut B, cid: u16, off: usize) -> Option<&mut [u8]> {
    let mut skip = off;
    let mut i = 0;
    loop {
        let len = bufs.segment_mut(cid, i)?.len();
        if skip < len {
            return Some(&mut bufs.segment_mut(cid, i)?[skip..]);
        }
        skip -= len;
        i += 1;
    }
}

/// Copies `bytes` into command `cid`'s data at `off`; false when its
/// buffers are shorter.
pub(super) fn copy_into<B: CommandBuffers + ?Sized>(
    bufs: &mut B,
    cid: u16,
    off: usize,
    bytes: &[u8],
) -> bool {
    let (mut skip, mut src) = (off, bytes);
    let mut i = 0;
    while !src.is_empty() {
        let Some(seg) = bufs.segment_mut(cid, i) else {
            return false;
        };
        if skip >= seg.len() {
            skip -= seg.len();
            i += 1;
            continue;
        }
        let n = (seg.len() - skip).min(src.len());
        seg[skip..skip + n].copy_from_slice(&src[..n]);
        src = &src[n..];
        skip = 0;
        i += 1;
    }
    true
}
