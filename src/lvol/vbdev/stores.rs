//! lvstores on bdevs: create (claiming the base), delete, rename, grow,
//! lookups by name or UUID, and examine (`vbdev_lvs_examine_disk`).

use super::super::error::{LvolError, Result};
use super::super::store::{LvolStore, LvsOpts};
use super::lvols::{drop_bdev, refresh, register_lvol};
use super::LvsBdev;
use crate::bdev::{self, Bdev, BdevModule};
use crate::blob::{BdevBsDev, BlobError};
use crate::thread::{spawn_local, Thread};
use std::cell::Cell;
use std::sync::{Arc, Mutex, MutexGuard, Once};

/// The module's name, as bdevs and claims report it.
pub const MODULE: &str = "lvol";

static STORES: Mutex<Vec<Arc<LvsBdev>>> = Mutex::new(Vec::new());

fn stores() -> MutexGuard<'static, Vec<Arc<LvsBdev>>> {
    STORES.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    /// Examines started on this thread and not finished.
    static EXAMINING: Cell<usize> = const { Cell::new(0) };
}

/// Every lvstore, in creation or load order.
pub fn lvstores() -> Vec<Arc<LvsBdev>> {
    stores().clone()
}

/// How a method names a store: by UUID or by name, exactly one of them
/// (`vbdev_get_lvol_store_by_uuid_xor_name`).
#[derive(Debug, Clone, Default)]
pub struct LvsSelector {
    /// The store's UUID.
    pub uuid: Option<String>,
    /// The store's name.
    pub lvs_name: Option<String>,
}

/// The store named by `sel`: neither or both given is `-EINVAL`, none
/// found `-ENODEV`.
pub fn lvstore(sel: &LvsSelector) -> Result<Arc<LvsBdev>> {
    let found = match (&sel.uuid, &sel.lvs_name) {
        (None, None) | (Some(_), Some(_)) => {
            return Err(LvolError::Invalid(
                "give exactly one of uuid and lvs_name".into(),
            ))
        }
        (Some(u), None) => lvstores()
            .into_iter()
            .find(|s| s.lvs.uuid().to_string() == u.to_ascii_lowercase()),
        (None, Some(n)) => lvstores().into_iter().find(|s| s.lvs.name() == *n),
    };
    found.ok_or_else(|| LvolError::NotFound {
        what: "lvolstore",
        name: sel
            .uuid
            .clone()
            .or(sel.lvs_name.clone())
            .unwrap_or_default(),
    })
}

fn open_err(what: &'static str) -> impl FnOnce(std::io::Error) -> BlobError {
    move |source| BlobError::Io {
        op: what,
        lba: 0,
        blocks: 0,
        source,
    }
}

/// Opens the base bdev for a store, on the calling (metadata) thread,
/// watching for its removal.
fn open_base(name: &str) -> std::result::Result<BdevBsDev, BlobError> {
    let fail = |e: String| open_err("open")(std::io::Error::other(e));
    let desc = bdev::open_ext(name, true, |ev, b| {
        if ev == bdev::BdevEvent::Remove {
            base_removed(b.name());
        }
    })
    .map_err(|e| fail(format!("open bdev {name}: {e}")))?;
    if !desc.bdev().io_type_supported(bdev::IoType::Write) {
        return Err(fail(format!(
            "bdev {name} is read-only: an lvstore needs writes"
        )));
    }
    BdevBsDev::on_this_thread(&desc).map_err(open_err("open"))
}

/// The base bdev of a store is going (`vbdev_lvs_hotremove_cb`): the
/// store is unloaded and its lvol bdevs unregistered.
fn base_removed(base: &str) {
    let Some(s) = lvstores().into_iter().find(|s| s.base == base) else {
        return;
    };
    log::info!(
        "base bdev '{base}' removed: unloading lvstore '{}'",
        s.lvs.name()
    );
    let sel = LvsSelector {
        uuid: Some(s.lvs.uuid().to_string()),
        lvs_name: None,
    };
    let task = async move {
        if let Err(e) = unload_lvstore(&sel).await {
            log::warn!("lvstore on removed bdev: unload: {e}");
        }
    };
    if let Err(e) = spawn_local(task) {
        log::error!("lvstore on removed bdev '{base}': {e}");
    }
}

fn md_thread() -> Result<crate::thread::ThreadHandle> {
    Thread::current().map(|t| t.handle()).ok_or_else(|| {
        LvolError::Invalid("lvol operations run on an spdk-io thread (none is current)".into())
    })
}

