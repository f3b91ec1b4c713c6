//! Admin commands of [`Controller`]: Identify, features, log pages, queue
//! creation and deletion, Abort, Format NVM and a raw passthrough.

use super::controller::{Controller, CtrlrInner};
use super::spec::command::cns;
use super::spec::features::{FeatureId, FeatureSelect};
use super::spec::identify::parse_active_ns_list;
use super::spec::log::{self, ErrorInformation, FirmwareSlot, SmartHealth};
use super::spec::{from_bytes, AdminOpcode, Cqe, IdentifyController, IdentifyNamespace, Sqe};
use super::spec::{NsIdDescriptor, Pod};
use super::NvmeError;
use crate::env::DmaBuf;

/// Most active namespaces read from a controller (a guard against a
/// device listing without end).
pub const MAX_ACTIVE_NAMESPACES: usize = 1 << 20;

/// Format NVM settings (CDW10).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FormatOpts {
    /// LBAF: index of the LBA format to use.
    pub lbaf: u8,
    /// SES: Secure Erase Settings (0 none, 1 user data erase, 2 cryptographic).
    pub ses: u8,
    /// PI: protection information type (0 none).
    pub pi: u8,
    /// MSET: metadata as extended LBA (1) or separate buffer (0).
    pub mset: bool,
}

impl Controller {
    fn exec(&self, sqe: Sqe, buf: Option<DmaBuf>) -> Result<(Cqe, Option<DmaBuf>), NvmeError> {
        self.inner.admin_exec(sqe, buf)
    }

    fn read_struct<T: Pod>(&self, sqe: Sqe, len: usize) -> Result<T, NvmeError> {
        let buf = DmaBuf::alloc_zeroed(len.max(4096), 4096)?;
        let (_, buf) = self.exec(sqe, Some(buf))?;
        Ok(from_bytes(&buf.expect("buffer returned")).expect("buffer large enough"))
    }

    /// Identify Controller (CNS 01h), read again from the controller.
    pub fn identify_controller(&self) -> Result<IdentifyController, NvmeError> {
        let mut sqe = Sqe::new(AdminOpcode::Identify as u8, 0);
        sqe.cdw10 = cns::CONTROLLER as u32;
        self.read_struct(sqe, 4096)
    }

    /// Identify Namespace (CNS 00h) for `nsid`.
    pub fn identify_namespace(&self, nsid: u32) -> Result<IdentifyNamespace, NvmeError> {
        if nsid == 0 || nsid > self.inner.cdata.nn {
            return Err(NvmeError::NoSuchNamespace(nsid));
        }
        let mut sqe = Sqe::new(AdminOpcode::Identify as u8, nsid);
        sqe.cdw10 = cns::NAMESPACE as u32;
        self.read_struct(sqe, 4096)
    }

    /// The active namespace IDs (CNS 02h; every ID up to NN on NVMe 1.0 controllers).
    pub fn active_ns_list(&self) -> Result<Vec<u32>, NvmeError> {
        let vs = self.inner.vs;
        if (vs.mjr(), vs.mnr()) < (1, 1) {
            return Ok((1..=self.inner.cdata.nn.min(1024)).collect());
        }
        let mut out = Vec::new();
        let mut from = 0u32;
        loop {
            let mut sqe = Sqe::new(AdminOpcode::Identify as u8, from);
            sqe.cdw10 = cns::ACTIVE_NS_LIST as u32;
            let buf = DmaBuf::alloc_zeroed(4096, 4096)?;
            let (_, buf) = self.exec(sqe, Some(buf))?;
            let ids = parse_active_ns_list(&buf.expect("buffer returned"));
            let full = ids.len() == 1024;
            // Each page goes on ascending from the last NSID asked after: a
            // device repeating a page or going back would loop for ever.
            let mut last = from;
            for &id in &ids {
                if id <= last || id >= 0xffff_fffe {
                    return Err(NvmeError::Unsupported(format!(
                        "the active namespace list gives NSID {id:#x} after {last:#x}: not ascending"
                    )));
                }
                last = id;
            }
            if out.len() + ids.len() > MAX_ACTIVE_NAMESPACES {
                return Err(NvmeError::Unsupported(format!(
                    "the controller lists more than {MAX_ACTIVE_NAMESPACES} active namespaces"
                )));
            }
            from = last;
            out.extend(ids);
            if !full {
                return Ok(out);
            }
        }
    }

