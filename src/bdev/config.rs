//! SPDK's JSON configuration: `{"subsystems":[{"subsystem":"bdev","config":[
//! {"method":"bdev_malloc_create","params":{...}}, ...]}]}`.
//!
//! The `bdev` subsystem's entries are run in order as the JSON-RPC methods
//! SPDK names them; other subsystems are skipped. Errors name the line, the
//! entry, the method and serde's reason (missing or unknown field).

use super::{BdevError, Result, Uuid};
use serde_json::{json, Value};

/// Options-only methods of SPDK modules this crate does not have, accepted
/// and ignored so a config saved by SPDK loads unchanged.
const IGNORED: &[&str] = &[
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

/// Runs one bdev JSON-RPC method as a config entry (the same code as the
/// RPC, see [`super::rpc::call_sync`]); returns what SPDK's RPC returns
/// (the bdev name(s), or `true`).
pub fn call_method(method: &str, p: &Value) -> Result<Value> {
    call_owned(method, p.clone())
}

fn call_owned(method: &str, p: Value) -> Result<Value> {
    if let Some(r) = super::rpc::call_sync(method, p) {
        return r;
    }
    if IGNORED.contains(&method) {
        return Ok(Value::Bool(true));
    }
    Err(BdevError::Config(format!(
        "unknown bdev method '{method}': supported are {}",
        super::rpc::methods()
            .iter()
            .map(|m| m.name)
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// Loads a configuration text: creates every bdev of the `bdev` subsystem,
/// in order. Returns the names of the bdevs created.
pub fn load_config(text: &str) -> Result<Vec<String>> {
    let root: Value = serde_json::from_str(text)
        .map_err(|e| BdevError::Config(format!("malformed JSON config: {e}")))?;
    let mut root = root;
    // Entries are taken out of the tree, not cloned: their params move
    // into the methods.
    let subs = root
        .get_mut("subsystems")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| {
            BdevError::Config(
                "config: missing field `subsystems` (an array) at the top level".into(),
            )
        })?;
    let lines = super::config_lines::entry_lines(text);
    let mut entry_no = 0usize;
    let mut created = Vec::new();
    for (si, sub) in subs.iter_mut().enumerate() {
        let sname = sub
            .get("subsystem")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                BdevError::Config(format!(
                    "config: subsystems[{si}]: missing field `subsystem` (a string)"
                ))
            })?;
        let entries = match sub.get_mut("config") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(BdevError::Config(format!(
                    "config: subsystems[{si}] ({sname}): `config` must be an array"
                )))
            }
        };
        for (ci, e) in entries.iter_mut().enumerate() {
            let line = lines.get(entry_no).copied();
            entry_no += 1;
            if sname != "bdev" {
                continue;
            }
            let at = || match line {
                Some(l) => format!("config line {l}, subsystems[{si}].config[{ci}]"),
                None => format!("config subsystems[{si}].config[{ci}]"),
            };
            let method = match e.get("method").and_then(Value::as_str) {
                Some(m) => m.to_owned(),
                None => {
                    return Err(BdevError::Config(format!(
                        "{}: missing field `method` (a string)",
                        at()
                    )))
                }
            };
            let p = e.get_mut("params").map(Value::take).unwrap_or(Value::Null);
            match call_owned(&method, p) {
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
                    return Err(BdevError::Config(format!("{}: {msg}", at())));
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
        source: e.into(),
    })?;
    load_config(&text).map_err(|e| match e {
        BdevError::Config(m) => BdevError::Config(format!("{}: {m}", path.display())),
        o => o,
    })
}

/// The current bdevs as a configuration SPDK (and [`load_config`]) can load
/// (`save_config` of the bdev subsystem; see [`super::rpc::config_entries`]).
pub fn save_config() -> Value {
    json!({"subsystems": [{"subsystem": "bdev", "config": super::rpc::config_entries()}]})
}
