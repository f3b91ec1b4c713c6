//! The statistics objects of `bdev_get_iostat`, with SPDK's field names
//! (`spdk_bdev_dump_io_stat_json`); counters this layer does not keep
//! (copy) are 0.

use crate::bdev::IoStat;
use serde_json::{json, Value};

/// One bdev's (`name`) or one channel's statistics.
pub(super) fn iostat_json(name: Option<&str>, s: &IoStat) -> Value {
    let mut v = json!({
        "bytes_read": s.bytes_read,
        "num_read_ops": s.num_read_ops,
        "bytes_written": s.bytes_written,
        "num_write_ops": s.num_write_ops,
        "bytes_unmapped": s.bytes_unmapped,
        "num_unmap_ops": s.num_unmap_ops,
        "bytes_copied": 0,
        "num_copy_ops": 0,
        "read_latency_ticks": s.read_latency_ticks,
        "max_read_latency_ticks": s.max_read_latency_ticks,
        "min_read_latency_ticks": s.min_read_latency_ticks,
        "write_latency_ticks": s.write_latency_ticks,
        "max_write_latency_ticks": s.max_write_latency_ticks,
        "min_write_latency_ticks": s.min_write_latency_ticks,
        "unmap_latency_ticks": s.unmap_latency_ticks,
        "max_unmap_latency_ticks": 0,
        "min_unmap_latency_ticks": 0,
        "copy_latency_ticks": 0,
        "max_copy_latency_ticks": 0,
        "min_copy_latency_ticks": 0,
        "io_error": {},
        "num_io_errors": s.num_io_errors,
        "num_other_ops": s.num_other_ops,
    });
    if let (Some(n), Some(o)) = (name, v.as_object_mut()) {
        o.insert("name".into(), n.into());
    }
    v
}
