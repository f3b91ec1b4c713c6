//! An lvstore (SPDK's `struct spdk_lvol_store`): a blobstore of type
//! `LVOLSTORE` owned by its metadata thread, its name and UUID, and the
//! lvols found on it or made since. Create, load, rename, grow, unload and
//! destroy; the lvol operations are in `volume`.
//!
//! Every call is `async` and runs the blobstore part on the metadata
//! thread ([`BlobstoreHandle::run`]); the calling thread never blocks.

use super::error::{LvolError, Result};
use super::md_ops::{self, Lvol};
use super::xattrs::{self, LVS_NAME_MAX};
use crate::bdev::Uuid;
use crate::blob::{BlobError, LoadKind};
use crate::blob::{BlobId, Blobstore, BlobstoreHandle, BsDev, BsOpts, ClearMethod, LoadOpts};
use crate::thread::ThreadHandle;
use std::sync::{Arc, Mutex, MutexGuard};

/// SPDK's default lvstore cluster size (`SPDK_LVS_OPTS_CLUSTER_SZ`): 4 MiB.
pub const DEFAULT_CLUSTER_SZ: u32 = 4 << 20;

/// Options of [`LvolStore::create`] (`spdk_lvs_opts`).
#[derive(Debug, Clone)]
pub struct LvsOpts {
    /// The store's name (1 to 63 bytes, unique in the process).
    pub name: String,
    /// Cluster size in bytes (default 4 MiB): a multiple of the block size.
    pub cluster_sz: u32,
    /// How the data region is cleared at create (default unmap).
    pub clear_method: ClearMethod,
    /// Metadata pages reserved per 100 clusters (default 100: one each).
    pub num_md_pages_per_cluster_ratio: u32,
}

impl LvsOpts {
    /// SPDK's defaults with this name.
    pub fn new(name: impl Into<String>) -> LvsOpts {
        LvsOpts {
            name: name.into(),
            cluster_sz: DEFAULT_CLUSTER_SZ,
            clear_method: ClearMethod::Unmap,
            num_md_pages_per_cluster_ratio: 100,
        }
    }
}

/// Space of a store, as `bdev_lvol_get_lvstores` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LvsSpace {
    /// Clusters for data (the metadata clusters excluded).
    pub total_data_clusters: u64,
    /// Free clusters.
    pub free_clusters: u64,
    /// Block size of the base device.
    pub block_size: u32,
    /// Cluster size in bytes.
    pub cluster_size: u32,
}

/// The names of every lvstore of the process (SPDK's `g_lvol_stores`):
/// a name is unique across stores.
static NAMES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn names() -> MutexGuard<'static, Vec<String>> {
    NAMES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reserves `name` for a store, or `-EEXIST`.
fn reserve(name: &str) -> Result<()> {
    let mut n = names();
    if n.iter().any(|x| x == name) {
        return Err(LvolError::Exists {
            what: "lvolstore",
            name: name.to_string(),
        });
    }
    n.push(name.to_string());
    Ok(())
}

fn unreserve(name: &str) {
    names().retain(|x| x != name);
}

pub(crate) struct State {
    pub name: String,
    pub lvols: Vec<Lvol>,
    /// Names of lvols being created (SPDK's `pending_lvols`).
    pub pending: Vec<String>,
    /// Set once unload or destroy began: no new operation starts.
    pub closing: bool,
}

/// An lvstore on a device `D` (a [`crate::blob::BdevBsDev`] for the lvol
/// bdev module). Shared: operations take `&self`.
pub struct LvolStore<D: BsDev + 'static> {
    pub(crate) bs: BlobstoreHandle<D>,
    uuid: Uuid,
    pub(crate) super_blob: BlobId,
    block_size: u32,
    load_kind: LoadKind,
    pub(crate) state: Mutex<State>,
}

impl<D: BsDev + 'static> std::fmt::Debug for LvolStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LvolStore")
            .field("name", &self.name())
            .field("uuid", &self.uuid)
            .finish_non_exhaustive()
    }
}

