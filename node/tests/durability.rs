//! Durability: every acked message survives `kill -9` of the node process.
//!
//! Starts the real `chorus` binary on a data directory, sends 1,000 messages from
//! several pipelining clients, kills the process with SIGKILL right after the last
//! ack, restarts it on the same directory, and finds every acked message at its
//! acked seq with its body.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use chorus_wire::codec::{Frame, TcpDecoder};
use chorus_wire::{ClientFrame, ServerFrame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CLIENTS: usize = 5;
const PER_CLIENT: usize = 200;

struct Proc {
    child: Child,
    tcp: SocketAddr,
}

/// Starts `chorus serve` and waits for its "listening" line (its readiness signal).
fn spawn_node(dir: &std::path::Path) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chorus"));
    cmd.args([
        "serve",
        "--tcp",
        "127.0.0.1:0",
        "--ws",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(dir);
    // On the scylla backend the node's keyspace lives in a config file beside
    // the data dir, written once, so the restarted node finds the same data.
    let file = dir.join("chorus-test.toml");
    let mut config = chorus_config::Config::default();
    common::use_backend_under_test(&mut config);
    if config.storage.backend == chorus_config::StorageBackend::Scylla {
        if !file.exists() {
            let text = format!(
                "[storage]\nbackend = \"scylla\"\ncontact_points = [\"{}\"]\nkeyspace = \"{}\"\nconsistency = \"one\"\n",
                config.storage.contact_points[0], config.storage.keyspace
            );
            std::fs::write(&file, text).unwrap();
        }
        cmd.arg("--config").arg(&file);
    }
    let mut child = cmd
        .args(["--log-level", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("chorus binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().expect("a listening line").unwrap();
    let tcp = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("tcp="))
        .expect("tcp= in the listening line")
        .parse()
        .unwrap();
    Proc { child, tcp }
}

async fn login(addr: SocketAddr, user: &str) -> (TcpStream, TcpDecoder) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        &ClientFrame::Hello {
            protocol: 1,
            token: user.into(),
            device: None,
        }
        .to_tcp(),
    )
    .await
    .unwrap();
    let mut d = TcpDecoder::new(1 << 20);
    match next(&mut s, &mut d).await {
        Some(ServerFrame::Welcome { .. }) => {}
        other => panic!("expected welcome, got {other:?}"),
    }
    (s, d)
}

async fn next(s: &mut TcpStream, d: &mut TcpDecoder) -> Option<ServerFrame> {
    loop {
        if let Some(f) = d.next_frame::<ServerFrame>().unwrap() {
            return Some(f);
        }
        match s.read_buf(d.buffer()).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acked_message_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = spawn_node(dir.path());

    // Each client pipelines its sends to two peers and collects its acks.
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let addr = node.tcp;
        tasks.push(tokio::spawn(async move {
            let user = format!("u{c}");
            let (mut s, mut d) = login(addr, &user).await;
            let mut bodies = HashMap::new();
            let mut out = Vec::new();
            for i in 0..PER_CLIENT {
                let id = format!("{user}-{i}");
                let to = format!("user:u{}", (c + 1 + i % 2) % CLIENTS);
                let body = format!("message {i} from {user}");
                out.extend_from_slice(
                    &ClientFrame::Send {
                        id: id.clone(),
                        to,
                        body: body.clone(),
                    }
                    .to_tcp(),
                );
                bodies.insert(id, body);
            }
            s.write_all(&out).await.unwrap();
            let mut acked = Vec::new();
            while acked.len() < PER_CLIENT {
                match next(&mut s, &mut d).await {
                    Some(ServerFrame::Ack { id, conv, seq, .. }) => {
                        let body = bodies[&id].clone();
                        acked.push((conv, seq, id, body));
                    }
                    Some(ServerFrame::Msg(_)) => {}
                    Some(other) => panic!("unexpected {other:?}"),
                    None => panic!("connection closed before every ack"),
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    // Right after the last ack: no clean shutdown, no flush.
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    assert_eq!(acked.len(), CLIENTS * PER_CLIENT);

    let mut node = spawn_node(dir.path());
    let mut by_conv: HashMap<String, Vec<(u64, String, String)>> = HashMap::new();
    for (conv, seq, id, body) in acked {
        by_conv.entry(conv).or_default().push((seq, id, body));
    }
    for (conv, expected) in &by_conv {
        // Read as a party of the conversation.
        let party = conv.split(':').nth(1).unwrap().to_string();
        let (mut ps, mut pd) = login(node.tcp, &party).await;
        let mut stored = HashMap::new();
        let mut after = 0;
        loop {
            let req = ClientFrame::History {
                reference: "h".into(),
                conv: conv.clone(),
                after: Some(after),
                before: None,
                limit: Some(200),
            };
            ps.write_all(&req.to_tcp()).await.unwrap();
            let page = loop {
                match next(&mut ps, &mut pd).await {
                    Some(ServerFrame::HistoryPage { messages, more, .. }) => {
                        break (messages, more);
                    }
                    Some(ServerFrame::Msg(_)) => {}
                    other => panic!("expected history_page, got {other:?}"),
                }
            };
            for m in &page.0 {
                after = m.seq;
                stored.insert(m.seq, (m.id.clone(), m.body.clone()));
            }
            if !page.1 {
                break;
            }
        }
        for (seq, id, body) in expected {
            let got = stored.get(seq);
            assert_eq!(
                got,
                Some(&(id.clone(), body.clone())),
                "acked message {id} at {conv}#{seq} is missing or changed"
            );
        }
    }
    let _ = node.child.kill();
    let _ = node.child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_connections_flushes_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = spawn_node(dir.path());
    let (mut s, mut d) = login(node.tcp, "alice").await;
    s.write_all(
        &ClientFrame::Send {
            id: "m1".into(),
            to: "user:bob".into(),
            body: "kept".into(),
        }
        .to_tcp(),
    )
    .await
    .unwrap();
    let seq = match next(&mut s, &mut d).await {
        Some(ServerFrame::Ack { seq, .. }) => seq,
        other => panic!("expected ack, got {other:?}"),
    };

    let pid = node.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    // The node closes the connection: the client reads EOF.
    let eof = tokio::time::timeout(common::WAIT, next(&mut s, &mut d))
        .await
        .expect("closed within the wait");
    assert!(eof.is_none(), "no frame after shutdown, got {eof:?}");
    let exit = tokio::task::spawn_blocking(move || node.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "clean exit on SIGTERM: {exit:?}");

    let mut node = spawn_node(dir.path());
    let (mut s, mut d) = login(node.tcp, "bob").await;
    let req = ClientFrame::History {
        reference: "h".into(),
        conv: "dm:alice:bob".into(),
        after: None,
        before: None,
        limit: None,
    };
    s.write_all(&req.to_tcp()).await.unwrap();
    match next(&mut s, &mut d).await {
        Some(ServerFrame::HistoryPage { messages, .. }) => {
            assert_eq!(messages.len(), 1);
            assert_eq!((messages[0].seq, messages[0].body.as_str()), (seq, "kept"));
        }
        other => panic!("expected history_page, got {other:?}"),
    }
    let _ = node.child.kill();
    let _ = node.child.wait();
}
