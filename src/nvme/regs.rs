//! Typed access to the controller registers in BAR0 and the state
//! transitions of bring-up (enable, disable, shutdown) with their timeouts.
//!
//! The register map is a `#[repr(C)]` struct laid out as the NVMe Base
//! Specification's "Controller Registers" table, reached through a
//! [`RegisterBlock`]; the driver reaches each register through a view that
//! hands it out with the access the specification gives the host (CAP, VS,
//! CSTS and CMBSZ read-only), so a write to those does not compile.

use super::spec::registers::*;
use super::NvmeError;
use crate::pci::{register_map, Bar, RegisterBlock};
use std::mem::offset_of;
use std::time::{Duration, Instant};
use volatile::access::{ReadOnly, Readable, Writable};
use volatile::{map_field, VolatilePtr};

register_map! {
    /// A 64-bit register, accessed as two dwords, low first (NVMe allows
    /// either; not every platform forwards 64-bit MMIO).
    #[derive(Clone, Copy)]
    struct Reg64 {
        lo: u32,
        hi: u32,
    }
}

register_map! {
    /// The controller registers from CAP to CMBSZ (offsets 00h..40h).
    struct ControllerRegisters {
        /// Controller Capabilities (RO).
        cap: Reg64,
        /// Version (RO).
        vs: u32,
        /// Interrupt Mask Set (polled driver: unused).
        _intms: u32,
        /// Interrupt Mask Clear (polled driver: unused).
        _intmc: u32,
        /// Controller Configuration (RW).
        cc: u32,
        _reserved: u32,
        /// Controller Status (RO to the host but for NSSRO, which is never cleared here).
        csts: u32,
        /// NVM Subsystem Reset (unused: a subsystem reset is not offered).
        _nssr: u32,
        /// Admin Queue Attributes (RW).
        aqa: u32,
        /// Admin Submission Queue Base Address (RW).
        asq: Reg64,
        /// Admin Completion Queue Base Address (RW).
        acq: Reg64,
        /// Controller Memory Buffer Location (RO; unused).
        _cmbloc: u32,
        /// Controller Memory Buffer Size (RO).
        cmbsz: u32,
    }
}

// The struct's layout is the specification's table.
const _: () = {
    assert!(offset_of!(ControllerRegisters, cap) == REG_CAP);
    assert!(offset_of!(ControllerRegisters, vs) == REG_VS);
    assert!(offset_of!(ControllerRegisters, _intms) == REG_INTMS);
    assert!(offset_of!(ControllerRegisters, _intmc) == REG_INTMC);
    assert!(offset_of!(ControllerRegisters, cc) == REG_CC);
    assert!(offset_of!(ControllerRegisters, csts) == REG_CSTS);
    assert!(offset_of!(ControllerRegisters, _nssr) == REG_NSSR);
    assert!(offset_of!(ControllerRegisters, aqa) == REG_AQA);
    assert!(offset_of!(ControllerRegisters, asq) == REG_ASQ);
    assert!(offset_of!(ControllerRegisters, acq) == REG_ACQ);
    assert!(offset_of!(ControllerRegisters, _cmbloc) == REG_CMBLOC);
    assert!(offset_of!(ControllerRegisters, cmbsz) == REG_CMBSZ);
    assert!(std::mem::size_of::<ControllerRegisters>() == 0x40);
};

fn read64<A: Readable>(r: VolatilePtr<'_, Reg64, A>) -> u64 {
    let lo = map_field!(r.lo).read() as u64;
    let hi = map_field!(r.hi).read() as u64;
    lo | (hi << 32)
}

fn write64<A: Writable>(r: VolatilePtr<'_, Reg64, A>, val: u64) {
    map_field!(r.lo).write(val as u32);
    map_field!(r.hi).write((val >> 32) as u32);
}

/// The register block with each register's access as the specification
/// gives it to the host: the driver reaches the registers only through it.
#[derive(Clone, Copy)]
struct View<'a>(VolatilePtr<'a, ControllerRegisters>);

