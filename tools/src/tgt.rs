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
    /// Also sleep when idle: a reactor idle for 10,000 iterations in which
    /// no poller waited for its events sleeps 100 us at a time (an idle
    /// NVMe-oF poll group already waits on its sockets, woken by the next
    /// PDU). Saves the cores of reactors with nothing to wait on; costs
    /// latency on their next message or timer.
    #[arg(long = "interrupt-mode", conflicts_with = "busy_poll")]
    interrupt_mode: bool,
    /// Poll flat out, as spdk_tgt and nvmf_tgt do by default: no poller
    /// ever blocks, not even an idle NVMe-oF poll group (which otherwise
    /// waits on its sockets after 250 us without work). Lowest wake-up
    /// latency on a dedicated core; each reactor's core stays busy.
    #[arg(long = "busy-poll")]
    busy_poll: bool,
}

/// How the reactors run: idle poll groups wait on their sockets and no
/// reactor sleeps blindly (default); also sleeping when idle
/// (`--interrupt-mode`); or flat out (`--busy-poll`).
fn reactor_opts(interrupt_mode: bool, busy_poll: bool) -> ReactorOpts {
    let default = ReactorOpts::default();
    ReactorOpts {
        idle_backoff: default.idle_backoff.filter(|_| interrupt_mode),
        poller_idle_wait: !busy_poll,
        ..default
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
        reactor_opts: reactor_opts(a.interrupt_mode, a.busy_poll),
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
    fn by_default_poll_groups_wait_and_no_reactor_sleeps() {
        let a = parse(&[]);
        let o = reactor_opts(a.interrupt_mode, a.busy_poll);
        assert_eq!(o.idle_backoff, None);
        assert!(o.poller_idle_wait);
    }

    #[test]
    fn interrupt_mode_adds_the_reactor_sleep_and_busy_poll_removes_every_wait() {
        let a = parse(&["--interrupt-mode"]);
        let o = reactor_opts(a.interrupt_mode, a.busy_poll);
        assert!(o.idle_backoff.is_some());
        assert!(o.poller_idle_wait);
        let a = parse(&["--busy-poll"]);
        let o = reactor_opts(a.interrupt_mode, a.busy_poll);
        assert_eq!(o.idle_backoff, None);
        assert!(!o.poller_idle_wait);
    }

    #[test]
    fn the_two_modes_exclude_each_other_and_take_no_value() {
        assert!(Cli::try_parse_from(["tgt", "--interrupt-mode", "--busy-poll"]).is_err());
        assert!(Cli::try_parse_from(["tgt", "--interrupt-mode=1"]).is_err());
    }
}
