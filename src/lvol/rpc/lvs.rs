//! The lvstore methods: `bdev_lvol_create_lvstore`, `_delete_lvstore`,
//! `_get_lvstores`, `_rename_lvstore`, `_grow_lvstore`.

use super::{by_kind, early, late, params, Res, LATE};
use crate::blob::ClearMethod;
use crate::lvol::error::LvolError;
use crate::lvol::store::{LvsOpts, DEFAULT_CLUSTER_SZ};
use crate::lvol::vbdev::{self, LvsSelector};
use crate::rpc::RpcError;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateLvstore {
    bdev_name: String,
    lvs_name: String,
    #[serde(default)]
    cluster_sz: Option<u32>,
    #[serde(default)]
    clear_method: Option<String>,
    #[serde(default)]
    num_md_pages_per_cluster_ratio: Option<u32>,
    #[serde(default)]
    md_page_size: Option<u32>,
}

pub(super) async fn create_lvstore(p: Value) -> Res {
    let p: CreateLvstore = params(p)?;
    let clear_method = match p
        .clear_method
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("unmap") => ClearMethod::Unmap,
        Some("none") => ClearMethod::None,
        Some("write_zeroes") => ClearMethod::WriteZeroes,
        Some(_) => {
            return Err(RpcError::new(
                -libc::EINVAL,
                "Invalid clear_method parameter",
            ))
        }
    };
    if let Some(s) = p.md_page_size.filter(|&s| s != 0 && s != 4096) {
        return Err(early(LvolError::Invalid(format!(
            "md_page_size {s}: only 4096-byte metadata pages are supported"
        ))));
    }
    let opts = LvsOpts {
        name: p.lvs_name,
        cluster_sz: p
            .cluster_sz
            .filter(|&c| c != 0)
            .unwrap_or(DEFAULT_CLUSTER_SZ),
        clear_method,
        num_md_pages_per_cluster_ratio: p
            .num_md_pages_per_cluster_ratio
            .filter(|&r| r != 0)
            .unwrap_or(100),
    };
    let s = vbdev::create_lvstore(&p.bdev_name, &opts)
        .await
        .map_err(by_kind)?;
    Ok(s.lvs.uuid().to_string().into())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Sel {
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    lvs_name: Option<String>,
}

impl Sel {
    pub(super) fn sel(self) -> LvsSelector {
        LvsSelector {
            uuid: self.uuid,
            lvs_name: self.lvs_name,
        }
    }
}

pub(super) async fn delete_lvstore(p: Value) -> Res {
    let p: Sel = params(p)?;
    let sel = p.sel();
    vbdev::lvstore(&sel).map_err(early)?;
    vbdev::delete_lvstore(&sel).await.map_err(late(LATE))?;
    Ok(true.into())
}

pub(super) async fn lvs_info(s: &vbdev::LvsBdev) -> Result<Value, RpcError> {
    let sp = s
        .lvs
        .space()
        .await
        .map_err(late(crate::rpc::INTERNAL_ERROR))?;
    Ok(json!({
        "uuid": s.lvs.uuid().to_string(),
        "name": s.lvs.name(),
        "base_bdev": s.base,
        "total_data_clusters": sp.total_data_clusters,
        "free_clusters": sp.free_clusters,
        "block_size": sp.block_size,
        "cluster_size": sp.cluster_size,
    }))
}

/// The stores a get method lists: all, or the one named.
pub(super) fn chosen(
    sel: Option<LvsSelector>,
) -> Result<Vec<std::sync::Arc<vbdev::LvsBdev>>, RpcError> {
    match sel {
        None => Ok(vbdev::lvstores()),
        Some(sel) => Ok(vec![vbdev::lvstore(&sel).map_err(early)?]),
    }
}

pub(super) async fn get_lvstores(p: Value) -> Res {
    let sel = match p {
        Value::Null => None,
        Value::Object(o) if o.is_empty() => None,
        p => Some(params::<Sel>(p)?.sel()),
    };
    let mut out = Vec::new();
    for s in chosen(sel)? {
        out.push(lvs_info(&s).await?);
    }
    Ok(out.into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameLvstore {
    old_name: String,
    new_name: String,
}

pub(super) async fn rename_lvstore(p: Value) -> Res {
    let p: RenameLvstore = params(p)?;
    let sel = LvsSelector {
        uuid: None,
        lvs_name: Some(p.old_name.clone()),
    };
    if vbdev::lvstore(&sel).is_err() {
        return Err(RpcError::new(
            -libc::ENOENT,
            format!("Lvol store {} not found", p.old_name),
        ));
    }
    vbdev::rename_lvstore(&p.old_name, &p.new_name)
        .await
        .map_err(late(LATE))?;
    Ok(true.into())
}

pub(super) async fn grow_lvstore(p: Value) -> Res {
    let sel = params::<Sel>(p)?.sel();
    vbdev::lvstore(&sel).map_err(early)?;
    vbdev::grow_lvstore(&sel).await.map_err(late(LATE))?;
    Ok(true.into())
}
