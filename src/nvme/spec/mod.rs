//! NVMe specification types: what the NVMe Base and PCIe Transport
//! specifications define, with their field names, and nothing else.
//!
//! - [`registers`]: the controller registers in BAR0 (CAP, VS, CC, CSTS, AQA,
//!   ASQ, ACQ, CMBLOC, CMBSZ) and the doorbell layout (CAP.DSTRD).
//! - [`command`]: the 64-byte submission queue entry [`Sqe`], the 16-byte
//!   completion queue entry [`Cqe`], admin and NVM opcodes.
//! - [`status`]: the completion status field decoded into SCT/SC names, DNR, More.
//! - [`identify`]: Identify Controller, Identify Namespace, active namespace
//!   list, namespace identification descriptors.
//! - [`log`]: log pages (error information, SMART / health, firmware slot).
//! - [`features`]: feature identifiers and their typed values.
//!
//! Every structure the device reads or writes is `#[repr(C)]` with its size
//! and field offsets checked at compile time against the specification.

pub mod command;
pub mod features;
pub mod identify;
mod identify_ns;
pub mod log;
pub mod registers;
pub mod status;

pub use command::{AdminOpcode, Cqe, NvmOpcode, Sqe};
pub use identify::{IdentifyController, IdentifyNamespace, LbaFormat, NsIdDescriptor};
pub use registers::{Aqa, Cap, Cc, Cmbloc, Cmbsz, Csts, Vs};
pub use status::{Status, StatusCodeType};

/// Extracts `width` bits starting at bit `lo` of `v`.
#[inline]
pub(crate) const fn bits64(v: u64, lo: u32, width: u32) -> u64 {
    (v >> lo) & ((1u64 << width) - 1)
}

/// Returns `v` with `width` bits at `lo` replaced by `x` (extra bits of `x` are dropped).
#[inline]
pub(crate) const fn set_bits64(v: u64, lo: u32, width: u32, x: u64) -> u64 {
    let mask = ((1u64 << width) - 1) << lo;
    (v & !mask) | ((x << lo) & mask)
}

/// Trims an ASCII field padded with spaces or NULs (serial, model, firmware).
pub fn ascii_field(raw: &[u8]) -> String {
    let s: String = raw
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                ' '
            }
        })
        .collect();
    s.trim().to_string()
}

/// Plain data the device reads or writes: a `#[repr(C)]` structure of
/// integers and byte arrays.
///
/// # Safety
/// Implementors must be `#[repr(C)]`, contain no padding, no pointers or
/// references, and accept every bit pattern (integers and arrays of them).
pub unsafe trait Pod: Copy + 'static {}

// SAFETY: each listed type is repr(C) integers without padding (checked by the size asserts).
unsafe impl Pod for Sqe {}
// SAFETY: as above.
unsafe impl Pod for Cqe {}
// SAFETY: as above.
unsafe impl Pod for command::DsmRange {}

/// Copies a `T` out of the first `size_of::<T>()` bytes of `raw`; `None` when too short.
pub fn from_bytes<T: Pod>(raw: &[u8]) -> Option<T> {
    if raw.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: the length was checked; T is Pod so any bytes are a valid T;
    // read_unaligned copes with any alignment of `raw`.
    Some(unsafe { raw.as_ptr().cast::<T>().read_unaligned() })
}

/// An all-zero `T`.
pub fn zeroed<T: Pod>() -> T {
    // SAFETY: T is Pod: the all-zero pattern is a valid value.
    unsafe { std::mem::zeroed() }
}

/// The bytes of a `T`.
pub fn as_bytes<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: T is Pod: no padding, so every byte is initialised; the slice
    // borrows `v` for its whole size.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}
