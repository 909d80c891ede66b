//! One in-flight budget per session for every request, answers counted in bytes:
//! a client that pipelines requests and reads its answers keeps its connection,
//! however many it sends; one that does not read holds at most its budget's worth
//! of answers on the node.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use chorus_wire::ClientFrame;
use chorus_wire::ServerFrame;
use chorus_wire::codec::Frame;
use common::{RawTcp, RawWs, TestNode, WAIT, metric, send_msg, start_node};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Reads binary frames from a raw TCP stream until `n` frames matching `want`
/// arrived; fails if the node closes the connection first.
async fn count_tcp(
    stream: &mut tokio::net::tcp::OwnedReadHalf,
    n: usize,
    mut want: impl FnMut(&ServerFrame) -> bool,
) {
    let mut decoder = chorus_wire::codec::TcpDecoder::new(1 << 20);
    let mut seen = 0;
    tokio::time::timeout(WAIT * 6, async {
        while seen < n {
            match decoder.next_frame::<ServerFrame>() {
                Ok(Some(f)) => {
                    if want(&f) {
                        seen += 1;
                    } else if let ServerFrame::Error { .. } = f {
                        panic!("the node refused a request: {f:?}");
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => panic!("bad frame: {e}"),
            }
            match stream.read_buf(decoder.buffer()).await {
                Ok(0) | Err(_) => panic!("the node closed the connection after {seen} of {n}"),
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("every answer arrives");
}

/// The node's metrics are one registry per process: the scenarios run one after
/// the other, so that each reads only its own effects.
#[tokio::test]
async fn pipelining_clients_are_slowed_not_cut_off() {
    let node = start_node().await;
    pipelined_pings_from_a_reading_client_are_all_answered(&node).await;
    fill(&node).await;
    pipelined_history_requests_are_answered_at_the_pace_of_the_socket(&node).await;
    a_client_that_does_not_read_holds_no_more_than_its_budget(&node).await;
    assert_eq!(
        metric(&node, "chorus_slow_consumer_disconnects_total").await,
        0.0
    );
}

async fn pipelined_pings_from_a_reading_client_are_all_answered(node: &TestNode) {
    const PINGS: usize = 200_000;

    // TCP, binary.
    let c = RawTcp::login(node, "pinger").await;
    let (mut read, mut write) = c.stream.into_split();
    let writer = tokio::spawn(async move {
        let ping = ClientFrame::Ping { interval_s: None }.to_tcp();
        let all: Vec<u8> = ping
            .iter()
            .copied()
            .cycle()
            .take(ping.len() * PINGS)
            .collect();
        write.write_all(&all).await.expect("the node keeps reading");
        write
    });
    count_tcp(&mut read, PINGS, |f| matches!(f, ServerFrame::Pong)).await;
    let _write = writer.await.expect("writer");

    // WebSocket, JSON: the same through the other transport.
    let ws = RawWs::login(node, "pinger").await;
    let (mut sink, mut stream) = ws.ws.split();
    let writer = tokio::spawn(async move {
        let ping = ClientFrame::Ping { interval_s: None }.to_json();
        for _ in 0..PINGS / 4 {
            sink.feed(WsMessage::text(ping.clone()))
                .await
                .expect("open");
        }
        sink.flush().await.expect("open");
        sink
    });
    let mut pongs = 0;
    tokio::time::timeout(WAIT * 6, async {
        while pongs < PINGS / 4 {
            match stream.next().await {
                Some(Ok(WsMessage::Text(t))) => {
                    if ServerFrame::from_json(t.as_str()).expect("a frame") == ServerFrame::Pong {
                        pongs += 1;
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("the node closed the connection after {pongs}: {other:?}"),
            }
        }
    })
    .await
    .expect("every pong arrives");
    let _sink = writer.await.expect("writer");
}

/// Fills `dm:alice:bob` with 100 messages of 4 KiB, so a 100-message page is
/// about a whole frame.
async fn fill(node: &TestNode) {
    let mut alice = RawTcp::login(node, "alice").await;
    let body = "x".repeat(4_096);
    for i in 0..100 {
        send_msg(&mut alice, &format!("m{i}"), "user:bob", &body).await;
    }
    let mut acked = 0;
    while acked < 100 {
        if let ServerFrame::Ack { .. } = common::next_frame(&mut alice).await {
            acked += 1;
        }
    }
}

fn history_request(i: usize) -> Vec<u8> {
    ClientFrame::History {
        reference: format!("h{i}"),
        conv: "dm:alice:bob".into(),
        after: None,
        before: None,
        limit: Some(100),
    }
    .to_tcp()
    .to_vec()
}

async fn pipelined_history_requests_are_answered_at_the_pace_of_the_socket(node: &TestNode) {
    // ~64 KiB answers, 1,200 of them: more than a queue of 1,024 frames or 4 MiB holds.
    const PAGES: usize = 1_200;
    let c = RawTcp::login(node, "bob").await;
    let (mut read, mut write) = c.stream.into_split();
    let writer = tokio::spawn(async move {
        let all: Vec<u8> = (0..PAGES).flat_map(history_request).collect();
        write.write_all(&all).await.expect("the node keeps reading");
        write
    });
    count_tcp(&mut read, PAGES, |f| {
        matches!(f, ServerFrame::HistoryPage { .. })
    })
    .await;
    let _write = writer.await.expect("writer");
}

async fn a_client_that_does_not_read_holds_no_more_than_its_budget(node: &TestNode) {
    const PAGES: usize = 500;
    let waits_before = metric(node, "chorus_request_budget_waits_total").await;
    let c = RawTcp::login(node, "bob").await;
    let (mut read, mut write) = c.stream.into_split();
    let writer = tokio::spawn(async move {
        let all: Vec<u8> = (0..PAGES).flat_map(history_request).collect();
        write
            .write_all(&all)
            .await
            .expect("the node keeps reading, later");
        write
    });
    // The session has spent its budget and stopped reading: answers wait for the
    // socket, and no more requests are taken in.
    tokio::time::timeout(WAIT, async {
        // Polled: the metric is the only sign of it a client can see.
        while metric(node, "chorus_request_budget_waits_total").await <= waits_before {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the budget is spent");
    let held = metric(node, "chorus_outbound_queued_bytes").await;
    // A 100-message page is under 64 KiB; the budget lets 16 of them wait.
    assert!(
        held <= 16.0 * 65_536.0,
        "{held} bytes wait for a client that does not read"
    );
    // Reading now, the client gets every answer; nothing was dropped.
    count_tcp(&mut read, PAGES, |f| {
        matches!(f, ServerFrame::HistoryPage { .. })
    })
    .await;
    let _write = writer.await.expect("writer");
}