impl<'a> View<'a> {
    fn cap(self) -> VolatilePtr<'a, Reg64, ReadOnly> {
        let r = self.0;
        map_field!(r.cap).read_only()
    }
    fn vs(self) -> VolatilePtr<'a, u32, ReadOnly> {
        let r = self.0;
        map_field!(r.vs).read_only()
    }
    fn cc(self) -> VolatilePtr<'a, u32> {
        let r = self.0;
        map_field!(r.cc)
    }
    fn csts(self) -> VolatilePtr<'a, u32, ReadOnly> {
        let r = self.0;
        map_field!(r.csts).read_only()
    }
    fn aqa(self) -> VolatilePtr<'a, u32> {
        let r = self.0;
        map_field!(r.aqa)
    }
    fn asq(self) -> VolatilePtr<'a, Reg64> {
        let r = self.0;
        map_field!(r.asq)
    }
    fn acq(self) -> VolatilePtr<'a, Reg64> {
        let r = self.0;
        map_field!(r.acq)
    }
    fn cmbsz(self) -> VolatilePtr<'a, u32, ReadOnly> {
        let r = self.0;
        map_field!(r.cmbsz).read_only()
    }
}

/// BAR0 seen as NVMe controller registers.
#[derive(Clone)]
pub(crate) struct Regs {
    /// The whole of BAR0 (the doorbells follow the registers).
    pub(crate) bar: Bar,
    block: RegisterBlock<ControllerRegisters>,
}

impl Regs {
    /// The registers at the start of `bar`; refused when BAR0 is too short
    /// to hold them (not an NVMe controller's BAR0).
    pub(crate) fn new(bar: Bar) -> Result<Self, NvmeError> {
        let block = RegisterBlock::new(&bar, 0).ok_or_else(|| {
            NvmeError::Unsupported(format!(
                "BAR0 is {:#x} bytes, too short for the NVMe controller registers \
                 ({:#x} bytes): is this function an NVMe controller?",
                bar.len(),
                std::mem::size_of::<ControllerRegisters>()
            ))
        })?;
        Ok(Self { bar, block })
    }

