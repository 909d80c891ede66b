//! A lean protocol connection for holding many sessions: `hello`/`welcome`, then
//! whatever frames the scenario sends and reads, over TCP or WebSocket, from a
//! chosen source address.
//!
//! The SDK connects from whatever address the kernel picks and keeps per-client
//! tasks and queues; `connect` and the viewers of `live` need neither. Binding each
//! socket to one of several loopback source addresses (127.0.0.2, 127.0.0.3, ...)
//! spreads connections over more than one address's ephemeral ports.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use chorus_client::Transport;
use chorus_wire::codec::{Frame, TcpDecoder};
use chorus_wire::{ClientFrame, Encoding, PROTOCOL_VERSION, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Largest frame accepted from the node: a `live_batch` of many long items is the
/// largest frame these sessions see.
const MAX_FRAME: u32 = 1024 * 1024;
/// Per-connection WebSocket read buffer: sessions receive small frames, and the
/// default (128 KiB) would make the tool, not the node, run out of memory.
const WS_READ_BUFFER: usize = 4 * 1024;
/// Connections per loopback source address when the count is automatic: well
/// inside one address's ephemeral port range.
const PER_SOURCE: u32 = 20_000;

/// The loopback source addresses to spread `connections` sockets to `endpoint`
/// over: 127.0.0.2, 127.0.0.3, ... — `requested` of them, or with 0 one per
/// 20,000 connections (none, the kernel's choice, below that). Empty for IPv6.
pub(crate) fn loopback_sources(
    connections: u32,
    requested: u32,
    endpoint: SocketAddr,
) -> Vec<IpAddr> {
    let n = match requested {
        0 if connections > PER_SOURCE => connections.div_ceil(PER_SOURCE),
        0 => return Vec::new(),
        n => n,
    };
    if !endpoint.is_ipv4() {
        return Vec::new();
    }
    (0..n.min(250))
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i as u8)))
        .collect()
}

/// Why a raw connection failed, by class (the report counts failures per class).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RawError {
    /// Socket-level failure; the `io::ErrorKind` name.
    #[error("io_{0}")]
    Io(String),
    /// The WebSocket upgrade or a WebSocket read failed.
    #[error("websocket")]
    WebSocket,
    /// The TLS handshake failed.
    #[error("tls")]
    Tls,
    /// The node answered `hello` with an `error` (its code).
    #[error("refused_{0}")]
    Refused(String),
    /// The node closed the connection.
    #[error("closed")]
    Closed,
    /// Undecodable or unexpected frame.
    #[error("protocol")]
    Protocol,
}

impl From<std::io::Error> for RawError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(format!("{:?}", e.kind()).to_lowercase())
    }
}

/// An open, authenticated session.
pub(crate) enum RawConn {
    /// Length-prefixed binary frames.
    Tcp {
        stream: RawStream,
        /// Keeps a partial frame between reads, so `next_frame` is cancel-safe.
        decoder: TcpDecoder,
    },
    /// One frame per WebSocket message.
    Ws {
        ws: Box<WebSocketStream<RawStream>>,
        encoding: Encoding,
    },
}

/// A socket to the node, in the clear or under TLS (`--tls-ca`): the SDK's.
pub(crate) use chorus_client::Stream as RawStream;

