//! The controller driven by hand, as a minimal driver would: raw 64-byte SQEs
//! written into DMA memory, doorbells through the BAR, CQEs polled by phase.

mod host;

mod admin_cmds;
mod bring_up;
mod data_path;
mod driver_interop;
mod faults;
mod fuzz;
mod lifecycle;
mod nvm_cmds;
mod queues;
mod shadow_doorbells;
