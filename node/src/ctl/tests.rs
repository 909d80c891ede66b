#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use tokio::net::TcpListener;

use chorus_admin_api::client::Answer;
use chorus_admin_api::cluster::*;
use chorus_admin_api::filter::*;
use chorus_admin_api::live::SlowModeResponse;
use chorus_admin_api::scaling::*;
use chorus_admin_api::tls::TlsReloadResponse;
use chorus_admin_api::users::*;
use serde_json::{Value, json};

use super::drain::{DrainProgress, drain_progress};
use super::http::interpret;
use super::locate::WhereReport;
use super::status::StatusRow;
use super::table::Table;
use super::*;
use crate::admin::{AdminBackend, AdminError, AdminFuture, AdminState, Readiness, serve_admin};
use crate::telemetry;

/// A JSON document read as a type of the contract, as chorusctl reads answers.
fn typed<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

/// The members of a `/admin/members` answer, sorted, as the commands use them.
fn members_of(answer: Value) -> Result<Vec<MemberInfo>, serde_json::Error> {
    serde_json::from_value::<MembersResponse>(answer).map(|a| view::sorted(a.members))
}

const TOKEN: &str = "ctl-test-token";

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("chorusctl").chain(args.iter().copied()))
}

// ---- arguments ----

#[test]
fn command_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn global_flags_have_defaults_and_go_anywhere() {
    // The environment of the test run must not leak into the defaults.
    if std::env::var_os("CHORUS_ADMIN").is_some()
        || std::env::var_os("CHORUS_ADMIN_TOKEN").is_some()
    {
        return;
    }
    let cli = parse(&["status"]).unwrap();
    assert_eq!(cli.admin, DEFAULT_ADMIN);
    assert_eq!(cli.token, None);
    assert!(!cli.json);
    assert_eq!(cli.timeout, 10);
    assert_eq!(cli.command, Command::Status);

    let cli = parse(&[
        "where",
        "conv:dm:alice:bob",
        "--json",
        "--admin",
        "http://10.0.0.1:7402/",
        "--token",
        "t0k",
        "--timeout",
        "3",
    ])
    .unwrap();
    assert_eq!(cli.admin, "10.0.0.1:7402");
    assert_eq!(cli.token.as_deref(), Some("t0k"));
    assert!(cli.json);
    assert_eq!(cli.timeout, 3);
    assert_eq!(
        cli.command,
        Command::Where {
            key: "conv:dm:alice:bob".into()
        }
    );
}

#[test]
fn subcommands_parse() {
    let cli = parse(&["drain", "n2", "--wait", "--wait-timeout", "5"]).unwrap();
    assert_eq!(
        cli.command,
        Command::Drain(DrainArgs {
            node: "n2".into(),
            wait: true,
            wait_timeout: 5
        })
    );
    let cli = parse(&["drain", "n2"]).unwrap();
    assert_eq!(
        cli.command,
        Command::Drain(DrainArgs {
            node: "n2".into(),
            wait: false,
            wait_timeout: 60
        })
    );
    let cli = parse(&[
        "token", "issue", "alice", "--role", "vip", "--role", "mod", "--ttl", "60",
    ])
    .unwrap();
    assert_eq!(
        cli.command,
        Command::Token(TokenCommand::Issue {
            user: "alice".into(),
            roles: vec!["vip".into(), "mod".into()],
            ttl: Some(60)
        })
    );
    let cli = parse(&["filter", "test", "some text"]).unwrap();
    assert_eq!(
        cli.command,
        Command::Filter(FilterCommand::Test {
            text: "some text".into()
        })
    );
    assert_eq!(
        parse(&["filter", "reload"]).unwrap().command,
        Command::Filter(FilterCommand::Reload)
    );
    assert_eq!(
        parse(&["kick", "bob"]).unwrap().command,
        Command::Kick { user: "bob".into() }
    );
    assert_eq!(parse(&["members"]).unwrap().command, Command::Members);
    assert_eq!(parse(&["shards"]).unwrap().command, Command::Shards);
    let slow = |room: &str, seconds, reset| {
        Command::Live(LiveCommand::Slow(SlowArgs {
            room: room.into(),
            seconds,
            reset,
        }))
    };
    assert_eq!(
        parse(&["live", "slow", "r1", "30"]).unwrap().command,
        slow("r1", Some(30), false)
    );
    assert_eq!(
        parse(&["live", "slow", "r1", "0", "--json"])
            .unwrap()
            .command,
        slow("r1", Some(0), false)
    );
    assert_eq!(
        parse(&["live", "slow", "r1", "86400"]).unwrap().command,
        slow("r1", Some(86_400), false)
    );
    assert_eq!(
        parse(&["live", "slow", "r1"]).unwrap().command,
        slow("r1", None, false)
    );
    assert_eq!(
        parse(&["live", "slow", "r1", "--reset"]).unwrap().command,
        slow("r1", None, true)
    );
}

