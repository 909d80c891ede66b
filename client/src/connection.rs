//! One connection to a node — TCP or WebSocket framing, over TLS for `tls://` and
//! `wss://` endpoints, and the `hello`/`welcome` handshake — and where and when
//! to connect again: endpoint rotation (the backoff is `chorus_wire::backoff`).
//!
//! A [`Connection`] moves whole frames: [`Connection::recv`] is cancel-safe (no bytes
//! are lost when a `select!` drops it), so the connection task can wait on the socket,
//! its commands and its timers at once.

use std::collections::VecDeque;
use std::time::Duration;

use chorus_wire::codec::{Frame, TcpDecoder};
use chorus_wire::{
    ClientFrame, Encoding, HeartbeatInfo, LimitsInfo, PROTOCOL_VERSION, ServerFrame,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::{ClientConfig, Transport};
use crate::error::ClientError;
use crate::tls::{Stream, server_name};

/// The node's `welcome` for the current connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// Protocol version spoken.
    pub protocol: u32,
    /// The authenticated user id.
    pub user: String,
    /// This connection's session id.
    pub session: String,
    /// The id of the node serving the connection.
    pub node: String,
    /// The node's heartbeat bounds.
    pub heartbeat: HeartbeatInfo,
    /// The node's size limits.
    pub limits: LimitsInfo,
}

/// How long a graceful close may take before the socket is simply dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// An open socket to a node, framed for its transport.
pub(crate) enum Connection {
    /// Length-prefixed bincode frames.
    Tcp {
        stream: Stream,
        /// Holds a partial frame between reads, so `recv` can be cancelled safely.
        decoder: TcpDecoder,
    },
    /// One frame per WebSocket message.
    Ws {
        ws: Box<WebSocketStream<Stream>>,
        /// The encoding of our `hello`, which the node answers in.
        encoding: Encoding,
        max_frame: u32,
    },
}