/// Claims the store's base bdev for the module, through the store's own
/// descriptor (`spdk_bs_bdev_claim`); returns that descriptor.
async fn claim(lvs: &LvolStore<BdevBsDev>) -> Result<bdev::Desc> {
    lvs.blobstore()
        .query(|s| {
            let d = s.dev().desc();
            d.claim(MODULE)
                .map(|()| d.clone())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r)
        .map_err(|e| LvolError::Busy(format!("cannot claim the base bdev: {e}")))
}

/// Creates an lvstore on bdev `base` (`vbdev_lvs_create`) and claims it.
/// Errors: no such bdev (`-ENODEV`), claimed by another module
/// (`-EPERM`), and those of [`LvolStore::create`].
pub async fn create_lvstore(base: &str, opts: &LvsOpts) -> Result<Arc<LvsBdev>> {
    let b = bdev::get_by_name(base).ok_or_else(|| LvolError::NotFound {
        what: "bdev",
        name: base.to_string(),
    })?;
    if let Some(m) = b.claimed_by() {
        return Err(bdev::BdevError::Claimed {
            bdev: b.name().to_string(),
            module: m,
        }
        .into());
    }
    let name = b.name().to_string();
    let n = name.clone();
    let lvs = LvolStore::create(&md_thread()?, move || open_base(&n), opts).await?;
    let base_desc = match claim(&lvs).await {
        Ok(d) => d,
        Err(e) => {
            let _ = lvs.destroy().await;
            return Err(e);
        }
    };
    let s = Arc::new(LvsBdev {
        lvs,
        base: name,
        base_desc,
        bdevs: Mutex::new(Default::default()),
    });
    stores().push(s.clone());
    Ok(s)
}

/// Deletes the store (`vbdev_lvs_destruct`): every lvol bdev is
/// unregistered, every lvol and the store deleted, the base released.
pub async fn delete_lvstore(sel: &LvsSelector) -> Result<()> {
    let s = lvstore(sel)?;
    stores().retain(|x| !Arc::ptr_eq(x, &s));
    let bdevs: Vec<_> = std::mem::take(&mut *s.bdevs.lock().unwrap_or_else(|e| e.into_inner()))
        .into_values()
        .collect();
    for x in bdevs {
        drop_bdev(&s, x).await;
    }
    let r = s.lvs.clone().destroy().await;
    match &r {
        Ok(()) => s.base_desc.release_claim(),
        Err(_) => stores().push(s.clone()),
    }
    r
}

/// Unloads the store cleanly (`vbdev_lvs_unload`): its lvol bdevs are
/// unregistered and the base bdev released; the lvols stay on disk and
/// come back when the base is examined again.
pub async fn unload_lvstore(sel: &LvsSelector) -> Result<()> {
    let s = lvstore(sel)?;
    stores().retain(|x| !Arc::ptr_eq(x, &s));
    let bdevs: Vec<_> = std::mem::take(&mut *s.bdevs.lock().unwrap_or_else(|e| e.into_inner()))
        .into_values()
        .collect();
    for x in bdevs {
        drop_bdev(&s, x).await;
    }
    let r = s.lvs.clone().unload().await;
    s.base_desc.release_claim();
    r
}

/// Unloads every lvstore cleanly (SPDK's asynchronous `fini_start` of the
/// lvol module): run by the application's shutdown before the bdev
/// subsystem finishes, so the stores are found clean at the next start.
pub async fn unload_all() {
    for s in lvstores() {
        let sel = LvsSelector {
            uuid: Some(s.lvs.uuid().to_string()),
            lvs_name: None,
        };
        if let Err(e) = unload_lvstore(&sel).await {
            log::error!("lvstore '{}': clean unload failed: {e}", s.lvs.name());
        }
    }
}

/// Renames the store; every lvol bdev's alias follows, in place (open
/// descriptors stay open; `vbdev_lvs_rename`).
pub async fn rename_lvstore(old: &str, new: &str) -> Result<()> {
    let s = lvstore(&LvsSelector {
        uuid: None,
        lvs_name: Some(old.to_string()),
    })?;
    s.lvs.rename(new).await?;
    super::lvols::realias_all(&s).await
}

/// Grows the store to its base bdev's size (`vbdev_lvs_grow`).
pub async fn grow_lvstore(sel: &LvsSelector) -> Result<()> {
    lvstore(sel)?.lvs.grow().await
}

/// Loads the lvstore on `base`, if it holds one, and registers its lvols.
async fn examine_disk(base: String) -> Result<()> {
    let n = base.clone();
    let lvs = LvolStore::load(&md_thread()?, move || open_base(&n)).await?;
    let base_desc = match claim(&lvs).await {
        Ok(d) => d,
        Err(e) => {
            let _ = lvs.unload().await;
            return Err(e);
        }
    };
    let s = Arc::new(LvsBdev {
        lvs,
        base,
        base_desc,
        bdevs: Mutex::new(Default::default()),
    });
    stores().push(s.clone());
    for l in s.lvs.lvols() {
        if let Err(e) = register_lvol(&s, &l).await {
            log::error!("lvol {}: cannot create its bdev: {e}", l.unique_id);
        }
    }
    refresh(&s).await;
    log::info!(
        "lvstore '{}' found on bdev '{}' with {} lvol(s)",
        s.lvs.name(),
        s.base,
        s.lvs.lvols().len()
    );
    Ok(())
}

/// Resolves once every examine started on this thread has finished (what
/// `bdev_wait_for_examine` waits for).
/// Gives up after 30 s (an examine stuck on its device) with a log line.
pub async fn examined() {
    let start = std::time::Instant::now();
    while EXAMINING.with(|c| c.get()) > 0 {
        if start.elapsed() > std::time::Duration::from_secs(30) {
            log::error!("lvol examine still running after 30 s; not waiting for it");
            return;
        }
        crate::thread::yield_now().await;
    }
}

struct LvolModule;

impl BdevModule for LvolModule {
    fn name(&self) -> &'static str {
        MODULE
    }

    fn examine(&self, b: &Arc<Bdev>) {
        if b.module_name() == MODULE || b.claimed_by().is_some() {
            return;
        }
        if Thread::current().is_none() {
            log::debug!("lvol examine of '{}' skipped: no spdk-io thread", b.name());
            return;
        }
        let name = b.name().to_string();
        EXAMINING.with(|c| c.set(c.get() + 1));
        let task = async move {
            match examine_disk(name.clone()).await {
                Ok(()) => {}
                Err(e) => log::debug!("lvol examine of '{name}': no lvstore ({e})"),
            }
            EXAMINING.with(|c| c.set(c.get() - 1));
        };
        if let Err(e) = spawn_local(task) {
            EXAMINING.with(|c| c.set(c.get() - 1));
            log::error!("lvol examine: {e}");
        }
    }

    fn module_fini(&self) {
        stores().clear();
    }
}

/// Registers the lvol module with the bdev layer (once): from then on every
/// new bdev is examined for an lvstore.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| bdev::register_module(Arc::new(LvolModule)));
}
