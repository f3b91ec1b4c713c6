//! Loading a JSON configuration at start (SPDK's `lib/init/json_config.c`,
//! `-c/--json`): `{"subsystems": [{"subsystem": "bdev", "config":
//! [{"method": ..., "params": ...}, ...]}, ...]}`.
//!
//! Every entry is a call through the method table, as if a client had sent
//! it. As in SPDK, it runs in two rounds: first the entries whose method is
//! allowed at startup (options), then the subsystems are initialised
//! (`framework_start_init`), then the runtime entries (bdevs...) in file
//! order. Entries of a subsystem this framework does not have are skipped
//! with a notice; a method that is not known, or an entry that fails, stops
//! the load with an error naming its line, position and method (unless
//! errors are to be ignored, `--json-ignore-init-errors`).

use super::ctx::AppCtx;
use super::EventError;
use crate::rpc::MethodStates;
use serde_json::Value;
use std::rc::Rc;

/// One `config` entry of the file.
#[derive(Debug)]
struct Entry {
    /// Where it is, for errors: `config line 12, subsystems[0].config[3]`.
    at: String,
    method: String,
    params: Value,
}

/// Finds the lines of the entries' `"method"` keys in one forward pass:
/// each search starts where the previous entry's was found and takes the
/// first `"method"` key whose value is this entry's method, so a
/// `"method"` key inside some params does not shift later entries.
struct LineFinder<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl LineFinder<'_> {
    fn find(&mut self, method: &str) -> Option<usize> {
        let mut from = self.pos;
        while let Some(i) = self.text[from..].find("\"method\"") {
            let at = from + i;
            let rest = self.text[at + 8..].trim_start();
            if let Some(v) = rest.strip_prefix(':') {
                let v = v.trim_start();
                if v.strip_prefix('"')
                    .and_then(|v| v.strip_prefix(method))
                    .is_some_and(|r| r.starts_with('"'))
                {
                    self.line += self.text[self.pos..at]
                        .bytes()
                        .filter(|&b| b == b'\n')
                        .count();
                    self.pos = at;
                    return Some(self.line);
                }
            }
            from = at + 8;
        }
        None
    }
}

/// Parses the file into the entries of the subsystems `known` has,
/// skipping (with a notice) those of other subsystems.
fn entries(text: &str, known: &[&str]) -> Result<Vec<Entry>, EventError> {
    let err = |m: String| EventError::Config(m);
    let root: Value = serde_json::from_str(text)
        .map_err(|e| err(format!("Parsing JSON configuration failed: {e}")))?;
    let Value::Object(root) = root else {
        return Err(err("Invalid JSON configuration: not enclosed in {}.".into()));
    };
    let subs = match root.get("subsystems") {
        None => {
            log::warn!("No 'subsystems' key JSON configuration file.");
            return Ok(Vec::new());
        }
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(err(
                "Invalid JSON configuration: 'subsystems' should be an array.".into(),
            ))
        }
    };
    let mut lines = LineFinder {
        text,
        pos: 0,
        line: 1,
    };
    let mut out = Vec::new();
    for (si, sub) in subs.iter().enumerate() {
        let name = sub.get("subsystem").and_then(Value::as_str).ok_or_else(|| {
            err(format!(
                "Failed to parse subsystem configuration: subsystems[{si}] has no `subsystem` string"
            ))
        })?;
        let list = match sub.get("config") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(err(format!(
                    "Failed to parse subsystem configuration: subsystems[{si}] ({name}): `config` must be an array"
                )))
            }
        };
        for (ci, e) in list.iter().enumerate() {
            let Some(method) = e.get("method").and_then(Value::as_str) else {
                return Err(err(format!(
                    "config subsystems[{si}].config[{ci}]: Failed to decode config entry: missing `method` (a string)"
                )));
            };
            let at = match lines.find(method) {
                Some(l) => format!("config line {l}, subsystems[{si}].config[{ci}]"),
                None => format!("config subsystems[{si}].config[{ci}]"),
            };
            if !known.contains(&name) {
                log::info!(
                    "Skipping method '{method}' because its subsystem '{name}' is not enabled"
                );
                continue;
            }
            out.push(Entry {
                at,
                method: method.to_string(),
                params: e.get("params").cloned().unwrap_or(Value::Null),
            });
        }
    }
    Ok(out)
}

