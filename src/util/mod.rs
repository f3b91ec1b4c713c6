//! Small utilities with no layer of their own (SPDK's `lib/util`): a leaf
//! beside the layers, depending on none of them, usable by every one and by
//! the tools.
//!
//! | item | job |
//! |---|---|
//! | [`histogram::Histogram`] | latency histogram in SPDK's buckets (`histogram_data.h`): fixed counters, no allocation or lock per value |
//! | [`prefault::vec_with_capacity`] | a `Vec` whose reserved memory is written once, so its first use in a run faults no page in |

#![deny(unsafe_code)]

pub mod histogram;
pub mod prefault;
