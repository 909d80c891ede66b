//! Hostile and broken input (docs/protocol.md §7.1, §8), over real sockets to a real
//! node: every case gets the answer the contract names, and a well-behaved pair of
//! clients connected before the attack keeps chatting during or after it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chorus_node::auth::{Roles, issue_token};
use chorus_wire::codec::{Frame, TcpDecoder};
use chorus_wire::{ClientFrame, ErrorCode, ServerFrame};
use common::{RawTcp, RawWs, TestNode, WAIT, admin_get, metric, start_node, start_node_with};
use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Two well-behaved TCP clients, `calm-a` and `calm-b`, connected before an attack.
struct Bystanders {
    a: RawTcp,
    b: RawTcp,
    sent: u32,
}

impl Bystanders {
    async fn connect(node: &TestNode) -> Self {
        Self::new(
            RawTcp::login(node, "calm-a").await,
            RawTcp::login(node, "calm-b").await,
        )
    }

    /// From clients already welcomed as `calm-a` and `calm-b`.
    fn new(a: RawTcp, b: RawTcp) -> Self {
        Self { a, b, sent: 0 }
    }

    /// One `send` → `ack` → `msg` round trip from `calm-a` to `calm-b`.
    async fn round_trip(&mut self) {
        self.sent += 1;
        let id = format!("calm-{}", self.sent);
        let body = format!("still here, #{}", self.sent);
        self.a
            .send(&ClientFrame::Send {
                id: id.clone(),
                to: "user:calm-b".into(),
                body: body.clone(),
            })
            .await;
        let ServerFrame::Ack { id: acked, seq, .. } = self
            .a
            .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
            .await
        else {
            unreachable!()
        };
        assert_eq!(acked, id);
        // An attack may also have written to calm-b: wait for this message.
        let ServerFrame::Msg(m) = self
            .b
            .recv_until(|f| matches!(f, ServerFrame::Msg(m) if m.from == "calm-a" && m.id == id))
            .await
        else {
            unreachable!()
        };
        assert_eq!(
            (m.id.as_str(), m.seq, m.from.as_str(), m.body.as_str()),
            (id.as_str(), seq, "calm-a", body.as_str())
        );
    }
}

fn hello(token: &str) -> ClientFrame {
    ClientFrame::Hello {
        protocol: 1,
        token: token.into(),
        device: None,
    }
}

fn send(id: &str, to: &str, body: &str) -> ClientFrame {
    ClientFrame::Send {
        id: id.into(),
        to: to.into(),
        body: body.into(),
    }
}

/// `payload` behind a correct TCP length prefix.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// A TCP connection that has sent `hello` with `token` and read nothing yet.
async fn tcp_hello(node: &TestNode, token: &str) -> RawTcp {
    let mut c = RawTcp::connect(node).await;
    c.send(&hello(token)).await;
    c
}

/// The server answers `error` with one of `codes`, then closes the connection
/// (`recv` itself fails the test if neither happens within the wait).
async fn expect_tcp_error_then_close(c: &mut RawTcp, codes: &[ErrorCode], case: &str) {
    match c.recv().await {
        Some(ServerFrame::Error { code, .. }) if codes.contains(&code) => {}
        other => panic!("{case}: expected error {codes:?}, got {other:?}"),
    }
    match c.recv().await {
        None => {}
        Some(other) => panic!("{case}: expected a close after the error, got {other:?}"),
    }
}

/// The WebSocket-JSON equivalent of [`expect_tcp_error_then_close`].
async fn expect_ws_error_then_close(c: &mut RawWs, code: ErrorCode, case: &str) {
    match c.recv_json().await {
        Some(v) if v["type"] == "error" && v["code"] == code.as_str() => {}
        other => panic!("{case}: expected error {}, got {other:?}", code.as_str()),
    }
    match c.recv_json().await {
        None => {}
        Some(other) => panic!("{case}: expected a close after the error, got {other}"),
    }
}

/// SplitMix64: a fixed, dependency-free generator, so that every seed replays the
/// same bytes on every run and platform.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> usize {
        usize::try_from(self.next_u64() % n).unwrap()
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64().to_le_bytes()[0]).collect()
    }
}

