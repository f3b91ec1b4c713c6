//! The lvol entries of a bdevperf config (`bdev_lvol_create_lvstore`,
//! `bdev_lvol_create`, `bdev_lvol_snapshot`, ...): the bdev layer's own
//! config loader does not know them, so they are taken out of the config
//! and run, in order, on a thread of their own on the first reactor, which
//! stays there for the run as the lvstores' metadata thread (it serves
//! their allocating writes and metadata).

use serde_json::Value;
use spdk_io::thread::{spawn_local, CpuMask, ReactorSet, ThreadOpts};
use std::sync::mpsc;
use std::time::Duration;

/// One lvol method call.
pub type Entry = (String, Value);

/// Splits `text` into the config without lvol entries and those entries.
/// A config without any (or one that does not parse, which the bdev
/// layer's loader then reports with its line) comes back unchanged.
pub fn split(text: &str) -> Result<(String, Vec<Entry>), String> {
    let Ok(mut root) = serde_json::from_str::<Value>(text) else {
        return Ok((text.to_string(), Vec::new()));
    };
    let mut lvol = Vec::new();
    if let Some(subs) = root.get_mut("subsystems").and_then(Value::as_array_mut) {
        for sub in subs {
            if sub.get("subsystem").and_then(Value::as_str) != Some("bdev") {
                continue;
            }
            if let Some(list) = sub.get_mut("config").and_then(Value::as_array_mut) {
                list.retain(|e| {
                    let m = e.get("method").and_then(Value::as_str).unwrap_or("");
                    if m.starts_with("bdev_lvol_") {
                        let p = e.get("params").cloned().unwrap_or(Value::Null);
                        lvol.push((m.to_string(), p));
                        false
                    } else {
                        true
                    }
                });
            }
        }
    }
    if lvol.is_empty() {
        return Ok((text.to_string(), lvol));
    }
    Ok((root.to_string(), lvol))
}

/// Runs `entries` on a new thread of `core`'s reactor and waits for them.
pub fn run(rs: &ReactorSet, core: usize, entries: Vec<Entry>) -> Result<(), String> {
    if entries.is_empty() {
        return Ok(());
    }
    spdk_io::lvol::vbdev::register();
    let (tx, rx) = mpsc::channel::<Result<(), String>>();
    let opts = ThreadOpts {
        name: "bdevperf_lvol_md".into(),
        cpumask: CpuMask::single(core),
        ..ThreadOpts::default()
    };
    rs.spawn_thread(core, opts, move || {
        let task = async move {
            for (m, p) in entries {
                match spdk_io::lvol::rpc::call(&m, p).await {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        let _ = tx.send(Err(format!("{m}: {} ({})", e.message, e.code)));
                        return;
                    }
                    None => {
                        let _ = tx.send(Err(format!("{m}: not an lvol method")));
                        return;
                    }
                }
            }
            let _ = tx.send(Ok(()));
        };
        if let Err(e) = spawn_local(task) {
            eprintln!("bdevperf: lvol setup: {e}");
        }
    })
    .map_err(|e| e.to_string())?;
    rx.recv_timeout(Duration::from_secs(60))
        .map_err(|_| "lvol setup did not finish in 60 s".to_string())?
}
