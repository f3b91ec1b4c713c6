//! How a bdev method fails: bad parameters (`-32602`, naming the field), a
//! bdev-layer error (sent as SPDK sends it: a negative errno and
//! `strerror`'s text, the detail going to the log as SPDK's `ERRLOG`
//! does), or an error object of the method's own.

use crate::bdev::BdevError;
use crate::rpc::RpcError;

/// A failed bdev method.
#[derive(Debug)]
pub enum Failure {
    /// The params do not decode: unknown, missing or mistyped field.
    Params(String),
    /// The operation failed in the bdev layer.
    Bdev(BdevError),
    /// An error object of the method's own (code and message as SPDK's).
    Rpc(RpcError),
}

impl From<BdevError> for Failure {
    fn from(e: BdevError) -> Self {
        Failure::Bdev(e)
    }
}

impl From<RpcError> for Failure {
    fn from(e: RpcError) -> Self {
        Failure::Rpc(e)
    }
}

impl Failure {
    /// The JSON-RPC error object SPDK would send.
    pub fn into_rpc(self, method: &str) -> RpcError {
        match self {
            Failure::Params(m) => RpcError::invalid_params(m),
            Failure::Rpc(r) => r,
            Failure::Bdev(e) => {
                log::error!("{method}: {e}");
                to_rpc_error(e)
            }
        }
    }

    /// The same failure as a bdev-layer error with the full detail (for
    /// config loading, which names the entry and the reason).
    pub fn into_bdev(self, method: &str) -> BdevError {
        match self {
            Failure::Params(m) => BdevError::Config(format!("{method}: params: {m}")),
            Failure::Rpc(r) => BdevError::Config(format!("{method}: {}", r.message)),
            Failure::Bdev(e) => e,
        }
    }
}

/// The errno SPDK's method returns for `e` (positive).
pub fn errno_of(e: &BdevError) -> i32 {
    match e {
        BdevError::NotFound(_) | BdevError::NoModule(_) | BdevError::Removed(_) => libc::ENODEV,
        BdevError::Exists(_) => libc::EEXIST,
        BdevError::Claimed { .. } => libc::EPERM,
        BdevError::NoMem => libc::ENOMEM,
        BdevError::Os { source, .. } => source.errno().unwrap_or(libc::EIO),
        BdevError::Unsupported { .. } => libc::ENOTSUP,
        BdevError::IoStatus(_) => libc::EIO,
        BdevError::ShrinkWhileOpen { .. } => libc::EBUSY,
        _ => libc::EINVAL,
    }
}

/// The error SPDK's method would send for `e`: `-errno`, `strerror(errno)`.
pub fn to_rpc_error(e: BdevError) -> RpcError {
    RpcError::errno(errno_of(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_os_error_keeps_its_errno() {
        let e = BdevError::Os {
            op: "open",
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT).into(),
        };
        let r = to_rpc_error(e);
        assert_eq!(
            (r.code, r.message.as_str()),
            (-2, "No such file or directory")
        );
    }

    #[test]
    fn a_missing_bdev_is_no_such_device() {
        let r = to_rpc_error(BdevError::NotFound("x".into()));
        assert_eq!((r.code, r.message.as_str()), (-19, "No such device"));
    }
}