impl Connection {
    /// Opens the socket (with its TLS handshake for `tls://` and `wss://`, and the
    /// WebSocket handshake); no frame is sent yet.
    pub(crate) async fn open(endpoint: &str, cfg: &ClientConfig) -> Result<Self, ClientError> {
        let max_frame = cfg.max_frame;
        if cfg.transport.is_websocket() {
            let url = ws_url(endpoint);
            let (secure, rest) = match url.strip_prefix("wss://") {
                Some(rest) => (true, rest),
                None => (false, url.strip_prefix("ws://").unwrap_or(&url)),
            };
            let host_port = rest.split('/').next().unwrap_or(rest);
            let stream = Stream::connect(host_port, secure, cfg).await?;
            let limit = usize::try_from(max_frame).unwrap_or(usize::MAX);
            let config = WebSocketConfig::default()
                .max_message_size(Some(limit))
                .max_frame_size(Some(limit));
            let (ws, _response) =
                tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(config))
                    .await
                    .map_err(ws_error)?;
            Ok(Self::Ws {
                ws: Box::new(ws),
                encoding: cfg.transport.encoding(),
                max_frame,
            })
        } else {
            let (secure, host_port) = tcp_addr(endpoint);
            Ok(Self::Tcp {
                stream: Stream::connect(host_port, secure, cfg).await?,
                decoder: TcpDecoder::new(max_frame),
            })
        }
    }

    /// Writes one frame.
    pub(crate) async fn send(&mut self, frame: &ClientFrame) -> Result<(), ClientError> {
        match self {
            Self::Tcp { stream, .. } => stream.write_all(&frame.to_tcp()).await?,
            Self::Ws { ws, encoding, .. } => {
                let msg = match encoding {
                    Encoding::Json => WsMessage::text(frame.to_json()),
                    Encoding::Binary => WsMessage::binary(frame.to_binary()),
                };
                ws.send(msg).await.map_err(ws_error)?;
            }
        }
        Ok(())
    }

    /// The next frame; `None` when the node closed the connection cleanly.
    /// Cancel-safe.
    pub(crate) async fn recv(&mut self) -> Result<Option<ServerFrame>, ClientError> {
        match self {
            Self::Tcp { stream, decoder } => loop {
                if let Some(frame) = decoder.next_frame::<ServerFrame>()? {
                    return Ok(Some(frame));
                }
                if stream.read_buf(decoder.buffer()).await? == 0 {
                    if decoder.pending() > 0 {
                        return Err(ClientError::Decode(chorus_wire::DecodeError::Truncated));
                    }
                    return Ok(None);
                }
            },
            Self::Ws { ws, max_frame, .. } => loop {
                let bytes_and_encoding = match ws.next().await {
                    None | Some(Ok(WsMessage::Close(_))) => return Ok(None),
                    Some(Err(e)) => return Err(ws_error(e)),
                    Some(Ok(WsMessage::Text(text))) => (text.as_bytes().to_vec(), Encoding::Json),
                    Some(Ok(WsMessage::Binary(bytes))) => (bytes.to_vec(), Encoding::Binary),
                    // Control frames: tungstenite answers pings itself.
                    Some(Ok(_)) => continue,
                };
                let (bytes, encoding) = bytes_and_encoding;
                return Ok(Some(ServerFrame::decode(&bytes, encoding, *max_frame)?));
            },
        }
    }

    /// Closes gracefully (WebSocket close frame, TCP shutdown), giving up after a
    /// short grace period.
    pub(crate) async fn close(&mut self) {
        let close = async {
            match self {
                Self::Tcp { stream, .. } => {
                    let _ = stream.shutdown().await;
                }
                Self::Ws { ws, .. } => {
                    // The inherent close (with a close frame), not `SinkExt::close` on the Box.
                    let _ = WebSocketStream::close(&mut **ws, None).await;
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, close).await;
    }
}

/// Connects to `endpoint` and performs the handshake: `hello`, then `welcome` or
/// `error`, within `cfg.request_timeout`.
pub(crate) async fn establish(
    endpoint: &str,
    cfg: &ClientConfig,
) -> Result<(Connection, Welcome), ClientError> {
    let handshake = async {
        let mut conn = Connection::open(endpoint, cfg).await?;
        let hello = ClientFrame::Hello {
            protocol: PROTOCOL_VERSION,
            token: cfg.token.clone(),
            device: cfg.device.clone(),
        };
        conn.send(&hello).await?;
        match conn.recv().await? {
            Some(ServerFrame::Welcome {
                protocol,
                user,
                session,
                node,
                heartbeat,
                limits,
            }) => Ok((
                conn,
                Welcome {
                    protocol,
                    user,
                    session,
                    node,
                    heartbeat,
                    limits,
                },
            )),
            Some(ServerFrame::Error { code, message, .. }) => {
                Err(ClientError::Server { code, message })
            }
            Some(ServerFrame::Goaway { nodes, .. }) => Err(ClientError::Goaway { nodes }),
            Some(other) => Err(ClientError::Protocol(format!(
                "expected welcome, got {}",
                other.type_name()
            ))),
            None => Err(ClientError::ConnectionLost),
        }
    };
    tokio::time::timeout(cfg.request_timeout, handshake)
        .await
        .map_err(|_| ClientError::Timeout)?
}

impl Stream {
    /// Connects to `host_port`; with `secure`, completes a TLS handshake whose
    /// certificate must chain to `cfg.tls` and name the host.
    async fn connect(
        host_port: &str,
        secure: bool,
        cfg: &ClientConfig,
    ) -> Result<Self, ClientError> {
        let tcp = TcpStream::connect(host_port).await?;
        // Frames are small and latency matters more than packet count.
        tcp.set_nodelay(true)?;
        if !secure {
            return Ok(Self::Plain(tcp));
        }
        let connector = cfg.tls_cache.connector(&cfg.tls)?;
        let name = server_name(host_port)?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| ClientError::Tls(format!("TLS handshake with {host_port} failed: {e}")))?;
        Ok(Self::Tls(Box::new(tls)))
    }
}

