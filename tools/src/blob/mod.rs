//! `spdk-io blob`: SPDK's blobcli on spdk-io's blobstore. Every command
//! brings up the bdevs of an SPDK JSON config (the bdev layer's loader),
//! loads the blobstore on one of them (or makes one with `init`), acts, and
//! unloads it cleanly — all on one lightweight thread, through the
//! blobstore's asynchronous operations (a bdev completes later; nothing
//! waits in a loop). Commands that only look (`list`, `show`, `stats`,
//! `export`) open the bdev and the store read-only and write nothing.

mod bench;
mod render;
mod transfer;

use clap::{Args, Subcommand, ValueEnum};
use render::{blob_json, print_text, unusable_json};
use serde_json::{json, Value};
use spdk_io::bdev;
use spdk_io::blob::{BdevBsDev, BlobId, BlobOpts, Blobstore, BsDev, BsOpts, LoadOpts};
use std::path::PathBuf;

/// Arguments of `spdk-io blob`.
#[derive(Args, Debug)]
pub struct BlobArgs {
    /// SPDK JSON config describing the bdev (bdev_aio_create, bdev_malloc_create, ...).
    #[arg(long = "json")]
    config: PathBuf,
    /// Name of the bdev holding the blobstore.
    #[arg(short = 'b', long = "bdev")]
    bdev: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output_format: OutputFormat,
    #[command(subcommand)]
    command: BlobCommand,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum BlobCommand {
    /// Make a new, empty blobstore on the bdev (destroys what is there).
    Init {
        /// Cluster size in bytes.
        #[arg(long, default_value_t = 1 << 20)]
        cluster_size: u32,
        /// Blobstore type (up to 16 bytes).
        #[arg(long)]
        bstype: Option<String>,
    },
    /// List every blob: id, size in clusters, flags and xattrs.
    List,
    /// Create a blob.
    Create {
        /// Size in clusters.
        #[arg(long, default_value_t = 1)]
        clusters: u64,
        /// Thin provisioned.
        #[arg(long)]
        thin: bool,
        /// xattr NAME=VALUE (repeatable; stored with a trailing NUL, as blobcli and lvol do).
        #[arg(long = "xattr")]
        xattrs: Vec<String>,
    },
    /// Show one blob.
    Show {
        /// Blob id (hex like 0x100000000, or decimal).
        id: String,
    },
    /// Copy a file into a blob from offset 0, growing the blob if needed
    /// (the last io unit is padded with zeroes).
    Import {
        /// Blob id.
        id: String,
        /// File to read.
        file: PathBuf,
    },
    /// Copy a blob's whole logical content (snapshot data below a clone
    /// included) to a file.
    Export {
        /// Blob id.
        id: String,
        /// File to write.
        file: PathBuf,
    },
    /// Set or remove an xattr.
    Xattr {
        #[command(subcommand)]
        op: XattrOp,
    },
    /// Snapshot a blob; prints the snapshot id.
    Snapshot {
        /// Blob id.
        id: String,
    },
    /// Clone a snapshot; prints the clone id.
    Clone {
        /// Snapshot id.
        id: String,
    },
    /// Delete a blob.
    Delete {
        /// Blob id.
        id: String,
    },
    /// Make a blob the super blob (spdk_bs_set_super).
    SetSuper {
        /// Blob id.
        id: String,
    },
    /// Blobstore statistics.
    Stats,
    /// Benchmark metadata operations and blob vs raw I/O (destroys the bdev's contents).
    Bench {
        /// Operations per measurement.
        #[arg(long, default_value_t = 2000)]
        ops: u64,
    },
}

#[derive(Subcommand, Debug)]
enum XattrOp {
    /// Set NAME to VALUE (stored with a trailing NUL).
    Set {
        /// Blob id.
        id: String,
        /// Name.
        name: String,
        /// Value.
        value: String,
    },
    /// Remove NAME.
    Remove {
        /// Blob id.
        id: String,
        /// Name.
        name: String,
    },
}

fn parse_id(s: &str) -> Result<BlobId, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("{s:?} is not a blob id (hex like 0x100000000, or decimal)"))
}

