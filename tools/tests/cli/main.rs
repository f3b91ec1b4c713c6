//! The `spdk-io` command line's tests, one module per former test binary:
//! bdevperf, blob, perf and discover over TCP, setup, thread-bench, output
//! to a closed pipe. `blob_cli_corrupt` runs on the host only.
//! `bdevperf_memory` (it reads the peak RSS of its one child) is a binary
//! of its own.

mod bdevperf_cli;
mod blob_cli;
mod blob_cli_corrupt;
mod closed_pipe;
mod nvme_tcp_cli;
mod perf_tcp_cli;
mod setup_cli;
mod thread_bench_cli;
