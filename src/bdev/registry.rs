//! The process-wide table of registered bdevs, by name, alias and UUID.
//! Touched on register, unregister and open only — never per I/O.

use super::device::Bdev;
use super::{BdevError, Result};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default)]
struct Registry {
    by_name: HashMap<String, Arc<Bdev>>,
    /// Registration order: sequence number -> bdev (removal is a lookup,
    /// not a scan: tearing down 100,000 bdevs stays linear).
    order: BTreeMap<u64, Arc<Bdev>>,
    /// Each registered bdev's sequence number, by address.
    seq_of: HashMap<usize, u64>,
    next: u64,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    let mut g: MutexGuard<'_, Option<Registry>> =
        REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(Registry::default))
}

fn keys(b: &Bdev) -> Vec<String> {
    let mut k = vec![b.name().to_string(), b.uuid().to_string()];
    k.extend(b.aliases().iter().cloned());
    k
}

pub(crate) fn insert(b: &Arc<Bdev>) -> Result<()> {
    with(|r| {
        let keys = keys(b);
        if let Some(k) = keys.iter().find(|k| r.by_name.contains_key(*k)) {
            return Err(BdevError::Exists(k.clone()));
        }
        for k in keys {
            r.by_name.insert(k, b.clone());
        }
        let seq = r.next;
        r.next += 1;
        r.order.insert(seq, b.clone());
        r.seq_of.insert(Arc::as_ptr(b) as usize, seq);
        Ok(())
    })
}

pub(crate) fn remove(b: &Arc<Bdev>) {
    with(|r| {
        for k in keys(b) {
            if r.by_name.get(&k).is_some_and(|x| Arc::ptr_eq(x, b)) {
                r.by_name.remove(&k);
            }
        }
        if let Some(seq) = r.seq_of.remove(&(Arc::as_ptr(b) as usize)) {
            r.order.remove(&seq);
        }
    })
}

/// Adds `alias` to `b`'s names (`spdk_bdev_alias_add`); refused when a
/// bdev already has that name or alias.
pub(crate) fn add_alias(b: &Arc<Bdev>, alias: &str) -> Result<()> {
    with(|r| {
        if r.by_name.contains_key(alias) {
            return Err(BdevError::Exists(alias.to_string()));
        }
        r.by_name.insert(alias.to_string(), b.clone());
        b.aliases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(alias.to_string());
        Ok(())
    })
}

/// Removes `alias` from `b`'s names (`spdk_bdev_alias_del`); false when
/// `b` has no such alias.
pub(crate) fn del_alias(b: &Arc<Bdev>, alias: &str) -> bool {
    with(|r| {
        let mut a = b.aliases.lock().unwrap_or_else(|e| e.into_inner());
        let Some(i) = a.iter().position(|x| x == alias) else {
            return false;
        };
        a.remove(i);
        if r.by_name.get(alias).is_some_and(|x| Arc::ptr_eq(x, b)) {
            r.by_name.remove(alias);
        }
        true
    })
}

/// Looks a bdev up by name, alias or UUID text (`spdk_bdev_get_by_name`).
pub fn get_by_name(name: &str) -> Option<Arc<Bdev>> {
    with(|r| r.by_name.get(name).cloned())
}

/// Every registered bdev, in registration order (`bdev_get_bdevs`).
pub fn bdevs() -> Vec<Arc<Bdev>> {
    with(|r| r.order.values().cloned().collect())
}

/// `bdev_get_iostat`: statistics of one bdev (or all), as SPDK's RPC
/// reports them (`tick_rate`, `ticks`, then one entry per bdev).
pub fn get_iostat_json(name: Option<&str>) -> Result<serde_json::Value> {
    let list = match name {
        Some(n) => vec![get_by_name(n).ok_or_else(|| BdevError::NotFound(n.to_string()))?],
        None => bdevs(),
    };
    let entries: Vec<serde_json::Value> = list
        .iter()
        .map(|b| {
            let mut v = serde_json::to_value(b.iostat()).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("name".into(), b.name().into());
            }
            v
        })
        .collect();
    Ok(serde_json::json!({
        "tick_rate": super::ticks::TICK_RATE,
        "ticks": super::ticks::ticks(),
        "bdevs": entries,
    }))
}