impl RawConn {
    /// Connects to `addr` (from `source` when given, port chosen by the kernel),
    /// speaks TLS with `tls`, upgrades to WebSocket for the WebSocket transports,
    /// and says `hello` with `token`. Returns the session and the welcome's idle
    /// timeout in seconds.
    pub(crate) async fn open(
        addr: SocketAddr,
        transport: Transport,
        source: Option<IpAddr>,
        token: &str,
        tls: Option<&TlsConnector>,
    ) -> Result<(Self, u32), RawError> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        let stream = match tls {
            None => RawStream::Plain(stream),
            Some(connector) => RawStream::Tls(Box::new(
                connector
                    .connect(crate::target::TlsTarget::server_name(addr), stream)
                    .await
                    .map_err(|_| RawError::Tls)?,
            )),
        };
        let scheme = if tls.is_some() { "wss" } else { "ws" };
        let mut conn = if transport.is_websocket() {
            let config = WebSocketConfig::default()
                .read_buffer_size(WS_READ_BUFFER)
                .write_buffer_size(0)
                .max_message_size(Some(MAX_FRAME as usize))
                .max_frame_size(Some(MAX_FRAME as usize));
            let (ws, _) = tokio_tungstenite::client_async_with_config(
                format!("{scheme}://{addr}/ws"),
                stream,
                Some(config),
            )
            .await
            .map_err(|_| RawError::WebSocket)?;
            Self::Ws {
                ws: Box::new(ws),
                encoding: transport.encoding(),
            }
        } else {
            Self::Tcp {
                stream,
                decoder: TcpDecoder::new(MAX_FRAME),
            }
        };
        conn.send(&ClientFrame::Hello {
            protocol: PROTOCOL_VERSION,
            token: token.into(),
            device: Some("loadtest".into()),
        })
        .await?;
        match conn.next_frame().await? {
            Some(ServerFrame::Welcome { heartbeat, .. }) => Ok((conn, heartbeat.idle_timeout_s)),
            Some(ServerFrame::Error { code, .. }) => Err(RawError::Refused(code.to_string())),
            Some(_) => Err(RawError::Protocol),
            None => Err(RawError::Closed),
        }
    }

    /// Sends a `ping` (no interval announced: the node keeps its longest timeout).
    pub(crate) async fn ping(&mut self) -> Result<(), RawError> {
        self.send(&ClientFrame::Ping { interval_s: None }).await
    }

    /// Sends one frame in the connection's encoding.
    pub(crate) async fn send(&mut self, frame: &ClientFrame) -> Result<(), RawError> {
        match self {
            Self::Tcp { stream, .. } => stream.write_all(&frame.to_tcp()).await?,
            Self::Ws { ws, encoding } => {
                let msg = match encoding {
                    Encoding::Json => WsMessage::text(frame.to_json()),
                    Encoding::Binary => WsMessage::binary(frame.to_binary()),
                };
                ws.send(msg).await.map_err(|_| RawError::WebSocket)?;
            }
        }
        Ok(())
    }

    /// The next frame; `None` once the node closed the connection. Cancel-safe.
    pub(crate) async fn next_frame(&mut self) -> Result<Option<ServerFrame>, RawError> {
        match self.next_payload().await? {
            Some((bytes, encoding)) => ServerFrame::decode(&bytes, encoding, MAX_FRAME)
                .map(Some)
                .map_err(|_| RawError::Protocol),
            None => Ok(None),
        }
    }

    /// The next frame's bytes, undecoded, with their encoding; `None` once the node
    /// closed the connection. Cancel-safe. For readers that look at a few fields of
    /// many frames without building each one.
    pub(crate) async fn next_payload(&mut self) -> Result<Option<(Bytes, Encoding)>, RawError> {
        match self {
            Self::Tcp { stream, decoder } => loop {
                if let Some(payload) = decoder.next_payload().map_err(|_| RawError::Protocol)? {
                    return Ok(Some((payload, Encoding::Binary)));
                }
                if stream.read_buf(decoder.buffer()).await? == 0 {
                    return Ok(None);
                }
            },
            Self::Ws { ws, .. } => loop {
                return match ws.next().await {
                    None | Some(Ok(WsMessage::Close(_))) => Ok(None),
                    Some(Err(_)) => Err(RawError::WebSocket),
                    Some(Ok(WsMessage::Text(t))) => Ok(Some((Bytes::from(t), Encoding::Json))),
                    Some(Ok(WsMessage::Binary(b))) => Ok(Some((b, Encoding::Binary))),
                    Some(Ok(_)) => continue,
                };
            },
        }
    }
}
