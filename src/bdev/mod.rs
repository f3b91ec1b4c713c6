//! The block device layer (SPDK's `<spdk/bdev.h>` and `<spdk/bdev_module.h>`).
//!
//! A [`Bdev`] is a registered block device made by a module; users open it
//! as a [`Desc`] (read-only or writable), get a [`Channel`] per thread (on a
//! lightweight thread, one of its io_channels: each bdev is an io_device
//! of the thread layer) and
//! submit I/O through the descriptor: `desc.read_blocks(&ch, buf, off, n, cb)`
//! or `desc.read_blocks_async(&ch, buf, off, n).await`. Each I/O takes a
//! request from the channel's preallocated pool and owns its buffers
//! ([`IoBuf`], [`IoData`]) until the completion hands them back; completions
//! run from [`Channel::poll`] on the submitting thread, never inside submit.
//!
//! Writers that need blocks to themselves take an LBA range lock
//! ([`Desc::lock_lba_range`], or [`Desc::quiesce_range`] to stop reads
//! too; `.._async` forms resolve when the lock is held): fenced I/O of every channel waits behind it. Compare-and-write is
//! passed to modules that do it natively and otherwise emulated under such
//! a lock, so it is atomic against writers on every thread.
//!
//! Modules implement [`BdevModule`] (init/fini/examine) and, per bdev,
//! [`BdevOps`] (SPDK's function table) with a per-thread [`ModuleChannel`]
//! that reports completions through a [`Completer`].
//!
//! | file | job |
//! |---|---|
//! | `error`, `error_source` | [`BdevError`]; [`ErrorSource`], the error underneath one, kept |
//! | `buf` | owned buffers [`IoBuf`], [`IoData`] |
//! | `io` | [`IoType`], [`IoStatus`], [`IoCompletion`], the [`IoDone`] callback |
//! | `ops` | the module side: [`BdevOps`], [`ModuleChannel`], [`IoRequest`], [`Completer`] |
//! | `module` | [`BdevModule`], module registration, init/fini, examine |
//! | `device`, `registry` | [`Bdev`], [`BdevProps`], lookup by name/alias/UUID |
//! | `lifecycle` | [`Bdev::register`], [`Bdev::unregister`], the module's destruct |
//! | `resize` | a registered bdev changed in place: [`Bdev::notify_blockcnt_change`] (the resize event), [`Bdev::alias_add`], [`Bdev::alias_del`] |
//! | `desc` | [`Desc`], [`open_ext`], claims, [`BdevEvent`] |
//! | `per_thread` | each bdev an io_device of the thread layer: a thread's channels to it; the host thread of channels made outside any thread |
//! | `channel`, `pool`, `complete`, `split_io` | [`Channel`]: pooled requests, NOMEM retry, io_wait, poll; completion; splitting |
//! | `submit` | the I/O calls of a descriptor |
//! | `range_lock`, `lock_local`, `lock_walk`, `lock_channel`, `lock_end` | LBA range locks: the bdev's lock table, a channel's own lock state, the `for_each_channel` walks that hand locks out and take them back, what a channel does on a visit and in its poll, how locks are asked for and end |
//! | `reset`, `reset_walk`, `reset_local` | [`Desc::reset`] with `for_each_channel` walks: freeze every channel (abort what it queued), drain or not, the module's reset, thaw; the steps, the walks, the state a reset keeps on the bdev and its channels |
//! | `quiesce` | [`Desc::lock_lba_range`], [`Desc::quiesce_range`], [`Desc::quiesce`] and their unlocks |
//! | `lock_future` | their async forms ([`Desc::lock_lba_range_async`], ...); a dropped future releases its lock |
//! | `qos`, `qos_channel` | rate limits per bdev ([`QosLimits`]): quota per 1 ms slice, a channel's queue of I/O over quota |
//! | `caw` | compare-and-write emulated under a range lock for modules without a native one |
//! | `future` | async I/O ([`IoFuture`]) |
//! | `stat`, `stat_walk`, `ticks` | [`IoStat`] (bdev_get_iostat); each channel's, read on its thread ([`ChannelIoStat`]); the tick clock |
//! | `config`, `config_lines` | SPDK JSON configuration ([`load_config`]); each entry's line, in one pass |
//! | `rpc` | the bdev JSON-RPC methods ([`rpc::methods`]) and `save_config` entries |
//! | `null`, `malloc`, `file`, `nvme`, `split`, `passthru`, `error_inject` | the modules |
//! | `vbdev` | plumbing for virtual bdevs (base claim, forwarding) |
//! | `pass_through` | [`PassThrough`]: a virtual bdev's request handed to its base's module channel as a cheap request of the base's channel |

#![deny(unsafe_code)]

mod buf;
mod caw;
mod channel;
mod complete;
pub mod config;
mod config_lines;
mod desc;
mod device;
mod error;
pub mod error_inject;
mod error_source;
pub mod file;
mod future;
mod io;
mod lifecycle;
mod lock_channel;
mod lock_end;
mod lock_future;
mod lock_local;
mod lock_walk;
pub mod malloc;
mod module;
pub mod null;
pub mod nvme;
mod ops;
mod pass_through;
pub mod passthru;
mod per_thread;
mod pool;
mod qos;
mod qos_channel;
mod quiesce;
mod range_lock;
mod registry;
mod reset;
mod reset_local;
mod reset_walk;
mod resize;
pub mod rpc;
pub mod split;
mod split_io;
mod stat;
mod stat_walk;
mod submit;
mod submit_check;
pub mod ticks;
mod uuid;
pub mod vbdev;

pub use buf::{IoBuf, IoData};
pub use channel::{io_pool_size, set_io_pool_size, Channel};
pub use config::{load_config, load_config_file, save_config};
pub use desc::{open, open_ext, BdevEvent, Desc, EventCb};
pub use device::{Bdev, BdevProps};
pub use error::{BdevError, ErrorSource, Result};
pub use future::{IoFailed, IoFuture};
pub use io::{IoCompletion, IoDone, IoId, IoStatus, IoType, Rejected};
pub use module::{
    auto_examine, examine_allowlist, examine_bdev, fini, init, module_names, register_module,
    set_auto_examine, BdevModule,
};
pub use ops::{BdevOps, Completer, IoRequest, ModuleChannel};
pub use pass_through::{PassDone, PassThrough};
pub use qos::QosLimits;
pub use registry::{bdevs, get_by_name, get_iostat_json};
pub use stat::{ChannelStat, IoStat, ResetMode};
pub use stat_walk::{ChannelIoStat, ChannelIoStats};
pub use submit::Submitted;
pub use uuid::Uuid;

fn builtin_modules() -> Vec<std::sync::Arc<dyn BdevModule>> {
    vec![
        null::module(),
        nvme::module(),
        malloc::module(),
        file::module(),
        split::module(),
        passthru::module(),
        error_inject::module(),
    ]
}