impl<D: BsDev + 'static> LvolStore<D> {
    /// Makes a new lvstore (`spdk_lvs_init`) on the device `make_dev`
    /// opens on `md` (the thread that will own the blobstore): a blobstore
    /// of type `LVOLSTORE` with a super blob holding the name and a new
    /// UUID. Errors: a name in use (`-EEXIST`), a bad name or cluster size
    /// (`-EINVAL`), and the blobstore's.
    pub async fn create<F>(md: &ThreadHandle, make_dev: F, opts: &LvsOpts) -> Result<Arc<Self>>
    where
        F: FnOnce() -> std::result::Result<D, BlobError> + Send + 'static,
    {
        xattrs::check_name("lvolstore", &opts.name, LVS_NAME_MAX)?;
        if opts.num_md_pages_per_cluster_ratio == 0 {
            return Err(LvolError::Invalid(
                "num_md_pages_per_cluster_ratio must be at least 1".into(),
            ));
        }
        reserve(&opts.name)?;
        let uuid = Uuid::random();
        let o = opts.clone();
        let r = BlobstoreHandle::start_with_async(md, move || async move {
            let dev = make_dev()?;
            let (bl, count) = (dev.block_len(), dev.block_count());
            if o.cluster_sz < bl || o.cluster_sz % bl != 0 {
                return Err(BlobError::InvalidArgument(format!(
                    "cluster size {} is smaller than the block size {bl} or not a multiple of it",
                    o.cluster_sz
                )));
            }
            let total = count / (o.cluster_sz / bl) as u64;
            let md_pages = (o.num_md_pages_per_cluster_ratio as u64 * total / 100) as u32;
            let bs_opts = BsOpts {
                cluster_size: o.cluster_sz,
                num_md_pages: Some(md_pages),
                bstype: xattrs::bstype(),
                clear_method: o.clear_method,
            };
            let mut bs = Blobstore::init_async(dev, &bs_opts).await?;
            match md_ops::init_super(&mut bs, &o.name, &uuid).await {
                Ok(_) => Ok(bs),
                Err(e) => {
                    // Nothing usable was made: leave no store behind.
                    let _ = bs.set_super_blob_async(None).await;
                    let _ = bs.unload_async().await;
                    Err(match e {
                        LvolError::Blob(b) => b,
                        other => BlobError::InvalidArgument(other.to_string()),
                    })
                }
            }
        })
        .await;
        let bs = match r {
            Ok(bs) => bs,
            Err(e) => {
                unreserve(&opts.name);
                return Err(e.into());
            }
        };
        let info = bs
            .query(|s| (s.super_blob(), s.io_unit_size()))
            .await
            .map_err(LvolError::from);
        let (super_blob, block_size) = match info {
            Ok((Some(id), bl)) => (id, bl),
            Ok((None, _)) | Err(_) => {
                unreserve(&opts.name);
                return Err(LvolError::Invalid("lvstore has no super blob".into()));
            }
        };
        Ok(Arc::new(LvolStore {
            bs,
            uuid,
            super_blob,
            block_size,
            load_kind: LoadKind::Clean,
            state: Mutex::new(State {
                name: opts.name.clone(),
                lvols: Vec::new(),
                pending: Vec::new(),
                closing: false,
            }),
        }))
    }

    /// Loads the lvstore on the device `make_dev` opens on `md`
    /// (`spdk_lvs_load`), recovering a store that was not unloaded cleanly.
    /// Errors: not an lvstore (another bstype, no super blob, a corrupt
    /// name or UUID), a name already loaded (`-EEXIST`).
    pub async fn load<F>(md: &ThreadHandle, make_dev: F) -> Result<Arc<Self>>
    where
        F: FnOnce() -> std::result::Result<D, BlobError> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let bs = BlobstoreHandle::start_with_async(md, move || async move {
            let opts = LoadOpts {
                bstype: xattrs::bstype(),
                ..Default::default()
            };
            let bs = Blobstore::load_async(make_dev()?, &opts).await?;
            match md_ops::read_store(&bs) {
                Ok(found) => {
                    let _ = tx.send(Ok((found, bs.io_unit_size(), bs.load_kind())));
                    Ok(bs)
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    let _ = bs.unload_async().await;
                    Err(BlobError::InvalidArgument("not an lvstore".into()))
                }
            }
        })
        .await;
        let found = rx.try_recv().ok();
        let bs = match (bs, found) {
            (Ok(bs), Some(Ok(f))) => (bs, f),
            (_, Some(Err(e))) => return Err(e),
            (Err(e), _) => return Err(e.into()),
            (Ok(_), None) => return Err(LvolError::Invalid("lvstore load lost its result".into())),
        };
        let (bs, (found, block_size, load_kind)) = bs;
        if let Err(e) = reserve(&found.name) {
            let _ = bs.unload_in_place().await;
            return Err(e);
        }
        Ok(Arc::new(LvolStore {
            bs,
            uuid: found.uuid,
            super_blob: found.super_blob,
            block_size,
            load_kind,
            state: Mutex::new(State {
                name: found.name,
                lvols: found.lvols,
                pending: Vec::new(),
                closing: false,
            }),
        }))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The store's name.
    pub fn name(&self) -> String {
        self.lock().name.clone()
    }

    /// The store's UUID.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// The io unit (block) size of its device.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Whether the load found the store clean or recovered it.
    pub fn load_kind(&self) -> LoadKind {
        self.load_kind.clone()
    }

    /// The blobstore, for blob I/O channels.
    pub fn blobstore(&self) -> &BlobstoreHandle<D> {
        &self.bs
    }

    /// The lvols, in blob id order of the load, then in creation order.
    pub fn lvols(&self) -> Vec<Lvol> {
        self.lock().lvols.clone()
    }

    /// An lvol by name.
    pub fn lvol(&self, name: &str) -> Option<Lvol> {
        self.lock().lvols.iter().find(|l| l.name == name).cloned()
    }

    /// An lvol by blob id.
    pub fn lvol_by_blob(&self, id: BlobId) -> Option<Lvol> {
        self.lock().lvols.iter().find(|l| l.blob_id == id).cloned()
    }

    /// Clusters and sizes (`bdev_lvol_get_lvstores`).
    pub async fn space(&self) -> Result<LvsSpace> {
        let bl = self.block_size;
        Ok(self
            .bs
            .query(move |s| {
                let sb = s.super_block();
                let pages_per_cluster = (s.cluster_size() / s.page_size()) as u64;
                let md_clusters =
                    (sb.md_start as u64 + sb.md_len as u64).div_ceil(pages_per_cluster);
                LvsSpace {
                    total_data_clusters: s.total_clusters().saturating_sub(md_clusters),
                    free_clusters: s.free_cluster_count(),
                    block_size: bl,
                    cluster_size: s.cluster_size(),
                }
            })
            .await?)
    }

    /// Renames the store (`spdk_lvs_rename`): the same name is a no-op,
    /// a name of another store `-EEXIST`.
    pub async fn rename(&self, new_name: &str) -> Result<()> {
        let old = self.name();
        if old == new_name {
            return Ok(());
        }
        xattrs::check_name("lvolstore", new_name, LVS_NAME_MAX)?;
        reserve(new_name)?;
        let (sb, n) = (self.super_blob, new_name.to_string());
        let r = self
            .bs
            .run_async(move |s| Box::pin(async move { Ok(md_ops::rename_store(s, sb, &n).await) }))
            .await
            .map_err(LvolError::from)
            .and_then(|r| r);
        match r {
            Ok(()) => {
                unreserve(&old);
                self.lock().name = new_name.to_string();
                Ok(())
            }
            Err(e) => {
                unreserve(new_name);
                Err(e)
            }
        }
    }

    /// Grows the store to its device's current size (`spdk_lvs_grow_live`).
    pub async fn grow(&self) -> Result<()> {
        Ok(self.bs.grow().await?)
    }

    fn begin_close(&self) -> Result<String> {
        let mut st = self.lock();
        if st.closing {
            return Err(LvolError::Busy(format!(
                "lvolstore '{}' is already being unloaded or destroyed",
                st.name
            )));
        }
        st.closing = true;
        Ok(st.name.clone())
    }

    /// Unloads the store cleanly (`spdk_lvs_unload`), closing its device on
    /// the metadata thread. Every lvol must be closed.
    pub async fn unload(self: Arc<Self>) -> Result<()> {
        let name = self.begin_close()?;
        let r = self.bs.clone().unload_in_place().await;
        unreserve(&name);
        Ok(r?)
    }

    /// Deletes every lvol and the store's super blob, then unloads it
    /// (`vbdev_lvs_destruct` + `spdk_lvs_destroy`). Every lvol must be closed.
    pub async fn destroy(self: Arc<Self>) -> Result<()> {
        let name = self.begin_close()?;
        let sb = self.super_blob;
        let r = self
            .bs
            .run_async(move |s| Box::pin(async move { Ok(md_ops::destroy(s, sb).await) }))
            .await
            .map_err(LvolError::from)
            .and_then(|r| r);
        if let Err(e) = r {
            self.lock().closing = false;
            return Err(e);
        }
        self.lock().lvols.clear();
        let r = self.bs.clone().unload_in_place().await;
        unreserve(&name);
        Ok(r?)
    }
}

impl<D: BsDev + Send + 'static> LvolStore<D> {
    /// Unloads the store and hands its device back (for devices that may
    /// leave the metadata thread, such as a RAM device under test).
    pub async fn unload_dev(self: Arc<Self>) -> Result<D> {
        let name = self.begin_close()?;
        let r = self.bs.clone().unload().await;
        unreserve(&name);
        Ok(r?)
    }
}
