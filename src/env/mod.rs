//! The `env` layer: DMA memory, as SPDK's env library provides it.
//!
//! [`init`] brings the environment up from [`EnvOpts`]: hugepages of 2 MiB or
//! 1 GiB (anonymous `MAP_HUGETLB`, or files on a hugetlbfs mount), or ordinary
//! pinned pages in `no_huge` mode; and the IOVA mode, [`IovaMode::Va`] behind
//! an IOMMU or [`IovaMode::Pa`] (physical addresses from /proc/self/pagemap)
//! without one. [`DmaBuf`] allocates from a heap of regions that grows on
//! demand; [`DmaPool`] hands out fixed-size elements for per-I/O objects;
//! [`SharedDmaBuf`] is DMA memory many threads copy in and out of at once
//! without a lock (a RAM disk's memory).
//! Every region is registered in a vaddr <-> IOVA map ([`vtophys`],
//! [`vtophys_len`], [`iova_to_vaddr`]; O(1) per buffer with
//! [`DmaBuf::iova_at`] and [`DmaBuf::extents`]) and mapped into every
//! [`DmaMapper`] (VFIO containers). Regions are placed below 2^39 so that
//! IOVA = VA fits the narrowest IOMMUs.
//! User memory joins with [`mem_register`]. [`fini`] gives everything back.
//! [`now_ns`] is the cheap monotonic clock (the TSC where the kernel
//! trusts it) that pollers and I/O statistics run on.
//! [`InlineFn`] stores a closure without a heap allocation: the thread
//! layer's messages and the NVMe driver's completion callbacks are both one.
//!
//! `unsafe` is needed here to map memory and hand out slices of it, and to
//! store a closure of any type in a fixed buffer.

mod clock;
mod dmabuf;
mod error;
mod global;
mod heap;
pub mod inline_fn;
mod mapper;
mod opts;
mod pool;
mod region;
mod shared;
mod state;
mod sys;

pub use clock::{clock_is_tsc, now_ns};
pub use dmabuf::{DmaBuf, Extents};
pub use error::EnvError;
pub use global::{
    fini, init, init_once, iova_mode, iova_to_vaddr, is_initialized, mem_register, mem_stats,
    mem_unregister, opts, register_dma_mapper, unregister_dma_mapper, vtophys, vtophys_len,
    MemStats,
};
pub use inline_fn::{Detached, InlineFn, INLINE_FN_BYTES};
pub use mapper::DmaMapper;
pub use opts::{EnvOpts, HugePageSize, IovaMode};
pub use pool::{DmaPool, DmaPoolBuf};
pub use shared::SharedDmaBuf;
pub use sys::{hugepage_counts, hugepage_counts_at, iommu_present, HugepageCounts};
