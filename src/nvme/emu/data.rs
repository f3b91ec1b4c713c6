//! Moving command data between host memory (through the command's PRPs or
//! SGLs) and the controller.

use super::dma::{self, HostSeg};
use super::stats::bump;
use super::worker::Worker;
use super::{prp, sgl, Sqe, Status};

impl Worker {
    /// Calls `f(segment, offset_in_transfer)` for each host segment of the
    /// `len`-byte data buffer of `sqe`. SGLs are accepted when `sgl_ok`.
    pub(super) fn for_each_seg(
        &self,
        sqe: &Sqe,
        len: usize,
        sgl_ok: bool,
        mut f: impl FnMut(HostSeg, usize),
    ) -> Result<(), Status> {
        let stats = &self.sh.stats;
        let mut done = 0usize;
        let mut seg = |iova: u64, n: usize| -> Result<(), Status> {
            let ptr = dma::resolve(iova, n).map_err(|_| {
                bump(&stats.dma_faults, 1);
                Status::DATA_TRANSFER_ERROR
            })?;
            f(HostSeg { ptr, len: n }, done);
            done += n;
            Ok(())
        };
        let read_entry = |iova: u64| {
            let mut b = [0u8; 8];
            dma::read(iova, &mut b).map(|_| u64::from_le_bytes(b))
        };
        match sqe.psdt() {
            0 => prp::walk(sqe.prp1, sqe.prp2, len, self.page, read_entry, seg),
            1 if sgl_ok => sgl::walk(sqe, len, &mut seg),
            _ => Err(Status::INVALID_FIELD),
        }
    }

    /// Copies `src` to the command's data buffer (controller → host).
    pub(super) fn copy_to_host(&self, sqe: &Sqe, src: &[u8], sgl_ok: bool) -> Result<(), Status> {
        self.for_each_seg(sqe, src.len(), sgl_ok, |s, off| {
            s.copy_from(&src[off..off + s.len])
        })
    }

    /// Fills `dst` from the command's data buffer (host → controller).
    pub(super) fn copy_from_host(
        &self,
        sqe: &Sqe,
        dst: &mut [u8],
        sgl_ok: bool,
    ) -> Result<(), Status> {
        self.for_each_seg(sqe, dst.len(), sgl_ok, |s, off| {
            s.copy_to(&mut dst[off..off + s.len])
        })
    }
}
