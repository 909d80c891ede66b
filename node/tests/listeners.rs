//! The listener layer against hostile clients, over real sockets: one `hello`
//! deadline from the accept (slowloris on the WebSocket upgrade and the TLS
//! handshake), header and idle timeouts and a cap on the admin listener,
//! connection caps (in all, per address, per user) and a drain that sends new
//! clients away.
//!
//! Time-dependent cases run on tokio's paused clock (one current-thread runtime
//! for the node and its clients, as in `heartbeat.rs`): a deadline is checked to
//! the millisecond, with no wall-clock waits.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use chorus_wire::codec::Frame;
use chorus_wire::{ClientFrame, ErrorCode, ServerFrame};
use common::certs::TestCa;
use common::{RawTcp, TestNode, admin_get, metric, start_node_with};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::Role;

const ADMIN_TOKEN: &str = "listeners-test-admin-token";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A WebSocket upgrade request for `/ws`.
const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: chorus\r\nUpgrade: websocket\r\n\
                       Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                       Sec-WebSocket-Version: 13\r\n\r\n";

/// Reads until the end of an HTTP response header; returns it.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.unwrap();
        assert_eq!(n, 1, "the node closed during the upgrade");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Whether the peer has closed `stream`: a read returns end of file (or an
/// error) instead of waiting.
async fn closed_now(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Waits (on the paused clock) until the peer closes `stream`; returns when.
async fn closed_at(stream: &mut TcpStream) -> Instant {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(secs(600), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Instant::now(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("still open after 600 s"),
        }
    }
}

// ---------------------------------------------------------------------------------
// Defect 5: one hello deadline from the accept; the admin listener's timeouts.
// ---------------------------------------------------------------------------------

/// Before: the upgrade had 10 s of its own and the hello's 5 s started after it,
/// so a client that took 4 s to upgrade could say hello 9 s after connecting.
#[tokio::test(start_paused = true)]
async fn a_websocket_hello_is_due_five_seconds_after_connecting_not_after_the_upgrade() {
    let node = start_node_with(|_| {}).await;
    let connected = Instant::now();
    let mut stream = TcpStream::connect(node.node.addrs().ws).await.unwrap();
    let (first, rest) = UPGRADE.split_at(20);
    stream.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(secs(4)).await;
    stream.write_all(rest.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");

    let mut ws = WebSocketStream::from_raw_socket(stream, Role::Client, None).await;
    let answer = tokio::time::timeout(secs(60), ws.next())
        .await
        .expect("an answer before the wait ends");
    let at = Instant::now() - connected;
    let Some(Ok(WsMessage::Text(text))) = answer else {
        panic!("expected the hello timeout's error, got {answer:?}");
    };
    match ServerFrame::from_json(text.as_str()).unwrap() {
        ServerFrame::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::Unauthenticated);
            assert!(message.contains("no hello within 5 s"), "{message}");
        }
        other => panic!("expected error, got {other:?}"),
    }
    assert_eq!(
        at.as_secs(),
        5,
        "the deadline counts from the connect: {at:?}"
    );
}

/// A client that trickles its upgrade request is cut at the hello deadline.
#[tokio::test(start_paused = true)]
async fn a_trickled_websocket_upgrade_is_cut_at_the_hello_deadline() {
    let node = start_node_with(|_| {}).await;
    let connected = Instant::now();
    let mut stream = TcpStream::connect(node.node.addrs().ws).await.unwrap();
    let trickle = async {
        for byte in UPGRADE.bytes().take(UPGRADE.len() - 1) {
            if stream.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(900)).await;
            if closed_now(&mut stream).await {
                break;
            }
        }
    };
    tokio::time::timeout(secs(120), trickle).await.unwrap();
    let at = Instant::now() - connected;
    assert!(
        at >= Duration::from_millis(5_000) && at < Duration::from_millis(5_900),
        "closed {at:?} after connecting"
    );
}