#[test]
fn bad_arguments_are_refused_by_name() {
    for (args, says) in [
        (&["--admin", "localhost", "status"][..], "HOST:PORT"),
        (&["--admin", ":7402", "status"], "HOST:PORT"),
        (&["--admin", "h:99999", "status"], "port number"),
        (&["--token", "has space", "status"], "printable ASCII"),
        (&["--timeout", "0", "status"], "--timeout"),
        (&["token", "issue", "alice", "--role", "root"], "root"),
        (&["token", "issue", "alice", "--ttl", "0"], "--ttl"),
        (&["drain"], "<NODE>"),
        (&["where"], "<KEY>"),
        (&["bogus"], "bogus"),
        (&["live", "slow"], "<ROOM>"),
        (&["live", "slow", "r1", "86401"], "86401"),
        (&["live", "slow", "r1", "-1"], "-1"),
        (&["live", "slow", "r1", "5", "--reset"], "--reset"),
        (&["live", "fast", "r1"], "fast"),
    ] {
        let err = parse(args).unwrap_err().to_string();
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

// ---- text ----

#[test]
fn tables_align_columns_without_trailing_spaces() {
    let mut table = Table::new(&["NODE", "STATUS", "TCP"]);
    table.row(vec!["n1".into(), "serving".into(), "127.0.0.1:7400".into()]);
    table.row(vec!["node-10".into(), "-".into(), String::new()]);
    table.row(vec!["n3".into()]);
    assert_eq!(
        table.render(),
        "NODE     STATUS   TCP\n\
         n1       serving  127.0.0.1:7400\n\
         node-10  -\n\
         n3\n"
    );
}

fn member(id: &str, status: &str, alive: bool, admin: &str) -> Value {
    json!({
        "node_id": id, "generation": 7, "status": status, "alive": alive,
        "connected": alive, "self": id == "n1",
        "tcp": format!("{id}.example:7400"), "ws": format!("{id}.example:7401"),
        "admin": admin, "cluster": format!("{id}.example:7404"), "load": 3,
    })
}

#[test]
fn members_are_read_strictly_and_sorted() {
    let answer = json!({
        "node": "n1",
        "members": [
            member("n2", "draining", true, "n2:7402"),
            member("n0", "serving", false, ""),
            member("n1", "serving", true, "n1:7402"),
        ],
    });
    let mut members = members_of(answer).unwrap();
    let ids: Vec<&str> = members.iter().map(|m| m.node_id.as_str()).collect();
    assert_eq!(ids, ["n0", "n1", "n2"]);
    assert!(!members[0].alive);
    assert!(members[1].this);
    // A field this version does not know is ignored; a missing or mistyped
    // required one is an error that names it.
    let mut newer = member("n3", "serving", true, "n3:7402");
    newer["zone"] = "eu-1".into();
    assert!(members_of(json!({ "node": "n1", "members": [newer] })).is_ok());
    for (entry, says) in [
        (json!({ "node_id": 5 }), "invalid type"),
        (json!({ "node_id": "n0", "alive": "yes" }), "invalid type"),
        (json!({ "node_id": "n0" }), "missing field"),
        (json!(1), "invalid type"),
    ] {
        let err = members_of(json!({ "node": "n1", "members": [entry] })).unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
    }
    assert!(members_of(json!({ "members": {} })).is_err());
    assert!(members_of(json!([])).is_err());
    // The n0 row of the table: dead, no load figure beyond its own.
    members[0].load = 0;
    members[0].connected = false;
    members[0].tcp.clear();
    members[0].ws.clear();
    members[0].cluster = None;
    members[0].status.clear();

    let rows = words(&members::members_table(&members));
    assert_eq!(
        rows,
        [
            vec![
                "NODE",
                "STATUS",
                "ALIVE",
                "CONNECTED",
                "LOAD",
                "TCP",
                "WS",
                "ADMIN",
                "CLUSTER"
            ],
            vec!["n0", "-", "no", "no", "0", "-", "-", "-", "-"],
            vec![
                "n1",
                "serving",
                "yes",
                "self",
                "3",
                "n1.example:7400",
                "n1.example:7401",
                "n1:7402",
                "n1.example:7404"
            ],
            vec![
                "n2",
                "draining",
                "yes",
                "yes",
                "3",
                "n2.example:7400",
                "n2.example:7401",
                "n2:7402",
                "n2.example:7404"
            ],
        ]
    );
}

#[test]
fn status_rows_show_dashes_for_members_that_did_not_answer() {
    let members = members_of(json!({ "node": "n1", "members": [
        member("n1", "serving", true, "a:1"),
        member("n2", "serving", true, "b:1"),
        member("n3", "joining", false, "c:1"),
    ]}))
    .unwrap();
    let status = typed(json!({
        "node": "n1", "status": "draining", "sessions": 3,
        "listen": { "tcp": "127.0.0.1:7400", "ws": "127.0.0.1:7401", "admin": "127.0.0.1:7402" },
        "entities": { "user": 2, "conversation": 1, "live_room": 0 },
    }));
    let rows = vec![
        StatusRow {
            member: members[0].clone(),
            status: Ok(status),
        },
        StatusRow {
            member: members[1].clone(),
            status: Err("cannot connect".into()),
        },
        StatusRow {
            member: members[2].clone(),
            status: Err("not alive".into()),
        },
    ];
    let text = status::status_table(&rows);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec![
                "NODE", "STATUS", "ALIVE", "SESSIONS", "USERS", "CONVS", "ROOMS", "TCP", "WS"
            ],
            vec![
                "n1",
                "draining",
                "yes",
                "3",
                "2",
                "1",
                "0",
                "n1.example:7400",
                "n1.example:7401"
            ],
            vec![
                "n2",
                "serving",
                "yes",
                "-",
                "-",
                "-",
                "-",
                "n2.example:7400",
                "n2.example:7401"
            ],
            vec![
                "n3",
                "joining",
                "no",
                "-",
                "-",
                "-",
                "-",
                "n3.example:7400",
                "n3.example:7401"
            ],
        ]
    );

    // Without advertised addresses the node's own listen addresses are shown.
    let mut bare = members[0].clone();
    bare.tcp.clear();
    bare.ws.clear();
    let text = status::status_table(&[StatusRow {
        member: bare,
        status: Ok(typed(json!({
            "node": "n1", "status": "", "sessions": 0,
            "listen": { "tcp": "127.0.0.1:1", "ws": "", "admin": "" },
            "entities": { "user": 0, "conversation": 0, "live_room": 0 },
        }))),
    }]);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[1],
        [
            "n1",
            "serving",
            "yes",
            "0",
            "0",
            "0",
            "0",
            "127.0.0.1:1",
            "-"
        ]
    );
}

