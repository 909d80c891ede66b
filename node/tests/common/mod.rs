//! Shared helpers of the node's integration tests: a real node on loopback
//! ephemeral ports with the real embedded store in a temporary directory, and raw
//! protocol clients over real sockets.
#![allow(dead_code, unreachable_pub, missing_docs)] // Each test binary uses a subset.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is the failure report.

pub mod certs;
pub mod process;

use std::time::Duration;

use chorus_config::Config;
use chorus_node::Node;
use chorus_wire::codec::{Frame, TcpDecoder};
use chorus_wire::{ClientFrame, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// How long a test waits for an expected frame before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// A node under test and the directory holding its data.
pub struct TestNode {
    pub node: Node,
    pub dir: tempfile::TempDir,
}

/// A config for a test node: ephemeral loopback ports, data in `dir`.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.listen.tcp = "127.0.0.1:0".into();
    config.listen.ws = "127.0.0.1:0".into();
    config.listen.admin = "127.0.0.1:0".into();
    config.storage.path = dir.to_path_buf();
    use_backend_under_test(&mut config);
    config
}

/// The store the suite runs against: `embedded` by default; with
/// `CHORUS_TEST_BACKEND=scylla` a real Cassandra/ScyllaDB at `CHORUS_CASSANDRA`
/// (default `127.0.0.1:9042`), in a fresh keyspace per node so tests never share
/// conversations, at the consistency `CHORUS_TEST_CONSISTENCY` names (`one`,
/// the default; `local_quorum`, the production setting, whose lightweight
/// transactions run at `LOCAL_SERIAL`; `quorum`). `scripts/test` runs the
/// end-to-end tests once per backend, and once more at `local_quorum`.
pub fn use_backend_under_test(config: &mut Config) {
    if std::env::var("CHORUS_TEST_BACKEND").as_deref() == Ok("scylla") {
        let contact = std::env::var("CHORUS_CASSANDRA").unwrap_or_else(|_| "127.0.0.1:9042".into());
        config.storage.backend = chorus_config::StorageBackend::Scylla;
        config.storage.contact_points = vec![contact];
        config.storage.keyspace = format!("chorus_test_{:016x}", rand::random::<u64>());
        config.storage.consistency = match std::env::var("CHORUS_TEST_CONSISTENCY").as_deref() {
            Ok("local_quorum") => chorus_config::Consistency::LocalQuorum,
            Ok("quorum") => chorus_config::Consistency::Quorum,
            Ok("one") | Err(_) => chorus_config::Consistency::One,
            Ok(other) => panic!("CHORUS_TEST_CONSISTENCY={other}: one, local_quorum or quorum"),
        };
        config.storage.replication_factor = 1;
    }
}

pub async fn start_node() -> TestNode {
    start_node_with(|_| {}).await
}

pub async fn start_node_with(adjust: impl FnOnce(&mut Config)) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    adjust(&mut config);
    let node = Node::start(config).await.expect("node starts");
    TestNode { node, dir }
}

/// A raw TCP client speaking length-prefixed binary frames.
pub struct RawTcp {
    pub stream: TcpStream,
    decoder: TcpDecoder,
}

impl RawTcp {
    pub async fn connect(node: &TestNode) -> Self {
        let stream = TcpStream::connect(node.node.addrs().tcp).await.unwrap();
        Self {
            stream,
            decoder: TcpDecoder::new(1 << 20),
        }
    }

    pub async fn login(node: &TestNode, user: &str) -> Self {
        Self::login_at(node.node.addrs().tcp, user).await
    }