impl BlobCommand {
    /// Whether the command only looks: it opens the store read-only.
    fn read_only(&self) -> bool {
        matches!(
            self,
            BlobCommand::List
                | BlobCommand::Show { .. }
                | BlobCommand::Stats
                | BlobCommand::Export { .. }
        )
    }
}

/// Brings up the config's bdevs and opens `name` as a blobstore device
/// (read-only when `read_only`).
fn open_bdev(
    config: &std::path::Path,
    name: &str,
    read_only: bool,
) -> Result<Box<dyn BsDev>, String> {
    bdev::init().map_err(|e| format!("bdev layer: {e}"))?;
    bdev::load_config_file(config).map_err(|e| format!("config {}: {e}", config.display()))?;
    if bdev::get_by_name(name).is_none() {
        let names: Vec<String> = bdev::bdevs().iter().map(|b| b.name().to_string()).collect();
        let names = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        };
        return Err(format!(
            "no bdev named {name:?} in {} (bdevs there: {names})",
            config.display()
        ));
    }
    let dev = if read_only {
        BdevBsDev::open_read_only(name)
    } else {
        BdevBsDev::open(name)
    };
    Ok(Box::new(dev.map_err(|e| e.to_string())?))
}

/// Runs `spdk-io blob`.
pub fn run(args: BlobArgs) -> Result<(), String> {
    let json_out = args.output_format == OutputFormat::Json;
    let r = crate::dma_env::init("spdk-io blob", false, 0).and_then(|()| run_on_bdev(args));
    bdev::fini();
    spdk_io::env::fini();
    if let (Err(e), true) = (&r, json_out) {
        println!("{}", json!({ "error": e }));
    }
    r
}

fn run_on_bdev(args: BlobArgs) -> Result<(), String> {
    let t = spdk_io::thread::Thread::new("blob");
    let r = t
        .block_on(run_on_thread(args))
        .map_err(|e| format!("blob thread: {e}"))
        .and_then(|r| r);
    if let Err(e) = t.shutdown().and_then(|()| t.destroy()) {
        log::warn!("blob thread: {e}");
    }
    r
}

async fn run_on_thread(args: BlobArgs) -> Result<(), String> {
    let dev = open_bdev(&args.config, &args.bdev, args.command.read_only())?;
    let json_out = args.output_format == OutputFormat::Json;
    if let BlobCommand::Bench { ops } = args.command {
        let out = bench::run(dev, ops.max(1)).await?;
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
        return Ok(());
    }
    let mut bs = match &args.command {
        BlobCommand::Init {
            cluster_size,
            bstype,
        } => {
            let mut t = [0u8; 16];
            if let Some(b) = bstype {
                if b.len() > 16 {
                    return Err(format!("bstype {b:?} is longer than 16 bytes"));
                }
                t[..b.len()].copy_from_slice(b.as_bytes());
            }
            let opts = BsOpts {
                cluster_size: *cluster_size,
                bstype: t,
                ..Default::default()
            };
            Blobstore::init_async(dev, &opts)
                .await
                .map_err(|e| format!("init on bdev {}: {e}", args.bdev))?
        }
        cmd => {
            let opts = LoadOpts {
                read_only: cmd.read_only(),
                ..Default::default()
            };
            Blobstore::load_async(dev, &opts)
                .await
                .map_err(|e| format!("load from bdev {}: {e}", args.bdev))?
        }
    };
    let out = execute(&mut bs, &args.command)
        .await
        .map_err(|e| e.to_string());
    let unload = bs
        .unload_async()
        .await
        .map(|_| ())
        .map_err(|e| format!("unload: {e}"));
    let out = out?;
    unload?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
    } else {
        print_text(&args.command, &out);
    }
    Ok(())
}

