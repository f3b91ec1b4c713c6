//! `spdk-io`: the command-line tool of spdk-io.
//!
//! One binary with subcommands, as SPDK ships scripts/setup.sh, spdk_nvme_identify,
//! spdk_nvme_perf, bdevperf and blobcli.

mod identify;
mod perf;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod setup;

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
    /// Controller and namespace data, like spdk_nvme_identify.
    Identify(identify::IdentifyArgs),
    /// NVMe I/O benchmark, like spdk_nvme_perf.
    Perf(perf::PerfArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Setup(args) => setup::run(args),
        Command::Identify(a) => identify::run(a),
        Command::Perf(a) => perf::run(a),
    }
}
