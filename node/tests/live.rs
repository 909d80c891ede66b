//! Live rooms over real sockets: batches to viewers of both encodings, sampling
//! under a flood (paid/system never dropped, `dropped` adds up), the per-user rate
//! limit, slow viewers cut off, `recent` for late joiners, and slow mode set
//! through the admin API (kept across a `kill -9` of the node).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use chorus_config::{AuthMode, Secret};
use chorus_node::auth::{Role, Roles, issue_token};
use chorus_node::ctl::{AdminClient, Body};
use chorus_wire::{ClientFrame, ErrorCode, LiveItem, Prio, ServerFrame};
use common::{RawClient, RawTcp, RawWs, TestNode, WAIT, start_node_with};
use serde_json::json;

const SECRET: &str = "a-test-secret-of-enough-length-32";
const ADMIN_TOKEN: &str = "live-test-admin-token";

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

/// Sets a room's slow mode through the admin API at `admin`; its answer.
async fn set_slow_mode(admin: &str, room: &str, seconds: Option<u32>) -> serde_json::Value {
    let body = Body::json(&json!({ "room": room, "seconds": seconds }));
    AdminClient::new(Some(ADMIN_TOKEN.into()), WAIT)
        .post(admin, "/admin/live/slow", Some(body))
        .await
        .expect("the admin API takes the setting")
}