    /// Namespace Identification Descriptors (CNS 03h) of `nsid`.
    pub fn ns_id_descriptors(&self, nsid: u32) -> Result<Vec<NsIdDescriptor>, NvmeError> {
        let mut sqe = Sqe::new(AdminOpcode::Identify as u8, nsid);
        sqe.cdw10 = cns::NS_ID_DESCRIPTORS as u32;
        let buf = DmaBuf::alloc_zeroed(4096, 4096)?;
        let (_, buf) = self.exec(sqe, Some(buf))?;
        Ok(NsIdDescriptor::parse_list(&buf.expect("buffer returned")))
    }

    /// Get Features: returns completion DW0 (the current value).
    pub fn get_features(
        &self,
        fid: FeatureId,
        sel: FeatureSelect,
        cdw11: u32,
        nsid: u32,
    ) -> Result<u32, NvmeError> {
        let mut sqe = Sqe::new(AdminOpcode::GetFeatures as u8, nsid);
        sqe.cdw10 = fid as u32 | ((sel as u32) << 8);
        sqe.cdw11 = cdw11;
        Ok(self.exec(sqe, None)?.0.dw0)
    }

    /// Set Features with value `cdw11`: returns completion DW0.
    pub fn set_features(&self, fid: FeatureId, cdw11: u32, nsid: u32) -> Result<u32, NvmeError> {
        let mut sqe = Sqe::new(AdminOpcode::SetFeatures as u8, nsid);
        sqe.cdw10 = fid as u32;
        sqe.cdw11 = cdw11;
        Ok(self.exec(sqe, None)?.0.dw0)
    }

    /// Get Log Page `lid` for all namespaces: `len` bytes (rounded up to dwords) from `offset`.
    pub fn get_log_page(&self, lid: u8, offset: u64, len: usize) -> Result<Vec<u8>, NvmeError> {
        if len == 0 {
            return Err(NvmeError::ZeroLength);
        }
        let len4 = len.div_ceil(4) * 4;
        let mut sqe = Sqe::new(AdminOpcode::GetLogPage as u8, u32::MAX);
        let (c10, c11, c12, c13) = log::get_log_page_dwords(lid, len4, offset);
        (sqe.cdw10, sqe.cdw11, sqe.cdw12, sqe.cdw13) = (c10, c11, c12, c13);
        let buf = DmaBuf::alloc_zeroed(len4, 4096)?;
        let (_, buf) = self.exec(sqe, Some(buf))?;
        let mut v = buf.expect("buffer returned")[..len].to_vec();
        v.truncate(len);
        Ok(v)
    }

    /// SMART / Health Information log page (controller-wide).
    pub fn smart_health(&self) -> Result<SmartHealth, NvmeError> {
        let raw = self.get_log_page(log::lid::SMART_HEALTH, 0, 512)?;
        Ok(from_bytes(&raw).expect("512 bytes"))
    }

    /// Error Information log entries (ELPE+1 of them, newest first; empty ones dropped).
    pub fn error_log(&self) -> Result<Vec<ErrorInformation>, NvmeError> {
        let n = self.inner.cdata.elpe as usize + 1;
        let raw = self.get_log_page(log::lid::ERROR_INFORMATION, 0, n * 64)?;
        Ok(raw
            .chunks_exact(64)
            .filter_map(from_bytes::<ErrorInformation>)
            .filter(|e| e.error_count != 0)
            .collect())
    }