async fn execute<D: BsDev>(
    bs: &mut Blobstore<D>,
    cmd: &BlobCommand,
) -> Result<Value, Box<dyn std::error::Error>> {
    Ok(match cmd {
        BlobCommand::Init { .. } | BlobCommand::Stats => json!({
            "cluster_size": bs.cluster_size(),
            "io_unit_size": bs.io_unit_size(),
            "page_size": bs.page_size(),
            "total_clusters": bs.total_clusters(),
            "free_clusters": bs.free_cluster_count(),
            "num_blobs": bs.blob_ids().len(),
            "unusable_blobs": unusable_json(bs),
            "super_blob": bs.super_blob().map(|s| format!("{s:#x}")),
            "md_start": bs.super_block().md_start,
            "md_len": bs.super_block().md_len,
        }),
        BlobCommand::List => {
            let blobs: Result<Vec<Value>, _> = bs
                .blob_ids()
                .into_iter()
                .map(|id| bs.blob_info(id).map(|i| blob_json(&i)))
                .collect();
            json!({ "blobs": blobs?, "unusable": unusable_json(bs) })
        }
        BlobCommand::Create {
            clusters,
            thin,
            xattrs,
        } => {
            let mut xs = Vec::new();
            for x in xattrs {
                let (n, v) = x
                    .split_once('=')
                    .ok_or_else(|| format!("xattr {x:?} is not NAME=VALUE"))?;
                let mut v = v.as_bytes().to_vec();
                v.push(0);
                xs.push((n.to_string(), v));
            }
            let opts = BlobOpts {
                num_clusters: *clusters,
                thin_provision: *thin,
                xattrs: xs,
                ..Default::default()
            };
            let id = bs.create_blob_async(&opts).await?;
            json!({ "id": format!("{id:#x}") })
        }
        BlobCommand::Show { id } => blob_json(&bs.blob_info(parse_id(id)?)?),
        BlobCommand::Import { id, file } => {
            let id = parse_id(id)?;
            let len = transfer::import(bs, id, file).await?;
            json!({ "id": format!("{id:#x}"), "bytes": len })
        }
        BlobCommand::Export { id, file } => {
            let id = parse_id(id)?;
            let len = transfer::export(bs, id, file).await?;
            json!({ "id": format!("{id:#x}"), "bytes": len })
        }
        BlobCommand::Xattr { op } => {
            let (id, name) = match op {
                XattrOp::Set { id, name, .. } | XattrOp::Remove { id, name } => {
                    (parse_id(id)?, name)
                }
            };
            let h = bs.open_blob(id)?;
            let r = match op {
                XattrOp::Set { value, .. } => {
                    let mut v = value.as_bytes().to_vec();
                    v.push(0);
                    bs.set_xattr(&h, name, &v)
                }
                XattrOp::Remove { .. } => bs.remove_xattr(&h, name),
            };
            bs.close_blob_async(h).await?;
            r?;
            json!({ "id": format!("{id:#x}"), "xattr": name })
        }
        BlobCommand::SetSuper { id } => {
            bs.set_super_blob_async(Some(parse_id(id)?)).await?;
            json!({ "super_blob": format!("{:#x}", parse_id(id)?) })
        }
        BlobCommand::Snapshot { id } => {
            let snap = bs.create_snapshot_async(parse_id(id)?, &[]).await?;
            json!({ "snapshot": format!("{snap:#x}") })
        }
        BlobCommand::Clone { id } => {
            let clone = bs.create_clone_async(parse_id(id)?, &[]).await?;
            json!({ "clone": format!("{clone:#x}") })
        }
        BlobCommand::Bench { .. } => {
            return Err("bench makes its own blobstore and does not run on a loaded one".into())
        }
        BlobCommand::Delete { id } => {
            bs.delete_blob_async(parse_id(id)?).await?;
            json!({ "deleted": format!("{:#x}", parse_id(id)?) })
        }
    })
}
