//! `Bdev`: one registered block device — its properties, its module's
//! function table, its open descriptors and claim, its statistics.

use super::ops::BdevOps;
use super::per_thread::BdevIoDevice;
use super::range_lock::LockTable;
use super::stat::{ChannelStat, IoStat};
use super::uuid::Uuid;
use super::IoType;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// What a module declares when it registers a bdev (the public fields of
/// SPDK's `struct spdk_bdev`).
#[derive(Debug, Clone)]
pub struct BdevProps {
    /// Unique name.
    pub name: String,
    /// Further names it can be opened by.
    pub aliases: Vec<String>,
    /// UUID; a random one is made when `None`.
    pub uuid: Option<Uuid>,
    /// Human-readable kind ("Malloc disk", "Null disk", ...).
    pub product_name: String,
    /// Logical block size in bytes.
    pub block_size: u32,
    /// Size in blocks.
    pub num_blocks: u64,
    /// Largest read/write the module accepts, in blocks (0 = no limit); the
    /// bdev layer splits larger I/O.
    pub max_rw_size: u64,
    /// Optimal I/O boundary in blocks (0 = none).
    pub optimal_io_boundary: u64,
    /// Split I/O that crosses `optimal_io_boundary`.
    pub split_on_optimal_io_boundary: bool,
    /// Whether the device has a volatile write cache (flush matters).
    pub write_cache: bool,
    /// Seconds a reset waits for the I/O outstanding on every channel to
    /// drain before it reaches the module (SPDK's `reset_io_drain_timeout`):
    /// 0, the default, hands it to the module at once; otherwise a reset
    /// whose I/O all drained in time succeeds without reaching the module,
    /// and one whose I/O did not reaches the module when the time is up.
    pub reset_io_drain_timeout: u16,
    /// How long the module may take to complete a reset handed to it: after
    /// that the reset fails (`IoStatus::Failed`), the channels thaw, and
    /// the module's late report is ignored. `None` waits however long (as
    /// SPDK does). Default: 120 s.
    pub module_reset_timeout: Option<std::time::Duration>,
}

impl BdevProps {
    /// Properties with the given name and geometry, everything else default.
    pub fn new(name: impl Into<String>, block_size: u32, num_blocks: u64) -> Self {
        BdevProps {
            name: name.into(),
            aliases: Vec::new(),
            uuid: None,
            product_name: String::new(),
            block_size,
            num_blocks,
            max_rw_size: 0,
            optimal_io_boundary: 0,
            split_on_optimal_io_boundary: false,
            write_cache: false,
            reset_io_drain_timeout: 0,
            module_reset_timeout: Some(std::time::Duration::from_secs(120)),
        }
    }
}

pub(crate) struct Claim {
    pub desc_id: u64,
    pub module: String,
}

/// An open descriptor as its bdev sees it (the descriptor's file sits
/// above this one).
pub(crate) trait OpenDesc: Send + Sync {
    /// Delivers [`super::BdevEvent::Remove`] to the descriptor's owner.
    fn notify_remove(self: Arc<Self>);
    /// Delivers [`super::BdevEvent::Resize`] to the descriptor's owner.
    fn notify_resize(self: Arc<Self>);
}

#[derive(Default)]
pub(crate) struct BdevState {
    pub descs: Vec<Weak<dyn OpenDesc>>,
    pub claim: Option<Claim>,
    pub stats: Vec<Weak<ChannelStat>>,
    pub retired: IoStat,
    pub destructed: bool,
}

/// A registered block device. Shared (`Arc`) by every descriptor and
/// channel on any thread; the per-I/O path reads only its immutable fields.
pub struct Bdev {
    /// As registered; its size and aliases may change since (`blockcnt`,
    /// `aliases`).
    pub(crate) props: BdevProps,
    /// Size in blocks now (`spdk_bdev_notify_blockcnt_change` changes it).
    pub(crate) blockcnt: AtomicU64,
    /// Aliases now (`spdk_bdev_alias_add` / `_del` change them).
    pub(crate) aliases: Mutex<Vec<String>>,
    pub(crate) uuid: Uuid,
    pub(crate) module: String,
    pub(crate) ops: Box<dyn BdevOps>,
    pub(crate) removed: AtomicBool,
    pub(crate) state: Mutex<BdevState>,
    /// Rate limits (`bdev_set_qos_limit`), shared by every channel.
    pub(crate) qos: super::qos::Qos,
    /// The bdev as an io_device: each lightweight thread's channels.
    pub(crate) io_device: BdevIoDevice,
    /// Its LBA range locks (`range_lock`).
    pub(crate) locks: Mutex<LockTable>,
    /// Its resets (`reset`).
    pub(crate) resets: Mutex<super::reset_local::ResetTable>,
}

impl std::fmt::Debug for Bdev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bdev")
            .field("name", &self.props.name)
            .field("module", &self.module)
            .finish()
    }
}

