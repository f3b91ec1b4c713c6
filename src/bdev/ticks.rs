//! The bdev layer's clock: the thread layer's ticks (nanoseconds).
//!
//! A channel reads the clock once per poll and stamps every I/O submitted
//! or completed in that poll with the cached value (as SPDK uses the
//! thread's last TSC), so latency accounting costs no clock read per I/O.

pub use crate::thread::{ticks, TICKS_HZ as TICK_RATE};
