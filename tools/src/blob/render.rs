//! How `spdk-io blob` shows blobs: JSON values (the `--output-format json`
//! output and the source of the text form) and the text form.

use super::BlobCommand;
use serde_json::{json, Value};
use spdk_io::blob::{BlobInfo, Blobstore, BsDev};

fn xattr_json(list: &[(String, Vec<u8>)]) -> Value {
    let text = |v: &[u8]| {
        let t = v.strip_suffix(&[0]).unwrap_or(v);
        std::str::from_utf8(t)
            .ok()
            .filter(|s| s.chars().all(|c| !c.is_control()))
            .map(str::to_string)
    };
    list.iter()
        .map(|(n, v)| {
            let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
            (n.clone(), json!({ "hex": hex, "text": text(v) }))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

pub(super) fn blob_json(i: &BlobInfo) -> Value {
    json!({
        "id": format!("{:#x}", i.id),
        "num_clusters": i.num_clusters,
        "num_allocated_clusters": i.num_allocated_clusters,
        "thin_provisioned": i.thin_provisioned,
        "read_only": i.read_only,
        "is_snapshot": i.is_snapshot,
        "is_clone": i.parent.is_some(),
        "parent": i.parent.map(|p| format!("{p:#x}")),
        "clones": i.clones.iter().map(|c| format!("{c:#x}")).collect::<Vec<_>>(),
        "xattrs": xattr_json(&i.xattrs),
    })
}

/// Blobs whose metadata cannot be used, with the reason.
pub(super) fn unusable_json<D: BsDev>(bs: &Blobstore<D>) -> Value {
    bs.unusable_blobs()
        .map(|(id, e)| json!({ "id": format!("{id:#x}"), "reason": e.to_string() }))
        .collect::<Vec<_>>()
        .into()
}

fn blob_text(v: &Value) -> String {
    let mut s = format!(
        "Blob ID: {}  clusters: {} (allocated {})",
        v["id"].as_str().unwrap_or(""),
        v["num_clusters"],
        v["num_allocated_clusters"]
    );
    for (flag, label) in [
        ("thin_provisioned", "thin"),
        ("read_only", "read-only"),
        ("is_snapshot", "snapshot"),
        ("is_clone", "clone"),
    ] {
        if v[flag] == true {
            s += &format!(" [{label}]");
        }
    }
    if let Some(p) = v["parent"].as_str() {
        s += &format!(" parent: {p}");
    }
    for (n, x) in v["xattrs"].as_object().into_iter().flatten() {
        match x["text"].as_str() {
            Some(t) => s += &format!("\n    xattr {n} = \"{t}\""),
            None => s += &format!("\n    xattr {n} = 0x{}", x["hex"].as_str().unwrap_or("")),
        }
    }
    s
}

pub(super) fn print_text(cmd: &BlobCommand, out: &Value) {
    match cmd {
        BlobCommand::List => {
            let blobs = out["blobs"].as_array().cloned().unwrap_or_default();
            println!("{} blob(s)", blobs.len());
            blobs.iter().for_each(|b| println!("{}", blob_text(b)));
            let bad = out["unusable"].as_array().cloned().unwrap_or_default();
            if !bad.is_empty() {
                println!("{} unusable blob(s):", bad.len());
            }
            for b in bad {
                println!(
                    "Blob ID: {}  UNUSABLE: {}",
                    b["id"].as_str().unwrap_or(""),
                    b["reason"].as_str().unwrap_or("")
                );
            }
        }
        BlobCommand::Show { .. } => println!("{}", blob_text(out)),
        _ => {
            for (k, v) in out.as_object().into_iter().flatten() {
                println!(
                    "{k}: {}",
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                );
            }
        }
    }
}
