//! The `nvme` layer (see DESIGN: filled in by its issue).

pub mod emu;
