//! The seam between a driver and its hardware: one trait, [`PciDevice`],
//! implemented by VFIO, by uio, and by software devices in tests.
//!
//! DMA mapping is not part of this trait: every env allocation is mapped into
//! every open VFIO container by the env layer itself (see `env::DmaMapper`), so
//! a driver only asks the env for the IOVA of its buffers.

use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use volatile::VolatilePtr;

use super::{PciAddress, PciError, Plain};

/// A mapped memory region of a device (a BAR), accessed with volatile loads and stores.
///
/// The mapping stays valid while any clone of the `Bar` lives: `keep` owns
/// whatever backs it (an mmap of a VFIO region, of sysfs `resource0`, or the
/// memory of a software device).
#[derive(Clone)]
pub struct Bar {
    ptr: NonNull<u8>,
    len: usize,
    _keep: Arc<dyn Send + Sync>,
}

// SAFETY: a Bar is a window of device registers; every access is a volatile
// load or store of an aligned u32/u64, which devices (and our software device,
// which uses atomics on the same memory) accept from any thread.
unsafe impl Send for Bar {}
// SAFETY: as for Send: no access goes through a shared Rust reference to the memory.
unsafe impl Sync for Bar {}

impl Bar {
    /// Wraps a mapped region.
    ///
    /// # Safety
    /// `ptr..ptr+len` must be a mapping, aligned to 8 bytes, that stays valid
    /// for volatile 32- and 64-bit accesses as long as `keep` lives.
    pub unsafe fn from_raw(ptr: NonNull<u8>, len: usize, keep: Arc<dyn Send + Sync>) -> Self {
        Self {
            ptr,
            len,
            _keep: keep,
        }
    }

    /// A BAR in ordinary memory: `mem`'s words stand in for device
    /// registers (a software device, a queue no device watches, tests); the
    /// holder of another clone of `mem` sees every store.
    pub fn in_memory(mem: Arc<[AtomicU64]>) -> Self {
        let len = mem.len() * 8;
        let ptr = NonNull::new(mem.as_ptr().cast_mut().cast::<u8>())
            .expect("a slice's pointer is never null");
        // SAFETY: `len` bytes of 8-aligned atomics, whose interior mutability
        // allows volatile loads and stores through the pointer from any thread,
        // kept alive by `keep` as long as the Bar.
        unsafe { Self::from_raw(ptr, len, Arc::new(mem)) }
    }

    /// Length of the region in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Base address of the mapping, for drivers that precompute register
    /// pointers (doorbells). Accesses through it must stay in bounds and be volatile.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn in_bounds(&self, off: usize, size: usize) -> bool {
        off % size == 0 && off.checked_add(size).is_some_and(|end| end <= self.len)
    }

    /// The `T` at byte offset `off` as a volatile pointer, or None when
    /// `off..off + size_of::<T>()` passes the end of the BAR or `off` is not
    /// aligned for `T` (at most 8, the mapping's alignment). `T` is [`Plain`]:
    /// whatever the device holds there reads as a valid value.
    ///
    /// ```
    /// use spdk_io::pci::Bar;
    /// use std::sync::{atomic::AtomicU64, Arc};
    ///
    /// let bar = Bar::in_memory(Arc::new([AtomicU64::new(u64::MAX)]));
    /// assert_eq!(bar.view::<u32>(4).map(|r| r.read()), Some(u32::MAX));
    /// assert!(bar.view::<u32>(6).is_none(), "misaligned");
    /// assert!(bar.view::<u64>(4).is_none(), "past the end");
    /// ```
    ///
    /// A type with invalid bit patterns is refused at compile time:
    ///
    /// ```compile_fail
    /// use spdk_io::pci::Bar;
    /// use std::sync::{atomic::AtomicU64, Arc};
    ///
    /// let bar = Bar::in_memory(Arc::new([AtomicU64::new(u64::MAX)]));
    /// let _ = bar.view::<bool>(0); // 0xff is no bool
    /// ```
    pub fn view<T: Plain>(&self, off: usize) -> Option<VolatilePtr<'_, T>> {
        let (size, align) = (std::mem::size_of::<T>(), std::mem::align_of::<T>());
        let fits = off.checked_add(size).is_some_and(|end| end <= self.len);
        if !fits || off % align != 0 || align > 8 {
            return None;
        }
        // SAFETY: in bounds and aligned for T (the base is 8-aligned), the mapping
        // stays valid while `self` (which the returned pointer borrows) lives, per
        // from_raw, and any bit pattern there is a valid T (Plain).
        Some(unsafe { VolatilePtr::new(self.ptr.add(off).cast::<T>()) })
    }

    /// The 32-bit register at byte offset `off` as a volatile pointer, or
    /// None when `off` is out of range or not 4-aligned. Drivers that keep a
    /// register (a doorbell) keep a clone of the `Bar` with it.
    pub fn reg32(&self, off: usize) -> Option<VolatilePtr<'_, u32>> {
        self.view(off)
    }

    /// Volatile 32-bit read at byte offset `off`. An out-of-range or
    /// misaligned offset reads all-ones, as a PCI read of nothing does.
    pub fn read32(&self, off: usize) -> u32 {
        debug_assert!(
            self.in_bounds(off, 4),
            "BAR read32 at {off:#x} out of {:#x}",
            self.len
        );
        self.reg32(off).map_or(u32::MAX, |r| r.read())
    }

    /// Volatile 32-bit write at byte offset `off`; out of range is dropped.
    pub fn write32(&self, off: usize, val: u32) {
        debug_assert!(
            self.in_bounds(off, 4),
            "BAR write32 at {off:#x} out of {:#x}",
            self.len
        );
        if let Some(r) = self.reg32(off) {
            r.write(val);
        }
    }

    /// 64-bit read as two 32-bit reads, low dword first (NVMe allows either;
    /// not every platform forwards 64-bit MMIO).
    pub fn read64(&self, off: usize) -> u64 {
        let lo = self.read32(off) as u64;
        let hi = self.read32(off + 4) as u64;
        lo | (hi << 32)
    }

    /// 64-bit write as two 32-bit writes, low dword first.
    pub fn write64(&self, off: usize, val: u64) {
        self.write32(off, val as u32);
        self.write32(off + 4, (val >> 32) as u32);
    }
}

impl std::fmt::Debug for Bar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bar")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .finish()
    }
}

/// A PCI function a driver can program: registers, config space, bus mastering.
pub trait PciDevice: Send + Sync {
    /// The function's address.
    fn address(&self) -> PciAddress;
    /// Maps BAR `index` (0..=5) for register access.
    fn map_bar(&self, index: u8) -> Result<Bar, PciError>;
    /// Reads `buf.len()` bytes of configuration space at `offset`.
    fn cfg_read(&self, offset: u16, buf: &mut [u8]) -> Result<(), PciError>;
    /// Writes `data` into configuration space at `offset`.
    fn cfg_write(&self, offset: u16, data: &[u8]) -> Result<(), PciError>;

    /// Sets Memory Space Enable and Bus Master Enable in the COMMAND register
    /// (bits 1 and 2), which firmware may leave off at hand-over.
    fn enable_bus_master(&self) -> Result<(), PciError> {
        let mut cmd = [0u8; 2];
        self.cfg_read(0x04, &mut cmd)?;
        let v = u16::from_le_bytes(cmd) | 0x0006;
        self.cfg_write(0x04, &v.to_le_bytes())
    }
}
