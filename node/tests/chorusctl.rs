//! `chorusctl`, the built binary, against a real node: its tables and messages,
//! its exit codes, and what it does to the node (a kick closes the session, an
//! issued token logs in, a drained node exits, slow mode holds a sender back).
//!
//! One node, so `status`, `members` and `where` have one member to ask; the
//! fan-out over several members is covered by `ctl`'s unit tests.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::Output;
use std::time::Duration;

use chorus_config::{AuthMode, ModerationMode, Secret};
use chorus_wire::{ClientFrame, ServerFrame};
use common::{RawTcp, TestNode, start_node_with};
use tokio::io::AsyncBufReadExt;

const TOKEN: &str = "chorusctl-test-token";
const JWT_SECRET: &str = "a-jwt-secret-of-32-bytes-for-tests";

/// A node with the admin API on and a word list, adjusted by `adjust`.
async fn node_with(
    dir: &tempfile::TempDir,
    adjust: impl FnOnce(&mut chorus_config::Config),
) -> TestNode {
    let words = dir.path().join("words.txt");
    std::fs::write(&words, "badword\n").unwrap();
    start_node_with(|c| {
        c.admin.token = Some(Secret::new(TOKEN));
        c.moderation.words = Some(words);
        c.moderation.mode = ModerationMode::Mask;
        adjust(c);
    })
    .await
}

/// Runs `chorusctl` with `args`, against `admin`, with `token` in the environment.
async fn chorusctl(admin: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_chorusctl"));
    command
        .env_remove("CHORUS_ADMIN_TOKEN")
        .env("CHORUS_ADMIN", admin)
        .args(["--timeout", "5"])
        .args(args)
        .kill_on_drop(true);
    if let Some(token) = token {
        command.env("CHORUS_ADMIN_TOKEN", token);
    }
    tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("chorusctl finishes")
        .expect("chorusctl runs")
}

