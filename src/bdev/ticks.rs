//! The bdev layer's clock: nanosecond ticks since the first use.
//!
//! A channel reads the clock once per poll and stamps every I/O submitted
//! or completed in that poll with the cached value (as SPDK uses the
//! thread's last TSC), so latency accounting costs no clock read per I/O.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Ticks per second.
pub const TICK_RATE: u64 = 1_000_000_000;

/// Nanoseconds since the process first asked.
pub fn ticks() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}