#[test]
fn shards_count_per_owner() {
    let answer = json!({
        "node": "n1", "shards": 8, "serving": ["n2", "n1"],
        "owners": { "n1": [0, 1, 2], "n2": [3, 4, 5, 6], "old": [7] },
    });
    let text = shards::shards_table(&typed(answer));
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0].join(" "),
        "8 shards over 2 serving members (as n1 sees it)"
    );
    assert_eq!(lines[1], ["NODE", "SERVING", "SHARDS", "SHARE"]);
    assert_eq!(lines[2], ["n2", "yes", "4", "50.0%"]);
    assert_eq!(lines[3], ["n1", "yes", "3", "37.5%"]);
    assert_eq!(lines[4], ["old", "no", "1", "12.5%"]);
    assert_eq!(lines.len(), 5);

    let partial = shards::shards_table(&typed(
        json!({ "node": "n1", "shards": 4, "serving": [], "owners": { "n1": [0] } }),
    ));
    assert!(partial.ends_with("3 shards have no owner\n"), "{partial}");
    assert!(serde_json::from_value::<ShardsResponse>(json!({ "owners": {} })).is_err());
}

#[test]
fn where_reports_in_text_and_json() {
    let answer: WhereResponse = typed(json!({
        "node": "n1", "key": "user:alice", "kind": "user", "entity": "alice",
        "shard": 17, "owner": "n2", "running_here": false,
    }));
    let report = WhereReport {
        answer: answer.clone(),
        running_on: vec!["n2".into()],
        unreachable: vec![],
    };
    assert_eq!(
        report.to_text(),
        "key         user:alice\n\
         kind        user\n\
         shard       17\n\
         owner       n2\n\
         running on  n2\n"
    );
    assert_eq!(
        report.to_json(),
        json!({ "key": "user:alice", "kind": "user", "shard": 17, "owner": "n2", "running_on": ["n2"] })
    );
    let nowhere = WhereReport {
        answer,
        running_on: vec![],
        unreachable: vec!["n3".into()],
    };
    assert!(
        nowhere.to_text().contains("running on     nowhere"),
        "{}",
        nowhere.to_text()
    );
    assert!(nowhere.to_text().contains("not answering  n3"));
    assert_eq!(nowhere.to_json()["unreachable"], json!(["n3"]));
    assert_eq!(nowhere.to_json()["owner"], "n2");
}

