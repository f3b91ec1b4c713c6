//! Whether shadow doorbells (Doorbell Buffer Config) pay off on a controller
//! that offers them.
//!
//! With a shadow doorbell buffer the host writes new SQ tails and CQ heads
//! to memory and writes the MMIO doorbell only when the controller's
//! EventIdx asks for it. What that saves depends on how the controller
//! sets EventIdx; what it costs is the controller's reads of the shadow
//! values and writes of EventIdx.
//!
//! QEMU's NVMe controller (`hw/nvme`, through at least 7.2) sets a
//! queue's EventIdx to the last tail or head it read, and reads the shadow
//! value and writes EventIdx once per command fetched and once per
//! completion posted: four more DMA accesses per I/O, each translated by
//! the emulated IOMMU behind vfio. It saves nothing for this driver: the SQ
//! doorbell is rung once per batch and QEMU, having caught up, asks for
//! that MMIO write anyway; the CQ head is written by MMIO only when the
//! queue could otherwise fill (`CqRing::ring_lazy`), with or without the
//! shadow buffer. Measured side by side with `qemu/bench --spdk-perf`
//! (4 KiB random reads at QD32 behind the emulated IOMMU): 7 IOMMU
//! translations per I/O with the buffer, 3 without, at the same MMIO
//! writes per I/O (0.06), and about 13 % less CPU time of QEMU's main loop
//! per I/O without it.

use super::spec::IdentifyController;

/// PCI vendor ID of the devices QEMU emulates (Red Hat, Inc.), as the
/// Identify Controller VID field of QEMU's NVMe controller reports it.
pub(crate) const QEMU_VENDOR_ID: u16 = 0x1b36;

/// Start of QEMU's NVMe controller's Model Number (Identify MN).
pub(crate) const QEMU_MODEL: &[u8] = b"QEMU NVMe Ctrl";

/// True when the controller is known to spend more on shadow doorbells
/// than they save (see the module's documentation): QEMU's NVMe
/// controller, recognised by its vendor ID and model number.
pub(crate) fn costs_more_than_it_saves(cdata: &IdentifyController) -> bool {
    cdata.vid == QEMU_VENDOR_ID && cdata.mn.starts_with(QEMU_MODEL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cdata(vid: u16, model: &str) -> IdentifyController {
        let mut c: IdentifyController =
            crate::nvme::spec::from_bytes(&[0u8; 4096]).expect("4096 bytes");
        c.vid = vid;
        c.mn = [b' '; 40];
        c.mn[..model.len()].copy_from_slice(model.as_bytes());
        c
    }

    #[test]
    fn qemus_nvme_controller_is_known_to_make_shadow_doorbells_cost_more() {
        assert!(costs_more_than_it_saves(&cdata(0x1b36, "QEMU NVMe Ctrl")));
    }

    #[test]
    fn other_controllers_keep_shadow_doorbells() {
        // The software controller borrows QEMU's PCI IDs but not its model.
        assert!(!costs_more_than_it_saves(&cdata(
            0x1b36,
            "spdk-io software NVMe controller"
        )));
        assert!(!costs_more_than_it_saves(&cdata(0x8086, "QEMU NVMe Ctrl")));
    }
}
