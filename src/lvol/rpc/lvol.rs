//! The lvol methods: `bdev_lvol_create`, `_get_lvols`, `_snapshot`,
//! `_clone`, `_rename`, `_resize`, `_inflate`, `_decouple_parent`,
//! `_set_read_only`, `_set_parent`, `_start_shallow_copy`,
//! `_check_shallow_copy`, `_delete`.

use super::lvs::chosen;
use super::{by_kind, early, late, lvol_of, params, Res, LATE};
use crate::blob::BlobClearMethod;
use crate::lvol::vbdev::{self, LvsSelector};
use crate::rpc::RpcError;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetLvols {
    #[serde(default)]
    lvs_uuid: Option<String>,
    #[serde(default)]
    lvs_name: Option<String>,
}

pub(super) async fn get_lvols(p: Value) -> Res {
    let sel = match p {
        Value::Null => None,
        Value::Object(o) if o.is_empty() => None,
        p => {
            let g: GetLvols = params(p)?;
            Some(LvsSelector {
                uuid: g.lvs_uuid,
                lvs_name: g.lvs_name,
            })
        }
    };
    let mut out = Vec::new();
    for s in chosen(sel)? {
        let (name, uuid) = (s.lvs.name(), s.lvs.uuid().to_string());
        let infos = s
            .lvs
            .lvol_infos()
            .await
            .map_err(late(crate::rpc::INTERNAL_ERROR))?;
        for (l, i) in infos {
            out.push(json!({
                "alias": format!("{name}/{}", l.name),
                "uuid": l.uuid.unwrap_or_default().to_string(),
                "name": l.name,
                "is_thin_provisioned": i.thin_provisioned,
                "is_snapshot": i.is_snapshot,
                "is_clone": i.parent.is_some(),
                "is_esnap_clone": false,
                "is_degraded": false,
                "num_allocated_clusters": i.num_allocated_clusters,
                "lvs": {"name": name, "uuid": uuid},
            }));
        }
    }
    Ok(out.into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    lvs_name: Option<String>,
    lvol_name: String,
    size_in_mib: u64,
    #[serde(default)]
    thin_provision: bool,
    #[serde(default)]
    clear_method: Option<String>,
}

pub(super) async fn create(p: Value) -> Res {
    let p: Create = params(p)?;
    let sel = LvsSelector {
        uuid: p.uuid,
        lvs_name: p.lvs_name,
    };
    vbdev::lvstore(&sel).map_err(early)?;
    let clear = match p
        .clear_method
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => BlobClearMethod::Default,
        Some("none") => BlobClearMethod::None,
        Some("unmap") => BlobClearMethod::Unmap,
        Some("write_zeroes") => BlobClearMethod::WriteZeroes,
        Some(_) => return Err(RpcError::new(-libc::EINVAL, "Invalid clean_method option")),
    };
    let name = vbdev::create(&sel, &p.lvol_name, p.size_in_mib, p.thin_provision, clear)
        .await
        .map_err(by_kind)?;
    Ok(name.into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Snapshot {
    lvol_name: String,
    snapshot_name: String,
}

pub(super) async fn snapshot(p: Value) -> Res {
    let p: Snapshot = params(p)?;
    lvol_of(&p.lvol_name)?;
    let n = vbdev::snapshot(&p.lvol_name, &p.snapshot_name)
        .await
        .map_err(late(LATE))?;
    Ok(n.into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Clone {
    snapshot_name: String,
    clone_name: String,
}

pub(super) async fn clone(p: Value) -> Res {
    let p: Clone = params(p)?;
    lvol_of(&p.snapshot_name)?;
    let n = vbdev::clone(&p.snapshot_name, &p.clone_name)
        .await
        .map_err(late(LATE))?;
    Ok(n.into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    old_name: String,
    new_name: String,
}

pub(super) async fn rename(p: Value) -> Res {
    let p: Rename = params(p)?;
    lvol_of(&p.old_name)?;
    vbdev::rename(&p.old_name, &p.new_name)
        .await
        .map_err(late(LATE))?;
    Ok(true.into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resize {
    name: String,
    size_in_mib: u64,
}

pub(super) async fn resize(p: Value) -> Res {
    let p: Resize = params(p)?;
    lvol_of(&p.name)?;
    vbdev::resize(&p.name, p.size_in_mib)
        .await
        .map_err(late(LATE))?;
    Ok(true.into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Name {
    name: String,
}

pub(super) async fn inflate(p: Value) -> Res {
    let p: Name = params(p)?;
    lvol_of(&p.name)?;
    vbdev::inflate(&p.name).await.map_err(late(LATE))?;
    Ok(true.into())
}

pub(super) async fn decouple_parent(p: Value) -> Res {
    let p: Name = params(p)?;
    lvol_of(&p.name)?;
    vbdev::decouple_parent(&p.name).await.map_err(late(LATE))?;
    Ok(true.into())
}

pub(super) async fn set_read_only(p: Value) -> Res {
    let p: Name = params(p)?;
    lvol_of(&p.name)?;
    vbdev::set_read_only(&p.name).await.map_err(late(LATE))?;
    Ok(true.into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetParent {
    lvol_name: String,
    parent_name: String,
}

/// `bdev_lvol_set_parent`: `-ENODEV` for an unknown lvol or snapshot, the
/// operation's failure as `-32602` with `strerror`.
pub(super) async fn set_parent(p: Value) -> Res {
    let p: SetParent = params(p)?;
    lvol_of(&p.lvol_name)?;
    lvol_of(&p.parent_name)?;
    vbdev::set_parent(&p.lvol_name, &p.parent_name)
        .await
        .map_err(late(LATE))?;
    Ok(true.into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShallowCopy {
    src_lvol_name: String,
    dst_bdev_name: String,
}

/// `bdev_lvol_start_shallow_copy`: `{"operation_id": N}`; `-ENODEV` for an
/// unknown lvol; a destination that cannot be opened and claimed answers
/// `-32602` with `strerror`, as SPDK's.
pub(super) async fn start_shallow_copy(p: Value) -> Res {
    let p: ShallowCopy = params(p)?;
    lvol_of(&p.src_lvol_name)?;
    let id = vbdev::start_shallow_copy(&p.src_lvol_name, &p.dst_bdev_name)
        .await
        .map_err(late(LATE))?;
    Ok(json!({ "operation_id": id }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckCopy {
    operation_id: u32,
}

/// `bdev_lvol_check_shallow_copy`: copied and total clusters and the state
/// ("in progress", "complete", "error" with its `strerror`); `-ENODEV` for
/// an unknown (or already reported finished) operation id.
pub(super) async fn check_shallow_copy(p: Value) -> Res {
    let p: CheckCopy = params(p)?;
    let s =
        vbdev::check_shallow_copy(p.operation_id).ok_or_else(|| RpcError::errno(libc::ENODEV))?;
    let mut o = json!({
        "copied_clusters": s.copied_clusters,
        "total_clusters": s.total_clusters,
    });
    if s.result != 0 {
        o["state"] = "error".into();
        o["error"] = crate::rpc::strerror(-s.result).into();
    } else if s.copied_clusters < s.total_clusters {
        o["state"] = "in progress".into();
    } else {
        o["state"] = "complete".into();
    }
    Ok(o)
}

pub(super) async fn delete(p: Value) -> Res {
    let p: Name = params(p)?;
    lvol_of(&p.name)?;
    vbdev::delete(&p.name)
        .await
        .map_err(late(crate::rpc::INTERNAL_ERROR))?;
    Ok(true.into())
}