/// [`chorusctl`] that must succeed; its stdout.
async fn ok(admin: &str, args: &[&str]) -> String {
    let out = chorusctl(admin, Some(TOKEN), args).await;
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// [`chorusctl`] that must fail with exit code 1 and print nothing on stdout;
/// its stderr.
async fn fails(admin: &str, args: &[&str]) -> String {
    let out = chorusctl(admin, Some(TOKEN), args).await;
    assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
    assert!(stdout(&out).is_empty(), "{args:?}");
    stderr(&out)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Whitespace-separated words of each line.
fn words(text: &str) -> Vec<Vec<&str>> {
    text.lines()
        .map(|l| l.split_whitespace().collect())
        .collect()
}

#[tokio::test]
async fn status_members_shards_and_where_describe_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(&dir, |_| {}).await;
    let addrs = node.node.addrs();
    let admin = addrs.admin.to_string();
    let mut alice = RawTcp::login(&node, "alice").await;

    let text = ok(&admin, &["status"]).await;
    let rows = words(&text);
    assert_eq!(
        rows[0],
        [
            "NODE", "STATUS", "ALIVE", "SESSIONS", "USERS", "CONVS", "ROOMS", "TCP", "WS"
        ]
    );
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(rows[1][..4], ["node-1", "serving", "yes", "1"]);
    assert_eq!(rows[1][7..], [addrs.tcp.to_string(), addrs.ws.to_string()]);
    let status = json(&ok(&admin, &["status", "--json"]).await);
    assert_eq!(status["node"], "node-1");
    assert_eq!(status["nodes"][0]["status"]["sessions"], 1);

    let text = ok(&admin, &["members"]).await;
    let rows = words(&text);
    assert_eq!(rows[0], ["members", "as", "node-1", "sees", "them"]);
    assert_eq!(rows[2][..4], ["node-1", "serving", "yes", "self"]);
    assert_eq!(rows.len(), 3, "{text}");
    let members = json(&ok(&admin, &["members", "--json"]).await);
    assert_eq!(members["members"][0]["admin"], admin);

    let text = ok(&admin, &["shards"]).await;
    assert!(
        text.starts_with("1024 shards over 1 serving members (as node-1 sees it)\n"),
        "{text}"
    );
    assert_eq!(words(&text)[2], ["node-1", "yes", "1024", "100.0%"]);
    let shards = json(&ok(&admin, &["shards", "--json"]).await);
    assert_eq!(shards["owners"]["node-1"].as_array().unwrap().len(), 1024);

    // alice is logged in but idle: no User entity runs for her yet.
    let text = ok(&admin, &["where", "user:alice"]).await;
    assert!(text.contains("owner       node-1\n"), "{text}");
    assert!(text.contains("running on  nowhere"), "{text}");
    // A message to her starts it here (her own session, the sender, gets the ack).
    common::send_msg(&mut alice, "m1", "user:alice", "note to self").await;
    alice
        .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
        .await;
    let text = ok(&admin, &["where", "user:alice"]).await;
    assert!(text.contains("owner       node-1\n"), "{text}");
    assert!(text.contains("running on  node-1\n"), "{text}");
    let place = json(&ok(&admin, &["where", "conv:dm:alice:bob", "--json"]).await);
    assert_eq!(place["kind"], "conversation");
    assert_eq!(place["owner"], "node-1");
    assert_eq!(place["running_on"], serde_json::json!([]));
    let shard = place["shard"].as_u64().unwrap();
    assert!(shard < 1024);
    let err = fails(&admin, &["where", "bogus"]).await;
    assert!(
        err.starts_with(&format!("chorusctl: {admin}: ")) && err.ends_with("(HTTP 400)\n"),
        "{err}"
    );
}

#[tokio::test]
async fn kick_closes_the_session_and_the_filter_answers() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(&dir, |_| {}).await;
    let admin = node.node.addrs().admin.to_string();
    let mut alice = RawTcp::login(&node, "alice").await;

    assert_eq!(
        ok(&admin, &["kick", "alice"]).await,
        "alice: 1 session closed\n"
    );
    // Whatever the node says first, the connection ends.
    while alice.recv().await.is_some() {}
    assert_eq!(
        ok(&admin, &["kick", "alice"]).await,
        "alice: 0 sessions closed\n"
    );
    let err = fails(&admin, &["kick", "al ice"]).await;
    assert!(err.ends_with("(HTTP 400)\n"), "{err}");

    let text = ok(&admin, &["filter", "test", "so badword"]).await;
    assert!(
        text.contains("hits            1: \"badword\" at 3..10\n"),
        "{text}"
    );
    assert!(text.contains("masked          so *******\n"), "{text}");
    let text = ok(&admin, &["filter", "reload"]).await;
    assert!(
        text.starts_with("word filter reloaded: version 2, 1 words"),
        "{text}"
    );
}

#[tokio::test]
async fn an_issued_token_logs_in_on_a_jwt_node() {
    let dir = tempfile::tempdir().unwrap();
    let dev = node_with(&dir, |_| {}).await;
    let dev_admin = dev.node.addrs().admin.to_string();
    let err = fails(&dev_admin, &["token", "issue", "alice"]).await;
    assert!(err.contains("auth.mode = \"jwt\""), "{err}");

    let jwt_dir = tempfile::tempdir().unwrap();
    let jwt = node_with(&jwt_dir, |c| {
        c.auth.mode = AuthMode::Jwt;
        c.auth.secret = Some(Secret::new(JWT_SECRET));
    })
    .await;
    let admin = jwt.node.addrs().admin.to_string();
    let out = chorusctl(
        &admin,
        Some(TOKEN),
        &["token", "issue", "alice", "--role", "vip", "--ttl", "60"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    // The token alone on stdout, for TOKEN=$(chorusctl token issue ...).
    let token = stdout(&out).trim_end().to_string();
    assert_eq!(stdout(&out), format!("{token}\n"));
    assert_eq!(token.split('.').count(), 3, "{token}");
    assert_eq!(
        stderr(&out),
        "chorusctl: token for alice, roles: vip, expires in 60 s\n"
    );

    let mut client = RawTcp::connect(&jwt).await;
    client
        .send(&ClientFrame::Hello {
            protocol: 1,
            token,
            device: None,
        })
        .await;
    match client.recv().await {
        Some(ServerFrame::Welcome { user, .. }) => assert_eq!(user, "alice"),
        other => panic!("expected welcome, got {other:?}"),
    }

    let issued = json(&ok(&admin, &["--json", "token", "issue", "bob"]).await);
    assert_eq!(issued["user"], "bob");
    assert_eq!(issued["roles"], serde_json::json!([]));
    assert_eq!(issued["expires_in_s"], 86_400);
}

/// `POST /admin/token` with `body` over a raw HTTP/1.0 connection: the status and
/// the JSON answer.
async fn post_token(admin: std::net::SocketAddr, body: &str) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(admin).await.unwrap();
    let request = format!(
        "POST /admin/token HTTP/1.0\r\nHost: chorus\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("the admin listener answers")
    .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, json(body))
}

/// The `exp - iat` of an issued token, read back with the node's secret.
fn lifetime_s(token: &str) -> u64 {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(JWT_SECRET.as_bytes()),
        &validation,
    )
    .unwrap()
    .claims;
    claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap()
}

