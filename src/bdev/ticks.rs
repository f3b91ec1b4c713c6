//! The bdev layer's clock: the thread layer's ticks (nanoseconds).
//!
//! A channel reads the clock once per poll that completes something and
//! stamps that batch's completions, and the I/O their callbacks submit,
//! with it; an I/O submitted anywhere else reads the clock (as SPDK stamps
//! each submission). So the steady state costs one clock read per batch,
//! and no I/O is timed against a clock read before it was submitted or
//! after it completed.

pub use crate::thread::{poll_ticks, ticks, TICKS_HZ as TICK_RATE};
