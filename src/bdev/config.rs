//! SPDK's JSON configuration: `{"subsystems":[{"subsystem":"bdev","config":[
//! {"method":"bdev_malloc_create","params":{...}}, ...]}]}`.
//!
//! The `bdev` subsystem's entries are run in order as the JSON-RPC methods
//! SPDK names them; other subsystems are skipped. Errors name the line, the
//! entry, the method and serde's reason (missing or unknown field).

use super::{error_inject, file, malloc, null, passthru, split, BdevError, Result, Uuid};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// Options-only methods of SPDK modules we accept and ignore, so a config
/// saved by SPDK loads unchanged.
const IGNORED: &[&str] = &[
    "bdev_wait_for_examine",
    "bdev_nvme_set_options",
    "bdev_nvme_set_hotplug",
    "bdev_iscsi_set_options",
    "bdev_raid_set_options",
    "bdev_aio_set_options",
];

pub(crate) fn parse_uuid(s: Option<&str>) -> Result<Option<Uuid>> {
    match s {
        None => Ok(None),
        Some(t) => Uuid::parse(t).map(Some).ok_or_else(|| {
            BdevError::InvalidParam(format!(
                "uuid '{t}' is not of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
            ))
        }),
    }
}

fn params<T: DeserializeOwned>(method: &str, p: &Value) -> Result<T> {
    serde_json::from_value(p.clone())
        .map_err(|e| BdevError::Config(format!("{method}: params: {e}")))
}

/// Runs one bdev JSON-RPC method; returns what SPDK's RPC returns (the
/// bdev name(s), or `true`).
pub fn call_method(method: &str, p: &Value) -> Result<Value> {
    let p = if p.is_null() { &json!({}) } else { p };
    let name = |b: &std::sync::Arc<super::Bdev>| Value::String(b.name().to_string());
    match method {
        "bdev_null_create" => null::create(params(method, p)?).map(|b| name(&b)),
        "bdev_malloc_create" => malloc::create(params(method, p)?).map(|b| name(&b)),
        "bdev_aio_create" | "bdev_uring_create" => file::create(params(method, p)?, method).map(|b| name(&b)),
        "bdev_split_create" => split::create(params(method, p)?).map(|v| v.iter().map(name).collect()),
        "bdev_passthru_create" => passthru::create(params(method, p)?)
            .map(|b| b.map(|b| name(&b)).unwrap_or_else(|| p.get("name").cloned().unwrap_or(Value::Null))),
        "bdev_nvme_attach_controller" => super::nvme::attach_controller(params(method, p)?).map(|v| v.iter().map(name).collect()),
        "bdev_error_create" => error_inject::create(params(method, p)?).map(|b| name(&b)),
        "bdev_null_delete" | "bdev_malloc_delete" | "bdev_aio_delete" | "bdev_uring_delete" | "bdev_passthru_delete"
        | "bdev_error_delete" => {
            #[derive(serde::Deserialize)]
            struct Name {
                name: String,
            }
            let n: Name = params(method, p)?;
            let b = super::get_by_name(&n.name).ok_or(BdevError::NotFound(n.name))?;
            b.unregister();
            Ok(Value::Bool(true))
        }
        "bdev_split_delete" => {
            #[derive(serde::Deserialize)]
            struct Base {
                base_bdev: String,
            }
            let b: Base = params(method, p)?;
            split::delete(&b.base_bdev).map(|_| Value::Bool(true))
        }
        "bdev_set_options" => {
            #[derive(serde::Deserialize)]
            struct Opts {
                #[serde(default)]
                bdev_io_cache_size: Option<usize>,
                #[serde(flatten)]
                _rest: serde_json::Map<String, Value>,
            }
            let o: Opts = params(method, p)?;
            if let Some(n) = o.bdev_io_cache_size {
                super::set_io_pool_size(n);
            }
            Ok(Value::Bool(true))
        }
        m if IGNORED.contains(&m) => Ok(Value::Bool(true)),
        m => Err(BdevError::Config(format!(
            "unknown bdev method '{m}': supported are bdev_null_create, bdev_malloc_create, bdev_aio_create, \
             bdev_uring_create, bdev_split_create, bdev_passthru_create, bdev_nvme_attach_controller, bdev_error_create and their _delete"
        ))),
    }
}

/// Loads a configuration text: creates every bdev of the `bdev` subsystem,
/// in order. Returns the names of the bdevs created.
pub fn load_config(text: &str) -> Result<Vec<String>> {
    let root: Value = serde_json::from_str(text)
        .map_err(|e| BdevError::Config(format!("malformed JSON config: {e}")))?;
    let subs = root
        .get("subsystems")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            BdevError::Config(
                "config: missing field `subsystems` (an array) at the top level".into(),
            )
        })?;
    let lines = super::config_lines::entry_lines(text);
    let mut entry_no = 0usize;
    let mut created = Vec::new();
    for (si, sub) in subs.iter().enumerate() {
        let sname = sub
            .get("subsystem")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                BdevError::Config(format!(
                    "config: subsystems[{si}]: missing field `subsystem` (a string)"
                ))
            })?;
        let entries = match sub.get("config") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(BdevError::Config(format!(
                    "config: subsystems[{si}] ({sname}): `config` must be an array"
                )))
            }
        };
        for (ci, e) in entries.iter().enumerate() {
            let line = lines.get(entry_no).copied();
            entry_no += 1;
            if sname != "bdev" {
                continue;
            }
            let at = match line {
                Some(l) => format!("config line {l}, subsystems[{si}].config[{ci}]"),
                None => format!("config subsystems[{si}].config[{ci}]"),
            };
            let method = e.get("method").and_then(Value::as_str).ok_or_else(|| {
                BdevError::Config(format!("{at}: missing field `method` (a string)"))
            })?;
            let p = e.get("params").unwrap_or(&Value::Null);
            match call_method(method, p) {
                Ok(Value::String(s)) => created.push(s),
                Ok(Value::Array(a)) => {
                    created.extend(a.into_iter().filter_map(|v| v.as_str().map(String::from)))
                }
                Ok(_) => {}
                Err(err) => {
                    let msg = match err {
                        BdevError::Config(m) => m,
                        other => format!("{method}: {other}"),
                    };
                    return Err(BdevError::Config(format!("{at}: {msg}")));
                }
            }
        }
    }
    Ok(created)
}

/// Loads a configuration file.
pub fn load_config_file(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| BdevError::Os {
        op: "read config",
        path: path.display().to_string(),
        msg: e.to_string(),
    })?;
    load_config(&text).map_err(|e| match e {
        BdevError::Config(m) => BdevError::Config(format!("{}: {m}", path.display())),
        o => o,
    })
}

/// The current bdevs as a configuration SPDK (and [`load_config`]) can load
/// (`save_config` of the bdev subsystem).
pub fn save_config() -> Value {
    let mut cfg: Vec<Value> = super::bdevs()
        .iter()
        .filter_map(|b| b.ops.write_config_json())
        .collect();
    cfg.push(json!({"method": "bdev_wait_for_examine"}));
    json!({"subsystems": [{"subsystem": "bdev", "config": cfg}]})
}
