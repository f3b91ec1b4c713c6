//! The application framework's tests, one module per former test binary:
//! an embedding program, `event::start`, and an NVMe-oF target configured
//! over JSON-RPC. One application runs per process: the tests take turns.

#[path = "../nvmf_common/mod.rs"]
mod nvmf_common;
#[path = "../rpc_client/mod.rs"]
mod rpc_client;

/// One application per process: the tests of every module take turns.
static ONE_APP: std::sync::Mutex<()> = std::sync::Mutex::new(());

mod event_app;
mod event_embed;
mod nvmf_tgt;
