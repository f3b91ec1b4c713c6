//! The bdev layer's clock: the thread layer's ticks (nanoseconds).
//!
//! A channel takes the time its thread's poll started ([`poll_ticks`]) and
//! stamps every I/O submitted or completed in that poll with it (as SPDK
//! uses the thread's last TSC), so latency accounting costs no clock read
//! per I/O, nor per channel poll.

pub use crate::thread::{poll_ticks, ticks, TICKS_HZ as TICK_RATE};
