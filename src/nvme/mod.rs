//! The `nvme` layer: SPDK's user-space, polled NVMe driver.
//!
//! - [`spec`]: NVMe specification types (registers, SQE/CQE, status, identify, logs, features).
pub mod spec;
