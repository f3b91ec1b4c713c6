//! The method table's vocabulary (SPDK's `lib/rpc`): what a layer hands the
//! application framework so that its operations can be called over
//! JSON-RPC and from a `--json` config.
//!
//! This module is a leaf: it depends on no other layer and knows nothing of
//! sockets or of the JSON-RPC wire format (that is `event`'s job). A layer
//! that can be configured (bdev, blob/lvol, nvmf) lists its operations as
//! [`Method`]s — a name, the states it may run in ([`MethodStates`]) and a
//! handler that takes the request's `params` and returns a future of the
//! result. The framework registers every layer's list into its one table,
//! runs each call's future on the app thread and turns an [`RpcError`] into
//! the error object SPDK would send.
//!
//! | item | job |
//! |---|---|
//! | [`RpcError`] | a failed call: SPDK's JSON-RPC code and message |
//! | [`Method`], [`MethodStates`], [`MethodFuture`] | one entry of the table |
//! | [`parse_params`] | decode `params` into a typed struct, naming the bad field |

#![deny(unsafe_code)]

use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// JSON-RPC 2.0: the text received is not valid JSON.
pub const PARSE_ERROR: i32 = -32700;
/// JSON-RPC 2.0: the JSON is not a valid request object.
pub const INVALID_REQUEST: i32 = -32600;
/// JSON-RPC 2.0: no method of that name (or not allowed in this state).
pub const METHOD_NOT_FOUND: i32 = -32601;
/// JSON-RPC 2.0: the `params` are wrong (missing, unknown or mistyped field).
pub const INVALID_PARAMS: i32 = -32602;
/// JSON-RPC 2.0: the method failed for a reason of its own.
pub const INTERNAL_ERROR: i32 = -32603;

/// A failed call: the `code` and `message` of the JSON-RPC error object.
///
/// SPDK answers an operation that failed with a negative errno as the code
/// and `strerror`'s text as the message ([`RpcError::errno`]); malformed
/// requests get the JSON-RPC 2.0 codes above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// The error object's `code`.
    pub code: i32,
    /// The error object's `message`.
    pub message: String,
}

impl RpcError {
    /// An error with this code and message.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `-32602 Invalid params`, with a message naming what is wrong.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }

    /// `-32603 Internal error`, with a message saying what failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(INTERNAL_ERROR, message)
    }

    /// What SPDK sends for an operation that failed with `errno` (positive,
    /// e.g. `libc::EEXIST`): code `-errno`, message `strerror(errno)`
    /// ("File exists").
    pub fn errno(errno: i32) -> Self {
        Self::new(-errno.abs(), strerror(errno.abs()))
    }

    /// Code `-errno` with a message of the method's own, as some SPDK
    /// methods send (e.g. "bdev Malloc0 does not exist").
    pub fn errno_msg(errno: i32, message: impl Into<String>) -> Self {
        Self::new(-errno.abs(), message)
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}

/// `strerror(errno)` as glibc spells it ("No such device").
pub fn strerror(errno: i32) -> &'static str {
    nix::errno::Errno::from_raw(errno).desc()
}

bitflags::bitflags! {
    /// When a method may be called (SPDK's `SPDK_RPC_STARTUP` and
    /// `SPDK_RPC_RUNTIME`): before `framework_start_init` (with
    /// `--wait-for-rpc`), after it, or both.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct MethodStates: u8 {
        /// Allowed before the subsystems are initialised.
        const STARTUP = 1;
        /// Allowed once the subsystems are up.
        const RUNTIME = 2;
    }
}

/// The result of a call: the `result` member, or the error object.
pub type RpcResult = Result<Value, RpcError>;

/// What a handler returns: a future run to completion on the app thread
/// (it may await I/O, messages to other threads and timers; it must not
/// block the thread).
pub type MethodFuture = Pin<Box<dyn Future<Output = RpcResult>>>;

/// One method of the table.
#[derive(Clone, Copy)]
pub struct Method {
    /// Its name, as SPDK spells it (`bdev_malloc_create`).
    pub name: &'static str,
    /// When it may be called.
    pub states: MethodStates,
    /// Starts a call with the request's `params` (`Value::Null` when the
    /// request had none).
    pub handler: fn(Value) -> MethodFuture,
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Method")
            .field("name", &self.name)
            .field("states", &self.states)
            .finish_non_exhaustive()
    }
}

/// Decodes `params` into `T` (a struct with `#[serde(deny_unknown_fields)]`
/// to refuse unknown parameters by name). `null` decodes as `{}`, so a
/// struct whose fields are all optional accepts a request without params.
/// The error is `-32602` and names the field serde complained about.
pub fn parse_params<T: DeserializeOwned>(params: Value) -> Result<T, RpcError> {
    let params = if params.is_null() {
        Value::Object(Default::default())
    } else {
        params
    };
    serde_json::from_value(params)
        .map_err(|e| RpcError::invalid_params(format!("Invalid parameters: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_errors_carry_the_negative_code_and_strerror_text() {
        let e = RpcError::errno(libc::EEXIST);
        assert_eq!(e.code, -17);
        assert_eq!(e.message, "File exists");
        assert_eq!(RpcError::errno(-libc::ENODEV).message, "No such device");
    }

    #[test]
    fn params_name_the_unknown_and_the_mistyped_field() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct P {
            name: String,
            #[serde(default)]
            size: Option<u64>,
        }
        let e = parse_params::<P>(serde_json::json!({"name": "a", "sise": 1})).unwrap_err();
        assert_eq!(e.code, INVALID_PARAMS);
        assert!(e.message.contains("sise"), "{}", e.message);
        let e = parse_params::<P>(serde_json::json!({"name": 5})).unwrap_err();
        assert!(e.message.contains("invalid type"), "{}", e.message);
        let e = parse_params::<P>(Value::Null).unwrap_err();
        assert!(e.message.contains("name"), "{}", e.message);
    }
}