#[test]
fn node_answers_as_text() {
    assert_eq!(
        kick::kick_text("alice", &typed(json!({ "user": "alice", "closed": 1 }))),
        "alice: 1 session closed\n"
    );
    assert_eq!(
        kick::kick_text("bob", &typed(json!({ "user": "bob", "closed": 0 }))),
        "bob: 0 sessions closed\n"
    );
    assert!(serde_json::from_value::<KickResponse>(json!(null)).is_err());

    let (token, note) = token::token_text(&typed(json!({
        "token": "eyJ.a.b", "user": "alice", "roles": ["vip", "mod"], "expires_in_s": 3600,
    })));
    assert_eq!(token, "eyJ.a.b\n");
    assert_eq!(note, "token for alice, roles: vip, mod, expires in 3600 s");
    assert!(serde_json::from_value::<TokenResponse>(json!({ "token": "" })).is_err());

    assert_eq!(
        filter::filter_reload_text(&typed(json!({
            "version": 3, "words": 1200, "allowed": 4, "memory_bytes": 1_258_291, "build_ms": 35,
        }))),
        "word filter reloaded: version 3, 1200 words, 4 allowed, 1.2 MiB, built in 35 ms\n"
    );
    let test = filter::filter_test_text(&typed(json!({
        "version": 2,
        "hits": [
            { "word": "badword", "start": 3, "end": 10, "text": "badword" },
            { "word": "bad", "start": 11, "end": 15, "text": "B-ad" },
        ],
        "masked": "so ******* ****", "normalised": "so badword bad",
    })));
    assert_eq!(
        test,
        "hits            2: \"badword\" at 3..10, \"bad\" as \"B-ad\" at 11..15\n\
         masked          so ******* ****\n\
         normalised      so badword bad\n\
         filter version  2\n"
    );
    assert!(
        filter::filter_test_text(&typed(
            json!({ "version": 1, "hits": [], "masked": "ok", "normalised": "ok" })
        ))
        .starts_with("hits            none\n")
    );

    assert_eq!(
        live::slow_text(&typed(json!({
            "room": "r1", "slow_mode_s": 30, "override_s": 30, "default_s": 0,
        }))),
        "room       r1\n\
         slow mode  30 s per user\n\
         set by     this room's setting\n\
         default    off\n"
    );
    assert_eq!(
        live::slow_text(&typed(json!({
            "room": "r2", "slow_mode_s": 10, "override_s": null, "default_s": 10,
        }))),
        "room       r2\n\
         slow mode  10 s per user\n\
         set by     the default ([live] slow_mode_s)\n\
         default    10 s per user\n"
    );
    // An answer of another shape is refused, naming what is missing.
    let err = serde_json::from_value::<SlowModeResponse>(json!({ "room": "r3" })).unwrap_err();
    assert!(
        err.to_string().contains("missing field `slow_mode_s`"),
        "{err}"
    );
}

// ---- HTTP ----

/// A one-shot server on loopback that answers `raw` to whatever it reads.
async fn answering(raw: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = vec![0; 4096];
        let _ = stream.read(&mut head).await;
        let _ = stream.write_all(&raw).await;
    });
    addr
}

