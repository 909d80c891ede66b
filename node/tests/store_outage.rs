//! Store outage: with Cassandra stopped mid-traffic, senders get `reject` (never a
//! false `ack`), the node keeps serving, `/healthz` turns 503 once the outage
//! outlasts the request timeout, and the node recovers (`/healthz` 200 again)
//! when Cassandra returns.
//!
//! Runs only on the scylla backend (`CHORUS_TEST_BACKEND=scylla`): it stops and
//! restarts the Cassandra node of `scripts/cassandra`, so it is `#[ignore]`d and
//! the test script runs it on its own, after every other test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chorus_wire::{ClientFrame, ErrorCode, ServerFrame};
use common::{RawTcp, TestNode, admin_get, start_node_with};

/// Polls `/healthz` until it answers `want` within `within` (the node probes
/// its store every second; nothing outside it can be awaited); returns the body.
async fn healthz_becomes(node: &TestNode, want: u16, within: Duration) -> String {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (status, body) = admin_get(node, "/healthz").await;
        if status == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz stays {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await; // poll pacing
    }
}

fn cassandra(command: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/cassandra");
    let status = std::process::Command::new(script)
        .arg(command)
        .env("CHORUS_CASSANDRA_KEEP_DATA", "1")
        .status()
        .expect("scripts/cassandra runs");
    assert!(status.success(), "scripts/cassandra {command} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "stops the Cassandra node of scripts/cassandra: scripts/test runs it last, on its own"]
async fn senders_are_rejected_while_the_store_is_down_and_served_after() {
    assert_eq!(
        std::env::var("CHORUS_TEST_BACKEND").as_deref(),
        Ok("scylla"),
        "store_outage needs CHORUS_TEST_BACKEND=scylla and the Cassandra node of scripts/cassandra"
    );
    let node = start_node_with(|c| c.storage.request_timeout_ms = 1_000).await;
    let mut alice = RawTcp::login(&node, "alice").await;
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let mut rejected = 0;
    let mut n = 0;

    // One send at a time: its answer before the next.
    let send = async |alice: &mut RawTcp, n: &mut u32| {
        *n += 1;
        let id = format!("m{n}");
        alice
            .send(&ClientFrame::Send {
                id: id.clone(),
                to: "user:bob".into(),
                body: id.clone(),
            })
            .await;
        loop {
            match alice.recv().await.expect("the node keeps the connection") {
                ServerFrame::Ack { id: got, seq, .. } if got == id => return Ok((seq, id)),
                ServerFrame::Reject { id: got, code, .. } if got == id => return Err(code),
                _ => {}
            }
        }
    };
    for _ in 0..10 {
        let (seq, id) = send(&mut alice, &mut n)
            .await
            .expect("acked while the store is up");
        acked.insert(seq, id);
    }

    tokio::task::spawn_blocking(|| cassandra("stop"))
        .await
        .unwrap();
    // While it is down: rejects, never acks; other clients are still served.
    for _ in 0..5 {
        match send(&mut alice, &mut n).await {
            Err(code) => {
                assert_eq!(code, ErrorCode::Internal);
                rejected += 1;
            }
            Ok((seq, id)) => panic!("{id} acked at {seq} while the store was down"),
        }
    }
    let mut other = RawTcp::login(&node, "carol").await;
    other.send(&ClientFrame::Ping { interval_s: None }).await;
    assert!(
        matches!(other.recv().await, Some(ServerFrame::Pong)),
        "the node still serves"
    );
    // Down for longer than the request timeout (1 s): unhealthy, with the reason.
    let body = healthz_becomes(&node, 503, Duration::from_secs(30)).await;
    assert!(body.contains("store unhealthy"), "{body}");

    tokio::task::spawn_blocking(|| cassandra("start"))
        .await
        .unwrap();
    // Recovery: sends are acked again within a bounded time (the driver reconnects).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        match send(&mut alice, &mut n).await {
            Ok((seq, id)) => {
                acked.insert(seq, id);
                break;
            }
            Err(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no recovery within 90 s"
                );
                tokio::time::sleep(Duration::from_millis(250)).await; // retry pacing, not readiness
            }
        }
    }
    assert!(rejected >= 5);
    healthz_becomes(&node, 200, Duration::from_secs(30)).await;

    // Every acked message is in history at its acked seq.
    let mut bob = RawTcp::login(&node, "bob").await;
    bob.send(&ClientFrame::History {
        reference: "h".into(),
        conv: "dm:alice:bob".into(),
        after: Some(0),
        before: None,
        limit: Some(200),
    })
    .await;
    let page = bob
        .recv_until(|f| matches!(f, ServerFrame::HistoryPage { .. }))
        .await;
    let ServerFrame::HistoryPage { messages, .. } = page else {
        unreachable!()
    };
    let stored: BTreeMap<u64, String> = messages.into_iter().map(|m| (m.seq, m.id)).collect();
    for (seq, id) in &acked {
        assert_eq!(
            stored.get(seq),
            Some(id),
            "acked {id} at {seq} is in history"
        );
    }
}
