//! Finding a bdev in an SPDK JSON config (the `subsystems` / `bdev` /
//! `config` array that `spdk_tgt --json` reads) and opening it as a
//! blobstore device. Understood methods: `bdev_aio_create` (`name`,
//! `filename`, `block_size`) and `bdev_malloc_create` (`name`,
//! `num_blocks`, `block_size`).

use serde_json::Value;
use spdk_io::blob::{BsDev, FileDev, RamDev};
use std::path::Path;

/// Opens bdev `name` from the config file at `path`.
pub fn open_bdev(path: &Path, name: &str) -> Result<Box<dyn BsDev>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
    let cfg: Value = serde_json::from_str(&text)
        .map_err(|e| format!("config {} is not JSON: {e}", path.display()))?;
    let mut known = Vec::new();
    let subsystems = cfg["subsystems"]
        .as_array()
        .ok_or_else(|| format!("config {} has no \"subsystems\" array", path.display()))?;
    for sub in subsystems.iter().filter(|s| s["subsystem"] == "bdev") {
        for entry in sub["config"].as_array().into_iter().flatten() {
            let params = &entry["params"];
            let Some(bdev) = params["name"].as_str() else {
                continue;
            };
            known.push(bdev.to_string());
            if bdev != name {
                continue;
            }
            let block_size = params["block_size"].as_u64().unwrap_or(512) as u32;
            return match entry["method"].as_str() {
                Some("bdev_aio_create") => {
                    let file = params["filename"].as_str().ok_or_else(|| format!("bdev {name}: bdev_aio_create needs \"filename\""))?;
                    let dev = FileDev::open(Path::new(file), block_size).map_err(|e| format!("bdev {name}: {e}"))?;
                    Ok(Box::new(dev))
                }
                Some("bdev_malloc_create") => {
                    let blocks = params["num_blocks"].as_u64().ok_or_else(|| format!("bdev {name}: bdev_malloc_create needs \"num_blocks\""))?;
                    Ok(Box::new(RamDev::new(block_size, blocks)))
                }
                other => Err(format!("bdev {name}: method {other:?} is not supported here (use bdev_aio_create or bdev_malloc_create)")),
            };
        }
    }
    Err(format!(
        "no bdev named {name:?} in {} (bdevs there: {})",
        path.display(),
        if known.is_empty() {
            "none".into()
        } else {
            known.join(", ")
        }
    ))
}
