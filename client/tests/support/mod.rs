//! A scripted node for the SDK's tests: it accepts real TCP or WebSocket connections
//! and reads and writes frames with `chorus-wire`, one step of the script at a time.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::time::Duration;

use chorus_client::{ClientConfig, Event, Events, Transport};
use chorus_wire::codec::{Frame, TcpDecoder};
use chorus_wire::{
    ClientFrame, ConversationItem, Encoding, HeartbeatInfo, LimitsInfo, Message, PROTOCOL_VERSION,
    ServerFrame,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// How long any single step of a script may take before the test fails.
pub(crate) const STEP: Duration = Duration::from_secs(5);

/// Runs `fut` under [`STEP`], failing the test with `what` when it takes longer.
pub(crate) async fn step<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A listening scripted node.
pub(crate) struct Peer {
    listener: TcpListener,
    transport: Transport,
}

impl Peer {
    pub(crate) async fn bind(transport: Transport) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        Self {
            listener,
            transport,
        }
    }

    /// `host:port` to put in a client's endpoints.
    pub(crate) fn addr(&self) -> String {
        self.listener.local_addr().expect("local addr").to_string()
    }

    /// A client configuration for this node with quick reconnects and no heartbeat
    /// (tests that need the heartbeat turn it on).
    pub(crate) fn config(&self, token: &str) -> ClientConfig {
        let mut cfg = ClientConfig::new(self.addr(), self.transport, token);
        cfg.backoff_initial = Duration::from_millis(20);
        cfg.backoff_max = Duration::from_millis(100);
        cfg.request_timeout = Duration::from_secs(5);
        cfg.ping_interval = None;
        cfg
    }

    /// Accepts the next connection (with the WebSocket handshake on path `/ws`).
    pub(crate) async fn accept(&self) -> PeerConn {
        let (stream, _) = step("accept", self.listener.accept())
            .await
            .expect("accept");
        match self.transport {
            Transport::Tcp => PeerConn::Tcp {
                stream,
                decoder: TcpDecoder::new(1 << 20),
            },
            Transport::WsJson | Transport::WsBinary => {
                // The callback's signature (and its large error type) is tungstenite's.
                #[allow(clippy::result_large_err)]
                let check_path = |req: &Request, resp: Response| {
                    assert_eq!(req.uri().path(), "/ws", "the SDK connects to path /ws");
                    Ok(resp)
                };
                let ws = step(
                    "ws handshake",
                    tokio_tungstenite::accept_hdr_async(stream, check_path),
                )
                .await
                .expect("websocket handshake");
                PeerConn::Ws {
                    ws: Box::new(ws),
                    encoding: None,
                }
            }
        }
    }

    /// Accepts a connection and completes the handshake as user `user`.
    pub(crate) async fn accept_hello(&self, user: &str, session: &str) -> PeerConn {
        let mut conn = self.accept().await;
        match conn.recv().await {
            Some(ClientFrame::Hello {
                protocol, token, ..
            }) => {
                assert_eq!(protocol, PROTOCOL_VERSION);
                assert_eq!(token, user, "dev-mode token is the user id");
            }
            other => panic!("expected hello, got {other:?}"),
        }
        conn.send(&welcome(user, session)).await;
        conn
    }
}

pub(crate) fn welcome(user: &str, session: &str) -> ServerFrame {
    ServerFrame::Welcome {
        protocol: PROTOCOL_VERSION,
        user: user.into(),
        session: session.into(),
        node: "n1".into(),
        heartbeat: HeartbeatInfo {
            min_s: 1,
            max_s: 300,
            idle_timeout_s: 605,
        },
        limits: LimitsInfo {
            max_frame: 65_536,
            max_body: 4_096,
        },
    }
}

pub(crate) fn msg(conv: &str, seq: u64) -> Message {
    Message {
        conv: conv.into(),
        seq,
        id: format!("m{seq}"),
        from: "bob".into(),
        body: format!("body {seq}"),
        ts_ms: 1_700_000_000_000 + seq,
    }
}