    /// Firmware Slot Information log page.
    pub fn firmware_slot(&self) -> Result<FirmwareSlot, NvmeError> {
        let raw = self.get_log_page(log::lid::FIRMWARE_SLOT, 0, 512)?;
        Ok(from_bytes(&raw).expect("512 bytes"))
    }

    /// Abort the command `cid` of submission queue `sqid`. Returns true when
    /// the controller reports it aborted the command (DW0 bit 0 clear).
    pub fn abort(&self, sqid: u16, cid: u16) -> Result<bool, NvmeError> {
        self.inner.abort(sqid, cid)
    }

    /// Format NVM of namespace `nsid` (or all namespaces with `u32::MAX`),
    /// then re-reads the namespaces.
    pub fn format_nvm(&self, nsid: u32, f: FormatOpts) -> Result<(), NvmeError> {
        let mut sqe = Sqe::new(AdminOpcode::FormatNvm as u8, nsid);
        sqe.cdw10 = (f.lbaf as u32 & 0xf)
            | ((f.mset as u32) << 4)
            | ((f.pi as u32 & 7) << 5)
            | ((f.ses as u32 & 7) << 9)
            | (((f.lbaf as u32 >> 4) & 3) << 12);
        self.exec(sqe, None)?;
        self.scan_namespaces()
    }

    /// Raw admin command passthrough (SPDK's `spdk_nvme_ctrlr_cmd_admin_raw`):
    /// the driver sets CID and the data pointer from `buf`; returns the CQE
    /// and the buffer. A non-success status is an error.
    pub fn admin_raw(
        &self,
        sqe: Sqe,
        buf: Option<DmaBuf>,
    ) -> Result<(Cqe, Option<DmaBuf>), NvmeError> {
        self.exec(sqe, buf)
    }
}

impl CtrlrInner {
    pub(crate) fn abort(&self, sqid: u16, cid: u16) -> Result<bool, NvmeError> {
        let mut sqe = Sqe::new(AdminOpcode::Abort as u8, 0);
        sqe.cdw10 = sqid as u32 | ((cid as u32) << 16);
        Ok(self.admin_exec(sqe, None)?.0.dw0 & 1 == 0)
    }

    /// Create I/O Completion Queue `qid` (physically contiguous, interrupts off).
    pub(crate) fn create_io_cq(&self, qid: u16, entries: u16, iova: u64) -> Result<(), NvmeError> {
        let mut sqe = Sqe::new(AdminOpcode::CreateIoCq as u8, 0);
        sqe.prp1 = iova;
        sqe.cdw10 = qid as u32 | ((entries as u32 - 1) << 16);
        sqe.cdw11 = 1; // PC = 1, IEN = 0
        self.admin_exec(sqe, None).map(|_| ())
    }

    /// Create I/O Submission Queue `qid` bound to CQ `qid`.
    pub(crate) fn create_io_sq(&self, qid: u16, entries: u16, iova: u64) -> Result<(), NvmeError> {
        let mut sqe = Sqe::new(AdminOpcode::CreateIoSq as u8, 0);
        sqe.prp1 = iova;
        sqe.cdw10 = qid as u32 | ((entries as u32 - 1) << 16);
        sqe.cdw11 = 1 | ((qid as u32) << 16); // PC = 1, QPRIO = 0, CQID
        self.admin_exec(sqe, None).map(|_| ())
    }

    /// Delete I/O Submission Queue `qid`.
    pub(crate) fn delete_io_sq(&self, qid: u16) -> Result<(), NvmeError> {
        let mut sqe = Sqe::new(AdminOpcode::DeleteIoSq as u8, 0);
        sqe.cdw10 = qid as u32;
        self.admin_exec(sqe, None).map(|_| ())
    }

    /// Delete I/O Completion Queue `qid`.
    pub(crate) fn delete_io_cq(&self, qid: u16) -> Result<(), NvmeError> {
        let mut sqe = Sqe::new(AdminOpcode::DeleteIoCq as u8, 0);
        sqe.cdw10 = qid as u32;
        self.admin_exec(sqe, None).map(|_| ())
    }
}
