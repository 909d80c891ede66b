//! The WebSocket transport, at path `/ws`: a text message is one JSON frame, a
//! binary message one binary frame. WebSocket pings count as activity.
//!
//! Buffers are sized for many mostly idle connections: small read and write
//! buffers, message and frame size capped at `max_frame`. The upgrade (and the
//! TLS handshake under it, for `wss://`) must be over by the connection's
//! `hello` deadline: it has no time of its own.

use std::sync::Arc;

use bytes::Bytes;
use chorus_actors::SharedFrame;
use chorus_wire::{DecodeError, Encoding};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::{
    Accepted, FrameReader, FrameWriter, GatewayContext, ReadEvent, serve_connection, tls_accept,
};
use crate::tls::NodeTls;

/// What a WebSocket runs over: a TCP stream, or a TLS stream on one.
pub trait WsStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> WsStream for S {}

/// Reads WebSocket messages as frames.
pub struct WsReader<S> {
    stream: SplitStream<WebSocketStream<S>>,
    max_frame: u32,
}

impl<S: WsStream> FrameReader for WsReader<S> {
    async fn next(&mut self) -> ReadEvent {
        loop {
            return match self.stream.next().await {
                None => ReadEvent::Eof,
                Some(Ok(Message::Text(text))) => {
                    ReadEvent::Frame(Bytes::from(text), Encoding::Json)
                }
                Some(Ok(Message::Binary(bytes))) => ReadEvent::Frame(bytes, Encoding::Binary),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => ReadEvent::Activity,
                Some(Ok(Message::Close(_))) => ReadEvent::Eof,
                Some(Ok(Message::Frame(_))) => continue,
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, .. }))) => {
                    ReadEvent::Bad(DecodeError::TooLarge {
                        len: size as u64,
                        max: self.max_frame,
                    })
                }
                Some(Err(WsError::Utf8(e))) => {
                    ReadEvent::Bad(DecodeError::Malformed(format!("text is not UTF-8: {e}")))
                }
                Some(Err(WsError::Protocol(e))) => {
                    ReadEvent::Bad(DecodeError::Malformed(format!("websocket: {e}")))
                }
                Some(Err(WsError::Io(e))) => ReadEvent::Failed(e),
                Some(Err(e)) => ReadEvent::Failed(std::io::Error::other(e.to_string())),
            };
        }
    }

    /// JSON: a text message is legible to every WebSocket client (a browser could
    /// not read a binary bincode `error`), and JSON is the WebSocket default.
    fn encoding_before_hello(&self) -> Encoding {
        Encoding::Json
    }
}

/// Writes frames as WebSocket messages, one flush per batch.
pub struct WsWriter<S> {
    sink: SplitSink<WebSocketStream<S>, Message>,
}

impl<S: WsStream> FrameWriter for WsWriter<S> {
    async fn write_batch(
        &mut self,
        frames: &[SharedFrame],
        encoding: Encoding,
    ) -> std::io::Result<()> {
        for f in frames {
            let message = match encoding {
                Encoding::Binary => Message::Binary(f.bytes(encoding).clone()),
                // Validated as UTF-8 once per frame, then shared by every viewer.
                Encoding::Json => match f
                    .transport_form(|f| Utf8Bytes::try_from(f.bytes(Encoding::Json).clone()).ok())
                {
                    Some(Some(text)) => Message::Text(text),
                    // Our own JSON encoder only produces UTF-8; skip rather than panic.
                    _ => continue,
                },
            };
            self.sink
                .feed(message)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        self.sink
            .flush()
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    async fn close(&mut self) {
        let _ = self.sink.close().await;
    }
}

fn ws_config(max_frame: u32) -> WebSocketConfig {
    let max = max_frame as usize;
    WebSocketConfig::default()
        // The read buffer's first allocation, held by every idle connection; it grows
        // to a larger frame when one comes.
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_write_buffer_size(max.saturating_mul(4).max(64 * 1024))
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// Accepts WebSocket clients until shutdown; with `tls`, each speaks TLS first.
pub async fn run(
    listener: TcpListener,
    ctx: Arc<GatewayContext>,
    path: String,
    tls: Option<NodeTls>,
) {
    let path: Arc<str> = path.into();
    let transport = if tls.is_some() { "wss" } else { "ws" };
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = ctx.shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Over a cap: dropped before anything is read or allocated.
                let Some(admitted) = ctx.admit(peer, transport) else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (ctx, path) = (ctx.clone(), path.clone());
                // One task per kind of stream: a task holds the largest state its
                // future can reach, and a TLS stream is several KiB that an idle
                // `ws://` connection must not pay for.
                match tls.as_ref().map(NodeTls::client_acceptor) {
                    None => {
                        tokio::spawn(upgrade(stream, ctx, path, transport, admitted));
                    }
                    Some(acceptor) => {
                        tokio::spawn(async move {
                            let Some(stream) =
                                tls_accept(&acceptor, stream, admitted.hello_by, transport).await
                            else {
                                return;
                            };
                            upgrade(stream, ctx, path, transport, admitted).await;
                        });
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "websocket accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// The WebSocket upgrade at `path`, by the connection's `hello` deadline, then
/// the connection.
async fn upgrade<S: WsStream>(
    stream: S,
    ctx: Arc<GatewayContext>,
    path: Arc<str>,
    transport: &'static str,
    admitted: Accepted,
) {
    // The callback's signature is tungstenite's (`Callback::on_request`), so its
    // error cannot be boxed.
    #[allow(clippy::result_large_err)]
    let check_path = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() == &*path {
            Ok(resp)
        } else {
            let mut not_found = ErrorResponse::new(Some(format!(
                "no WebSocket endpoint here; use {}\n",
                &*path
            )));
            *not_found.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
            Err(not_found)
        }
    };
    let upgrade = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        check_path,
        Some(ws_config(ctx.max_frame)),
    );
    let deadline: Instant = admitted.hello_by;
    let ws = match tokio::time::timeout_at(deadline, upgrade).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "websocket upgrade failed");
            return;
        }
        Err(_) => {
            metrics::counter!("chorus_hello_timeouts_total").increment(1);
            return;
        }
    };
    let (sink, stream) = ws.split();
    let reader = WsReader {
        stream,
        max_frame: ctx.max_frame,
    };
    serve_connection(reader, WsWriter { sink }, ctx, transport, admitted).await;
}
