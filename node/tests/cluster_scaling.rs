//! Predictive scaling across a real three-node cluster: `chorus` processes on
//! 127.0.61.1–3 sharing one real Cassandra (`CHORUS_CASSANDRA`, started by
//! `scripts/test`; `#[ignore]`d, run there with `--include-ignored`). Clients
//! connect in a steady ramp spread over the three nodes; every node gossips its
//! samples, so `chorusctl scaling status` on n1 sums all three members and shows
//! the recommendation rising above what the current load needs before the
//! ramp's peak.
//!
//! Real time: the nodes sample once a second; the test takes about a minute.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, Instant};

use chorus_client::{Client, ClientConfig, Events, Transport};

const ADMIN_TOKEN: &str = "cluster-scaling-admin-token";
const BLOCK: u8 = 61;

struct NodeProc {
    child: Child,
    tcp: SocketAddr,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(n: u8, keyspace: &str, contact: &str) -> NodeProc {
    let dir = tempfile::tempdir().unwrap();
    let ip = format!("127.0.{BLOCK}.{n}");
    let seeds = if n == 1 {
        String::new()
    } else {
        format!("\"127.0.{BLOCK}.1:7403\"")
    };
    let config = format!(
        "[cluster]\nnode_id = \"n{n}\"\nenabled = true\nseeds = [{seeds}]\nadvertise_host = \"{ip}\"\n\
         [listen]\ntcp = \"{ip}:0\"\nws = \"{ip}:0\"\nadmin = \"{ip}:0\"\ngossip = \"{ip}:7403\"\ncluster = \"{ip}:7404\"\n\
         [storage]\nbackend = \"scylla\"\ncontact_points = [\"{contact}\"]\nkeyspace = \"{keyspace}\"\nconsistency = \"one\"\n\
         [admin]\ntoken = \"{ADMIN_TOKEN}\"\n\
         [scaling]\nsample_s = 1\nforecast_every_s = 1\nwindow = 24\nhistory_samples = 600\n\
         per_node_capacity = 10\ntarget_percent = 100\nstartup_s = 5\nmargin_s = 5\nmax_nodes = 50\n"
    );
    let file = dir.path().join("node.toml");
    std::fs::write(&file, config).unwrap();
    let mut child = common::process::serve(&file)
        .spawn()
        .expect("chorus starts");
    let listening = common::process::listening(&mut child);
    NodeProc {
        child,
        tcp: listening.tcp,
        admin: listening.admin,
        _dir: dir,
    }
}

async fn chorusctl(admin: SocketAddr, args: &[&str]) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_chorusctl"));
    command
        .env("CHORUS_ADMIN", admin.to_string())
        .env("CHORUS_ADMIN_TOKEN", ADMIN_TOKEN)
        .args(["--timeout", "5"])
        .args(args)
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("chorusctl finishes")
        .expect("chorusctl runs")
}

async fn status(admin: SocketAddr) -> serde_json::Value {
    let out = chorusctl(admin, &["--json", "scaling", "status"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn connect(endpoint: SocketAddr, user: &str) -> (Client, Events) {
    let mut cfg = ClientConfig::new(endpoint.to_string(), Transport::Tcp, user);
    cfg.request_timeout = Duration::from_secs(10);
    Client::connect(cfg).await.unwrap()
}

#[tokio::test]
#[ignore = "needs Cassandra at CHORUS_CASSANDRA: scripts/test starts one and runs it"]
async fn three_nodes_recommend_more_nodes_before_the_ramp_peaks() {
    let contact = std::env::var("CHORUS_CASSANDRA")
        .ok()
        .filter(|c| !c.is_empty())
        .expect("CHORUS_CASSANDRA names the Cassandra node of this test (scripts/cassandra start)");
    let keyspace = format!("chorus_scaling_{:016x}", rand::random::<u64>());
    let nodes: Vec<NodeProc> = (1..=3).map(|n| start(n, &keyspace, &contact)).collect();

    // Wait until n1 has samples from all three members.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(nodes[0].admin).await;
        if s["members"].as_array().map_or(0, Vec::len) == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "n1 never heard all members: {s}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The ramp: three more connections a second (one per node) for 45 s.
    let ramp_s = 45u32;
    let mut clients = Vec::new();
    let mut ahead = None;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    for second in 0..ramp_s {
        every.tick().await;
        for (k, node) in nodes.iter().enumerate() {
            clients.push(connect(node.tcp, &format!("r{second}n{k}")).await);
        }
        if second < 27 || ahead.is_some() {
            continue;
        }
        let s = status(nodes[0].admin).await;
        let recommended = s["recommended_nodes"].as_u64().unwrap_or(0);
        let reactive = s["reactive_nodes"].as_u64().unwrap_or(u64::MAX);
        if s["forecast"].is_object() && recommended > reactive && s["current_members"] == 3 {
            ahead = Some((second, s));
        }
    }
    let (second, seen) = ahead.expect("the recommendation on n1 ran ahead of the cluster's load");
    assert!(second < ramp_s - 1);
    assert!(seen["current_load"].as_f64().unwrap() < clients.len() as f64);
    eprintln!("n1 at {second} s of the ramp: {seen}");
    let out = chorusctl(nodes[0].admin, &["scaling", "status"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(text.contains("members sampled    n1, n2, n3"), "{text}");
    drop(clients);
}
