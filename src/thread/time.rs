//! Monotonic ticks for pollers and statistics (SPDK's `spdk_get_ticks`):
//! nanoseconds since the first call in this process.

use std::sync::OnceLock;
use std::time::Instant;

static BASE: OnceLock<Instant> = OnceLock::new();

/// Ticks per second (ticks are nanoseconds).
pub const TICKS_HZ: u64 = 1_000_000_000;

/// The current tick count: nanoseconds since the process first asked.
pub fn ticks() -> u64 {
    let base = BASE.get_or_init(Instant::now);
    base.elapsed().as_nanos() as u64
}
