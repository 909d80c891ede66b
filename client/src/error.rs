//! The SDK's one error type: what a call can fail with, and why.

use chorus_wire::{DecodeError, ErrorCode};

/// Why a [`Client`](crate::Client) call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The [`ClientConfig`](crate::ClientConfig) cannot work.
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// A socket error while connecting, reading or writing.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A `tls://` or `wss://` connection could not be secured: the roots could not
    /// be loaded, or the node's certificate was refused (an untrusted issuer, a
    /// name that is not the host dialed, expired).
    #[error("tls: {0}")]
    Tls(String),
    /// The WebSocket handshake or a WebSocket read or write failed.
    #[error("websocket: {0}")]
    WebSocket(String),
    /// The node sent bytes that are not a frame of protocol v1.
    #[error("undecodable frame from the node: {0}")]
    Decode(#[from] DecodeError),
    /// The node sent a frame that makes no sense where it came (e.g. no `welcome`
    /// after `hello`, or an answer of the wrong type).
    #[error("protocol violation by the node: {0}")]
    Protocol(String),
    /// The node answered with `error`: for the request (it had a `ref`), or for the
    /// whole connection during the handshake.
    #[error("server error {code}: {message}")]
    Server {
        /// The protocol error code.
        code: ErrorCode,
        /// The node's detail.
        message: String,
    },
    /// The node answered a `send` or `danmaku` with `reject`.
    #[error("rejected ({code}): {message}")]
    Rejected {
        /// The protocol error code (`rate_limited`, `filtered`, `forbidden`, ...).
        code: ErrorCode,
        /// The node's detail.
        message: String,
        /// When trying again makes sense, for `rate_limited`.
        retry_after_ms: Option<u64>,
    },
    /// The node answered `hello` with `goaway`: it is draining. The connection
    /// goes on to one of `nodes` (tried first) or the configured endpoints.
    #[error("the node is draining; try {nodes:?}")]
    Goaway {
        /// Client addresses of other nodes, from the `goaway`.
        nodes: Vec<String>,
    },
    /// No answer within [`ClientConfig::request_timeout`](crate::ClientConfig::request_timeout).
    #[error("no answer within the request timeout")]
    Timeout,
    /// The connection dropped before the answer came and the request is not one that
    /// is retried (only `send` is).
    #[error("the connection was lost before the answer")]
    ConnectionLost,
    /// The client was closed, or gave up reconnecting.
    #[error("the client is closed")]
    Closed,
}
