//! Shared helpers of the node's integration tests: a real node on loopback
//! ephemeral ports with the real embedded store in a temporary directory, and raw
//! protocol clients over real sockets.
#![allow(dead_code, unreachable_pub, missing_docs)] // Each test binary uses a subset.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is the failure report.

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
    config
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
    pub async fn recv_until(&mut self, mut want: impl FnMut(&ServerFrame) -> bool) -> ServerFrame {
        loop {
            match self.recv().await {
                Some(f) if want(&f) => return f,
                Some(_) => {}
                None => panic!("connection closed while waiting"),
            }
        }
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

    pub async fn recv_until(&mut self, mut want: impl FnMut(&ServerFrame) -> bool) -> ServerFrame {
        loop {
            match self.recv().await {
                Some(f) if want(&f) => return f,
                Some(_) => {}
                None => panic!("connection closed while waiting"),
            }
        }
    }
}