/// Sends danmaku `id` and waits for its answer: `Ok(seq)` on `ack`,
/// `Err((code, retry_after_ms))` on `reject`. Batches on the way are skipped.
async fn danmaku(
    c: &mut impl RawClient,
    id: &str,
    room: &str,
) -> Result<u64, (ErrorCode, Option<u64>)> {
    c.put(&ClientFrame::Danmaku {
        id: id.into(),
        room: room.into(),
        body: format!("{id}!"),
    })
    .await;
    loop {
        match c.next().await.expect("the sender stays connected") {
            ServerFrame::Ack { id: got, seq, .. } if got == id => return Ok(seq),
            ServerFrame::Reject {
                id: got,
                code,
                retry_after_ms,
                ..
            } if got == id => return Err((code, retry_after_ms)),
            ServerFrame::LiveBatch { .. } | ServerFrame::LiveJoined { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The `retry_after_ms` of a slow-mode reject; fails on anything else.
#[track_caller]
fn slowed(answer: Result<u64, (ErrorCode, Option<u64>)>) -> u64 {
    match answer {
        Err((ErrorCode::RateLimited, Some(retry))) => retry,
        other => panic!("expected reject rate_limited with retry_after_ms, got {other:?}"),
    }
}

#[tokio::test]
async fn slow_mode_set_by_an_operator_holds_each_user_back() {
    let node = start_node_with(|c| {
        c.auth.mode = AuthMode::Jwt;
        c.auth.secret = Some(Secret::new(SECRET));
        c.admin.token = Some(Secret::new(ADMIN_TOKEN));
        c.live.window_ms = 50;
        // The per-user rate limit stays out of the way: slow mode is the limit here.
        c.live.rate_per_user = 10_000;
        c.live.rate_window_s = 1;
    })
    .await;
    let admin = node.node.addrs().admin.to_string();
    let mut viewer = RawWs::login(&node, &token("viewer", Roles::NONE)).await;
    join(&mut viewer, "hall").await;
    let mut fan = RawTcp::login(&node, &token("fan", Roles::NONE)).await;
    // The fan's second session, in the other encoding, shares the fan's budget.
    let mut fan_phone = RawWs::login(&node, &token("fan", Roles::NONE)).await;
    let mut other = RawTcp::login(&node, &token("other", Roles::NONE)).await;
    let mut payer = RawWs::login(&node, &token("payer", Roles::NONE.with(Role::Paid))).await;
    let mut ops = RawTcp::login(&node, &token("ops", Roles::NONE.with(Role::System))).await;

    // Off by default.
    assert_eq!(danmaku(&mut fan, "f0", "hall").await, Ok(1));
    assert_eq!(danmaku(&mut fan, "f1", "hall").await, Ok(2));

    let answer = set_slow_mode(&admin, "hall", Some(30)).await;
    assert_eq!(
        answer,
        json!({ "room": "hall", "slow_mode_s": 30, "override_s": 30, "default_s": 0 })
    );
    let before = common::metric(&node, "chorus_live_slow_mode_rejects_total").await;
    assert_eq!(danmaku(&mut fan, "f2", "hall").await, Ok(3));
    let retry = slowed(danmaku(&mut fan, "f3", "hall").await);
    assert!((25_000..=30_000).contains(&retry), "{retry}");
    let retry = slowed(danmaku(&mut fan_phone, "p1", "hall").await);
    assert!((25_000..=30_000).contains(&retry), "{retry}");
    assert_eq!(
        danmaku(&mut other, "o1", "hall").await,
        Ok(4),
        "another user is unaffected"
    );
    assert!(danmaku(&mut other, "o2", "hall").await.is_err());
    for i in 0..3 {
        assert!(
            danmaku(&mut payer, &format!("pay{i}"), "hall")
                .await
                .is_ok(),
            "paid is exempt"
        );
        assert!(
            danmaku(&mut ops, &format!("sys{i}"), "hall").await.is_ok(),
            "system is exempt"
        );
    }
    assert_eq!(
        danmaku(&mut fan, "f4", "lobby").await,
        Ok(1),
        "other rooms keep their own setting"
    );
    // The counter is process-wide: other tests may add to it, never take away.
    let rejects = common::metric(&node, "chorus_live_slow_mode_rejects_total").await - before;
    assert!(
        rejects >= 3.0,
        "each slow-mode reject is counted: {rejects}"
    );

    // The viewer saw exactly the accepted items.
    let (items, dropped) = collect(&mut viewer, 10).await;
    assert_eq!(dropped, 0);
    let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids[..4], ["f0", "f1", "f2", "o1"]);
    assert!(!ids.contains(&"f3") && !ids.contains(&"p1"));

    let (status, body) = admin_get_with_token(&node, "/admin/live/slow/hall").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["slow_mode_s"],
        30
    );

    // Turned off: the fan may send at once, again and again.
    let answer = set_slow_mode(&admin, "hall", Some(0)).await;
    assert_eq!(answer["slow_mode_s"], 0);
    assert!(danmaku(&mut fan, "f5", "hall").await.is_ok());
    assert!(danmaku(&mut fan_phone, "p2", "hall").await.is_ok());
    assert!(danmaku(&mut fan, "f6", "hall").await.is_ok());
    // Back to the configured default, which is off too.
    let answer = set_slow_mode(&admin, "hall", None).await;
    assert_eq!(
        answer,
        json!({ "room": "hall", "slow_mode_s": 0, "override_s": null, "default_s": 0 })
    );
    assert!(danmaku(&mut fan, "f7", "hall").await.is_ok());
}

#[tokio::test]
async fn slow_mode_requests_are_validated() {
    let node = start_node_with(|c| c.admin.token = Some(Secret::new(ADMIN_TOKEN))).await;
    let admin = node.node.addrs().admin.to_string();
    let client = AdminClient::new(Some(ADMIN_TOKEN.into()), WAIT);
    for body in [
        json!({ "room": "no spaces", "seconds": 5 }),
        json!({ "room": "r", "seconds": 86_401 }),
        json!({ "room": "r" }),
        json!({ "room": "r", "seconds": -5 }),
    ] {
        let err = client
            .post::<serde_json::Value>(&admin, "/admin/live/slow", Some(Body::json(&body)))
            .await
            .expect_err("refused");
        assert!(err.to_string().contains("HTTP 400"), "{body}: {err}");
    }
    let err = client
        .get::<serde_json::Value>(&admin, "/admin/live/slow/bad%20room")
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("HTTP 400"), "{err}");
    // The largest setting is taken, and a room nobody set follows the default.
    assert_eq!(
        set_slow_mode(&admin, "r", Some(86_400)).await["slow_mode_s"],
        86_400
    );
    let fresh = client
        .get::<serde_json::Value>(&admin, "/admin/live/slow/fresh")
        .await
        .unwrap();
    assert_eq!(
        fresh,
        json!({ "room": "fresh", "slow_mode_s": 0, "override_s": null, "default_s": 0 })
    );
}

/// `GET path` on the admin listener with the admin token.
async fn admin_get_with_token(node: &TestNode, path: &str) -> (u16, String) {
    let client = AdminClient::new(Some(ADMIN_TOKEN.into()), WAIT);
    match client
        .get::<serde_json::Value>(&node.node.addrs().admin.to_string(), path)
        .await
    {
        Ok(value) => (200, value.to_string()),
        Err(chorus_node::ctl::CtlError::Server {
            status, message, ..
        }) => (status, message),
        Err(e) => panic!("{e}"),
    }
}

/// A `chorus serve` process on `config` (a TOML file), and where it listens.
struct Proc {
    child: std::process::Child,
    tcp: std::net::SocketAddr,
    admin: String,
}

impl Proc {
    /// Starts the binary and waits for its "listening" line.
    fn spawn(config: &std::path::Path) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
            .args(["serve", "--config"])
            .arg(config)
            .args(["--log-level", "warn"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("chorus binary starts");
        let stdout = child.stdout.take().unwrap();
        let line = std::io::BufReader::new(stdout)
            .lines()
            .next()
            .expect("a listening line")
            .unwrap();
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} in {line:?}"))
                .to_string()
        };
        Proc {
            child,
            tcp: field("tcp=").parse().unwrap(),
            admin: field("admin="),
        }
    }

    async fn login(&self, user: &str) -> RawTcp {
        RawTcp::login_at(self.tcp, user).await
    }

    /// SIGKILL: no shutdown, no flush.
    fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The setting lives in the store, not in the room: after `kill -9` of the node
/// and a restart on the same data, the room comes back in slow mode.
#[tokio::test]
async fn slow_mode_survives_kill_9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::test_config(&dir.path().join("data"));
    let mut text = format!(
        "[admin]\ntoken = \"{ADMIN_TOKEN}\"\n[listen]\ntcp = \"127.0.0.1:0\"\nws = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[live]\nrate_per_user = 1000\nrate_window_s = 1\n[storage]\npath = {:?}\n",
        config.storage.path
    );
    // On the scylla backend the restarted node must find the same keyspace.
    if config.storage.backend == chorus_config::StorageBackend::Scylla {
        text.push_str(&format!(
            "backend = \"scylla\"\ncontact_points = [{:?}]\nkeyspace = {:?}\nconsistency = \"one\"\n",
            config.storage.contact_points[0], config.storage.keyspace
        ));
    }
    let file = dir.path().join("chorus.toml");
    std::fs::write(&file, text).unwrap();

    let node = Proc::spawn(&file);
    let answer = set_slow_mode(&node.admin, "stage", Some(600)).await;
    assert_eq!(answer["slow_mode_s"], 600);
    let mut fan = node.login("fan").await;
    assert_eq!(danmaku(&mut fan, "a1", "stage").await, Ok(1));
    slowed(danmaku(&mut fan, "a2", "stage").await);
    node.kill_9();

    let node = Proc::spawn(&file);
    let mut fan = node.login("fan").await;
    // The room starts afresh (seqs from 1, nobody remembered) but in slow mode.
    assert_eq!(danmaku(&mut fan, "b1", "stage").await, Ok(1));
    let retry = slowed(danmaku(&mut fan, "b2", "stage").await);
    assert!((590_000..=600_000).contains(&retry), "{retry}");
    let mut other = node.login("other").await;
    assert_eq!(danmaku(&mut other, "c1", "stage").await, Ok(2));
    assert_eq!(danmaku(&mut other, "c2", "elsewhere").await, Ok(1));
    assert_eq!(
        danmaku(&mut other, "c3", "elsewhere").await,
        Ok(2),
        "not in slow mode"
    );
}