/// A TLS client that never finishes its handshake is cut at the hello deadline.
#[tokio::test(start_paused = true)]
async fn a_stalled_tls_handshake_is_cut_at_the_hello_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("listeners CA");
    let issued = ca.issue(&["127.0.0.1"], dir.path(), "node");
    let node = start_node_with(|c| {
        c.tls.cert = Some(issued.cert.clone());
        c.tls.key = Some(issued.key.clone());
        // Plain HTTP, so that the test reads /metrics as the others do.
        c.tls.admin = false;
    })
    .await;
    for addr in [node.node.addrs().tcp, node.node.addrs().ws] {
        let connected = Instant::now();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        // Half of nothing: a TLS record header that never gets its body.
        stream
            .write_all(&[0x16, 0x03, 0x01, 0x00, 0x40])
            .await
            .unwrap();
        let at = closed_at(&mut stream).await - connected;
        assert_eq!(at.as_secs(), 5, "{addr}: closed {at:?} after connecting");
    }
    // Metrics are process-wide, shared with the other tests of this binary.
    assert!(metric(&node, "chorus_tls_handshake_failures_total").await >= 2.0);
}

/// Before: 100 connections that send half a header were held forever.
#[tokio::test(start_paused = true)]
async fn slow_admin_headers_are_cut_and_the_admin_listener_is_capped() {
    let node = start_node_with(|_| {}).await;
    let admin = node.node.addrs().admin;
    let opened = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..100 {
        let mut stream = TcpStream::connect(admin).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: chorus\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    // Past the cap of 64, connections are closed at once.
    tokio::task::yield_now().await;
    let mut refused = 0;
    for stream in &mut slow {
        if closed_now(stream).await {
            refused += 1;
        }
    }
    assert_eq!(
        refused, 36,
        "the 36 connections past the cap of 64 are closed at once"
    );
    // The others when their header is 5 s late.
    for stream in &mut slow {
        let at = closed_at(stream).await - opened;
        assert!(
            at <= Duration::from_millis(5_100),
            "closed {at:?} after opening"
        );
    }
    assert!(Instant::now() - opened >= secs(5));
    let (status, body) = admin_get(&node, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert!(metric(&node, "chorus_admin_connections_refused_total").await >= 36.0);
}

/// A request whose body stops coming is cut after the idle timeout; one that
/// keeps its connection open between requests is cut after the header timeout.
#[tokio::test(start_paused = true)]
async fn stalled_admin_bodies_and_idle_keepalives_are_cut() {
    let node = start_node_with(|c| c.admin.token = Some(ADMIN_TOKEN.into())).await;
    let admin = node.node.addrs().admin;

    let started = Instant::now();
    let mut stalled = TcpStream::connect(admin).await.unwrap();
    let head = format!(
        "POST /admin/filter/test HTTP/1.1\r\nHost: chorus\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Length: 100\r\n\r\nten bytes."
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let at = closed_at(&mut stalled).await - started;
    assert_eq!(
        at.as_secs(),
        30,
        "idle timeout: closed {at:?} after the last byte"
    );

    let mut kept = TcpStream::connect(admin).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: chorus\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 256];
    let n = kept.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    let answered = Instant::now();
    let at = closed_at(&mut kept).await - answered;
    assert_eq!(
        at.as_secs(),
        5,
        "an idle kept-alive connection: closed {at:?} after its answer"
    );
    assert!(metric(&node, "chorus_admin_timeouts_total").await >= 2.0);
}

// ---------------------------------------------------------------------------------
// Defect 6: connection caps.
// ---------------------------------------------------------------------------------

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Sends `hello` as `user` and returns the answer (`None`: closed without one).
async fn hello(stream: TcpStream, user: &str) -> (RawTcp, Option<ServerFrame>) {
    let mut c = RawTcp::from_stream(stream);
    c.send_raw(
        &ClientFrame::Hello {
            protocol: 1,
            token: user.into(),
            device: None,
        }
        .to_tcp(),
    )
    .await;
    let answer = c.recv().await;
    (c, answer)
}

/// Logs in from `from`; whether a `welcome` came.
async fn logs_in(from: &str, node: &TestNode, user: &str) -> bool {
    let stream = connect_from(from, node.node.addrs().tcp).await;
    matches!(
        hello(stream, user).await.1,
        Some(ServerFrame::Welcome { .. })
    )
}

/// Before: 2,300 silent connections from one address starved the node, and a
/// second address logged in 1 time out of 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_from_one_address_do_not_starve_another() {
    let node = start_node_with(|c| {
        // Long enough that no silent connection is closed for silence while the
        // test counts them.
        c.limits.hello_timeout_ms = 600_000;
    })
    .await;
    let tcp = node.node.addrs().tcp;
    let mut silent = Vec::new();
    for _ in 0..2_300 {
        silent.push(connect_from("127.0.0.2", tcp).await);
    }
    let mut ok = 0;
    for _ in 0..4 {
        if logs_in("127.0.0.3", &node, &format!("bystander{ok}")).await {
            ok += 1;
        }
    }
    assert_eq!(ok, 4, "the second address logs in every time");

    // Exactly the default cap of 256 were kept; the others were closed unread.
    let mut kept = 0;
    let mut closed = 0;
    for (i, stream) in silent.into_iter().enumerate() {
        match hello(stream, &format!("silent{i}")).await.1 {
            Some(ServerFrame::Welcome { .. }) => kept += 1,
            None => closed += 1,
            Some(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((kept, closed), (256, 2_044));
    assert!(metric(&node, "chorus_connections_refused_total").await >= 2_044.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_address_cap_spares_exempt_addresses() {
    let node = start_node_with(|c| {
        c.connections.max_per_ip = 4;
        c.connections.per_ip_exempt = vec!["127.0.0.4".into(), "127.0.9.0/24".into()];
    })
    .await;
    let mut held = Vec::new();
    for (from, n) in [("127.0.0.4", 10), ("127.0.9.7", 10)] {
        for i in 0..n {
            let (c, answer) = hello(
                connect_from(from, node.node.addrs().tcp).await,
                &format!("lb{from}-{i}"),
            )
            .await;
            assert!(
                matches!(answer, Some(ServerFrame::Welcome { .. })),
                "{from} #{i}: {answer:?}"
            );
            held.push(c);
        }
    }
    let mut four = Vec::new();
    for i in 0..4 {
        let (c, answer) = hello(
            connect_from("127.0.0.5", node.node.addrs().tcp).await,
            &format!("q{i}"),
        )
        .await;
        assert!(matches!(answer, Some(ServerFrame::Welcome { .. })));
        four.push(c);
    }
    assert!(
        !logs_in("127.0.0.5", &node, "fifth").await,
        "the fifth from one address is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_total_cap_refuses_every_address_and_frees_places_on_close() {
    let node = start_node_with(|c| {
        c.connections.max_total = 6;
        c.connections.max_per_ip = 6;
    })
    .await;
    let tcp = node.node.addrs().tcp;
    let mut held = Vec::new();
    for i in 0..6 {
        let (c, answer) = hello(connect_from("127.0.0.6", tcp).await, &format!("u{i}")).await;
        assert!(matches!(answer, Some(ServerFrame::Welcome { .. })));
        held.push(c);
    }
    // A WebSocket from another address is over the same cap: closed unread.
    let ws = connect_from("127.0.0.7", node.node.addrs().ws).await;
    let mut ws = ws;
    assert!(
        closed_at_once(&mut ws).await,
        "the WebSocket listener shares the cap"
    );
    assert!(!logs_in("127.0.0.7", &node, "late").await);

    // A place comes back when a connection closes.
    drop(held.pop());
    let mut admitted = false;
    for _ in 0..1_000 {
        if logs_in("127.0.0.7", &node, "late").await {
            admitted = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(admitted, "the closed connection's place was given back");
    let refused = metric(&node, "chorus_connections_refused_total").await;
    assert!(refused >= 2.0, "{refused}");
}

/// Whether `stream` is closed by the node without a byte being sent.
async fn closed_at_once(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(common::WAIT, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_over_the_session_cap_gets_overloaded_and_nobody_else_does() {
    let node = start_node_with(|c| c.connections.max_sessions_per_user = 3).await;
    let mut alice = Vec::new();
    for _ in 0..3 {
        alice.push(RawTcp::login(&node, "alice").await);
    }
    let (mut fourth, answer) = hello(
        TcpStream::connect(node.node.addrs().tcp).await.unwrap(),
        "alice",
    )
    .await;
    match answer {
        Some(ServerFrame::Error { code, message, .. }) => {
            assert_eq!(code, ErrorCode::Overloaded);
            assert!(message.contains("3 sessions"), "{message}");
        }
        other => panic!("expected error overloaded, got {other:?}"),
    }
    assert_eq!(fourth.recv().await, None, "then the connection is closed");
    let _bob = RawTcp::login(&node, "bob").await;
    // Alice's sessions are untouched.
    for c in &mut alice {
        c.send(&ClientFrame::Ping { interval_s: None }).await;
        assert_eq!(c.recv().await, Some(ServerFrame::Pong));
    }
    // A closed session gives its place back.
    drop(alice.pop());
    let mut admitted = false;
    for _ in 0..1_000 {
        let (_c, answer) = hello(
            TcpStream::connect(node.node.addrs().tcp).await.unwrap(),
            "alice",
        )
        .await;
        if matches!(answer, Some(ServerFrame::Welcome { .. })) {
            admitted = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(admitted);
    assert!(metric(&node, "chorus_connections_refused_total").await >= 1.0);
}

// ---------------------------------------------------------------------------------
// Defect 7: a draining node sends new clients away.
// ---------------------------------------------------------------------------------

async fn admin_post(node: &TestNode, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(node.node.addrs().admin).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: chorus\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// Before: a client connecting during a drain got `welcome`, was then cut
/// without `goaway`, and `/healthz` stayed 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_during_a_drain_gets_goaway_and_healthz_says_draining() {
    let node = start_node_with(|c| c.admin.token = Some(ADMIN_TOKEN.into())).await;
    let mut before = RawTcp::login(&node, "early").await;
    assert_eq!(admin_get(&node, "/healthz").await.0, 200);
    let (status, body) = admin_post(&node, "/admin/drain").await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = admin_get(&node, "/healthz").await;
    assert_eq!((status, body.as_str()), (503, "draining\n"));

    let goaway = |f: Option<ServerFrame>| match f {
        Some(ServerFrame::Goaway {
            reason,
            reconnect_after_ms,
            nodes,
        }) => {
            assert!(reason.contains("draining"), "{reason}");
            assert_eq!(reconnect_after_ms, 1_000);
            assert!(
                nodes.is_empty(),
                "a single node has nowhere to send clients: {nodes:?}"
            );
        }
        other => panic!("expected goaway, got {other:?}"),
    };
    let (mut late, answer) = hello(
        TcpStream::connect(node.node.addrs().tcp).await.unwrap(),
        "late",
    )
    .await;
    goaway(answer);
    assert_eq!(late.recv().await, None, "closed after the goaway");

    let url = format!("ws://{}/ws", node.node.addrs().ws);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let hello_json = ClientFrame::Hello {
        protocol: 1,
        token: "late-ws".into(),
        device: None,
    }
    .to_json();
    ws.send(WsMessage::text(hello_json)).await.unwrap();
    let Some(Ok(WsMessage::Text(text))) = ws.next().await else {
        panic!("expected a text frame");
    };
    goaway(Some(ServerFrame::from_json(text.as_str()).unwrap()));

    // The SDK takes a goaway to its hello as "go elsewhere", not as a failure of
    // the node: with nowhere else to go, connecting fails with the goaway.
    let cfg = chorus_client::ClientConfig::new(
        node.node.addrs().tcp.to_string(),
        chorus_client::Transport::Tcp,
        "sdk",
    );
    match chorus_client::Client::connect(cfg).await {
        Err(chorus_client::ClientError::Goaway { nodes }) => assert!(nodes.is_empty()),
        other => panic!("expected the goaway, got {:?}", other.map(|_| ())),
    }

    // The session that was there before the drain got its goaway too.
    let frame = before
        .recv_until(|f| matches!(f, ServerFrame::Goaway { .. }))
        .await;
    goaway(Some(frame));
    assert!(metric(&node, "chorus_connections_refused_total").await >= 2.0);
}