/// The node's side of one connection.
pub(crate) enum PeerConn {
    Tcp {
        stream: TcpStream,
        decoder: TcpDecoder,
    },
    Ws {
        ws: Box<WebSocketStream<TcpStream>>,
        /// The encoding of the client's `hello`, which the node answers in.
        encoding: Option<Encoding>,
    },
}

impl PeerConn {
    /// The next client frame, or `None` when the client closed. Panics on bytes that
    /// are not a frame: the SDK must only send valid frames.
    pub(crate) async fn recv(&mut self) -> Option<ClientFrame> {
        step("peer recv", self.recv_inner()).await
    }

    async fn recv_inner(&mut self) -> Option<ClientFrame> {
        match self {
            Self::Tcp { stream, decoder } => loop {
                if let Some(frame) = decoder
                    .next_frame::<ClientFrame>()
                    .expect("a valid client frame")
                {
                    return Some(frame);
                }
                match stream.read_buf(decoder.buffer()).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            },
            Self::Ws { ws, encoding } => loop {
                let (bytes, enc) = match ws.next().await {
                    None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => return None,
                    Some(Ok(WsMessage::Text(t))) => (t.as_bytes().to_vec(), Encoding::Json),
                    Some(Ok(WsMessage::Binary(b))) => (b.to_vec(), Encoding::Binary),
                    Some(Ok(_)) => continue,
                };
                let frame =
                    ClientFrame::decode(&bytes, enc, 1 << 20).expect("a valid client frame");
                encoding.get_or_insert(enc);
                return Some(frame);
            },
        }
    }

    /// Expects `conversations` (the first connect's floor, or a resync) and answers it
    /// with `items`.
    pub(crate) async fn answer_conversations(&mut self, items: Vec<ConversationItem>) {
        match self.recv_no_ping().await {
            Some(ClientFrame::Conversations { reference, .. }) => {
                // A v1 node: the whole list, without `more`.
                self.send(&ServerFrame::ConversationList {
                    reference,
                    items,
                    more: chorus_wire::Trailing::ABSENT,
                })
                .await;
            }
            other => panic!("expected conversations, got {other:?}"),
        }
    }

    /// The next frame that is not a heartbeat `ping`.
    pub(crate) async fn recv_no_ping(&mut self) -> Option<ClientFrame> {
        loop {
            match self.recv().await {
                Some(ClientFrame::Ping { .. }) => continue,
                other => return other,
            }
        }
    }

    pub(crate) async fn send(&mut self, frame: &ServerFrame) {
        let result = match self {
            Self::Tcp { stream, .. } => stream
                .write_all(&frame.to_tcp())
                .await
                .map_err(|e| e.to_string()),
            Self::Ws { ws, encoding } => {
                let msg = match encoding.unwrap_or(Encoding::Json) {
                    Encoding::Json => WsMessage::text(frame.to_json()),
                    Encoding::Binary => WsMessage::binary(frame.to_binary()),
                };
                ws.send(msg).await.map_err(|e| e.to_string())
            }
        };
        result.expect("peer send");
    }

    /// Writes raw bytes as one frame: a TCP payload after its length prefix, or one
    /// binary WebSocket message.
    pub(crate) async fn send_raw(&mut self, payload: &[u8]) {
        match self {
            Self::Tcp { stream, .. } => {
                let len = u32::try_from(payload.len()).expect("small payload");
                stream
                    .write_all(&len.to_be_bytes())
                    .await
                    .expect("peer send");
                stream.write_all(payload).await.expect("peer send");
            }
            Self::Ws { ws, .. } => ws
                .send(WsMessage::binary(payload.to_vec()))
                .await
                .expect("peer send"),
        }
    }

    /// Drops the connection abruptly, as a crashed node would.
    pub(crate) fn kill(self) {
        drop(self);
    }
}

/// The next event, failing the test if none comes in time.
pub(crate) async fn next_event(events: &mut Events) -> Event {
    step("next event", events.next())
        .await
        .expect("the event stream is open")
}

/// The next event that is a message, skipping connection changes; the message's seq.
pub(crate) async fn next_message(events: &mut Events) -> Message {
    loop {
        if let Event::Message(m) = next_event(events).await {
            return m;
        }
    }
}
