//! A [`BdevError`] as the JSON-RPC error SPDK sends for the same failure:
//! a negative errno with `strerror`'s text for most, `-32602` for bad
//! parameters.

use crate::bdev::BdevError;
use crate::rpc::RpcError;

/// The error SPDK's method would send for `e`.
pub fn to_rpc_error(e: BdevError) -> RpcError {
    match e {
        BdevError::NotFound(_) => RpcError::errno(libc::ENODEV),
        BdevError::Exists(_) => RpcError::errno(libc::EEXIST),
        BdevError::Claimed { .. } => RpcError::errno(libc::EPERM),
        BdevError::InvalidParam(_) => RpcError::errno(libc::EINVAL),
        BdevError::NoModule(_) => RpcError::errno(libc::ENODEV),
        BdevError::NoMem => RpcError::errno(libc::ENOMEM),
        BdevError::Config(m) => RpcError::invalid_params(m),
        other => RpcError::internal(other.to_string()),
    }
}
