//! What a controller is reached over: PCIe (BAR0 registers, doorbell
//! stride, shadow doorbell pages) or NVMe/TCP (`tcp::TcpTransport`), and
//! the host identity fabrics use.

use super::controller::CtrlrInner;
use super::regs::Regs;
use crate::env::DmaBuf;
use crate::pci::PciDevice;
use std::sync::Arc;

/// The shadow doorbell and EventIdx pages given to Doorbell Buffer Config.
pub(crate) struct ShadowDoorbells {
    pub(crate) dbs: DmaBuf,
    pub(crate) eis: DmaBuf,
    pub(crate) dbs_ptr: *mut u32,
    pub(crate) eis_ptr: *mut u32,
}

// SAFETY: the pages are written only through the raw pointers by the queue
// that owns each slot (one u32 per doorbell), and read by the device.
unsafe impl Send for ShadowDoorbells {}
// SAFETY: as above: no two queues share a slot.
unsafe impl Sync for ShadowDoorbells {}

/// How a controller is reached: what its registers and queues live on.
pub(crate) enum Transport {
    /// Local PCIe: BAR0 registers, rings in DMA memory, doorbells.
    Pcie(PcieTransport),
    /// NVMe/TCP: registers are properties, each queue a TCP connection.
    Tcp(super::tcp::TcpTransport),
}

/// What a PCIe controller's queues need.
pub(crate) struct PcieTransport {
    pub(crate) _device: Arc<dyn PciDevice>,
    pub(crate) regs: Regs,
    pub(crate) dstrd: u8,
    pub(crate) shadow: Option<ShadowDoorbells>,
}

impl CtrlrInner {
    /// The PCIe side of the controller (`None` over a fabric).
    pub(crate) fn pcie(&self) -> Option<&PcieTransport> {
        match &self.transport {
            Transport::Pcie(p) => Some(p),
            Transport::Tcp(_) => None,
        }
    }
    /// The NVMe/TCP side of the controller (`None` over PCIe).
    pub(crate) fn tcp(&self) -> Option<&super::tcp::TcpTransport> {
        match &self.transport {
            Transport::Tcp(t) => Some(t),
            Transport::Pcie(_) => None,
        }
    }
    /// BAR0 registers (PCIe only).
    pub(crate) fn regs(&self) -> Option<&Regs> {
        self.pcie().map(|p| &p.regs)
    }
    /// The shadow doorbell pages, when in use.
    pub(crate) fn shadow(&self) -> Option<&ShadowDoorbells> {
        self.pcie()?.shadow.as_ref()
    }
}

/// A host ID that stays the same on this machine: from /etc/machine-id
/// when it is there (as nvme-cli derives it), else fixed.
pub(crate) fn default_hostid() -> [u8; 16] {
    let mut id = *b"spdk-io-host-id!";
    if let Ok(s) = std::fs::read_to_string("/etc/machine-id") {
        let hex: Vec<u8> = s.trim().bytes().collect();
        for (i, pair) in hex.chunks(2).take(16).enumerate() {
            if let Some(b) = std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
            {
                id[i] = b;
            }
        }
    }
    id
}
