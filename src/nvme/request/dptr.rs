//! How a command's data pointer is built once its request is taken.

use crate::nvme::buffer::IoBuf;
use crate::nvme::prp::{self, Dptr};
use crate::nvme::NvmeError;

/// How a command's data pointer is made once its request is armed: from
/// the request's buffer, its PRP list page and the page's IOVA.
pub(crate) trait BuildDptr {
    /// Builds the data pointer.
    fn build(self, buf: &IoBuf, page: &mut [u8], page_iova: u64) -> Result<Dptr, NvmeError>;
}

/// PRPs (or one SGL descriptor) over the first `len` bytes of the buffer.
pub(crate) struct OverBuf {
    pub(crate) len: usize,
    /// Identify SGLS bits 1:0 (0: PRPs only).
    pub(crate) sgls: u8,
}

impl BuildDptr for OverBuf {
    #[inline(always)]
    fn build(self, buf: &IoBuf, page: &mut [u8], page_iova: u64) -> Result<Dptr, NvmeError> {
        if self.len == 0 {
            return Ok(prp::NO_DPTR);
        }
        prp::build_dptr(buf.segments(), 0, self.len, page, page_iova, self.sgls)
    }
}

/// No data pointer.
pub(crate) struct NoData;

impl BuildDptr for NoData {
    #[inline(always)]
    fn build(self, _: &IoBuf, _: &mut [u8], _: u64) -> Result<Dptr, NvmeError> {
        Ok(prp::NO_DPTR)
    }
}

/// Anything else (Dataset Management ranges written into the page).
impl<F: FnOnce(&IoBuf, &mut [u8], u64) -> Result<Dptr, NvmeError>> BuildDptr for F {
    #[inline(always)]
    fn build(self, buf: &IoBuf, page: &mut [u8], page_iova: u64) -> Result<Dptr, NvmeError> {
        self(buf, page, page_iova)
    }
}