#[tokio::test]
async fn random_bytes_on_tcp_get_an_error_then_a_close() {
    let node = start_node().await;
    let mut calm = Bystanders::connect(&node).await;
    for seed in 1..=8u64 {
        let mut rng = SplitMix64(seed);

        // Raw noise: its first four bytes are a length prefix, nearly always over the
        // limit. The half-close covers a prefix under it: the node must not wait.
        let len = 1 + rng.below(4096);
        let noise = rng.bytes(len);
        let mut c = RawTcp::connect(&node).await;
        c.send_raw(&noise).await;
        let _ = c.stream.shutdown().await;
        let case = format!("seed {seed}: {len} random bytes");
        expect_tcp_error_then_close(&mut c, &[ErrorCode::BadFrame, ErrorCode::TooLarge], &case)
            .await;

        // Noise in a well-formed frame, before `hello` and after `welcome`.
        let len = 16 + rng.below(512);
        let payload = framed(&rng.bytes(len));
        let mut c = RawTcp::connect(&node).await;
        c.send_raw(&payload).await;
        let case = format!("seed {seed}: a {len}-byte random frame before hello");
        expect_tcp_error_then_close(&mut c, &[ErrorCode::BadFrame], &case).await;

        let mut c = RawTcp::login(&node, "noisy").await;
        c.send_raw(&payload).await;
        let case = format!("seed {seed}: a {len}-byte random frame after welcome");
        expect_tcp_error_then_close(&mut c, &[ErrorCode::BadFrame], &case).await;
    }
    calm.round_trip().await;
    node.node.shutdown().await;
}

#[tokio::test]
async fn a_4_gib_length_prefix_is_too_large_and_nothing_that_size_is_allocated() {
    let node = start_node().await;
    let mut calm = Bystanders::connect(&node).await;
    let rss_before = metric(&node, "process_resident_memory_bytes").await;
    assert!(rss_before > 0.0, "the node reports its resident memory");

    let mut c = RawTcp::connect(&node).await;
    c.send_raw(&u32::MAX.to_be_bytes()).await;
    expect_tcp_error_then_close(&mut c, &[ErrorCode::TooLarge], "4 GiB before hello").await;

    let mut c = RawTcp::login(&node, "greedy").await;
    c.send_raw(&u32::MAX.to_be_bytes()).await;
    expect_tcp_error_then_close(&mut c, &[ErrorCode::TooLarge], "4 GiB after welcome").await;

    calm.round_trip().await;
    let rss_after = metric(&node, "process_resident_memory_bytes").await;
    let grown_mib = (rss_after - rss_before) / f64::from(1 << 20);
    assert!(
        grown_mib < 64.0,
        "resident memory grew by {grown_mib:.1} MiB after two 4 GiB prefixes"
    );
    node.node.shutdown().await;
}

#[tokio::test]
async fn a_frame_cut_off_midway_is_closed_and_the_node_carries_on() {
    let node = start_node().await;
    let mut calm = Bystanders::connect(&node).await;
    // A prefix announcing 100 bytes, then only 10 of them.
    let mut cut = 100u32.to_be_bytes().to_vec();
    cut.extend_from_slice(&[0x02; 10]);

    let mut before_hello = RawTcp::connect(&node).await;
    before_hello.send_raw(&cut).await;
    let mut after_welcome = RawTcp::login(&node, "cutoff").await;
    after_welcome.send_raw(&cut).await;

    // While both frames wait for their other 90 bytes, everyone else is served.
    calm.round_trip().await;

    for (case, c) in [
        ("before hello", &mut before_hello),
        ("after welcome", &mut after_welcome),
    ] {
        c.stream.shutdown().await.unwrap();
        // The connection is closed; an `error` `bad_frame` may come first.
        loop {
            match c.recv().await {
                None => break,
                Some(ServerFrame::Error {
                    code: ErrorCode::BadFrame,
                    ..
                }) => {}
                Some(other) => panic!("{case}: expected a close, got {other:?}"),
            }
        }
    }
    calm.round_trip().await;
    node.node.shutdown().await;
}

