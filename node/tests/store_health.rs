//! The embedded store's health as `/healthz` shows it, on a real `chorus`
//! process: `storage.fsync = false` warns at start, and a write that fails (the
//! process's file-size limit lowered under it, as a full disk would) turns
//! `/healthz` to 503 naming the failure, while nothing is acked and the node
//! keeps serving. A restart on the same directory is healthy again, with every
//! acked message there.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chorus_wire::{ClientFrame, ErrorCode, ServerFrame};
use common::{RawTcp, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A `chorus` process on an embedded store in `dir`.
struct Proc {
    child: Child,
    tcp: SocketAddr,
    admin: SocketAddr,
    /// Lines the node logged on stderr.
    log: mpsc::Receiver<String>,
}

impl Proc {
    fn start(dir: &std::path::Path, fsync: bool) -> Self {
        let config = format!(
            "[listen]\ntcp = \"127.0.0.1:0\"\nws = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             [storage]\nbackend = \"embedded\"\npath = \"{}\"\nfsync = {fsync}\n",
            dir.join("data").display()
        );
        let file = dir.join("node.toml");
        std::fs::write(&file, config).unwrap();
        // SIGXFSZ ignored (inherited across exec), so a write past the file-size
        // limit fails with EFBIG instead of killing the process: the node sees
        // what a full disk looks like.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("trap '' XFSZ; exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_chorus"))
            .args(["serve", "--config"])
            .arg(&file)
            .args(["--log-level", "warn"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chorus starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let listening = common::process::listening(&mut child);
        Proc {
            child,
            tcp: listening.tcp,
            admin: listening.admin,
            log,
        }
    }

    /// Sets the process's soft file-size limit (bytes; `None`: back to the
    /// hard limit, which needs no privilege).
    fn limit_file_size(&self, bytes: Option<u64>) {
        let pid = self.child.id().to_string();
        let value = match bytes {
            Some(b) => b.to_string(),
            None => {
                let hard = Command::new("prlimit")
                    .args(["--pid", &pid, "--fsize", "--output", "HARD"])
                    .args(["--noheadings", "--raw"])
                    .output()
                    .expect("prlimit runs");
                String::from_utf8(hard.stdout).unwrap().trim().to_string()
            }
        };
        let status = Command::new("prlimit")
            .args(["--pid", &pid])
            .arg(format!("--fsize={value}:"))
            .status()
            .expect("prlimit runs");
        assert!(status.success(), "prlimit failed");
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /healthz`: status and body.
async fn healthz(admin: SocketAddr) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(admin).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: chorus\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// Polls `/healthz` until its status is `want` (the probe runs every second;
/// nothing outside the process can await it).
async fn healthz_becomes(admin: SocketAddr, want: u16) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = healthz(admin).await;
        if status == want {
            return body;
        }
        assert!(Instant::now() < deadline, "/healthz stays {status}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await; // poll pacing
    }
}

async fn send(c: &mut RawTcp, id: &str) -> ServerFrame {
    c.send(&ClientFrame::Send {
        id: id.into(),
        to: "user:bob".into(),
        body: format!("body of {id}"),
    })
    .await;
    loop {
        let f = c.recv().await.expect("the connection stays open");
        if matches!(f, ServerFrame::Ack { .. } | ServerFrame::Reject { .. }) {
            return f;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_off_warns_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let node = Proc::start(dir.path(), false);
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = node.log.recv_timeout(left).expect("a warning about fsync");
        if line.contains("WARN") && line.contains("storage.fsync = false") {
            break;
        }
    }
    node.stop();

    // With fsync on, no such warning: the node logs nothing at warn level on a
    // plain start.
    let dir = tempfile::tempdir().unwrap();
    let node = Proc::start(dir.path(), true);
    assert_eq!(healthz(node.admin).await.0, 200);
    let logged: Vec<String> = node.log.try_iter().collect();
    assert!(
        !logged.iter().any(|l| l.contains("storage.fsync")),
        "{logged:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_turns_healthz_unhealthy_and_nothing_is_acked() {
    let dir = tempfile::tempdir().unwrap();
    let node = Proc::start(dir.path(), true);
    let mut alice = RawTcp::login_at(node.tcp, "alice").await;
    let ServerFrame::Ack { seq: first, .. } = send(&mut alice, "m1").await else {
        panic!("the first send is acked")
    };
    assert_eq!(healthz(node.admin).await.0, 200);

    // The disk is "full": no file may grow.
    node.limit_file_size(Some(0));
    match send(&mut alice, "m2").await {
        ServerFrame::Reject { code, .. } => assert_eq!(code, ErrorCode::Internal),
        other => panic!("a send that cannot be stored is not acked: {other:?}"),
    }
    let body = healthz_becomes(node.admin, 503).await;
    assert!(body.contains("store unhealthy"), "{body}");
    // The node still serves: a ping, and a second client's login.
    let mut carol = RawTcp::login_at(node.tcp, "carol").await;
    carol.send(&ClientFrame::Ping { interval_s: None }).await;
    assert!(matches!(carol.recv().await, Some(ServerFrame::Pong)));
    // The disk has room again, but fjall refuses writes after a failed one
    // until a restart: still unhealthy, still nothing acked.
    node.limit_file_size(None);
    assert!(matches!(
        send(&mut alice, "m3").await,
        ServerFrame::Reject { .. }
    ));
    assert_eq!(healthz(node.admin).await.0, 503);
    drop(alice);
    drop(carol);
    node.stop();

    // Restarted on the same directory: healthy, and what was acked is there.
    let node = Proc::start(dir.path(), true);
    assert_eq!(healthz(node.admin).await.0, 200);
    let mut bob = RawTcp::login_at(node.tcp, "bob").await;
    let page = common::history(&mut bob, "dm:alice:bob", Some(0), None, None)
        .await
        .unwrap()
        .0;
    let stored: Vec<(u64, String)> = page.into_iter().map(|m| (m.seq, m.id)).collect();
    assert_eq!(stored, vec![(first, "m1".to_string())]);
    let mut alice = RawTcp::login_at(node.tcp, "alice").await;
    assert!(matches!(
        send(&mut alice, "m4").await,
        ServerFrame::Ack { .. }
    ));
}