#[tokio::test]
async fn token_lifetimes_over_the_cap_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(&dir, |c| {
        c.auth.mode = AuthMode::Jwt;
        c.auth.secret = Some(Secret::new(JWT_SECRET));
        c.admin.max_token_ttl_s = 3600;
    })
    .await;
    let addr = node.node.addrs().admin;
    let admin = addr.to_string();

    // One second over the cap: 400 with the JSON error every admin failure has.
    let (status, answer) = post_token(addr, r#"{"user": "alice", "ttl_s": 3601}"#).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"], "bad_request");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains("ttl_s = 3601") && message.contains("admin.max_token_ttl_s = 3600"),
        "{message}"
    );
    let (status, answer) =
        post_token(addr, r#"{"user": "alice", "ttl_s": 18446744073709551615}"#).await;
    assert_eq!(status, 400, "{answer}");

    // chorusctl says the same and exits 1.
    let err = fails(&admin, &["token", "issue", "alice", "--ttl", "86400"]).await;
    assert!(err.contains("admin.max_token_ttl_s = 3600"), "{err}");

    // At the cap is fine, and a request naming no lifetime gets the cap, not a day.
    let (status, answer) = post_token(addr, r#"{"user": "alice", "ttl_s": 3600}"#).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["expires_in_s"], 3600);
    assert_eq!(lifetime_s(answer["token"].as_str().unwrap()), 3600);
    let issued = json(&ok(&admin, &["--json", "token", "issue", "bob"]).await);
    assert_eq!(issued["expires_in_s"], 3600);
    assert_eq!(lifetime_s(issued["token"].as_str().unwrap()), 3600);
}

#[tokio::test]
async fn drain_wait_returns_once_the_node_has_exited() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "[cluster]\nnode_id = \"solo\"\n\
             [listen]\ntcp = \"127.0.0.1:0\"\nws = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             gossip = \"127.0.0.1:0\"\ncluster = \"127.0.0.1:0\"\n\
             [storage]\npath = {:?}\n\
             [admin]\ntoken = \"{TOKEN}\"\n",
            dir.path().join("data")
        ),
    )
    .unwrap();
    let mut chorus = tokio::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(chorus.stdout.take().unwrap()).lines();
    let listening = tokio::time::timeout(common::WAIT, lines.next_line())
        .await
        .expect("the node starts")
        .unwrap()
        .expect("a listening line");
    let admin = listening
        .split_whitespace()
        .find_map(|w| w.strip_prefix("admin="))
        .expect("admin= in the listening line")
        .to_string();

    let err = fails(&admin, &["drain", "nobody"]).await;
    assert_eq!(
        err,
        "chorusctl: nobody is not a member of the cluster solo sees (members: solo)\n"
    );
    let out = chorusctl(
        &admin,
        Some(TOKEN),
        &["drain", "solo", "--wait", "--wait-timeout", "20"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("solo: drained, left the cluster after"),
        "{}",
        stdout(&out)
    );
    let exit = tokio::time::timeout(common::WAIT, chorus.wait())
        .await
        .expect("the drained node exits by itself")
        .unwrap();
    assert!(exit.success(), "{exit}");
}