    /// Logs in as `user` at a TCP listener (of a node in this process or another).
    pub async fn login_at(addr: std::net::SocketAddr, user: &str) -> Self {
        let mut c = Self::from_stream(TcpStream::connect(addr).await.unwrap());
        c.send(&ClientFrame::Hello {
            protocol: 1,
            token: user.into(),
            device: None,
        })
        .await;
        match c.recv().await {
            Some(ServerFrame::Welcome { .. }) => c,
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    pub async fn send(&mut self, frame: &ClientFrame) {
        self.stream.write_all(&frame.to_tcp()).await.unwrap();
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next frame, or None when the server closed the connection.
    pub async fn recv(&mut self) -> Option<ServerFrame> {
        tokio::time::timeout(WAIT, async {
            loop {
                match self.decoder.next_frame::<ServerFrame>() {
                    Ok(Some(f)) => return Some(f),
                    Ok(None) => {}
                    Err(e) => panic!("server sent a bad frame: {e}"),
                }
                match self.stream.read_buf(self.decoder.buffer()).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("a frame or close within the wait")
    }

    /// Frames until one matches, skipping others.
    pub async fn recv_until(&mut self, want: impl FnMut(&ServerFrame) -> bool) -> ServerFrame {
        recv_until(self, want).await
    }
}

/// A raw WebSocket client speaking JSON text frames.
pub struct RawWs {
    pub ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
}

impl RawWs {
    pub async fn connect(node: &TestNode) -> Self {
        let url = format!("ws://{}/ws", node.node.addrs().ws);
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self { ws }
    }

    pub async fn login(node: &TestNode, user: &str) -> Self {
        let mut c = Self::connect(node).await;
        c.send(&ClientFrame::Hello {
            protocol: 1,
            token: user.into(),
            device: None,
        })
        .await;
        match c.recv().await {
            Some(ServerFrame::Welcome { .. }) => c,
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    pub async fn send(&mut self, frame: &ClientFrame) {
        self.ws
            .send(WsMessage::text(frame.to_json()))
            .await
            .unwrap();
    }

    pub async fn send_text(&mut self, text: &str) {
        let _ = self.ws.send(WsMessage::text(text.to_string())).await;
    }

    pub async fn recv_json(&mut self) -> Option<serde_json::Value> {
        tokio::time::timeout(WAIT, async {
            loop {
                match self.ws.next().await {
                    Some(Ok(WsMessage::Text(t))) => {
                        return Some(serde_json::from_str(t.as_str()).unwrap());
                    }
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return None,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await
        .expect("a frame or close within the wait")
    }

    pub async fn recv(&mut self) -> Option<ServerFrame> {
        let v = self.recv_json().await?;
        Some(ServerFrame::from_json(&v.to_string()).expect("server JSON decodes"))
    }

    pub async fn recv_until(&mut self, want: impl FnMut(&ServerFrame) -> bool) -> ServerFrame {
        recv_until(self, want).await
    }
}

/// What the raw clients have in common, so one test can mix TCP-binary and WS-JSON
/// sessions and the helpers below serve both.
#[allow(async_fn_in_trait)] // Test-only trait, used on one task: no `Send` bound wanted.
pub trait RawClient {
    /// Sends one frame.
    async fn put(&mut self, frame: &ClientFrame);
    /// The next frame, or None when the server closed the connection.
    async fn next(&mut self) -> Option<ServerFrame>;
}

impl RawClient for RawTcp {
    async fn put(&mut self, frame: &ClientFrame) {
        self.send(frame).await;
    }
    async fn next(&mut self) -> Option<ServerFrame> {
        self.recv().await
    }
}

impl RawClient for RawWs {
    async fn put(&mut self, frame: &ClientFrame) {
        self.send(frame).await;
    }
    async fn next(&mut self) -> Option<ServerFrame> {
        self.recv().await
    }
}

/// Frames until one matches `want`, skipping others; the connection must stay open.
pub async fn recv_until(
    c: &mut impl RawClient,
    mut want: impl FnMut(&ServerFrame) -> bool,
) -> ServerFrame {
    loop {
        match c.next().await {
            Some(f) if want(&f) => return f,
            Some(_) => {}
            None => panic!("connection closed while waiting"),
        }
    }
}

/// The next frame; the connection must stay open.
pub async fn next_frame(c: &mut impl RawClient) -> ServerFrame {
    c.next().await.expect("connection closed while waiting")
}

/// Sends a ping and returns every frame that arrived before its pong. Frames are
/// queued to a session in order, so anything already queued shows up here: this is
/// how a test shows that something did *not* arrive, without sleeping.
pub async fn frames_before_pong(c: &mut impl RawClient) -> Vec<ServerFrame> {
    c.put(&ClientFrame::Ping { interval_s: None }).await;
    let mut before = Vec::new();
    loop {
        match next_frame(c).await {
            ServerFrame::Pong => return before,
            f => before.push(f),
        }
    }
}

/// Sends `send` without waiting for its answer.
pub async fn send_msg(c: &mut impl RawClient, id: &str, to: &str, body: &str) {
    c.put(&ClientFrame::Send {
        id: id.into(),
        to: to.into(),
        body: body.into(),
    })
    .await;
}

/// The `ack` or `reject` of the send `id`, skipping other frames.
pub async fn send_answer(c: &mut impl RawClient, id: &str) -> ServerFrame {
    loop {
        let f = next_frame(c).await;
        if matches!(&f, ServerFrame::Ack { id: i, .. } | ServerFrame::Reject { id: i, .. } if i == id)
        {
            return f;
        }
    }
}

/// The `(conv, seq)` of the ack of send `id`; a reject fails the test.
pub async fn ack_of(c: &mut impl RawClient, id: &str) -> (String, u64) {
    match send_answer(c, id).await {
        ServerFrame::Ack { conv, seq, .. } => (conv, seq),
        other => panic!("expected the ack of {id}, got {other:?}"),
    }
}

/// Sends a message and waits for its ack: `(conv, seq)`.
pub async fn send_acked(c: &mut impl RawClient, id: &str, to: &str, body: &str) -> (String, u64) {
    send_msg(c, id, to, body).await;
    ack_of(c, id).await
}

/// The reject code of send `id`; an ack fails the test.
pub async fn reject_of(c: &mut impl RawClient, id: &str) -> chorus_wire::ErrorCode {
    match send_answer(c, id).await {
        ServerFrame::Reject { code, .. } => code,
        other => panic!("expected a reject of {id}, got {other:?}"),
    }
}

/// The next `msg`, skipping other frames.
pub async fn next_msg(c: &mut impl RawClient) -> chorus_wire::Message {
    loop {
        if let ServerFrame::Msg(m) = next_frame(c).await {
            return m;
        }
    }
}

/// The `ref` a server frame answers, if it answers one.
pub fn answered_ref(f: &ServerFrame) -> Option<&str> {
    match f {
        ServerFrame::HistoryPage { reference, .. }
        | ServerFrame::ConversationList { reference, .. }
        | ServerFrame::Group { reference, .. }
        | ServerFrame::Ok { reference }
        | ServerFrame::LiveJoined { reference, .. } => Some(reference),
        ServerFrame::Error { reference, .. } => reference.as_deref(),
        _ => None,
    }
}

/// Sends a request and returns the frame answering its `ref`, skipping others.
pub async fn request(c: &mut impl RawClient, reference: &str, frame: &ClientFrame) -> ServerFrame {
    c.put(frame).await;
    loop {
        let f = next_frame(c).await;
        if answered_ref(&f) == Some(reference) {
            return f;
        }
    }
}

/// The `code` of an `error` answer; anything else fails the test.
pub fn error_code(f: ServerFrame) -> chorus_wire::ErrorCode {
    match f {
        ServerFrame::Error { code, .. } => code,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A `history` request: `Ok((messages, more))` or `Err(error code)`.
pub async fn history(
    c: &mut impl RawClient,
    conv: &str,
    after: Option<u64>,
    before: Option<u64>,
    limit: Option<u32>,
) -> Result<(Vec<chorus_wire::Message>, bool), chorus_wire::ErrorCode> {
    let frame = ClientFrame::History {
        reference: "h".into(),
        conv: conv.into(),
        after,
        before,
        limit,
    };
    match request(c, "h", &frame).await {
        ServerFrame::HistoryPage {
            conv: page_conv,
            messages,
            more,
            ..
        } => {
            assert_eq!(page_conv, conv, "history_page names the asked conv");
            Ok((messages, more))
        }
        ServerFrame::Error { code, .. } => Err(code),
        other => panic!("expected history_page or error, got {other:?}"),
    }
}

/// The user's `conversation_list` items.
pub async fn conversations(c: &mut impl RawClient) -> Vec<chorus_wire::ConversationItem> {
    let frame = ClientFrame::Conversations {
        reference: "convs".into(),
        page: chorus_wire::Trailing::ABSENT,
    };
    match request(c, "convs", &frame).await {
        ServerFrame::ConversationList { items, .. } => items,
        other => panic!("expected conversation_list, got {other:?}"),
    }
}

impl RawTcp {
    /// A raw client over an already connected stream (e.g. one with custom socket
    /// options).
    pub fn from_stream(stream: TcpStream) -> Self {
        Self {
            stream,
            decoder: TcpDecoder::new(1 << 20),
        }
    }
}

/// `GET path` on the node's admin listener over a raw HTTP/1.0 connection (so the
/// body is neither chunked nor kept alive): the status code and the body.
pub async fn admin_get(node: &TestNode, path: &str) -> (u16, String) {
    admin_get_at(node.node.addrs().admin, path).await
}

/// `GET path` of the admin listener at `admin` (of a node in this process or
/// another): `(status, body)`.
pub async fn admin_get_at(admin: std::net::SocketAddr, path: &str) -> (u16, String) {
    tokio::time::timeout(WAIT, async {
        let mut stream = TcpStream::connect(admin).await.unwrap();
        let request = format!("GET {path} HTTP/1.0\r\nHost: chorus\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8(response).expect("admin answers UTF-8");
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("an HTTP status line");
        (status, body.to_string())
    })
    .await
    .expect("the admin listener answers within the wait")
}

/// The sum of the `/metrics` samples at `admin` whose line starts with
/// `prefix`: a metric's name, or its name and the start of its labels.
pub async fn metric_at(admin: std::net::SocketAddr, prefix: &str) -> f64 {
    let (status, text) = admin_get_at(admin, "/metrics").await;
    assert_eq!(status, 200, "/metrics answers 200");
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The value of metric `name` in `/metrics`, summed over its label sets; 0 when the
/// metric has not been recorded yet.
pub async fn metric(node: &TestNode, name: &str) -> f64 {
    let (status, text) = admin_get(node, "/metrics").await;
    assert_eq!(status, 200, "/metrics answers 200");
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The next chat message an SDK client's event stream yields within `within`,
/// skipping every other event.
pub async fn next_sdk_message(
    events: &mut chorus_client::Events,
    within: Duration,
) -> chorus_wire::Message {
    tokio::time::timeout(within, async {
        loop {
            match events.next().await {
                Some(chorus_client::Event::Message(m)) => return m,
                Some(_) => {}
                None => panic!("events ended"),
            }
        }
    })
    .await
    .expect("a message in time")
}
