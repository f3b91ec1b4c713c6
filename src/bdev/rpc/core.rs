//! The bdev layer's own methods (SPDK's `lib/bdev/bdev_rpc.c`): listing
//! bdevs and their statistics, layer options, examine and QoS limits.

use super::errors::Failure;
use super::params;
use crate::bdev::{self, Bdev, BdevError, ResetMode};
use crate::rpc::RpcError;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Res = Result<Value, Failure>;

/// `bdev_set_options` values this layer keeps only to report them back
/// (`bdev_io_pool_size` and the iobuf caches have no counterpart here:
/// requests are preallocated per channel, buffers belong to the caller).
struct Kept {
    bdev_io_pool_size: u32,
    iobuf_small_cache_size: u32,
    iobuf_large_cache_size: u32,
}

static KEPT: Mutex<Kept> = Mutex::new(Kept {
    bdev_io_pool_size: 65535,
    iobuf_small_cache_size: 128,
    iobuf_large_cache_size: 16,
});

fn lookup(name: &str) -> Result<Arc<Bdev>, Failure> {
    bdev::get_by_name(name).ok_or_else(|| Failure::Bdev(BdevError::NotFound(name.into())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetBdevs {
    #[serde(default)]
    name: Option<String>,
    /// Milliseconds to wait for `name` to appear.
    #[serde(default)]
    timeout: u64,
}

/// `bdev_get_bdevs`: every bdev, or the one named (waiting up to
/// `timeout` ms for it to be registered), as an array of SPDK's objects.
pub(super) async fn get_bdevs(p: Value) -> Res {
    let p: GetBdevs = params(p)?;
    let Some(name) = p.name else {
        return Ok(Value::Array(
            bdev::bdevs().iter().map(|b| b.info_json()).collect(),
        ));
    };
    let deadline = Instant::now() + Duration::from_millis(p.timeout);
    loop {
        if let Some(b) = bdev::get_by_name(&name) {
            return Ok(json!([b.info_json()]));
        }
        if Instant::now() >= deadline {
            return Err(Failure::Bdev(BdevError::NotFound(name)));
        }
        // Polled on the app thread's timer, never blocking it.
        if crate::thread::sleep(Duration::from_millis(1))
            .await
            .is_err()
        {
            // No thread to wait on (a caller outside the framework).
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn reset_mode(s: Option<&str>, default: Option<ResetMode>) -> Result<Option<ResetMode>, Failure> {
    match s {
        None => Ok(default),
        Some("all") => Ok(Some(ResetMode::All)),
        Some("maxmin") => Ok(Some(ResetMode::MaxMin)),
        // No per-errno error counters here: nothing to clear.
        Some("error") | Some("none") => Ok(None),
        Some(o) => Err(Failure::Params(format!(
            "Invalid parameters: mode '{o}' is not one of all, maxmin, error, none"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetIostat {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    names: Option<Vec<String>>,
    #[serde(default)]
    per_channel: bool,
    #[serde(default)]
    reset_mode: Option<String>,
}

/// `bdev_get_iostat` outside the framework: `per_channel` is refused
/// (each channel is read on its own thread; see [`get_iostat_async`]).
pub(super) fn get_iostat(p: Value) -> Res {
    let p: GetIostat = params(p)?;
    if p.per_channel {
        return Err(Failure::Params(
            "per_channel statistics are read on each channel's thread: ask a running target".into(),
        ));
    }
    iostat(p, None)
}

/// `bdev_get_iostat`: `tick_rate`, `ticks` and the counters of every bdev
/// (or those named); with `per_channel`, one bdev's channels one by one,
/// each read on its own thread by a walk and shown with its `thread_id`,
/// as SPDK's `bdev_get_per_channel_stat`.
pub(super) async fn get_iostat_async(p: Value) -> Res {
    let p: GetIostat = params(p)?;
    if !p.per_channel {
        return iostat(p, None);
    }
    // One bdev: `name` (SPDK's server), or a one-element `names` (what
    // spdk-rpc 26.9's `bdev_get_iostat --names X -c` sends).
    let b = match (&p.name, p.names.as_deref()) {
        (Some(n), None) | (None, Some([n])) => lookup(n)?,
        _ => return Err(Failure::Rpc(RpcError::errno(libc::EINVAL))),
    };
    let channels = b.channel_iostats_async().await?;
    iostat(p, Some(channels))
}

fn iostat(p: GetIostat, per_channel: Option<Vec<bdev::ChannelIoStat>>) -> Res {
    let reset = reset_mode(p.reset_mode.as_deref(), None)?;
    let mut list = Vec::new();
    if let Some(n) = &p.name {
        list.push(lookup(n)?);
    }
    for n in p.names.iter().flatten() {
        list.push(lookup(n)?);
    }
    let head = json!({"tick_rate": bdev::ticks::TICK_RATE, "ticks": bdev::ticks::ticks()});
    let mut out = head;
    if let (Some(chans), [b]) = (per_channel, list.as_slice()) {
        let channels: Vec<Value> = chans
            .iter()
            .map(|c| {
                let mut v = json!({"thread_id": c.thread_id});
                if let (Value::Object(o), Value::Object(s)) =
                    (&mut v, super::info::iostat_json(None, &c.stat))
                {
                    o.extend(s);
                }
                v
            })
            .collect();
        out["name"] = b.name().into();
        out["channels"] = Value::Array(channels);
    } else {
        if p.name.is_none() && p.names.is_none() {
            list = bdev::bdevs();
        }
        out["bdevs"] = list
            .iter()
            .map(|b| super::info::iostat_json(Some(b.name()), &b.iostat()))
            .collect();
    }
    if let Some(m) = reset {
        for b in &list {
            b.reset_iostat(m);
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetIostat {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    mode: Option<String>,
}

/// `bdev_reset_iostat`: clears the statistics of one bdev or all.
pub(super) fn reset_iostat(p: Value) -> Res {
    let p: ResetIostat = params(p)?;
    let Some(mode) = reset_mode(p.mode.as_deref(), Some(ResetMode::All))? else {
        return Ok(Value::Bool(true));
    };
    let list = match &p.name {
        Some(n) => vec![lookup(n)?],
        None => bdev::bdevs(),
    };
    for b in list {
        b.reset_iostat(mode);
    }
    Ok(Value::Bool(true))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetOptions {
    #[serde(default)]
    bdev_io_pool_size: Option<u32>,
    #[serde(default)]
    bdev_io_cache_size: Option<u32>,
    #[serde(default)]
    bdev_auto_examine: Option<bool>,
    #[serde(default)]
    iobuf_small_cache_size: Option<u32>,
    #[serde(default)]
    iobuf_large_cache_size: Option<u32>,
}

/// `bdev_set_options`: `bdev_io_cache_size` is each new channel's request
/// pool; `bdev_auto_examine` switches automatic examine; the rest is kept
/// and reported back.
pub(super) fn set_options(p: Value) -> Res {
    let p: SetOptions = params(p)?;
    let mut k = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    let pool = p.bdev_io_pool_size.unwrap_or(k.bdev_io_pool_size);
    let cache = p
        .bdev_io_cache_size
        .map_or(bdev::io_pool_size() as u64, u64::from);
    if u64::from(pool) < cache {
        return Err(Failure::Rpc(RpcError::invalid_params(format!(
            "Pool size {pool} too small for cache size {cache}"
        ))));
    }
    k.bdev_io_pool_size = pool;
    if let Some(c) = p.bdev_io_cache_size {
        bdev::set_io_pool_size(c as usize);
    }
    if let Some(a) = p.bdev_auto_examine {
        bdev::set_auto_examine(a);
    }
    if let Some(s) = p.iobuf_small_cache_size {
        k.iobuf_small_cache_size = s;
    }
    if let Some(l) = p.iobuf_large_cache_size {
        k.iobuf_large_cache_size = l;
    }
    Ok(Value::Bool(true))
}

/// The `bdev_set_options` entry of `save_config`, with the values in force.
pub(super) fn options_entry() -> Value {
    let k = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    json!({"method": "bdev_set_options", "params": {
        "bdev_io_pool_size": k.bdev_io_pool_size,
        "bdev_io_cache_size": bdev::io_pool_size(),
        "bdev_auto_examine": bdev::auto_examine(),
        "iobuf_small_cache_size": k.iobuf_small_cache_size,
        "iobuf_large_cache_size": k.iobuf_large_cache_size,
    }})
}

/// `bdev_wait_for_examine`: examine runs inside registration here, so
/// every examine has finished when this runs. Takes no params.
pub(super) fn wait_for_examine(p: Value) -> Res {
    match p {
        Value::Null => Ok(Value::Bool(true)),
        Value::Object(o) if o.is_empty() => Ok(Value::Bool(true)),
        _ => Err(Failure::Rpc(RpcError::invalid_params(
            "bdev_wait_for_examine requires no parameters",
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Name {
    name: String,
}

/// `bdev_examine`: examine bdev `name` although auto examine is off.
pub(super) fn examine(p: Value) -> Res {
    let p: Name = params(p)?;
    bdev::examine_bdev(&p.name)?;
    Ok(Value::Bool(true))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QosParams {
    name: String,
    #[serde(default)]
    rw_ios_per_sec: Option<u64>,
    #[serde(default)]
    rw_mbytes_per_sec: Option<u64>,
    #[serde(default)]
    r_mbytes_per_sec: Option<u64>,
    #[serde(default)]
    w_mbytes_per_sec: Option<u64>,
}

/// `bdev_set_qos_limit`: sets (or with 0 removes) the bdev's limits.
pub(super) fn set_qos_limit(p: Value) -> Res {
    let p: QosParams = params(p)?;
    let b = lookup(&p.name)?;
    let limits = [
        p.rw_ios_per_sec,
        p.rw_mbytes_per_sec,
        p.r_mbytes_per_sec,
        p.w_mbytes_per_sec,
    ];
    if limits.iter().all(Option::is_none) {
        return Err(Failure::Rpc(RpcError::errno_msg(
            libc::EINVAL,
            "No rate limits specified",
        )));
    }
    b.set_qos_limits(limits);
    Ok(Value::Bool(true))
}

/// The `bdev_set_qos_limit` entry of `save_config` for `b`, if it has limits.
pub(super) fn qos_entry(b: &Bdev) -> Option<Value> {
    let l = b.qos_limits();
    let mut p = serde_json::Map::new();
    p.insert("name".into(), b.name().into());
    for (k, v) in [
        ("rw_ios_per_sec", l.rw_ios_per_sec),
        ("rw_mbytes_per_sec", l.rw_mbytes_per_sec),
        ("r_mbytes_per_sec", l.r_mbytes_per_sec),
        ("w_mbytes_per_sec", l.w_mbytes_per_sec),
    ] {
        if v > 0 {
            p.insert(k.into(), v.into());
        }
    }
    (p.len() > 1).then(|| json!({"method": "bdev_set_qos_limit", "params": p}))
}
