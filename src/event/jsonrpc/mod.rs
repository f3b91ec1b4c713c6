//! The JSON-RPC 2.0 server on a Unix socket (SPDK's `lib/jsonrpc` and the
//! server half of `lib/rpc`).
//!
//! | file | job |
//! |---|---|
//! | `server` | [`RpcServer`]: listener, connections, the poller, dispatch to the method table |
//! | `conn` | one connection: non-blocking reads and writes, backpressure |
//! | `frame` | where each JSON value ends in the unframed stream |
//! | `request` | request validation and response objects, SPDK's error codes |
//! | `lock` | the `<socket>.lock` file that keeps a second instance off the socket |

mod conn;
mod frame;
mod lock;
mod request;
mod server;

pub use conn::{DISPATCH_PER_POLL, IN_FLIGHT_MAX, MAX_REQUEST_SIZE, SEND_BACKLOG_MAX};
pub(crate) use lock::SocketLock;
pub use request::BATCH_MAX;
pub use server::{RpcServer, BUFFER_BUDGET, MAX_CONNS, POLL_PERIOD_US};
