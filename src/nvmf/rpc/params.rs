//! Parameters of the `nvmf_*` methods, as SPDK's decoders take them.
//! Options SPDK has that this target does not use are accepted and
//! ignored where `spdk-rpc` sends them by default; others are refused by name.
// Fields SPDK defines that this target accepts without using them are
// kept so that a request naming them is not refused.
#![allow(dead_code)]

use serde::Deserialize;
use serde_json::Value;

/// `nvmf_create_transport`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTransport {
    pub trtype: String,
    pub tgt_name: Option<String>,
    pub max_queue_depth: Option<u16>,
    pub max_io_qpairs_per_ctrlr: Option<u16>,
    pub in_capsule_data_size: Option<u32>,
    pub max_io_size: Option<u32>,
    pub io_unit_size: Option<u32>,
    pub max_aq_depth: Option<u16>,
    pub c2h_success: Option<bool>,
    pub sock_priority: Option<u32>,
    pub num_shared_buffers: Option<u32>,
    pub buf_cache_size: Option<u32>,
    // Accepted, not used by this target.
    pub dif_insert_or_strip: Option<Value>,
    pub abort_timeout_sec: Option<Value>,
    pub zcopy: Option<Value>,
    pub ack_timeout: Option<Value>,
    pub data_wr_pool_size: Option<Value>,
    pub control_msg_num: Option<Value>,
    pub disable_command_passthru: Option<Value>,
    pub kas_granularity: Option<Value>,
    pub kas: Option<Value>,
    pub min_kato: Option<Value>,
    pub iobuf_small_cache_size: Option<Value>,
    pub iobuf_large_cache_size: Option<Value>,
    pub masked_oncs: Option<Value>,
    pub masked_fuses: Option<Value>,
    pub acceptor_poll_rate: Option<Value>,
    // Options of other transports (RDMA, vfio-user) that spdk-rpc sends
    // with every nvmf_create_transport (false, or when given).
    pub no_srq: Option<Value>,
    pub num_cqe: Option<Value>,
    pub max_srq_depth: Option<Value>,
    pub acceptor_backlog: Option<Value>,
    pub no_wr_batching: Option<Value>,
    pub disable_mappable_bar0: Option<Value>,
    pub disable_adaptive_irq: Option<Value>,
    pub disable_shadow_doorbells: Option<Value>,
}

/// `nvmf_create_subsystem`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSubsystem {
    pub nqn: String,
    pub serial_number: Option<String>,
    pub model_number: Option<String>,
    pub tgt_name: Option<String>,
    pub max_namespaces: Option<u32>,
    #[serde(default)]
    pub allow_any_host: bool,
    pub ana_reporting: Option<bool>,
    pub min_cntlid: Option<u16>,
    pub max_cntlid: Option<u16>,
    pub max_discard_size_kib: Option<Value>,
    pub max_write_zeroes_size_kib: Option<Value>,
    pub passthrough: Option<Value>,
    pub enable_nssr: Option<Value>,
}

/// Methods naming only a subsystem (`nvmf_delete_subsystem`, ...).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nqn {
    pub nqn: String,
    pub tgt_name: Option<String>,
}

/// A listen address.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ListenAddress {
    pub trtype: Option<String>,
    pub adrfam: Option<String>,
    pub traddr: String,
    pub trsvcid: Option<String>,
}

/// `nvmf_subsystem_add_listener` / `remove_listener`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub nqn: String,
    pub listen_address: ListenAddress,
    pub tgt_name: Option<String>,
    pub secure_channel: Option<bool>,
    pub sock_impl: Option<String>,
    pub ana_state: Option<Value>,
}

/// A namespace of `nvmf_subsystem_add_ns`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NsParams {
    pub bdev_name: String,
    pub nsid: Option<u32>,
    pub uuid: Option<String>,
    pub nguid: Option<String>,
    pub eui64: Option<String>,
    pub ptpl_file: Option<String>,
    pub anagrpid: Option<u32>,
    pub no_auto_visible: Option<bool>,
    pub hide_metadata: Option<bool>,
}

/// `nvmf_subsystem_add_ns`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddNs {
    pub nqn: String,
    pub namespace: NsParams,
    pub tgt_name: Option<String>,
}

/// `nvmf_subsystem_remove_ns`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveNs {
    pub nqn: String,
    pub nsid: u32,
    pub tgt_name: Option<String>,
}

/// `nvmf_subsystem_add_host` / `remove_host`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub nqn: String,
    pub host: String,
    pub tgt_name: Option<String>,
    pub psk: Option<Value>,
    pub dhchap_key: Option<Value>,
    pub dhchap_ctrlr_key: Option<Value>,
}

/// `nvmf_subsystem_allow_any_host`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowAnyHost {
    pub nqn: String,
    pub allow_any_host: bool,
    pub tgt_name: Option<String>,
}

/// `nvmf_get_subsystems` / `nvmf_get_transports`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Get {
    pub tgt_name: Option<String>,
    pub trtype: Option<String>,
}

/// `nvmf_subsystem_listener_set_ana_state`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetAnaState {
    pub nqn: String,
    pub listen_address: ListenAddress,
    pub ana_state: String,
    pub tgt_name: Option<String>,
    pub anagrpid: Option<u32>,
}
