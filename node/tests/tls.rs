//! TLS end to end with certificates made at test time: SDK clients over
//! `tls://` and `wss://`, `chorusctl` over HTTPS, certificates that must be
//! refused (an untrusted CA, a name that is not the host dialed), and reloads
//! (the admin call, SIGHUP on a real `chorus` process, a bad file that keeps the
//! old certificate).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chorus_client::{Client, ClientConfig, ClientError, Events, TlsRoots, Transport};
use common::certs::{Issued, TestCa};
use common::{TestNode, start_node_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN_TOKEN: &str = "tls-test-admin-token";

/// A node whose every listener speaks TLS with `issued`.
async fn tls_node(issued: &Issued) -> TestNode {
    let (cert, key) = (issued.cert.clone(), issued.key.clone());
    start_node_with(move |c| {
        c.tls.cert = Some(cert);
        c.tls.key = Some(key);
        c.admin.token = Some(ADMIN_TOKEN.into());
    })
    .await
}

fn config(endpoint: String, transport: Transport, user: &str, ca: &Path) -> ClientConfig {
    let mut cfg = ClientConfig::new(endpoint, transport, user);
    cfg.tls = TlsRoots::CaFile(ca.to_path_buf());
    cfg.reconnect = false;
    cfg.ping_interval = None;
    cfg.request_timeout = Duration::from_secs(10);
    cfg
}

fn tls_endpoint(node: &TestNode) -> String {
    format!("tls://{}", node.node.addrs().tcp)
}

fn wss_endpoint(node: &TestNode) -> String {
    format!("wss://{}/ws", node.node.addrs().ws)
}

async fn next_message(events: &mut Events) -> chorus_wire::Message {
    common::next_sdk_message(events, common::WAIT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_clients_chat_over_tls_and_wss() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("chat CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let node = tls_node(&ca.issue(&["127.0.0.1", "localhost"], dir.path(), "node")).await;

    let (alice, mut alice_events) = Client::connect(config(
        tls_endpoint(&node),
        Transport::Tcp,
        "alice",
        &ca_file,
    ))
    .await
    .expect("alice connects over tls://");
    let (bob, mut bob_events) = Client::connect(config(
        wss_endpoint(&node),
        Transport::WsJson,
        "bob",
        &ca_file,
    ))
    .await
    .expect("bob connects over wss://");
    let (carol, mut carol_events) = Client::connect(config(
        wss_endpoint(&node),
        Transport::WsBinary,
        "carol",
        &ca_file,
    ))
    .await
    .expect("carol connects over wss:// (binary)");

    let ack = alice.send("user:bob", "over TLS").await.unwrap();
    let m = next_message(&mut bob_events).await;
    assert_eq!(
        (m.from.as_str(), m.body.as_str(), m.seq),
        ("alice", "over TLS", ack.seq)
    );
    let ack = bob.send("user:alice", "over WSS").await.unwrap();
    let m = next_message(&mut alice_events).await;
    assert_eq!((m.body.as_str(), m.seq), ("over WSS", ack.seq));
    let ack = carol.send("user:alice", "binary over WSS").await.unwrap();
    let m = next_message(&mut alice_events).await;
    assert_eq!((m.body.as_str(), m.seq), ("binary over WSS", ack.seq));
    let page = carol
        .history(&ack.conv, None, None, Some(10))
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 1);
    drop(carol_events.next());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_ca_or_a_wrong_name_is_refused_on_tls_and_wss() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("right CA");
    let other = TestCa::new("other CA");
    let other_file = other.write(dir.path(), "other.pem");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let node = tls_node(&ca.issue(&["127.0.0.1"], dir.path(), "node")).await;
    for (endpoint, transport) in [
        (tls_endpoint(&node), Transport::Tcp),
        (wss_endpoint(&node), Transport::WsJson),
    ] {
        let refused =
            Client::connect(config(endpoint.clone(), transport, "mallory", &other_file)).await;
        match refused {
            Err(ClientError::Tls(why)) => assert!(why.contains("certificate"), "{endpoint}: {why}"),
            other => panic!(
                "{endpoint}: an untrusted CA must be refused, got {:?}",
                other.map(|_| ())
            ),
        }
    }

    // A certificate for another name than the one dialed.
    let misnamed = tls_node(&ca.issue(&["chat.example.com"], dir.path(), "misnamed")).await;
    for (endpoint, transport) in [
        (tls_endpoint(&misnamed), Transport::Tcp),
        (wss_endpoint(&misnamed), Transport::WsBinary),
    ] {
        let refused = Client::connect(config(endpoint.clone(), transport, "alice", &ca_file)).await;
        match refused {
            Err(ClientError::Tls(why)) => assert!(why.contains("certificate"), "{endpoint}: {why}"),
            other => panic!(
                "{endpoint}: a wrong name must be refused, got {:?}",
                other.map(|_| ())
            ),
        }
    }

    // A client in the clear gets a TLS alert, not a frame, and is closed.
    let mut plain = TcpStream::connect(node.node.addrs().tcp).await.unwrap();
    let hello = chorus_wire::ClientFrame::Hello {
        protocol: 1,
        token: "alice".into(),
        device: None,
    };
    plain
        .write_all(&chorus_wire::codec::Frame::to_tcp(&hello))
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(common::WAIT, plain.read_to_end(&mut answer))
        .await
        .expect("closed within the wait")
        .ok();
    assert_eq!(
        answer.first(),
        Some(&0x15),
        "a TLS alert record: {answer:?}"
    );
}

/// Runs `chorusctl` with `args`; (success, stdout, stderr).
fn chorusctl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chorusctl"))
        .args(args)
        .env_remove("CHORUS_ADMIN")
        .env_remove("CHORUS_ADMIN_TOKEN")
        .env_remove("CHORUS_CA")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chorusctl_speaks_https_and_refuses_a_wrong_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("admin CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let other_file = TestCa::new("other CA").write(dir.path(), "other.pem");
    let node = tls_node(&ca.issue(&["127.0.0.1"], dir.path(), "node")).await;
    let admin = format!("https://{}", node.node.addrs().admin);
    let ca_arg = ca_file.to_str().unwrap();

    let (ok, stdout, stderr) = chorusctl(&[
        "--admin",
        &admin,
        "--ca",
        ca_arg,
        "--token",
        ADMIN_TOKEN,
        "--json",
        "status",
    ]);
    assert!(ok, "{stderr}");
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        status["nodes"][0]["status"]["status"], "serving",
        "{stdout}"
    );

    let (ok, stdout, stderr) = chorusctl(&[
        "--admin",
        &admin,
        "--ca",
        ca_arg,
        "--token",
        ADMIN_TOKEN,
        "tls",
        "reload",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("TLS certificates reloaded"), "{stdout}");

    let (ok, _, stderr) = chorusctl(&[
        "--admin",
        &admin,
        "--ca",
        other_file.to_str().unwrap(),
        "--token",
        ADMIN_TOKEN,
        "status",
    ]);
    assert!(!ok, "an untrusted certificate must fail the command");
    assert!(stderr.contains("TLS with"), "{stderr}");

    // Plain HTTP to an HTTPS listener gets no answer.
    let plain = node.node.addrs().admin.to_string();
    let (ok, _, stderr) = chorusctl(&[
        "--admin",
        &plain,
        "--token",
        ADMIN_TOKEN,
        "--timeout",
        "5",
        "status",
    ]);
    assert!(!ok, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_the_certificate_and_a_bad_file_keeps_the_one_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = TestCa::new("old CA");
    let new_ca = TestCa::new("new CA");
    let old_file = old_ca.write(dir.path(), "old-ca.pem");
    let new_file = new_ca.write(dir.path(), "new-ca.pem");
    let issued = old_ca.issue(&["127.0.0.1"], dir.path(), "node");
    let node = tls_node(&issued).await;
    let (kept, mut kept_events) = Client::connect(config(
        tls_endpoint(&node),
        Transport::Tcp,
        "kept",
        &old_file,
    ))
    .await
    .unwrap();

    // The new certificate, at the same paths.
    let fresh = new_ca.issue(&["127.0.0.1"], dir.path(), "fresh");
    std::fs::copy(&fresh.cert, &issued.cert).unwrap();
    std::fs::copy(&fresh.key, &issued.key).unwrap();
    let admin = format!("https://{}", node.node.addrs().admin);
    let reload = |ca: &Path| {
        chorusctl(&[
            "--admin",
            &admin,
            "--ca",
            ca.to_str().unwrap(),
            "--token",
            ADMIN_TOKEN,
            "--json",
            "tls",
            "reload",
        ])
    };
    let (ok, stdout, stderr) = reload(&old_file);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["generation"], 1, "{stdout}");

    // New handshakes get the new certificate; the old CA no longer verifies it.
    let (fresh_client, _fresh_events) = Client::connect(config(
        tls_endpoint(&node),
        Transport::Tcp,
        "fresh",
        &new_file,
    ))
    .await
    .expect("the new certificate is in use");
    assert!(matches!(
        Client::connect(config(
            wss_endpoint(&node),
            Transport::WsJson,
            "stale",
            &old_file
        ))
        .await,
        Err(ClientError::Tls(_))
    ));
    // A connection made before the reload is untouched.
    let ack = fresh_client
        .send("user:kept", "after the reload")
        .await
        .unwrap();
    assert_eq!(next_message(&mut kept_events).await.seq, ack.seq);
    kept.send("user:fresh", "still here").await.unwrap();

    // A file that does not hold a key: refused with the reason, the one in use stays.
    std::fs::write(&issued.key, "not a key\n").unwrap();
    let (ok, _, stderr) = reload(&new_file);
    assert!(!ok, "a bad key must fail the reload");
    assert!(
        stderr.contains("the certificates in use stay") && stderr.contains("tls.key"),
        "{stderr}"
    );
    Client::connect(config(
        tls_endpoint(&node),
        Transport::Tcp,
        "after-bad",
        &new_file,
    ))
    .await
    .expect("the certificate in use stayed");
}

/// SIGHUP on a real `chorus` process reloads the certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_of_a_running_node() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = TestCa::new("old CA");
    let new_ca = TestCa::new("new CA");
    let new_file = new_ca.write(dir.path(), "new-ca.pem");
    let old_file = old_ca.write(dir.path(), "old-ca.pem");
    let issued = old_ca.issue(&["127.0.0.1"], dir.path(), "node");
    let config_file = dir.path().join("node.toml");
    std::fs::write(
        &config_file,
        format!(
            "[listen]\ntcp = \"127.0.0.1:0\"\nws = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             [storage]\npath = \"{}\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            dir.path().join("data").display(),
            issued.cert.display(),
            issued.key.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["serve", "--config"])
        .arg(&config_file)
        .args(["--log-level", "warn"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let child = Kill(child);
    let line = BufReader::new(stdout).lines().next().unwrap().unwrap();
    let tcp = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("tcp="))
        .unwrap()
        .to_string();
    let endpoint = format!("tls://{tcp}");
    Client::connect(config(endpoint.clone(), Transport::Tcp, "alice", &old_file))
        .await
        .expect("the first certificate");

    let fresh = new_ca.issue(&["127.0.0.1"], dir.path(), "fresh");
    std::fs::copy(&fresh.cert, &issued.cert).unwrap();
    std::fs::copy(&fresh.key, &issued.key).unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The signal is handled asynchronously: try until the new certificate answers.
    let mut reloaded = false;
    for _ in 0..200 {
        if Client::connect(config(endpoint.clone(), Transport::Tcp, "bob", &new_file))
            .await
            .is_ok()
        {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(reloaded, "SIGHUP put the new certificate in use");
    // And the node is still running and serving.
    let mut stream = TcpStream::connect(&tcp).await.unwrap();
    stream.write_all(b"\x16").await.unwrap();
}
