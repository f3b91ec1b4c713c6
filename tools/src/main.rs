//! `spdk-io`: the command-line tool of spdk-io.
//!
//! One binary with subcommands, as SPDK ships scripts/setup.sh, spdk_nvme_identify,
//! spdk_nvme_perf, bdevperf and blobcli (and `discover`, the discovery log page
//! spdk_nvme_identify prints for a discovery controller).

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

mod bdevperf;
mod blob;
mod discover;
mod dma_env;
mod identify;
mod perf;
mod setup;
mod tgt;
mod thread_bench;

/// spdk-io: SPDK in pure Rust.
#[derive(Parser, Debug)]
#[command(name = "spdk-io", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Reserve hugepages and bind NVMe devices to a user-space driver (like SPDK's setup.sh).
    Setup(setup::SetupArgs),
    /// Blobstore tool, like SPDK's blobcli: init, list, create, show, import/export, xattr, snapshot, clone, delete, stats.
    Blob(blob::BlobArgs),
    /// Measure the thread layer: message rate, poller loop, io_channel and async costs.
    ThreadBench(thread_bench::ThreadBenchArgs),
    /// SPDK's bdevperf: I/O load on the bdevs of an SPDK JSON config.
    Bdevperf(bdevperf::BdevperfArgs),
    /// Controller and namespace data, like spdk_nvme_identify.
    Identify(identify::IdentifyArgs),
    /// The Discovery Log Page of an NVMe-oF discovery service (`-r 'trtype:TCP traddr:... trsvcid:...'`).
    Discover(discover::DiscoverArgs),
    /// NVMe I/O benchmark, like spdk_nvme_perf.
    Perf(perf::PerfArgs),
    /// The storage daemon, like spdk_tgt: JSON config, JSON-RPC on a Unix socket (drive it with SPDK's rpc.py).
    Tgt(tgt::TgtArgs),
}

/// Output to a closed pipe (`spdk-io blob list | head -1`) ends the
/// process quietly, as it ends `cat` or `ls`: SIGPIPE takes its default
/// action instead of being ignored (Rust's start-up ignores it, and then
/// every `println!` after the reader left panics with exit code 101).
/// Not for `tgt`: a daemon keeps SIGPIPE ignored (its sockets also send
/// with MSG_NOSIGNAL), so that no closed pipe or peer can end it.
fn die_quietly_on_closed_pipe() {
    let armed = Arc::new(AtomicBool::new(true));
    if let Err(e) =
        signal_hook::flag::register_conditional_default(signal_hook::consts::SIGPIPE, armed)
    {
        eprintln!("spdk-io: cannot restore SIGPIPE's default action ({e}): output to a closed pipe will fail loudly");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Tgt(_)) {
        die_quietly_on_closed_pipe();
    }
    match cli.command {
        Command::Setup(args) => setup::run(args),
        Command::Blob(args) => match blob::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("spdk-io blob: {e}");
                ExitCode::FAILURE
            }
        },
        Command::ThreadBench(args) => match thread_bench::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("thread-bench: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Bdevperf(args) => match bdevperf::run(args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => {
                eprintln!("bdevperf: FAILED (I/O errors or verify mismatches, see above)");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("bdevperf: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Identify(a) => identify::run(a),
        Command::Discover(a) => discover::run(a),
        Command::Perf(a) => perf::run(a),
        Command::Tgt(a) => tgt::run(a),
    }
}