#[tokio::test]
async fn answers_are_read_with_length_or_chunks_and_bounded() {
    let client = AdminClient::new(None, Duration::from_secs(2));
    let sized = answering(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n{\"a\": 1}".to_vec()).await;
    let value: Value = client.get(&sized, "/x").await.unwrap();
    assert_eq!(value, json!({ "a": 1 }));
    let chunked = answering(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n"
            .to_vec(),
    )
    .await;
    let value: Value = client.get(&chunked, "/x").await.unwrap();
    assert_eq!(value, json!({ "a": 1 }));

    for garbage in [
        &b""[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ] {
        let addr = answering(garbage.to_vec()).await;
        let err = client.get::<Value>(&addr, "/x").await.unwrap_err();
        assert!(
            matches!(err, CtlError::BadResponse { .. } | CtlError::Io { .. }),
            "{}: {err}",
            String::from_utf8_lossy(garbage)
        );
        assert!(err.to_string().contains(&addr), "{err}");
    }

    // An answer past the bound is refused, not read to the end.
    let mut huge = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 17 << 20).into_bytes();
    huge.resize(huge.len() + (17 << 20), b' ');
    let addr = answering(huge).await;
    let err = client.get::<Value>(&addr, "/x").await.unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");

    // A typed answer without a required field names the path and the field.
    let addr =
        answering(b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\n{\"node\": \"n\"}".to_vec()).await;
    let err = client
        .get::<MembersResponse>(&addr, "/admin/members")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/admin/members") && err.contains("missing field `members`"),
        "{err}"
    );
}

fn response(status: u16, body: &str) -> Answer {
    Answer {
        status,
        content_type: None,
        body: bytes::Bytes::copy_from_slice(body.as_bytes()),
    }
}

#[test]
fn failures_become_errors_that_name_the_address() {
    assert_eq!(
        &interpret("h:1", &response(200, r#"{"ok":true}"#), true).unwrap()[..],
        br#"{"ok":true}"#
    );
    let err = http::decode::<Value>("h:1", "/admin/x", b"ok").unwrap_err();
    assert!(matches!(err, CtlError::BadResponse { .. }), "{err}");
    assert!(err.to_string().contains("not JSON"), "{err}");

    let missing = interpret("h:1", &response(401, ""), false)
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("h:1 requires the admin token"),
        "{missing}"
    );
    assert!(missing.contains("CHORUS_ADMIN_TOKEN"), "{missing}");
    let refused = interpret("h:1", &response(401, ""), true)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("h:1 refused the admin token"), "{refused}");

    let unavailable = interpret(
        "h:1",
        &response(
            503,
            r#"{"error":"unavailable","message":"the store is unreachable"}"#,
        ),
        true,
    )
    .unwrap_err();
    assert!(
        matches!(&unavailable, CtlError::Server { status: 503, kind, .. } if kind == "unavailable")
    );
    assert_eq!(
        unavailable.to_string(),
        "h:1: the store is unreachable (HTTP 503)"
    );

    let disabled = interpret("h:1", &response(404, ""), true)
        .unwrap_err()
        .to_string();
    assert!(disabled.contains("admin API is disabled"), "{disabled}");
    let proxy = interpret("h:1", &response(502, "<html>bad gateway</html>"), true)
        .unwrap_err()
        .to_string();
    assert_eq!(proxy, "h:1: <html>bad gateway</html> (HTTP 502)");
}

#[test]
fn path_segments_are_encoded() {
    assert_eq!(http::encode_segment("user:alice"), "user:alice");
    assert_eq!(http::encode_segment("conv:dm:a.b:c_d"), "conv:dm:a.b:c_d");
    assert_eq!(http::encode_segment("a b/c?d#e%"), "a%20b%2Fc%3Fd%23e%25");
    assert_eq!(http::encode_segment("é"), "%C3%A9");
    assert_eq!(http::encode_segment(".."), "%2E%2E");
}

#[test]
fn a_drained_node_is_gone_once_dead_unlisted_or_restarted() {
    let members = |status: &str, alive: bool, generation: u64| {
        let mut m = member("n2", status, alive, "b:1");
        m["generation"] = generation.into();
        members_of(json!({ "node": "n1", "members": [member("n1", "serving", true, "a:1"), m] }))
            .unwrap()
    };
    assert_eq!(
        drain_progress(&members("draining", true, 7), "n2", 7),
        DrainProgress::Present("draining".into())
    );
    assert_eq!(
        drain_progress(&members("draining", false, 7), "n2", 7),
        DrainProgress::Gone
    );
    assert_eq!(
        drain_progress(&members("joining", true, 8), "n2", 7),
        DrainProgress::Gone
    );
    assert_eq!(
        drain_progress(&members("serving", true, 8), "n2", 8),
        DrainProgress::Present("serving".into())
    );
    assert_eq!(
        drain_progress(&members("draining", true, 7), "n9", 7),
        DrainProgress::Gone
    );
}

// ---- against admin listeners ----

/// One fake node of [`FakeCluster`].
#[derive(Debug, Clone)]
struct FakeMember {
    id: String,
    admin: String,
    status: &'static str,
    alive: bool,
    generation: u64,
    /// Entities this node runs, for `where`.
    running: Vec<String>,
}

/// The shared truth of a fake cluster: every fake node answers `members` from it,
/// as gossip would converge to.
#[derive(Debug, Default)]
struct FakeCluster {
    members: Mutex<Vec<FakeMember>>,
    drains: Mutex<Vec<String>>,
    /// A drained node never finishes its handoff (and never leaves).
    stuck: std::sync::atomic::AtomicBool,
}

impl FakeCluster {
    fn members_json(&self, me: &str) -> Value {
        let members: Vec<Value> = self
            .members
            .lock()
            .unwrap()
            .iter()
            .map(|m| {
                json!({
                    "node_id": m.id, "generation": m.generation, "status": m.status,
                    "alive": m.alive, "connected": m.alive, "self": m.id == me,
                    "tcp": "127.0.0.1:7400", "ws": "127.0.0.1:7401", "admin": m.admin,
                    "cluster": "127.0.0.1:7404", "load": 1,
                })
            })
            .collect();
        json!({ "node": me, "members": members })
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut FakeMember)) {
        if let Some(m) = self.members.lock().unwrap().iter_mut().find(|m| m.id == id) {
            change(m);
        }
    }
}

