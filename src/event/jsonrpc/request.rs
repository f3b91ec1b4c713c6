//! JSON-RPC 2.0 requests as SPDK's server reads them, and the text of the
//! responses it writes.
//!
//! A request is an object with `method` (a string), optional `jsonrpc`
//! (`"2.0"` if present), `params` (an object, an array or `null`) and `id`
//! (a string, a number or `null`); anything else is `-32600 Invalid
//! request`. A request without an `id` (or with `id: null`) is a
//! notification: its result is not sent, its error is (as SPDK does). An
//! array is a batch (JSON-RPC 2.0; SPDK itself refuses batches): its
//! responses go out together as one array. A batch of more than
//! [`BATCH_MAX`] requests is refused whole (`-32600`), so that one value of
//! the stream cannot make the server build an unbounded response.

use crate::rpc::{RpcError, RpcResult, INVALID_REQUEST, PARSE_ERROR};
use serde_json::Value;

/// The most requests one batch may hold.
pub const BATCH_MAX: usize = 128;

/// One decoded request.
#[derive(Debug)]
pub(crate) struct Request {
    /// The `id` member (`None` if absent).
    pub id: Option<Value>,
    /// The method and params, or the reason the request is invalid.
    pub call: Result<(String, Value), RpcError>,
}

impl Request {
    /// Whether its result is not to be sent (no id, or id null).
    pub fn is_notification(&self) -> bool {
        matches!(self.id, None | Some(Value::Null))
    }
}

/// A decoded value of the stream.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// One request.
    Single(Request),
    /// A batch (never empty).
    Batch(Vec<Request>),
}

/// `-32700 Parse error` (the connection is closed after it: there is no
/// resynchronisation point in a stream of JSON values).
pub(crate) fn parse_error() -> RpcError {
    RpcError::new(PARSE_ERROR, "Parse error")
}

fn invalid() -> RpcError {
    RpcError::new(INVALID_REQUEST, "Invalid request")
}

/// Decodes one complete value of the stream; `Err` is a parse error.
pub(crate) fn decode(frame: &[u8]) -> Result<Incoming, RpcError> {
    let v: Value = serde_json::from_slice(frame).map_err(|_| parse_error())?;
    Ok(match v {
        Value::Array(a) if a.is_empty() => Incoming::Single(Request {
            id: None,
            call: Err(invalid()),
        }),
        Value::Array(a) if a.len() > BATCH_MAX => Incoming::Single(Request {
            id: None,
            call: Err(RpcError::new(
                INVALID_REQUEST,
                format!(
                    "Invalid request: a batch of {} requests (at most {BATCH_MAX})",
                    a.len()
                ),
            )),
        }),
        Value::Array(a) => Incoming::Batch(a.into_iter().map(decode_one).collect()),
        v => Incoming::Single(decode_one(v)),
    })
}

fn decode_one(v: Value) -> Request {
    let Value::Object(mut o) = v else {
        return Request {
            id: None,
            call: Err(invalid()),
        };
    };
    let id = match o.remove("id") {
        None => None,
        Some(id @ (Value::String(_) | Value::Number(_) | Value::Null)) => Some(id),
        Some(_) => {
            return Request {
                id: None,
                call: Err(invalid()),
            }
        }
    };
    let version_ok = match o.get("jsonrpc") {
        None => true,
        Some(v) => v.as_str() == Some("2.0"),
    };
    let params = o.remove("params").unwrap_or(Value::Null);
    let call = match (o.remove("method"), &params) {
        (Some(Value::String(m)), Value::Null | Value::Object(_) | Value::Array(_))
            if version_ok =>
        {
            Ok((m, params))
        }
        _ => Err(invalid()),
    };
    Request { id, call }
}

/// The response object for a request with `id` (null if none).
pub(crate) fn response(id: Option<&Value>, r: &RpcResult) -> Value {
    let id = id.cloned().unwrap_or(Value::Null);
    match r {
        Ok(v) => serde_json::json!({"jsonrpc": "2.0", "id": id, "result": v}),
        Err(e) => serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": e.code, "message": e.message},
        }),
    }
}

/// The bytes sent for one response (or batch): compact JSON and a newline.
pub(crate) fn to_wire(v: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec());
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> Request {
        match decode(text.as_bytes()).unwrap() {
            Incoming::Single(r) => r,
            b => panic!("not single: {b:?}"),
        }
    }

    #[test]
    fn a_request_needs_a_string_method_and_a_structured_params_and_a_scalar_id() {
        let r = one(r#"{"jsonrpc":"2.0","method":"m","id":7,"params":{"a":1}}"#);
        assert_eq!(r.id, Some(json!(7)));
        assert_eq!(r.call.unwrap(), ("m".into(), json!({"a":1})));
        for bad in [
            r#"{"method":5,"id":1}"#,
            r#"{"method":"m","params":3,"id":1}"#,
            r#"{"method":"m","id":{}}"#,
            r#"{"jsonrpc":"1.0","method":"m","id":1}"#,
            r#""m""#,
            r#"[]"#,
        ] {
            assert_eq!(one(bad).call.unwrap_err().code, INVALID_REQUEST, "{bad}");
        }
        assert!(one(r#"{"method":"m"}"#).is_notification());
        assert!(one(r#"{"method":"m","id":null}"#).is_notification());
        assert_eq!(decode(b"{\"method\":").unwrap_err().code, PARSE_ERROR);
    }

    #[test]
    fn a_batch_decodes_each_element_and_a_response_carries_spdk_error_objects() {
        let Incoming::Batch(b) = decode(br#"[{"method":"a","id":1},5]"#).unwrap() else {
            panic!("not a batch")
        };
        assert!(b[0].call.is_ok() && b[1].call.is_err());
        let v = response(Some(&json!("x")), &Err(RpcError::errno(libc::ENODEV)));
        assert_eq!(
            v,
            json!({"jsonrpc":"2.0","id":"x","error":{"code":-19,"message":"No such device"}})
        );
        assert_eq!(to_wire(&json!(1)), b"1\n");
    }

    #[test]
    fn a_batch_of_more_than_batch_max_requests_is_refused_whole() {
        let at_max = json!(vec![json!({"method": "m", "id": 1}); BATCH_MAX]).to_string();
        assert!(
            matches!(decode(at_max.as_bytes()), Ok(Incoming::Batch(b)) if b.len() == BATCH_MAX)
        );
        let over = json!(vec![json!({"method": "m", "id": 1}); BATCH_MAX + 1]).to_string();
        let e = one(&over).call.unwrap_err();
        assert_eq!(e.code, INVALID_REQUEST);
        assert!(e.message.contains("batch"), "{}", e.message);
    }
}