/// The WebSocket URL of an endpoint: a `ws://`/`wss://` URL as given, else
/// `ws://<host:port>/ws`.
pub(crate) fn ws_url(endpoint: &str) -> String {
    if endpoint.starts_with("ws://") || endpoint.starts_with("wss://") {
        endpoint.to_string()
    } else {
        format!("ws://{}/ws", endpoint.trim_end_matches('/'))
    }
}

/// Whether a TCP endpoint is `tls://`, and its `host:port`.
fn tcp_addr(endpoint: &str) -> (bool, &str) {
    match endpoint.strip_prefix("tls://") {
        Some(rest) => (true, rest),
        None => (false, endpoint.strip_prefix("tcp://").unwrap_or(endpoint)),
    }
}

fn ws_error(e: tokio_tungstenite::tungstenite::Error) -> ClientError {
    match e {
        tokio_tungstenite::tungstenite::Error::Io(io) => ClientError::Io(io),
        other => ClientError::WebSocket(other.to_string()),
    }
}

/// Which endpoint to try next: nodes named by a `goaway` first, then the configured
/// endpoints round-robin.
#[derive(Debug)]
pub(crate) struct Endpoints {
    configured: Vec<String>,
    /// Index of the next configured endpoint.
    next: usize,
    /// Nodes from the last `goaway`, each tried once before the rotation resumes.
    preferred: VecDeque<String>,
    transport: Transport,
}

impl Endpoints {
    /// A rotation over `configured` (non-empty, checked by the config).
    pub(crate) fn new(configured: Vec<String>, transport: Transport) -> Self {
        Self {
            configured,
            next: 0,
            preferred: VecDeque::new(),
            transport,
        }
    }

    /// The endpoint to try now.
    pub(crate) fn next(&mut self) -> String {
        if let Some(node) = self.preferred.pop_front() {
            return node;
        }
        let Some(endpoint) = self
            .configured
            .get(self.next % self.configured.len().max(1))
        else {
            return String::new();
        };
        self.next = self.next.wrapping_add(1);
        endpoint.clone()
    }

    /// How many endpoints one full rotation tries.
    pub(crate) fn len(&self) -> usize {
        self.configured.len() + self.preferred.len()
    }

    /// Try these nodes (from `goaway`) first; addresses for another transport's
    /// scheme are skipped.
    pub(crate) fn prefer(&mut self, nodes: &[String]) {
        let usable = |n: &&String| {
            if self.transport.is_websocket() {
                !n.starts_with("tcp://") && !n.starts_with("tls://")
            } else {
                !n.starts_with("ws://") && !n.starts_with("wss://")
            }
        };
        self.preferred = nodes
            .iter()
            .filter(usable)
            .filter(|n| !n.trim().is_empty())
            .cloned()
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_rotate_and_goaway_nodes_come_first() {
        let mut e = Endpoints::new(vec!["a:1".into(), "b:2".into()], Transport::Tcp);
        assert_eq!([e.next(), e.next(), e.next()], ["a:1", "b:2", "a:1"]);
        e.prefer(&["c:3".into(), "ws://d:4/ws".into(), "tcp://e:5".into()]);
        assert_eq!(e.len(), 4);
        assert_eq!([e.next(), e.next(), e.next()], ["c:3", "tcp://e:5", "b:2"]);
        e.prefer(&["wss://f:6/ws".into(), "tls://g:7".into()]);
        assert_eq!(e.next(), "tls://g:7");
        let mut w = Endpoints::new(vec!["wss://a:1/ws".into()], Transport::WsJson);
        w.prefer(&["tls://g:7".into(), "wss://f:6/ws".into()]);
        assert_eq!(w.next(), "wss://f:6/ws");
    }

    #[test]
    fn websocket_urls() {
        assert_eq!(ws_url("127.0.0.1:7401"), "ws://127.0.0.1:7401/ws");
        assert_eq!(ws_url("ws://host:1/custom"), "ws://host:1/custom");
        assert_eq!(tcp_addr("tcp://h:1"), (false, "h:1"));
        assert_eq!(tcp_addr("tls://h:1"), (true, "h:1"));
        assert_eq!(tcp_addr("h:1"), (false, "h:1"));
    }
}
