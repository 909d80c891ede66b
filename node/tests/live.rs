//! Live rooms over real sockets: batches to viewers of both encodings, sampling
//! under a flood (paid/system never dropped, `dropped` adds up), the per-user rate
//! limit, slow viewers cut off, `recent` for late joiners.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use chorus_config::{AuthMode, Secret};
use chorus_node::auth::{Role, Roles, issue_token};
use chorus_wire::{ClientFrame, ErrorCode, LiveItem, Prio, ServerFrame};
use common::{RawClient, RawTcp, RawWs, TestNode, WAIT, start_node_with};

const SECRET: &str = "a-test-secret-of-enough-length";

fn token(user: &str, roles: Roles) -> String {
    issue_token(SECRET, user, roles, Duration::from_secs(600)).unwrap()
}

async fn join(c: &mut impl RawClient, room: &str) -> (u64, Vec<LiveItem>) {
    c.put(&ClientFrame::LiveJoin {
        reference: "j".into(),
        room: room.into(),
    })
    .await;
    loop {
        match c.next().await.expect("open") {
            ServerFrame::LiveJoined {
                viewers, recent, ..
            } => return (viewers, recent),
            ServerFrame::LiveBatch { .. } => {}
            other => panic!("expected live_joined, got {other:?}"),
        }
    }
}