/// A node of a [`FakeCluster`] behind the real admin router.
struct FakeNode {
    id: String,
    cluster: Arc<FakeCluster>,
}

/// What a fake node answers for the operations these tests do not use.
fn not_here<T: Send + 'static>(what: &str) -> AdminFuture<'static, T> {
    let error = AdminError::NotFound(format!("{what} is not part of the fake cluster"));
    Box::pin(std::future::ready(Err(error)))
}

impl AdminBackend for FakeNode {
    fn status(&self) -> AdminFuture<'_, StatusResponse> {
        Box::pin(async {
            Ok(typed(json!({
                "node": self.id, "status": "serving",
                "listen": { "tcp": "127.0.0.1:17400", "ws": "127.0.0.1:17401", "admin": "-" },
                "sessions": 4, "entities": { "user": 3, "conversation": 2, "live_room": 1 },
            })))
        })
    }

    fn members(&self) -> AdminFuture<'_, MembersResponse> {
        Box::pin(async { Ok(typed(self.cluster.members_json(&self.id))) })
    }

    fn where_is(&self, key: String) -> AdminFuture<'_, WhereResponse> {
        Box::pin(async move {
            let running_here = self
                .cluster
                .members
                .lock()
                .unwrap()
                .iter()
                .any(|m| m.id == self.id && m.running.contains(&key));
            let Some((kind, entity)) = key.split_once(':') else {
                return Err(AdminError::BadRequest(format!("{key:?} names no entity")));
            };
            Ok(typed(json!({
                "node": self.id, "key": key, "kind": kind, "entity": entity,
                "shard": 17, "owner": "n2", "running_here": running_here,
            })))
        })
    }

    fn drain(&self) -> AdminFuture<'_, DrainResponse> {
        Box::pin(async {
            self.cluster.drains.lock().unwrap().push(self.id.clone());
            self.cluster.update(&self.id, |m| m.status = "draining");
            let answer = DrainResponse {
                node: self.id.clone(),
                status: "draining".into(),
                started: true,
            };
            // The node hands off and exits a moment later; gossip then marks it dead.
            let cluster = self.cluster.clone();
            let id = self.id.clone();
            if cluster.stuck.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(answer);
            }
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(700)).await;
                cluster.update(&id, |m| m.alive = false);
            });
            Ok(answer)
        })
    }

    fn shards(&self) -> AdminFuture<'_, ShardsResponse> {
        not_here("shards")
    }
    fn scaling_status(&self) -> AdminFuture<'_, ScalingStatus> {
        not_here("scaling")
    }
    fn scaling_forecast(&self) -> AdminFuture<'_, ScalingForecast> {
        not_here("scaling")
    }
    fn scaling_series(&self) -> AdminFuture<'_, ScalingSeries> {
        not_here("scaling")
    }
    fn kick(&self, _user: String) -> AdminFuture<'_, KickResponse> {
        not_here("kick")
    }
    fn issue_token(
        &self,
        _user: String,
        _roles: Vec<String>,
        _ttl_s: Option<u64>,
    ) -> AdminFuture<'_, TokenResponse> {
        not_here("token")
    }
    fn filter_reload(&self) -> AdminFuture<'_, FilterReloadResponse> {
        not_here("filter")
    }
    fn tls_reload(&self) -> AdminFuture<'_, TlsReloadResponse> {
        not_here("tls")
    }
    fn filter_test(&self, _text: String) -> AdminFuture<'_, FilterTestResponse> {
        not_here("filter")
    }
    fn live_slow_mode(&self, _room: String) -> AdminFuture<'_, SlowModeResponse> {
        not_here("live")
    }
    fn set_live_slow_mode(
        &self,
        _room: String,
        _seconds: Option<u32>,
    ) -> AdminFuture<'_, SlowModeResponse> {
        not_here("live")
    }
}

