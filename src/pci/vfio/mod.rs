//! VFIO access: one container per process, groups shared by their devices,
//! device fds for BARs and config space; the container maps all env memory.

mod container;
mod device;
mod ioctl;

pub use device::VfioDevice;