/// Reads batches of `room` until `accepted` items are accounted for
/// (delivered + dropped); returns (delivered items, total dropped).
async fn collect(c: &mut impl RawClient, accepted: u64) -> (Vec<LiveItem>, u64) {
    let mut items = Vec::new();
    let mut dropped = 0;
    tokio::time::timeout(WAIT * 2, async {
        while (items.len() as u64) + dropped < accepted {
            match c.next().await.expect("viewer stays connected") {
                ServerFrame::LiveBatch {
                    items: batch,
                    dropped: d,
                    ..
                } => {
                    items.extend(batch);
                    dropped += d;
                }
                ServerFrame::LiveJoined { .. } | ServerFrame::Ack { .. } | ServerFrame::Pong => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .expect("every accepted item is delivered or counted as dropped");
    assert_eq!(
        items.len() as u64 + dropped,
        accepted,
        "no item counted twice"
    );
    (items, dropped)
}

async fn send_danmaku(c: &mut impl RawClient, n: usize, prefix: &str, room: &str) -> Vec<u64> {
    for i in 0..n {
        c.put(&ClientFrame::Danmaku {
            id: format!("{prefix}{i}"),
            room: room.into(),
            body: format!("{prefix} {i}"),
        })
        .await;
    }
    let mut seqs = Vec::new();
    while seqs.len() < n {
        match c.next().await.expect("sender stays connected") {
            ServerFrame::Ack { seq, conv, .. } => {
                assert_eq!(conv, format!("live:{room}"));
                seqs.push(seq);
            }
            ServerFrame::LiveBatch { .. } => {}
            other => panic!("expected ack, got {other:?}"),
        }
    }
    seqs
}

async fn node(budget: u32, rate: u32) -> TestNode {
    start_node_with(|c| {
        c.live.window_ms = 50;
        c.live.budget_per_s = budget;
        c.live.rate_per_user = rate;
        c.live.rate_window_s = 1;
    })
    .await
}

#[tokio::test]
async fn viewers_of_both_encodings_get_every_batch_and_late_joiners_get_recent() {
    let node = node(100_000, 10_000).await;
    let mut json_viewer = RawWs::login(&node, "v1").await;
    let mut binary_viewer = RawTcp::login(&node, "v2").await;
    assert_eq!(join(&mut json_viewer, "r1").await.0, 1);
    assert_eq!(join(&mut binary_viewer, "r1").await.0, 2);

    let mut sender = RawTcp::login(&node, "s").await;
    let seqs = send_danmaku(&mut sender, 30, "d", "r1").await;
    assert_eq!(
        seqs,
        (1..=30).collect::<Vec<_>>(),
        "room seqs in acceptance order"
    );

    let (a, dropped_a) = collect(&mut json_viewer, 30).await;
    let (b, dropped_b) = collect(&mut binary_viewer, 30).await;
    assert_eq!((dropped_a, dropped_b), (0, 0));
    assert_eq!(a, b, "both encodings carry the same items");
    assert_eq!(a.iter().map(|i| i.seq).collect::<Vec<_>>(), seqs);
    assert!(a.iter().all(|i| i.from == "s" && i.prio == Prio::Normal));

    let mut late = RawWs::login(&node, "v3").await;
    let (viewers, recent) = join(&mut late, "r1").await;
    assert_eq!(viewers, 3);
    assert_eq!(
        recent.iter().map(|i| i.seq).collect::<Vec<_>>(),
        (11..=30).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn paid_and_system_items_survive_a_flood_and_dropped_adds_up() {
    let node = start_node_with(|c| {
        c.auth.mode = AuthMode::Jwt;
        c.auth.secret = Some(Secret::new(SECRET));
        c.live.window_ms = 100;
        c.live.budget_per_s = 20;
        c.live.rate_per_user = 10_000;
        c.live.rate_window_s = 1;
    })
    .await;
    let mut viewer = RawTcp::login(&node, &token("viewer", Roles::NONE)).await;
    join(&mut viewer, "big").await;
    let mut normal = RawTcp::login(&node, &token("fan", Roles::NONE)).await;
    let mut paid = RawWs::login(&node, &token("payer", Roles::NONE.with(Role::Paid))).await;
    let mut system = RawTcp::login(&node, &token("ops", Roles::NONE.with(Role::System))).await;

    let (n, p, s) = tokio::join!(
        send_danmaku(&mut normal, 400, "n", "big"),
        send_danmaku(&mut paid, 30, "p", "big"),
        send_danmaku(&mut system, 10, "s", "big"),
    );
    let accepted = (n.len() + p.len() + s.len()) as u64;
    let (items, dropped) = collect(&mut viewer, accepted).await;
    assert!(dropped > 0, "the flood forced sampling");
    assert_eq!(
        items.iter().filter(|i| i.prio == Prio::Paid).count(),
        30,
        "no paid item lost"
    );
    assert_eq!(
        items.iter().filter(|i| i.prio == Prio::System).count(),
        10,
        "no system item lost"
    );
    assert!(
        items.windows(2).all(|w| w[0].seq < w[1].seq),
        "items in seq order"
    );
}

#[tokio::test]
async fn the_rate_limit_rejects_with_retry_after() {
    let node = start_node_with(|_| {}).await; // default: 5 per 10 s
    let mut c = RawTcp::login(&node, "chatty").await;
    for i in 0..6 {
        c.put(&ClientFrame::Danmaku {
            id: format!("x{i}"),
            room: "r".into(),
            body: "hi".into(),
        })
        .await;
    }
    let mut acks = 0;
    let mut rejects = Vec::new();
    while acks + rejects.len() < 6 {
        match c.next().await.expect("open") {
            ServerFrame::Ack { .. } => acks += 1,
            ServerFrame::Reject {
                code,
                retry_after_ms,
                id,
                ..
            } => rejects.push((id, code, retry_after_ms)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(acks, 5);
    assert_eq!(rejects.len(), 1);
    let (id, code, retry) = &rejects[0];
    assert_eq!((id.as_str(), *code), ("x5", ErrorCode::RateLimited));
    let retry = retry.expect("retry_after_ms is set");
    assert!(retry > 0 && retry <= 10_000, "{retry}");
}

#[tokio::test]
async fn a_viewer_that_stops_reading_is_cut_off_while_others_keep_up() {
    let node = start_node_with(|c| {
        c.live.window_ms = 20;
        c.live.budget_per_s = 100_000;
        c.live.rate_per_user = 100_000;
        c.live.rate_window_s = 1;
        c.live.viewer_queue = 4;
        c.live.max_lag_ms = 300;
    })
    .await;
    let mut stalled = RawTcp::login(&node, "stalled").await;
    join(&mut stalled, "r").await;
    let mut reader = RawWs::login(&node, "reader").await;
    join(&mut reader, "r").await;

    // Big items so the stalled viewer's socket buffers fill quickly.
    let mut sender = RawTcp::login(&node, "s").await;
    let body = "x".repeat(4000);
    let total = 3000;
    let send = async {
        for i in 0..total {
            sender
                .put(&ClientFrame::Danmaku {
                    id: format!("b{i}"),
                    room: "r".into(),
                    body: body.clone(),
                })
                .await;
        }
        let mut acked = 0;
        while acked < total {
            if let ServerFrame::Ack { .. } = sender.next().await.expect("sender open") {
                acked += 1;
            }
        }
    };
    let (_, (items, dropped)) = tokio::join!(send, collect(&mut reader, total as u64));
    assert_eq!(items.len() as u64 + dropped, total as u64);

    // The stalled viewer was disconnected: draining its socket ends in EOF.
    let closed =
        tokio::time::timeout(WAIT, async { while stalled.recv().await.is_some() {} }).await;
    assert!(closed.is_ok(), "the stalled viewer is cut off");
    assert!(common::metric(&node, "chorus_live_slow_viewer_disconnects_total").await >= 1.0);
}
