//! The method table (SPDK's `lib/rpc` registry): every layer's methods by
//! name, and the state (startup or runtime) that decides which may run.

use crate::rpc::{Method, MethodFuture, MethodStates, RpcError, METHOD_NOT_FOUND};
use serde_json::Value;
use std::cell::Cell;
use std::collections::HashMap;

/// SPDK's `SPDK_JSONRPC_ERROR_INVALID_STATE`: a method called in a state
/// it is not allowed in.
pub const INVALID_STATE: i32 = -1;

/// The table of methods the JSON-RPC server and the config loader call.
/// Lives on the app thread.
pub struct MethodTable {
    methods: Vec<Method>,
    index: HashMap<&'static str, usize>,
    state: Cell<MethodStates>,
}

impl Default for MethodTable {
    fn default() -> Self {
        Self::new()
    }
}

impl MethodTable {
    /// An empty table in the startup state.
    pub fn new() -> Self {
        MethodTable {
            methods: Vec::new(),
            index: HashMap::new(),
            state: Cell::new(MethodStates::STARTUP),
        }
    }

    /// Adds methods; a name already present is replaced (and logged), so
    /// the last layer to register a name wins, as with a re-registration.
    pub fn register(&mut self, methods: impl IntoIterator<Item = Method>) {
        for m in methods {
            if let Some(&i) = self.index.get(m.name) {
                log::warn!(
                    "RPC method {} registered twice: the later one is used",
                    m.name
                );
                self.methods[i] = m;
            } else {
                self.index.insert(m.name, self.methods.len());
                self.methods.push(m);
            }
        }
    }

    /// The method of that name.
    pub fn get(&self, name: &str) -> Option<&Method> {
        self.index.get(name).map(|&i| &self.methods[i])
    }

    /// Every method, in registration order.
    pub fn methods(&self) -> &[Method] {
        &self.methods
    }

    /// The current state: [`MethodStates::STARTUP`] until the subsystems
    /// are initialised, then [`MethodStates::RUNTIME`] (SPDK's `spdk_rpc_get_state`).
    pub fn state(&self) -> MethodStates {
        self.state.get()
    }

    /// Sets the state (SPDK's `spdk_rpc_set_state`).
    pub fn set_state(&self, s: MethodStates) {
        self.state.set(s);
    }

    /// Starts a call: `-32601 Method not found` for an unknown name, SPDK's
    /// `-1` state error for a method not allowed now, else the method's future.
    pub fn call(&self, name: &str, params: Value) -> Result<MethodFuture, RpcError> {
        let m = self
            .get(name)
            .ok_or_else(|| RpcError::new(METHOD_NOT_FOUND, "Method not found"))?;
        let state = self.state.get();
        if !m.states.contains(state) {
            return Err(state_error(state));
        }
        Ok((m.handler)(params))
    }
}

/// SPDK's message for a method called in the wrong state.
pub fn state_error(state: MethodStates) -> RpcError {
    if state == MethodStates::STARTUP {
        RpcError::new(
            INVALID_STATE,
            "Method may only be called after framework is initialized using framework_start_init RPC.",
        )
    } else {
        RpcError::new(
            INVALID_STATE,
            "Method may only be called before framework is initialized. Use --wait-for-rpc command line parameter and then issue this RPC before the framework_start_init RPC.",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(_: Value) -> MethodFuture {
        Box::pin(async { Ok(Value::Bool(true)) })
    }

    #[test]
    fn a_runtime_method_is_refused_at_startup_and_a_startup_method_at_runtime() {
        let mut t = MethodTable::new();
        t.register([
            Method {
                name: "rt",
                states: MethodStates::RUNTIME,
                handler: ok,
            },
            Method {
                name: "st",
                states: MethodStates::STARTUP,
                handler: ok,
            },
            Method {
                name: "both",
                states: MethodStates::all(),
                handler: ok,
            },
        ]);
        let e = t.call("rt", Value::Null).err().unwrap();
        assert_eq!(e.code, INVALID_STATE);
        assert!(e.message.contains("after framework is initialized"));
        assert!(t.call("st", Value::Null).is_ok());
        t.set_state(MethodStates::RUNTIME);
        let e = t.call("st", Value::Null).err().unwrap();
        assert!(e.message.contains("before framework is initialized"));
        assert!(t.call("rt", Value::Null).is_ok() && t.call("both", Value::Null).is_ok());
        assert_eq!(
            t.call("nope", Value::Null).err().unwrap().code,
            METHOD_NOT_FOUND
        );
    }
}