impl Bdev {
    pub(crate) fn lock(&self) -> MutexGuard<'_, BdevState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Name.
    pub fn name(&self) -> &str {
        &self.props.name
    }
    /// Its aliases: those given at registration, as changed since by
    /// [`Bdev::alias_add`] and [`Bdev::alias_del`].
    pub fn aliases(&self) -> Vec<String> {
        self.aliases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// UUID.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }
    /// Product name.
    pub fn product_name(&self) -> &str {
        &self.props.product_name
    }
    /// Name of the module that registered it.
    pub fn module_name(&self) -> &str {
        &self.module
    }
    /// Block size in bytes.
    pub fn block_size(&self) -> u32 {
        self.props.block_size
    }
    /// Size in blocks (as changed by [`Bdev::notify_blockcnt_change`]).
    pub fn num_blocks(&self) -> u64 {
        self.blockcnt.load(Ordering::Relaxed)
    }
    /// All properties, with the size and aliases of now.
    pub fn props(&self) -> BdevProps {
        BdevProps {
            num_blocks: self.num_blocks(),
            aliases: self.aliases(),
            ..self.props.clone()
        }
    }
    /// True once unregistered (hot-removed).
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Relaxed)
    }
    /// Whether I/O of `io_type` can be submitted
    /// (`spdk_bdev_io_type_supported`): the module's answer, except that
    /// compare-and-write is also supported when the layer emulates it (see
    /// [`BdevOps::emulate_compare_and_write`]).
    pub fn io_type_supported(&self, io_type: IoType) -> bool {
        self.ops.io_type_supported(io_type)
            || (io_type == IoType::CompareAndWrite && self.emulates_compare_and_write())
    }

    /// True when compare-and-write goes through the layer's emulation
    /// (range lock, compare, write) rather than the module.
    pub fn emulates_compare_and_write(&self) -> bool {
        !self.ops.io_type_supported(IoType::CompareAndWrite)
            && self.ops.emulate_compare_and_write()
            && self.ops.io_type_supported(IoType::Read)
            && self.ops.io_type_supported(IoType::Write)
    }
    /// How many descriptors are open on it (a module refuses to change a
    /// bdev's identity or shrink it while users have it open).
    pub fn open_descs(&self) -> usize {
        let mut st = self.lock();
        st.descs.retain(|w| w.strong_count() > 0);
        st.descs.len()
    }

    /// Name of the module that claimed it, if any.
    pub fn claimed_by(&self) -> Option<String> {
        self.lock().claim.as_ref().map(|c| c.module.clone())
    }

    /// Summed statistics of every channel, live and closed (`bdev_get_iostat`).
    pub fn iostat(&self) -> IoStat {
        let st = self.lock();
        let mut total = st.retired.clone();
        for s in st.stats.iter().filter_map(Weak::upgrade) {
            total.add(&s.snapshot());
        }
        total
    }

    /// The statistics of each live channel, one by one
    /// (`bdev_get_iostat` with `per_channel`).
    pub fn channel_iostats(&self) -> Vec<IoStat> {
        self.lock()
            .stats
            .iter()
            .filter_map(Weak::upgrade)
            .map(|s| s.snapshot())
            .collect()
    }

    /// Clears the bdev's statistics (`bdev_reset_iostat`): those of its
    /// closed channels now, each live channel's as its thread next
    /// records an I/O (reads show them cleared at once).
    pub fn reset_iostat(&self, mode: super::stat::ResetMode) {
        let mut st = self.lock();
        st.retired.reset(mode);
        for s in st.stats.iter().filter_map(Weak::upgrade) {
            s.request_reset(mode);
        }
    }

    /// `bdev_get_bdevs` entry, shaped as SPDK's (`rpc_dump_bdev_info`):
    /// properties, rate limits, claim, every SPDK I/O type with whether it
    /// is supported, and the module's `dump_info_json`.
    pub fn info_json(&self) -> serde_json::Value {
        let supported: serde_json::Map<String, serde_json::Value> = SPDK_IO_TYPES
            .iter()
            .map(|&name| {
                let ours = IoType::ALL.iter().find(|t| t.name() == name);
                let yes = ours.is_some_and(|t| self.io_type_supported(*t));
                (name.to_string(), serde_json::Value::Bool(yes))
            })
            .collect();
        let claimed = self.claimed_by().is_some();
        let mut v = serde_json::json!({
            "name": self.name(),
            "aliases": self.aliases(),
            "product_name": self.product_name(),
            "block_size": self.block_size(),
            "num_blocks": self.num_blocks(),
            "preferred_write_alignment": 0,
            "preferred_write_granularity": 0,
            "optimal_write_size": 0,
            "preferred_unmap_alignment": 0,
            "preferred_unmap_granularity": 0,
            "uuid": self.uuid.to_string(),
            "assigned_rate_limits": self.qos_limits(),
            "claimed": claimed,
            "zoned": false,
            "supported_io_types": supported,
            "driver_specific": self.ops.dump_info_json(),
        });
        if claimed {
            if let Some(o) = v.as_object_mut() {
                o.insert("claim_type".into(), "exclusive_write".into());
            }
        }
        v
    }
}

/// SPDK's I/O type names in its order (`spdk_bdev_get_io_type_name`):
/// `supported_io_types` lists them all, the ones this layer lacks as false.
const SPDK_IO_TYPES: &[&str] = &[
    "read",
    "write",
    "unmap",
    "flush",
    "reset",
    "nvme_admin",
    "nvme_io",
    "nvme_io_md",
    "write_zeroes",
    "zcopy",
    "get_zone_info",
    "zone_management",
    "zone_append",
    "compare",
    "compare_and_write",
    "abort",
    "seek_hole",
    "seek_data",
    "copy",
    "nvme_iov_md",
    "nvme_nssr",
];