#[tokio::test]
async fn invalid_json_on_websocket_is_a_bad_frame_and_a_close() {
    let node = start_node().await;
    let mut calm = Bystanders::connect(&node).await;
    let bad = [
        "{not json",
        "",
        "null",
        r#"["send", "m1", "user:calm-b", "hi"]"#,
        r#"{"id": "m1", "to": "user:calm-b", "body": "no type"}"#,
        r#"{"type": "send", "id": 5, "to": "user:calm-b", "body": "id is a number"}"#,
        r#"{"type": "send", "id": "m1"}"#,
        r#"{"type": "send", "id": "m1", "to": "user:calm-b", "body": "cut"#,
    ];
    for text in bad {
        let mut c = RawWs::login(&node, "jsonish").await;
        c.send_text(text).await;
        expect_ws_error_then_close(
            &mut c,
            ErrorCode::BadFrame,
            &format!("after welcome: {text:?}"),
        )
        .await;
    }
    let mut c = RawWs::connect(&node).await;
    c.send_text(r#"{"type": "hello", "protocol": 1, "token": "#)
        .await;
    expect_ws_error_then_close(&mut c, ErrorCode::BadFrame, "a cut-off hello").await;
    calm.round_trip().await;
    node.node.shutdown().await;
}

#[tokio::test]
async fn an_unknown_frame_type_is_a_bad_frame_and_a_close() {
    let node = start_node().await;
    let mut calm = Bystanders::connect(&node).await;

    // JSON: an unknown `type`, after welcome and as the first frame.
    let mut c = RawWs::login(&node, "stranger").await;
    c.send_text(r#"{"type": "teleport", "to": "user:calm-b"}"#)
        .await;
    expect_ws_error_then_close(&mut c, ErrorCode::BadFrame, "json type after welcome").await;
    let mut c = RawWs::connect(&node).await;
    c.send_text(r#"{"type": "teleport", "protocol": 1, "token": "stranger"}"#)
        .await;
    expect_ws_error_then_close(&mut c, ErrorCode::BadFrame, "json type before hello").await;
    // A binary message on a JSON session is decoded as binary; the error is in JSON.
    let mut c = RawWs::login(&node, "stranger").await;
    c.ws.send(WsMessage::Binary(vec![99u8].into()))
        .await
        .unwrap();
    expect_ws_error_then_close(&mut c, ErrorCode::BadFrame, "binary variant on ws").await;

    // Binary: a variant index past the last frame, as a one-byte varint (99) and as
    // a three-byte one (251, then 10_000 as a little-endian u16).
    for payload in [&[99u8][..], &[251, 0x10, 0x27]] {
        let mut c = RawTcp::login(&node, "stranger").await;
        c.send_raw(&framed(payload)).await;
        let case = format!("variant {payload:?} after welcome");
        expect_tcp_error_then_close(&mut c, &[ErrorCode::BadFrame], &case).await;
        let mut c = RawTcp::connect(&node).await;
        c.send_raw(&framed(payload)).await;
        let case = format!("variant {payload:?} before hello");
        expect_tcp_error_then_close(&mut c, &[ErrorCode::BadFrame], &case).await;
    }
    calm.round_trip().await;
    node.node.shutdown().await;
}

#[tokio::test]
async fn a_frame_before_hello_is_unauthenticated_and_a_close() {
    let node = start_node().await;
    let mut calm = Bystanders::connect(&node).await;

    let mut c = RawTcp::connect(&node).await;
    c.send(&send("m1", "user:calm-b", "let me in")).await;
    expect_tcp_error_then_close(&mut c, &[ErrorCode::Unauthenticated], "tcp send first").await;

    let mut c = RawTcp::connect(&node).await;
    c.send(&ClientFrame::Ping { interval_s: None }).await;
    expect_tcp_error_then_close(&mut c, &[ErrorCode::Unauthenticated], "tcp ping first").await;

    let mut c = RawWs::connect(&node).await;
    c.send(&send("m1", "user:calm-b", "let me in")).await;
    expect_ws_error_then_close(&mut c, ErrorCode::Unauthenticated, "ws send first").await;

    // Not frames of the protocol, and content errors of the `hello` itself.
    let mut c = RawWs::connect(&node).await;
    c.ws.send(WsMessage::Ping(Vec::new().into())).await.unwrap();
    c.send(&hello("pinger")).await;
    let v = c.recv_json().await.expect("an answer, not a close");
    assert_eq!(
        v["type"], "welcome",
        "a ping before hello is not a frame: {v}"
    );

    let mut c = RawTcp::connect(&node).await;
    c.send(&ClientFrame::Hello {
        protocol: 2,
        token: "future".into(),
        device: None,
    })
    .await;
    let codes = [ErrorCode::UnsupportedVersion];
    expect_tcp_error_then_close(&mut c, &codes, "protocol 2").await;

    let mut c = tcp_hello(&node, "bad user!").await;
    let codes = [ErrorCode::Unauthenticated];
    expect_tcp_error_then_close(&mut c, &codes, "a dev token that is no user id").await;

    calm.round_trip().await;
    node.node.shutdown().await;
}

#[tokio::test]
async fn no_hello_within_the_limit_is_an_error_then_a_close() {
    const HELLO_TIMEOUT: Duration = Duration::from_millis(300);
    let node = start_node_with(|config| {
        config.limits.hello_timeout_ms = HELLO_TIMEOUT.as_millis().try_into().unwrap();
    })
    .await;
    let mut calm = Bystanders::connect(&node).await;
    // docs/protocol.md §7.1 allows either code for a missing hello.
    let codes = [ErrorCode::Unauthenticated, ErrorCode::BadFrame];

    let tcp = async {
        let start = Instant::now();
        let mut c = RawTcp::connect(&node).await;
        expect_tcp_error_then_close(&mut c, &codes, "tcp without hello").await;
        start.elapsed()
    };
    let ws = async {
        let start = Instant::now();
        let mut c = RawWs::connect(&node).await;
        // A WebSocket ping is not a `hello`: it neither ends the wait nor extends it.
        c.ws.send(WsMessage::Ping(Vec::new().into())).await.unwrap();
        let v = c
            .recv_json()
            .await
            .expect("an error frame before the close");
        assert_eq!(v["type"], "error", "ws without hello: {v}");
        assert!(codes.iter().any(|code| v["code"] == code.as_str()), "{v}");
        assert!(c.recv_json().await.is_none(), "ws without hello: a close");
        start.elapsed()
    };
    let (tcp_elapsed, ws_elapsed) = tokio::join!(tcp, ws);
    // The clock started before connecting, so the node cannot have waited less than
    // the limit; a few ms of slack for timer rounding.
    let at_least = HELLO_TIMEOUT - Duration::from_millis(20);
    assert!(tcp_elapsed >= at_least, "tcp closed after {tcp_elapsed:?}");
    assert!(ws_elapsed >= at_least, "ws closed after {ws_elapsed:?}");

    calm.round_trip().await;
    node.node.shutdown().await;
}

#[tokio::test]
async fn bad_and_expired_jwts_are_unauthenticated_and_a_close() {
    const SECRET: &str = "bad-input-test-secret-0123456789";
    let node = start_node_with(|config| {
        config.auth.mode = chorus_config::AuthMode::Jwt;
        config.auth.secret = Some(chorus_config::Secret::new(SECRET));
    })
    .await;
    let token =
        |user: &str| issue_token(SECRET, user, Roles::NONE, Duration::from_secs(600)).unwrap();
    let welcomed = |mut c: RawTcp, user: &'static str| async move {
        match c.recv().await {
            Some(ServerFrame::Welcome { user: u, .. }) if u == user => c,
            other => panic!("expected welcome for {user}, got {other:?}"),
        }
    };
    let mut calm = Bystanders::new(
        welcomed(tcp_hello(&node, &token("calm-a")).await, "calm-a").await,
        welcomed(tcp_hello(&node, &token("calm-b")).await, "calm-b").await,
    );

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({ "sub": "mallory", "iat": now - 7200, "exp": now - 3600 }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let other_secret = issue_token(
        "another-secret-of-32-bytes-000000",
        "mallory",
        Roles::NONE,
        Duration::from_secs(600),
    )
    .unwrap();
    // Correctly signed, but marking an extension this node cannot know as critical
    // (RFC 7515 §4.1.11), and one whose `crit` is malformed (an empty list).
    let critical = |crit: Vec<String>| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.crit = Some(crit);
        jsonwebtoken::encode(
            &header,
            &serde_json::json!({ "sub": "mallory", "exp": now + 600 }),
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let crit = critical(vec!["b64".into()]);
    let empty_crit = critical(Vec::new());
    // {"alg":"none"} with an empty signature, claiming mallory until 2100.
    let unsigned =
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJtYWxsb3J5IiwiZXhwIjo0MTAyNDQ0ODAwfQ.";
    let bad = [
        ("expired", expired.as_str()),
        ("signed with another secret", other_secret.as_str()),
        ("alg none", unsigned),
        ("crit header", crit.as_str()),
        ("empty crit header", empty_crit.as_str()),
        ("not a JWT", "mallory"),
        ("three garbage segments", "a.b.c"),
        ("empty", ""),
    ];
    for (case, bad_token) in bad {
        let mut c = tcp_hello(&node, bad_token).await;
        expect_tcp_error_then_close(&mut c, &[ErrorCode::Unauthenticated], case).await;
    }

    // The refusal of a critical header says why, in both encodings.
    let mut c = tcp_hello(&node, &crit).await;
    match c.recv().await {
        Some(ServerFrame::Error {
            code: ErrorCode::Unauthenticated,
            message,
            ..
        }) => assert!(message.contains("critical"), "{message}"),
        other => panic!("crit header: expected unauthenticated, got {other:?}"),
    }
    let mut ws = RawWs::connect(&node).await;
    ws.send(&ClientFrame::Hello {
        protocol: 1,
        token: crit.clone(),
        device: None,
    })
    .await;
    expect_ws_error_then_close(&mut ws, ErrorCode::Unauthenticated, "crit header over ws").await;

    welcomed(tcp_hello(&node, &token("alice")).await, "alice").await;
    calm.round_trip().await;
    node.node.shutdown().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_rejected_and_the_connection_stays_open() {
    let node = start_node().await;
    let mut calm = Bystanders::connect(&node).await;
    let mut c = RawTcp::login(&node, "verbose").await;

    // 5,000 bytes; and 2,049 characters that are 4,098 bytes: the limit is in bytes.
    for (id, body) in [("big", "a".repeat(5_000)), ("wide", "ü".repeat(2_049))] {
        c.send(&send(id, "user:calm-b", &body)).await;
        match c.recv().await {
            Some(ServerFrame::Reject {
                id: rejected,
                code: ErrorCode::TooLarge,
                ..
            }) if rejected == id => {}
            other => panic!("{id}: expected reject too_large, got {other:?}"),
        }
    }
    // Exactly at the limit, then an ordinary message: both acked on the same connection.
    for (id, body) in [("full", "a".repeat(4_096)), ("after", "small again".into())] {
        c.send(&send(id, "user:calm-b", &body)).await;
        match c.recv().await {
            Some(ServerFrame::Ack { id: acked, .. }) if acked == id => {}
            other => panic!("{id}: expected ack, got {other:?}"),
        }
    }
    calm.round_trip().await;
    node.node.shutdown().await;
}

#[tokio::test]
async fn ids_with_forbidden_characters_are_rejected_and_the_connection_stays_open() {
    let node = start_node().await;
    let mut calm = Bystanders::connect(&node).await;
    let mut c = RawWs::login(&node, "picky").await;

    let too_long = "x".repeat(65);
    let bad_sends = [
        ("bad id!", "user:calm-b"),
        ("ü", "user:calm-b"),
        ("", "user:calm-b"),
        (too_long.as_str(), "user:calm-b"),
        ("to-1", "user:bad id"),
        ("to-2", "user:ü"),
        ("to-3", "user:"),
        ("to-4", "calm-b"),
        ("to-5", "group:a/b"),
    ];
    for (id, to) in bad_sends {
        c.send(&send(id, to, "hello?")).await;
        let v = c.recv_json().await.expect("an answer, not a close");
        assert_eq!(v["type"], "reject", "id {id:?} to {to:?}: {v}");
        assert_eq!(v["code"], "invalid", "id {id:?} to {to:?}: {v}");
        assert_eq!(v["id"], id, "id {id:?} to {to:?}: {v}");
    }
    // The same rule in a request with a `ref`: `error` `invalid` with that ref.
    c.send(&ClientFrame::GroupCreate {
        reference: "g1".into(),
        id: Some("bad group!".into()),
        name: "nope".into(),
        members: vec!["calm-b".into()],
    })
    .await;
    let v = c.recv_json().await.expect("an answer, not a close");
    assert_eq!(
        (&v["type"], &v["code"], &v["ref"]),
        (&"error".into(), &"invalid".into(), &"g1".into()),
        "{v}"
    );

    c.send(&send("fine", "user:calm-b", "hello!")).await;
    let v = c.recv_json().await.expect("an answer, not a close");
    assert_eq!(
        (&v["type"], &v["id"]),
        (&"ack".into(), &"fine".into()),
        "{v}"
    );
    calm.round_trip().await;
    node.node.shutdown().await;
}

#[tokio::test]
async fn ten_thousand_frames_in_one_write_are_all_acked_while_others_chat() {
    const BURST: usize = 10_000;
    let node = start_node().await;
    let mut calm = Bystanders::connect(&node).await;
    let burster = RawTcp::login(&node, "burster").await;
    let (mut read, mut write) = burster.stream.into_split();

    let mut burst = Vec::with_capacity(BURST * 40);
    let ids: Vec<String> = (0..BURST).map(|i| format!("b{i:05}")).collect();
    for id in &ids {
        burst.extend_from_slice(&send(id, "user:burst-peer", "x").to_tcp());
    }

    let (first_ack, first_ack_seen) = tokio::sync::oneshot::channel();
    let acks = tokio::spawn(async move {
        let mut decoder = TcpDecoder::new(1 << 20);
        let mut acks = Vec::with_capacity(BURST);
        let mut first_ack = Some(first_ack);
        while acks.len() < BURST {
            match decoder
                .next_frame::<ServerFrame>()
                .expect("server frames decode")
            {
                Some(ServerFrame::Ack { id, seq, .. }) => {
                    if let Some(tx) = first_ack.take() {
                        let _ = tx.send(());
                    }
                    acks.push((id, seq));
                }
                Some(other) => panic!("expected only acks, got {other:?}"),
                None => {
                    let n = read.read_buf(decoder.buffer()).await.unwrap();
                    assert!(n > 0, "closed after {} acks", acks.len());
                }
            }
        }
        acks
    });
    // Keep the write half open until every ack is in: a half-close ends the session.
    let writer = tokio::spawn(async move {
        write.write_all(&burst).await.unwrap();
        write
    });

    tokio::time::timeout(WAIT, first_ack_seen)
        .await
        .expect("a first ack within the wait")
        .expect("the ack reader is alive");
    calm.round_trip().await;

    // A failure bound only: the burst takes seconds on a slow debug build.
    let acks = tokio::time::timeout(6 * WAIT, acks)
        .await
        .expect("every ack within the bound")
        .unwrap();
    let _write = writer.await.unwrap();
    let mut acked_ids: Vec<&str> = acks.iter().map(|(id, _)| id.as_str()).collect();
    acked_ids.sort_unstable();
    assert_eq!(acked_ids, ids, "every send acked exactly once");
    for pair in acks.windows(2) {
        assert!(
            pair[1].1 > pair[0].1,
            "seqs strictly increase in ack order: {pair:?}"
        );
    }
    calm.round_trip().await;
    node.node.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_cut_off_while_others_keep_receiving() {
    const SLOW_METRIC: &str = "chorus_slow_consumer_disconnects_total";
    const MAX_SENDS: usize = 10_000;
    /// Sends waiting for their ack; kept under the queue so the sender keeps up.
    const WINDOW: usize = 8;
    let node = start_node_with(|config| config.limits.outbound_queue = 16).await;
    let mut calm = Bystanders::connect(&node).await;
    let slow_before = metric(&node, SLOW_METRIC).await;

    // The sloth: a small receive window, and after its welcome it never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut sloth = RawTcp::from_stream(socket.connect(node.node.addrs().tcp).await.unwrap());
    sloth.send(&hello("sloth")).await;
    assert!(matches!(
        sloth.recv().await,
        Some(ServerFrame::Welcome { .. })
    ));

    // The steady receiver reads everything sent to it, until the last message.
    let mut steady = RawTcp::login(&node, "steady").await;
    let steady_task = tokio::spawn(async move {
        let mut got = Vec::new();
        loop {
            let ServerFrame::Msg(m) = steady
                .recv_until(|f| matches!(f, ServerFrame::Msg(_)))
                .await
            else {
                unreachable!()
            };
            let last = m.id == "steady-last";
            got.push(m.id);
            if last {
                return got;
            }
        }
    });

    let mut hare = RawTcp::login(&node, "hare").await;
    // Small enough that a few frames fit the node's write buffer, as chat does.
    let body = "z".repeat(1_000);
    let mut in_flight = 0;
    let mut to_steady = Vec::new();
    let mut to_sloth = 0;
    let mut cut_off = false;
    for i in 0..MAX_SENDS {
        if i % 10 == 0 {
            let id = format!("steady-{i}");
            hare.send(&send(&id, "user:steady", "keep up")).await;
            to_steady.push(id);
        } else {
            hare.send(&send(&format!("sloth-{i}"), "user:sloth", &body))
                .await;
            to_sloth += 1;
        }
        in_flight += 1;
        if in_flight == WINDOW {
            match hare.recv().await {
                Some(ServerFrame::Ack { .. }) => in_flight -= 1,
                other => panic!("hare: expected ack, got {other:?}"),
            }
        }
        if i % 100 == 99 && metric(&node, SLOW_METRIC).await > slow_before {
            cut_off = true;
            break;
        }
    }
    assert!(
        cut_off,
        "the sloth was not cut off after {to_sloth} messages"
    );

    // The node let go of the connection, not only of the queue: what the sloth
    // sends now meets a closed socket and its writes fail, instead of piling up in
    // a connection the node still holds until they block.
    let chunk = ClientFrame::Ping { interval_s: None }
        .to_tcp()
        .to_vec()
        .repeat(8_192);
    let released = tokio::time::timeout(WAIT, async {
        while sloth.stream.write_all(&chunk).await.is_ok() {}
    })
    .await;
    assert!(
        released.is_ok(),
        "the node still holds the slow consumer's connection"
    );

    // After the cut-off, the steady receiver still gets everything promptly.
    for id in ["steady-after", "steady-last"] {
        hare.send(&send(id, "user:steady", "still flowing")).await;
        to_steady.push(id.to_string());
        in_flight += 1;
    }
    for _ in 0..in_flight {
        match hare.recv().await {
            Some(ServerFrame::Ack { .. }) => {}
            other => panic!("hare: expected ack, got {other:?}"),
        }
    }
    let got = tokio::time::timeout(WAIT, steady_task)
        .await
        .expect("the steady receiver gets everything within the wait")
        .unwrap();
    assert_eq!(got, to_steady);

    // The sloth finally reads: part of what was sent, then the end of the connection.
    let mut received = 0;
    while let Some(frame) = sloth.recv().await {
        assert!(matches!(frame, ServerFrame::Msg(_)), "sloth got {frame:?}");
        received += 1;
    }
    assert!(received < to_sloth, "sloth got all {to_sloth} messages");
    calm.round_trip().await;
    node.node.shutdown().await;
}

#[tokio::test]
async fn a_websocket_message_over_max_frame_is_too_large_and_a_close() {
    let node = start_node().await;
    let mut calm = Bystanders::connect(&node).await;
    let huge = format!(
        r#"{{"type": "send", "id": "huge", "to": "user:calm-b", "body": "{}"}}"#,
        "a".repeat(70_000)
    );

    let mut c = RawWs::login(&node, "loud").await;
    c.send_text(&huge).await;
    expect_ws_error_then_close(&mut c, ErrorCode::TooLarge, "after welcome").await;

    let mut c = RawWs::connect(&node).await;
    c.send_text(&huge).await;
    expect_ws_error_then_close(&mut c, ErrorCode::TooLarge, "before hello").await;

    calm.round_trip().await;
    node.node.shutdown().await;
}

#[tokio::test]
async fn a_websocket_upgrade_on_a_wrong_path_is_404() {
    let node = start_node().await;
    let mut calm = Bystanders::connect(&node).await;
    for path in ["/", "/chat", "/ws/extra", "/WS"] {
        let url = format!("ws://{}{path}", node.node.addrs().ws);
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 404, "{path}");
            }
            other => panic!("{path}: expected HTTP 404, got {other:?}"),
        }
    }
    // The right path still upgrades.
    let mut ws = RawWs::login(&node, "pathfinder").await;
    ws.ws
        .send(WsMessage::Ping(Vec::new().into()))
        .await
        .unwrap();
    calm.round_trip().await;
    let (status, _) = admin_get(&node, "/healthz").await;
    assert_eq!(status, 200);
    node.node.shutdown().await;
}
