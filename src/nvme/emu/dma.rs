//! "DMA" into host memory: every address the host hands the controller is an
//! IOVA, resolved through the env layer's registry of DMA regions exactly as
//! an IOMMU would translate it. An address outside registered DMA memory is a
//! DMA fault ([`DmaFault`]), never a wild access.

use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use volatile::access::WriteOnly;
use volatile::VolatilePtr;

use crate::env;

/// An IOVA range that is not (entirely) registered DMA memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmaFault {
    /// The faulting IOVA.
    pub iova: u64,
    /// Length of the access.
    pub len: usize,
}

/// Resolves `[iova, iova+len)` to a host pointer valid for `len` bytes.
pub fn resolve(iova: u64, len: usize) -> Result<NonNull<u8>, DmaFault> {
    env::iova_to_vaddr(iova, len).ok_or(DmaFault { iova, len })
}

/// Copies host memory at `iova` into `dst`.
pub fn read(iova: u64, dst: &mut [u8]) -> Result<(), DmaFault> {
    if dst.is_empty() {
        return Ok(());
    }
    let src = resolve(iova, dst.len())?;
    // SAFETY: `src` is valid for dst.len() bytes of registered DMA memory (the
    // env keeps it mapped while registered); the host does not write a buffer
    // it handed to the device until the command completes, as with real DMA.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr(), dst.len()) };
    Ok(())
}

/// Reads a little-endian u32 at a 4-aligned `iova` with an acquire load
/// (shadow doorbells, which the host updates while the device runs).
pub fn load_u32(iova: u64) -> Result<u32, DmaFault> {
    let p = aligned_u32(iova)?;
    // SAFETY: 4 valid, 4-aligned bytes of DMA memory; shared words are only
    // accessed with atomic or volatile aligned 32-bit operations.
    Ok(u32::from_le(
        unsafe { AtomicU32::from_ptr(p) }.load(Ordering::Acquire),
    ))
}

/// Stores a u32 at a 4-aligned `iova` with a release store (EventIdx entries).
pub fn store_u32(iova: u64, val: u32) -> Result<(), DmaFault> {
    let p = aligned_u32(iova)?;
    // SAFETY: as in load_u32.
    unsafe { AtomicU32::from_ptr(p) }.store(val.to_le(), Ordering::Release);
    Ok(())
}

fn aligned_u32(iova: u64) -> Result<*mut u32, DmaFault> {
    let p = resolve(iova, 4)?.as_ptr().cast::<u32>();
    if p as usize % 4 != 0 {
        return Err(DmaFault { iova, len: 4 });
    }
    Ok(p)
}

/// Writes a 16-byte completion queue entry at `iova`: dwords 0..=2 first,
/// then dword 3 (carrying the phase tag) with release ordering, so a host
/// that sees the new phase sees the whole entry.
pub fn write_cqe(iova: u64, low: [u32; 3], dw3: u32) -> Result<(), DmaFault> {
    let p = resolve(iova, 16)?.as_ptr().cast::<u32>();
    if p as usize % 16 != 0 {
        return Err(DmaFault { iova, len: 16 });
    }
    for (i, v) in low.iter().enumerate() {
        // SAFETY: 16 valid, 16-aligned bytes; dword i < 3 lies inside them.
        let dw =
            unsafe { VolatilePtr::new_restricted(WriteOnly, NonNull::new_unchecked(p.add(i))) };
        dw.write(v.to_le());
    }
    fence(Ordering::Release);
    // SAFETY: dword 3 of the same 16 valid bytes, 4-aligned.
    unsafe { AtomicU32::from_ptr(p.add(3)) }.store(dw3.to_le(), Ordering::Release);
    Ok(())
}

/// A host-memory segment resolved for a data transfer.
#[derive(Debug, Clone, Copy)]
pub struct HostSeg {
    /// Host pointer to the first byte.
    pub ptr: NonNull<u8>,
    /// Length in bytes.
    pub len: usize,
}

impl HostSeg {
    /// Copies `src` (exactly `self.len` bytes) into the segment.
    pub fn copy_from(&self, src: &[u8]) {
        debug_assert_eq!(src.len(), self.len);
        // SAFETY: the segment was resolved for `len` bytes of DMA memory the
        // host lent to the device for this command.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr(), self.len) }
    }

    /// Copies the segment into `dst` (exactly `self.len` bytes).
    pub fn copy_to(&self, dst: &mut [u8]) {
        debug_assert_eq!(dst.len(), self.len);
        // SAFETY: as in copy_from.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), dst.as_mut_ptr(), self.len) }
    }

    /// True if the segment holds exactly `other` (`self.len` bytes).
    pub fn equals(&self, other: &[u8]) -> bool {
        debug_assert_eq!(other.len(), self.len);
        let mut chunk = [0u8; 512];
        other.chunks(chunk.len()).enumerate().all(|(i, want)| {
            let got = &mut chunk[..want.len()];
            // SAFETY: i * 512 + want.len() <= self.len: inside the resolved segment.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.ptr.as_ptr().add(i * 512),
                    got.as_mut_ptr(),
                    want.len(),
                )
            };
            got == want
        })
    }
}
