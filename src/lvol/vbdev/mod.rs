//! The lvol bdev module (SPDK's `module/bdev/lvol/vbdev_lvol.c`): lvstores
//! on bdevs, each lvol registered as a bdev named by its UUID with the
//! alias `lvstore/lvol`, and examine, which finds an lvstore on any new
//! bdev and brings its lvols back as bdevs by itself.
//!
//! Its operations run on the calling lightweight thread, which becomes the
//! metadata thread of the stores it creates or finds (the app thread in
//! `spdk-io tgt`).
//!
//! | file | job |
//! |---|---|
//! | `stores` | create / delete / rename / grow an lvstore on a bdev; examine; lookups |
//! | `lvols` | lvol operations that keep the bdevs in step |
//! | `io` | the lvol bdev: function table, `bdev_get_bdevs` info |
//! | `shallow_copy` | a read-only lvol's own clusters copied to another bdev, with a status per operation id |
//! | `channel` | the lvol bdev's per-thread channel: reads and writes through the blob channel |
//! | `rw_done` | the completion of a read or write that is not passed through (blob channel, base descriptor) |
//! | `passed` | the lvol end of the bdev layer's pass-through: a passed request's map left and its completion reported |

mod channel;
mod io;
mod lvols;
mod passed;
mod rw_done;
mod shallow_copy;
mod stores;

use super::store::LvolStore;
use crate::bdev::Bdev;
use crate::blob::{BdevBsDev, BlobId};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub use lvols::{
    clone, create, decouple_parent, delete, find_lvol, inflate, rename, resize, set_parent,
    set_read_only, snapshot, RESET_IO_DRAIN_TIMEOUT,
};
pub use shallow_copy::{check_shallow_copy, start_shallow_copy, CopyStatus};
pub use stores::{
    create_lvstore, delete_lvstore, examined, grow_lvstore, lvstore, lvstores, register,
    rename_lvstore, unload_all, unload_lvstore, LvsSelector,
};

/// A registered lvol bdev and the module's handle on what it shows.
type LvolBdev = (Arc<Bdev>, Arc<io::LvolBdevOps>);

/// An lvstore on a base bdev (SPDK's `struct lvol_store_bdev`) and the
/// bdevs of its lvols.
pub struct LvsBdev {
    /// The store.
    pub lvs: Arc<LvolStore<BdevBsDev>>,
    /// The base bdev's name.
    pub base: String,
    /// The store's (claiming) descriptor of the base bdev: each thread's
    /// blob I/O channel is made on a clone of it.
    base_desc: crate::bdev::Desc,
    bdevs: Mutex<BTreeMap<BlobId, LvolBdev>>,
}

impl std::fmt::Debug for LvsBdev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LvsBdev")
            .field("lvs", &self.lvs)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl LvsBdev {
    /// The bdev of the lvol on blob `id`, if registered.
    pub fn bdev_of(&self, id: BlobId) -> Option<Arc<Bdev>> {
        self.bdevs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .map(|(b, _)| b.clone())
    }
}
