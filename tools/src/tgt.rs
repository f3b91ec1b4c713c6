//! `spdk-io tgt`: SPDK's `spdk_tgt`, the storage daemon driven over
//! JSON-RPC (SPDK's `rpc.py`, the PyPI `spdk` package's `spdk-rpc`).

use clap::Args;
use spdk_io::event::{self, AppOpts, DEFAULT_RPC_SOCKET};
use spdk_io::thread::{CpuMask, ReactorOpts};
use std::path::PathBuf;
use std::process::ExitCode;

/// spdk_tgt's flags.
#[derive(Args, Debug)]
pub struct TgtArgs {
    /// Core mask for the reactors: hex (0x3) or a list ([0,2-3]).
    #[arg(short = 'm', long = "cpumask", default_value = "0x1")]
    cpumask: String,
    /// JSON config to load at start (SPDK's format, as saved by save_config).
    #[arg(short = 'c', long = "json")]
    json: Option<PathBuf>,
    /// The JSON-RPC Unix socket.
    #[arg(short = 'r', long = "rpc-socket", default_value = DEFAULT_RPC_SOCKET)]
    rpc_socket: PathBuf,
    /// Wait for framework_start_init over RPC before initialising subsystems.
    #[arg(long = "wait-for-rpc")]
    wait_for_rpc: bool,
    /// Memory to reserve at start, in MiB (a G or M suffix is accepted).
    #[arg(short = 's', long = "mem-size", value_parser = parse_mem_size, default_value = "0")]
    mem_size: usize,
    /// Use ordinary pinned pages instead of hugepages.
    #[arg(long = "no-huge")]
    no_huge: bool,
    /// Go on when an entry of the --json config fails.
    #[arg(long = "json-ignore-init-errors")]
    json_ignore_init_errors: bool,
    /// Enable a debug log flag (repeatable; "all" for every one).
    #[arg(short = 'L', long = "logflag")]
    logflag: Vec<String>,
    /// Wait for events when idle instead of polling flat out: an idle
    /// reactor sleeps briefly and an idle NVMe-oF poll group blocks on its
    /// sockets until the next PDU. Saves the reactors' cores when idle;
    /// costs latency on the next I/O after a pause. Without it the
    /// reactors busy-poll, as spdk_tgt and nvmf_tgt do by default.
    #[arg(long = "interrupt-mode")]
    interrupt_mode: bool,
}

/// How the reactors run: flat out, or backing off when idle with
/// `--interrupt-mode`.
fn reactor_opts(interrupt_mode: bool) -> ReactorOpts {
    if interrupt_mode {
        ReactorOpts::default()
    } else {
        ReactorOpts {
            idle_backoff: None,
            ..ReactorOpts::default()
        }
    }
}

/// `-s 512`, `-s 512M`, `-s 2G` → MiB.
fn parse_mem_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'G' | 'g')) => (&t[..i], 1024),
        Some((i, 'M' | 'm')) => (&t[..i], 1),
        _ => (t, 1),
    };
    num.parse::<usize>()
        .map(|n| n * mult)
        .map_err(|_| format!("'{s}' is not a size in MiB (e.g. 1024, 512M, 2G)"))
}

/// Runs the target until it is told to stop.
pub fn run(a: TgtArgs) -> ExitCode {
    let cpumask = match CpuMask::parse(&a.cpumask) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("spdk-io tgt: -m: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = AppOpts {
        name: "spdk_tgt".into(),
        cpumask,
        json_config: a.json,
        rpc_socket: Some(a.rpc_socket),
        wait_for_rpc: a.wait_for_rpc,
        mem_size_mb: a.mem_size,
        no_huge: a.no_huge,
        json_ignore_init_errors: a.json_ignore_init_errors,
        log_flags: a.logflag,
        reactor_opts: reactor_opts(a.interrupt_mode),
        ..AppOpts::default()
    };
    match event::run(opts, || {}) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spdk-io tgt: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        tgt: TgtArgs,
    }

    fn parse(args: &[&str]) -> TgtArgs {
        Cli::try_parse_from(std::iter::once("tgt").chain(args.iter().copied()))
            .unwrap()
            .tgt
    }

    #[test]
    fn the_reactors_busy_poll_by_default_and_back_off_with_interrupt_mode() {
        let a = parse(&[]);
        assert!(!a.interrupt_mode);
        assert_eq!(reactor_opts(a.interrupt_mode).idle_backoff, None);
        let a = parse(&["--interrupt-mode"]);
        assert!(a.interrupt_mode);
        assert!(reactor_opts(a.interrupt_mode).idle_backoff.is_some());
    }

    #[test]
    fn interrupt_mode_takes_no_value() {
        assert!(Cli::try_parse_from(["tgt", "--interrupt-mode=1"]).is_err());
    }
}