/// The answer of danmaku `id` to `room` from `c`: whether it was accepted.
async fn danmaku_accepted(c: &mut RawTcp, id: &str, room: &str) -> bool {
    c.send(&ClientFrame::Danmaku {
        id: id.into(),
        room: room.into(),
        body: "hi".into(),
    })
    .await;
    match c
        .recv_until(|f| matches!(f, ServerFrame::Ack { id: i, .. } | ServerFrame::Reject { id: i, .. } if i == id))
        .await
    {
        ServerFrame::Ack { .. } => true,
        ServerFrame::Reject { code, .. } => {
            assert_eq!(code, chorus_wire::ErrorCode::RateLimited);
            false
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn live_slow_shows_sets_and_resets_a_rooms_slow_mode() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(&dir, |c| c.live.slow_mode_s = 0).await;
    let admin = node.node.addrs().admin.to_string();
    let mut fan = RawTcp::login(&node, "fan").await;

    assert_eq!(
        ok(&admin, &["live", "slow", "hall"]).await,
        "room       hall\n\
         slow mode  off\n\
         set by     the default ([live] slow_mode_s)\n\
         default    off\n"
    );
    assert_eq!(
        ok(&admin, &["live", "slow", "hall", "45"]).await,
        "room       hall\n\
         slow mode  45 s per user\n\
         set by     this room's setting\n\
         default    off\n"
    );
    assert!(danmaku_accepted(&mut fan, "d1", "hall").await);
    assert!(!danmaku_accepted(&mut fan, "d2", "hall").await, "slowed");
    let shown = json(&ok(&admin, &["live", "slow", "hall", "--json"]).await);
    assert_eq!(
        shown,
        serde_json::json!({ "room": "hall", "slow_mode_s": 45, "override_s": 45, "default_s": 0 })
    );

    let off = json(&ok(&admin, &["live", "slow", "hall", "0", "--json"]).await);
    assert_eq!(off["slow_mode_s"], 0);
    assert_eq!(off["override_s"], 0);
    assert!(danmaku_accepted(&mut fan, "d3", "hall").await);
    assert!(danmaku_accepted(&mut fan, "d4", "hall").await);

    let text = ok(&admin, &["live", "slow", "hall", "--reset"]).await;
    assert!(
        text.contains("set by     the default ([live] slow_mode_s)\n"),
        "{text}"
    );

    let err = fails(&admin, &["live", "slow", "bad room"]).await;
    assert!(err.ends_with("(HTTP 400)\n"), "{err}");
    let usage = chorusctl(&admin, Some(TOKEN), &["live", "slow", "hall", "86401"]).await;
    assert_eq!(usage.status.code(), Some(2));
    assert!(stderr(&usage).contains("86401"), "{}", stderr(&usage));
}

#[tokio::test]
async fn bad_credentials_and_addresses_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(&dir, |_| {}).await;
    let admin = node.node.addrs().admin.to_string();

    let wrong = chorusctl(&admin, Some("not-the-token"), &["status"]).await;
    assert_eq!(wrong.status.code(), Some(1));
    assert_eq!(
        stderr(&wrong),
        format!(
            "chorusctl: {admin} refused the admin token: --token (or CHORUS_ADMIN_TOKEN) is not \
             the node's [admin] token\n"
        )
    );
    assert!(stdout(&wrong).is_empty());

    let missing = chorusctl(&admin, None, &["kick", "alice"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains(&format!("{admin} requires the admin token")),
        "{}",
        stderr(&missing)
    );

    // Nothing listens there any more: the address is named.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let refused = chorusctl(&closed, Some(TOKEN), &["status"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).starts_with(&format!(
            "chorusctl: cannot connect to the admin API at {closed}:"
        )),
        "{}",
        stderr(&refused)
    );

    let usage = chorusctl(
        &admin,
        Some(TOKEN),
        &["token", "issue", "alice", "--role", "root"],
    )
    .await;
    assert_eq!(usage.status.code(), Some(2));
    assert!(stderr(&usage).contains("root"), "{}", stderr(&usage));
}
