//! Small utilities with no layer of their own (SPDK's `lib/util`): a leaf
//! beside the layers, depending on none of them, usable by every one and by
//! the tools.
//!
//! | item | job |
//! |---|---|
//! | [`histogram::Histogram`] | latency histogram in SPDK's buckets (`histogram_data.h`): fixed counters, no allocation or lock per value |

#![deny(unsafe_code)]

pub mod histogram;
