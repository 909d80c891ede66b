//! A cluster whose transport is mutual TLS, end to end: three real `chorus`
//! processes on 127.0.31.1–3 with certificates of one CA made at test time, the
//! real Cassandra of `CHORUS_CASSANDRA`, clients over `tls://` and `wss://`.
//! Two more nodes try to join and are refused: one with a certificate of
//! another CA, one whose certificate names another address. A drained node
//! sends clients to the others with `tls://` and `wss://` addresses.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use chorus_client::{Client, ClientConfig, Events, TlsRoots, Transport};
use chorus_wire::codec::Frame;
use chorus_wire::{ClientFrame, ServerFrame};
use common::certs::TestCa;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN_TOKEN: &str = "cluster-tls-admin-token";
const COOKIE: &str = "cluster-tls-test-cookie-of-32-bytes!";
const WAIT: Duration = Duration::from_secs(30);

struct Proc {
    id: String,
    child: Child,
    tcp: SocketAddr,
    ws: SocketAddr,
    admin: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Files {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

#[allow(clippy::too_many_arguments)] // A test helper: one call per node.
fn start(
    dir: &Path,
    id: &str,
    ip: &str,
    seed: Option<&str>,
    files: &Files,
    keyspace: &str,
    contact: &str,
) -> Proc {
    let seeds = seed.map(|s| format!("\"{s}\"")).unwrap_or_default();
    let config = format!(
        "[cluster]\nnode_id = \"{id}\"\nenabled = true\nseeds = [{seeds}]\nadvertise_host = \"{ip}\"\ncookie = \"{COOKIE}\"\n\
         [listen]\ntcp = \"{ip}:0\"\nws = \"{ip}:0\"\nadmin = \"{ip}:0\"\ngossip = \"{ip}:7403\"\ncluster = \"{ip}:7404\"\n\
         [storage]\nbackend = \"scylla\"\ncontact_points = [\"{contact}\"]\nkeyspace = \"{keyspace}\"\nconsistency = \"one\"\n\
         [admin]\ntoken = \"{ADMIN_TOKEN}\"\n\
         [tls]\ncert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\nadmin = false\n",
        files.cert.display(),
        files.key.display(),
        files.ca.display(),
    );
    let file = dir.join(format!("{id}.toml"));
    std::fs::write(&file, config).unwrap();
    let mut child = common::process::serve(&file)
        .spawn()
        .expect("chorus starts");
    let listening = common::process::listening(&mut child);
    Proc {
        id: id.to_string(),
        tcp: listening.tcp,
        ws: listening.ws,
        admin: listening.admin,
        child,
    }
}

async fn admin(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: chorus\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).to_string();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

async fn serving(node: &Proc) -> Vec<String> {
    let (_, body) = admin(node.admin, "GET", "/admin/shards").await;
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["serving"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

async fn wait_serving(nodes: &[&Proc], want: &[&str]) {
    let deadline = Instant::now() + WAIT;
    for node in nodes {
        loop {
            let now = serving(node).await;
            if now == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} serves {now:?}, not {want:?}",
                node.id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn metric(node: &Proc, name: &str) -> f64 {
    let (_, body) = admin(node.admin, "GET", "/metrics").await;
    body.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn client_config(endpoint: String, transport: Transport, user: &str, ca: &Path) -> ClientConfig {
    let mut cfg = ClientConfig::new(endpoint, transport, user);
    cfg.tls = TlsRoots::CaFile(ca.to_path_buf());
    cfg.request_timeout = Duration::from_secs(10);
    cfg
}

async fn next_message(events: &mut Events) -> chorus_wire::Message {
    common::next_sdk_message(events, WAIT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Cassandra at CHORUS_CASSANDRA: scripts/test starts one and runs it"]
async fn three_nodes_over_mutual_tls_chat_and_refuse_wrong_certificates() {
    let contact = std::env::var("CHORUS_CASSANDRA")
        .ok()
        .filter(|c| !c.is_empty())
        .expect("CHORUS_CASSANDRA names the Cassandra node of this test (scripts/cassandra start)");
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("cluster CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let keyspace = format!("chorus_tls_{:016x}", rand::random::<u64>());
    let seed = "127.0.31.1:7403";
    let mut nodes = Vec::new();
    for n in 1..=3 {
        let ip = format!("127.0.31.{n}");
        let issued = ca.issue(&[&ip], dir.path(), &format!("n{n}"));
        let files = Files {
            cert: issued.cert,
            key: issued.key,
            ca: ca_file.clone(),
        };
        let seed = (n > 1).then_some(seed);
        nodes.push(start(
            dir.path(),
            &format!("n{n}"),
            &ip,
            seed,
            &files,
            &keyspace,
            &contact,
        ));
    }
    let all: Vec<&Proc> = nodes.iter().collect();
    wait_serving(&all, &["n1", "n2", "n3"]).await;

    // A chat across nodes, over tls:// and wss://.
    let (alice, mut alice_events) = Client::connect(client_config(
        format!("tls://{}", nodes[0].tcp),
        Transport::Tcp,
        "alice",
        &ca_file,
    ))
    .await
    .unwrap();
    let (bob, mut bob_events) = Client::connect(client_config(
        format!("wss://{}/ws", nodes[1].ws),
        Transport::WsJson,
        "bob",
        &ca_file,
    ))
    .await
    .unwrap();
    assert_eq!(
        (alice.welcome().node.as_str(), bob.welcome().node.as_str()),
        ("n1", "n2")
    );
    let ack = alice.send("user:bob", "across TLS").await.unwrap();
    let m = next_message(&mut bob_events).await;
    assert_eq!(
        (m.from.as_str(), m.body.as_str(), m.seq),
        ("alice", "across TLS", ack.seq)
    );
    let ack = bob.send("user:alice", "and back").await.unwrap();
    assert_eq!(next_message(&mut alice_events).await.seq, ack.seq);

    // n4 has a certificate of another CA; n5 one of the right CA for another
    // address. The others dial them (their ids sort later) and refuse both.
    let other_ca = TestCa::new("other CA");
    let n4 = other_ca.issue(&["127.0.31.4"], dir.path(), "n4");
    let n5 = ca.issue(&["127.0.31.99"], dir.path(), "n5");
    let before: f64 = {
        let mut sum = 0.0;
        for node in &nodes {
            sum += metric(node, "chorus_tls_handshake_failures_total").await;
        }
        sum
    };
    let intruders = [
        start(
            dir.path(),
            "n4",
            "127.0.31.4",
            Some(seed),
            &Files {
                cert: n4.cert,
                key: n4.key,
                ca: other_ca.write(dir.path(), "other.pem"),
            },
            &keyspace,
            &contact,
        ),
        start(
            dir.path(),
            "n5",
            "127.0.31.5",
            Some(seed),
            &Files {
                cert: n5.cert,
                key: n5.key,
                ca: ca_file.clone(),
            },
            &keyspace,
            &contact,
        ),
    ];
    // Every node refused a handshake with each of them at least once.
    let deadline = Instant::now() + WAIT;
    loop {
        let mut sum = 0.0;
        for node in &nodes {
            sum += metric(node, "chorus_tls_handshake_failures_total").await;
        }
        if sum - before >= 6.0 {
            break;
        }
        assert!(Instant::now() < deadline, "refusals seen: {}", sum - before);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, members) = admin(nodes[0].admin, "GET", "/admin/members").await;
    let members: serde_json::Value = serde_json::from_str(&members).unwrap();
    for m in members["members"].as_array().unwrap() {
        if ["n4", "n5"].contains(&m["node_id"].as_str().unwrap_or_default()) {
            assert_eq!(m["connected"], false, "{m}");
        }
    }
    wait_serving(&all, &["n1", "n2", "n3"]).await;
    for intruder in &intruders {
        assert!(serving(intruder).await.len() <= 1, "{} joined", intruder.id);
    }
    let ack = alice.send("user:bob", "still private").await.unwrap();
    assert_eq!(next_message(&mut bob_events).await.seq, ack.seq);

    // A drained node sends a late client to the others, with TLS schemes.
    let (status, body) = admin(nodes[2].admin, "POST", "/admin/drain").await;
    assert_eq!(status, 200, "{body}");
    let connector = {
        let roots = chorus_node::tls::root_store("ca", &ca_file).unwrap();
        let config =
            tokio_rustls::rustls::ClientConfig::builder_with_provider(chorus_node::tls::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
    };
    let stream = TcpStream::connect(nodes[2].tcp).await.unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::IpAddress(nodes[2].tcp.ip().into());
    let mut tls = connector.connect(name, stream).await.unwrap();
    let hello = ClientFrame::Hello {
        protocol: 1,
        token: "late".into(),
        device: None,
    };
    tls.write_all(&hello.to_tcp()).await.unwrap();
    let mut len = [0u8; 4];
    tls.read_exact(&mut len).await.unwrap();
    let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
    tls.read_exact(&mut frame).await.unwrap();
    match ServerFrame::decode(&frame, chorus_wire::Encoding::Binary, 1 << 20).unwrap() {
        ServerFrame::Goaway { nodes: to, .. } => {
            let want: Vec<String> = nodes[..2]
                .iter()
                .flat_map(|n| [format!("tls://{}", n.tcp), format!("wss://{}/ws", n.ws)])
                .collect();
            let mut to = to;
            to.sort();
            let mut want = want;
            want.sort();
            assert_eq!(to, want);
        }
        other => panic!("expected goaway, got {other:?}"),
    }
}