/// Starts one admin listener per id on loopback; `dead` ids get an address
/// nothing listens on and are listed as not alive, `silent` ones are listed alive
/// but do not listen.
async fn fake_cluster(
    ids: &[&str],
    silent: &[&str],
    dead: &[&str],
) -> (Arc<FakeCluster>, BTreeMap<String, String>) {
    let cluster = Arc::new(FakeCluster::default());
    let mut addrs = BTreeMap::new();
    for id in ids {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let down = silent.contains(id) || dead.contains(id);
        if down {
            drop(listener);
        } else {
            let backend = Arc::new(FakeNode {
                id: id.to_string(),
                cluster: cluster.clone(),
            });
            let state = AdminState::new(
                Readiness::new(),
                telemetry::install_metrics(),
                Some(TOKEN),
                backend,
            );
            tokio::spawn(serve_admin(listener, state, std::future::pending()));
        }
        cluster.members.lock().unwrap().push(FakeMember {
            id: id.to_string(),
            admin: addr.clone(),
            status: if dead.contains(id) {
                "joining"
            } else {
                "serving"
            },
            alive: !dead.contains(id),
            generation: 1,
            running: Vec::new(),
        });
        addrs.insert(id.to_string(), addr);
    }
    (cluster, addrs)
}

async fn ctl(admin: &str, args: &[&str]) -> Result<Outcome, CtlError> {
    let mut all = vec!["--admin", admin, "--token", TOKEN, "--timeout", "2"];
    all.extend_from_slice(args);
    run(&parse(&all).unwrap()).await
}

fn words(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[tokio::test]
async fn status_asks_every_alive_member() {
    let (_cluster, addrs) = fake_cluster(&["n1", "n2", "n3", "n4"], &["n3"], &["n4"]).await;
    let out = ctl(&addrs["n1"], &["status"]).await.unwrap();
    let rows = words(&out.stdout);
    assert_eq!(rows[1][..7], ["n1", "serving", "yes", "4", "3", "2", "1"]);
    assert_eq!(rows[2][..7], ["n2", "serving", "yes", "4", "3", "2", "1"]);
    assert_eq!(rows[3][..7], ["n3", "serving", "yes", "-", "-", "-", "-"]);
    assert_eq!(rows[4][..7], ["n4", "joining", "no", "-", "-", "-", "-"]);
    // The member that should have answered is named, with its address.
    assert_eq!(out.notes.len(), 1, "{:?}", out.notes);
    assert!(
        out.notes[0].starts_with("n3: cannot connect"),
        "{:?}",
        out.notes
    );
    assert!(out.notes[0].contains(&addrs["n3"]), "{:?}", out.notes);

    let json: Value = serde_json::from_str(
        &ctl(&addrs["n2"], &["status", "--json"])
            .await
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(json["node"], "n2");
    assert_eq!(json["nodes"][0]["status"]["sessions"], 4);
    assert_eq!(json["nodes"][0]["error"], Value::Null);
    assert_eq!(json["nodes"][2]["status"], Value::Null);
    assert_eq!(json["nodes"][3]["error"], "not alive");
}

#[tokio::test]
async fn status_of_a_cluster_of_one_is_that_node_alone() {
    let (_cluster, addrs) = fake_cluster(&["n1"], &[], &[]).await;
    let out = ctl(&addrs["n1"], &["status"]).await.unwrap();
    let rows = words(&out.stdout);
    assert_eq!(rows[1][..7], ["n1", "serving", "yes", "4", "3", "2", "1"]);
    assert_eq!(rows.len(), 2);
    assert!(out.notes.is_empty());

    // An operation the node refuses is its message and status.
    let err = ctl(&addrs["n1"], &["shards"])
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{}: shards is not part of the fake cluster (HTTP 404)",
            addrs["n1"]
        )
    );
}