    fn view(&self) -> View<'_> {
        View(self.block.get())
    }

    pub(crate) fn cap(&self) -> Cap {
        Cap(read64(self.view().cap()))
    }
    pub(crate) fn vs(&self) -> Vs {
        Vs(self.view().vs().read())
    }
    pub(crate) fn cc(&self) -> Cc {
        Cc(self.view().cc().read())
    }
    pub(crate) fn set_cc(&self, cc: Cc) {
        self.view().cc().write(cc.0)
    }
    pub(crate) fn csts(&self) -> Csts {
        Csts(self.view().csts().read())
    }
    pub(crate) fn set_admin_queues(&self, aqa: Aqa, asq: u64, acq: u64) {
        let v = self.view();
        v.aqa().write(aqa.0);
        write64(v.asq(), asq);
        write64(v.acq(), acq);
    }
    pub(crate) fn cmbsz(&self) -> Cmbsz {
        Cmbsz(self.view().cmbsz().read())
    }

    /// Polls CSTS until `done` holds, failing on CFS (unless `ignore_cfs`),
    /// on all-ones reads, or after `timeout`.
    pub(crate) fn wait_csts(
        &self,
        what: &'static str,
        timeout: Duration,
        ignore_cfs: bool,
        done: impl Fn(Csts) -> bool,
    ) -> Result<(), NvmeError> {
        let start = Instant::now();
        loop {
            let csts = self.csts();
            if csts.is_all_ones() {
                return Err(NvmeError::DeviceGone);
            }
            if done(csts) {
                return Ok(());
            }
            if csts.cfs() == 1 && !ignore_cfs {
                return Err(NvmeError::ControllerFatal);
            }
            if start.elapsed() > timeout {
                return Err(NvmeError::NotReady {
                    what,
                    waited: timeout,
                });
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Clears CC.EN and waits for CSTS.RDY = 0 (an enabled controller that is
    /// not ready yet is first given CAP.TO to become ready, as the spec asks).
    pub(crate) fn disable(&self, to: Duration) -> Result<(), NvmeError> {
        let cc = self.cc();
        if cc.0 == u32::MAX {
            return Err(NvmeError::DeviceGone);
        }
        if cc.en() == 1 {
            if self.csts().rdy() == 0 {
                // A controller in the middle of enabling: let it finish first.
                let _ = self.wait_csts("become ready before disabling", to, true, |c| {
                    c.rdy() == 1 || c.cfs() == 1
                });
            }
            self.set_cc(cc.with_en(0));
        }
        self.wait_csts("become disabled (CSTS.RDY=0)", to, true, |c| c.rdy() == 0)
    }

    /// Sets CC (with EN) and waits for CSTS.RDY = 1.
    pub(crate) fn enable(&self, cc: Cc, to: Duration) -> Result<(), NvmeError> {
        self.set_cc(cc.with_en(1));
        self.wait_csts("become ready (CSTS.RDY=1)", to, false, |c| c.rdy() == 1)
    }

    /// Normal shutdown: CC.SHN = 1, wait for CSTS.SHST = complete.
    pub(crate) fn shutdown(&self, to: Duration) -> Result<(), NvmeError> {
        let cc = self.cc();
        self.set_cc(cc.with_shn(SHN_NORMAL));
        self.wait_csts("finish shutdown (CSTS.SHST=2)", to, true, |c| {
            c.shst() == SHST_COMPLETE
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Regs;
    use crate::nvme::spec::registers::{Aqa, Cc};
    use crate::nvme::NvmeError;
    use crate::pci::Bar;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// BAR0 in ordinary memory, `len` bytes (a multiple of 8), and a handle
    /// to its dwords.
    fn fake_bar0(len: usize) -> (Bar, impl Fn(usize) -> u32, impl Fn(usize, u32)) {
        let mem: Arc<[AtomicU64]> = (0..len / 8).map(|_| AtomicU64::new(0)).collect();
        let (m1, m2) = (mem.clone(), mem.clone());
        let get = move |dw: usize| (m1[dw / 2].load(Ordering::Relaxed) >> (32 * (dw % 2))) as u32;
        let set = move |dw: usize, v: u32| {
            let shift = 32 * (dw % 2);
            let w = m2[dw / 2].load(Ordering::Relaxed) & !(0xffff_ffffu64 << shift);
            m2[dw / 2].store(w | (v as u64) << shift, Ordering::Relaxed);
        };
        (Bar::in_memory(mem), get, set)
    }

    #[test]
    fn registers_are_reached_at_the_offsets_of_the_specification_table() {
        let (bar, get, set) = fake_bar0(4096);
        set(0, 0x0f01_00ff); // CAP low: MQES 255, TO 15
        set(1, 0x0000_0020); // CAP high: CSS bit 0
        set(2, 0x0001_0400); // VS 1.4
        set(7, 0x0000_0001); // CSTS.RDY
        set(15, 0x0000_0c3f); // CMBSZ
        let regs = Regs::new(bar).unwrap();
        assert_eq!(regs.cap().0, 0x0000_0020_0f01_00ff);
        assert_eq!(regs.cap().mqes(), 255);
        assert_eq!(regs.vs().0, 0x0001_0400);
        assert_eq!(regs.csts().rdy(), 1);
        assert_eq!(regs.cmbsz().0, 0x0c3f);

        regs.set_cc(Cc(0x0046_0001));
        regs.set_admin_queues(Aqa(0x001f_001f), 0x1_2345_6000, 0x9_8765_4000);
        assert_eq!(get(5), 0x0046_0001, "CC at 14h");
        assert_eq!(regs.cc().0, 0x0046_0001);
        assert_eq!(get(9), 0x001f_001f, "AQA at 24h");
        assert_eq!(
            (get(10), get(11)),
            (0x2345_6000, 0x1),
            "ASQ at 28h, low dword first"
        );
        assert_eq!(
            (get(12), get(13)),
            (0x8765_4000, 0x9),
            "ACQ at 30h, low dword first"
        );
        for (dw, name) in [(3, "INTMS"), (4, "INTMC"), (6, "reserved"), (8, "NSSR")] {
            assert_eq!(get(dw), 0, "{name} is never written");
        }
    }

    #[test]
    fn a_bar0_too_short_for_the_controller_registers_is_refused() {
        let (bar, _, _) = fake_bar0(0x38);
        match Regs::new(bar) {
            Err(NvmeError::Unsupported(msg)) => {
                assert!(msg.contains("BAR0 is 0x38 bytes, too short"), "{msg}")
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a 56-byte BAR0 was taken for an NVMe controller"),
        }
    }
}