/// Runs the entries allowed in `state` (in the runtime round, not those
/// already run at startup).
async fn round(
    ctx: &Rc<AppCtx>,
    entries: &[Entry],
    state: MethodStates,
    ignore_errors: bool,
) -> Result<(), EventError> {
    for e in entries {
        let fail = |msg: String| -> Result<(), EventError> {
            let m = format!("{}: {msg}", e.at);
            if ignore_errors {
                log::error!("{m} (ignored: --json-ignore-init-errors)");
                Ok(())
            } else {
                Err(EventError::Config(m))
            }
        };
        let Some(m) = ctx.table.get(&e.method) else {
            fail(format!("Method '{}' was not found", e.method))?;
            continue;
        };
        let both = MethodStates::STARTUP | MethodStates::RUNTIME;
        if !m.states.contains(state) || (state == MethodStates::RUNTIME && m.states.contains(both))
        {
            continue;
        }
        match ctx.table.call(&e.method, e.params.clone()) {
            Ok(fut) => {
                if let Err(err) = fut.await {
                    fail(format!("{}: {} (code {})", e.method, err.message, err.code))?;
                }
            }
            Err(err) => fail(format!("{}: {} (code {})", e.method, err.message, err.code))?,
        }
    }
    Ok(())
}

/// Loads `text` as SPDK does: the startup entries, then (now, or on
/// `framework_start_init` with `wait_for_rpc`) the subsystems'
/// initialisation, then the runtime entries; the init is done after them.
pub(crate) async fn load(
    ctx: &Rc<AppCtx>,
    text: &str,
    wait_for_rpc: bool,
    ignore_errors: bool,
) -> Result<(), EventError> {
    let known: Vec<&str> = ctx.subsystems.iter().map(|s| s.name).collect();
    let list = entries(text, &known)?;
    ctx.config_pending.set(true);
    round(ctx, &list, MethodStates::STARTUP, ignore_errors).await?;
    if !wait_for_rpc {
        ctx.start_init()?;
    }
    ctx.wait_subsystems().await.map_err(EventError::Config)?;
    round(ctx, &list, MethodStates::RUNTIME, ignore_errors).await?;
    ctx.finish_init();
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_name_their_line_and_skip_unknown_subsystems() {
        let text = "{\"subsystems\": [\n {\"subsystem\": \"accel\", \"config\": [{\"method\": \"accel_x\"}]},\n {\"subsystem\": \"bdev\", \"config\": [\n  {\"method\": \"bdev_null_create\", \"params\": {\"name\": \"n\"}}]}]}";
        let e = entries(text, &["bdev"]).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].method, "bdev_null_create");
        assert_eq!(e[0].at, "config line 4, subsystems[1].config[0]");
    }

    #[test]
    fn a_method_key_inside_params_does_not_shift_the_lines_of_later_entries() {
        let text = "{\"subsystems\": [{\"subsystem\": \"bdev\", \"config\": [\n{\"method\": \"a\", \"params\": {\"method\": \"x\"}},\n\n{\"method\": \"b\"}]}]}";
        let e = entries(text, &["bdev"]).unwrap();
        assert_eq!(e[0].at, "config line 2, subsystems[0].config[0]");
        assert_eq!(e[1].at, "config line 4, subsystems[0].config[1]");
    }

    #[test]
    fn a_config_that_is_not_an_object_or_has_no_subsystem_array_is_refused() {
        assert!(entries("[1]", &[])
            .unwrap_err()
            .to_string()
            .contains("not enclosed in {}"));
        assert!(entries("{\"subsystems\": 1}", &[])
            .unwrap_err()
            .to_string()
            .contains("'subsystems' should be an array"));
        assert!(entries("{\"subsystems\": [", &[])
            .unwrap_err()
            .to_string()
            .contains("Parsing JSON configuration failed"));
    }
}