#[tokio::test]
async fn where_collects_the_nodes_an_entity_runs_on() {
    let (cluster, addrs) = fake_cluster(&["n1", "n2", "n3"], &["n3"], &[]).await;
    cluster.update("n1", |m| m.running.push("user:alice".into()));
    cluster.update("n2", |m| m.running.push("user:alice".into()));

    let out = ctl(&addrs["n1"], &["where", "user:alice"]).await.unwrap();
    assert!(out.stdout.contains("owner          n2\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains("running on     n1, n2\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("not answering  n3\n"), "{}", out.stdout);
    assert!(
        out.notes[0].starts_with("n3: cannot connect"),
        "{:?}",
        out.notes
    );

    cluster.update("n3", |m| m.alive = false);
    let out = ctl(&addrs["n2"], &["--json", "where", "user:alice"])
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap(),
        json!({ "key": "user:alice", "kind": "user", "shard": 17, "owner": "n2", "running_on": ["n1", "n2"] })
    );

    let err = ctl(&addrs["n1"], &["where", "nokind"]).await.unwrap_err();
    assert!(matches!(err, CtlError::Server { status: 400, .. }), "{err}");
    assert!(
        err.to_string().contains("\"nokind\" names no entity"),
        "{err}"
    );
}

#[tokio::test]
async fn drain_wait_returns_once_the_node_left() {
    let (cluster, addrs) = fake_cluster(&["n1", "n2", "n3"], &[], &[]).await;
    let out = ctl(
        &addrs["n1"],
        &["drain", "n2", "--wait", "--wait-timeout", "10"],
    )
    .await
    .unwrap();
    assert!(
        out.stdout
            .starts_with("n2: drained, left the cluster after"),
        "{}",
        out.stdout
    );
    assert_eq!(*cluster.drains.lock().unwrap(), ["n2"]);

    // Draining the node asked goes to --admin; without --wait it returns at once.
    let out = ctl(&addrs["n1"], &["--json", "drain", "n1"]).await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap(),
        json!({ "node": "n1", "status": "draining", "started": true })
    );
    assert_eq!(*cluster.drains.lock().unwrap(), ["n2", "n1"]);

    let err = ctl(&addrs["n3"], &["drain", "n9"])
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "n9 is not a member of the cluster n3 sees (members: n1, n2, n3)"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let err = ctl(&addrs["n3"], &["drain", "n2"])
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(err, "n2 is not alive: there is nothing to drain");
}

#[tokio::test]
async fn drain_wait_gives_up_after_its_timeout() {
    let (cluster, addrs) = fake_cluster(&["n1", "n2"], &[], &[]).await;
    // n2 stays "draining" and alive: its handoff is stuck.
    cluster
        .stuck
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let started = Instant::now();
    let err = ctl(
        &addrs["n1"],
        &["drain", "n2", "--wait", "--wait-timeout", "1"],
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "n2 is still a live member (draining) after 1 s; the drain goes on, see its log"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn a_wrong_token_is_reported_once_with_the_address() {
    let (_cluster, addrs) = fake_cluster(&["n1"], &[], &[]).await;
    let cli = parse(&["--admin", &addrs["n1"], "--token", "wrong", "status"]).unwrap();
    let err = run(&cli).await.unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{} refused the admin token: --token (or CHORUS_ADMIN_TOKEN) is not the node's [admin] token",
            addrs["n1"]
        )
    );
}
