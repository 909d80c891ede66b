//! Predictive scaling across a real three-node cluster: `chorus` processes on
//! 127.0.61.1–3 sharing one real Cassandra (`CHORUS_CASSANDRA`, started by
//! `scripts/test`; `#[ignore]`d, run there with `--include-ignored`). The real
//! `chorus-loadtest ramp` opens connections in a steady ramp spread over the
//! three nodes (and sends messages between them); every node gossips its
//! samples, so `chorusctl scaling status` on n1 sums all three members and shows
//! the recommendation rising above what the current load needs before the
//! ramp's peak. After the ramp a fourth node joins: it reads the members'
//! stored histories at start, so it has the cluster's series, and forecasts,
//! at once rather than a window of samples later.
//!
//! Real time: the nodes sample once a second; the test takes about a minute
//! and a half. `chorus-loadtest` must be built (`cargo test --workspace` does).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "cluster-scaling-admin-token";
const BLOCK: u8 = 61;

struct NodeProc {
    _child: common::process::KillOnDrop,
    tcp: SocketAddr,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
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
         per_node_capacity = 10\ntarget_percent = 100\nstartup_s = 5\nmargin_s = 5\nmax_nodes = 50\n\
         store_every_s = 2\n"
    );
    let file = dir.path().join("node.toml");
    std::fs::write(&file, config).unwrap();
    let mut child = common::process::serve(&file)
        .spawn()
        .expect("chorus starts");
    let listening = common::process::listening(&mut child);
    NodeProc {
        _child: common::process::KillOnDrop(child),
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

    // The ramp, by the load tool: three more connections a second (one per
    // node, round-robin) for 45 s, and messages between them rising to 30/s.
    let ramp_s = 45u32;
    let peak = 3 * ramp_s;
    let scratch = tempfile::tempdir().unwrap();
    let report_file = scratch.path().join("ramp.json");
    let mut ramp = tokio::process::Command::new(common::process::loadtest())
        .args([
            "--tcp",
            &nodes[0].tcp.to_string(),
            "--admin",
            "none",
            "--quiet",
        ])
        .arg("--report")
        .arg(&report_file)
        .args([
            "ramp",
            "--stage",
            &format!("{ramp_s}:{peak}:30"),
            "--hold",
            "3",
        ])
        .args(["--spread", &nodes[1].tcp.to_string()])
        .args(["--spread", &nodes[2].tcp.to_string()])
        .kill_on_drop(true)
        .spawn()
        .expect("chorus-loadtest starts");
    let started = Instant::now();
    let mut ahead = None;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    while started.elapsed() < Duration::from_secs(u64::from(ramp_s)) {
        every.tick().await;
        if let Some(exit) = ramp.try_wait().unwrap() {
            panic!("chorus-loadtest ended early: {exit}");
        }
        let second = started.elapsed().as_secs() as u32;
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
    assert!(seen["current_load"].as_f64().unwrap() < f64::from(peak));
    eprintln!("n1 at {second} s of the ramp: {seen}");
    let out = chorusctl(nodes[0].admin, &["scaling", "status"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(text.contains("members sampled    n1, n2, n3"), "{text}");

    let exit = tokio::time::timeout(Duration::from_secs(60), ramp.wait())
        .await
        .expect("the ramp ends")
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    eprintln!(
        "ramp: peak {} open, {} failed, {} dropped, {} of {} messages acked",
        report["peak_open"],
        report["failed"],
        report["dropped"],
        report["msgs_acked"],
        report["msgs_sent"]
    );
    assert!(exit.success(), "the ramp passed: {report}");
    assert_eq!(report["peak_open"], peak, "{report}");
    assert!(report["msgs_acked"].as_u64().unwrap() > 0, "{report}");

    // A fourth node joins after the ramp: the members' stored histories give
    // it the cluster's series at once.
    let members_stored = status(nodes[0].admin).await["store"]["written"].clone();
    let joined_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let joined = Instant::now();
    let n4 = start(4, &keyspace, &contact);
    let deadline = joined + Duration::from_secs(20);
    let s4 = loop {
        let s = status(n4.admin).await;
        if s["forecast"].is_object() {
            break s;
        }
        assert!(Instant::now() < deadline, "n4 never forecast: {s}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let took = joined.elapsed();
    eprintln!(
        "n4 forecast {:.1} s after it started (n1 had stored {members_stored} samples): {s4}",
        took.as_secs_f64()
    );
    assert!(
        s4["restored"]["members"].as_u64().unwrap() >= 3,
        "n4 read n1-n3 from the store: {s4}"
    );
    assert!(
        took < Duration::from_secs(15),
        "n4 forecast in {took:?}, before a window (24 s) of its own samples"
    );
    let out = chorusctl(n4.admin, &["--json", "scaling", "series"]).await;
    let series: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let points = series["points"].as_array().unwrap();
    assert!(points.len() >= 24, "{series}");
    let first_ms = points[0]["at_ms"].as_u64().unwrap();
    assert!(
        first_ms + 15_000 < joined_at_ms,
        "n4's series starts before n4 did: {series}"
    );
    let ramp_top = points
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(
        ramp_top >= f64::from(peak) * 0.8,
        "n4's series holds the ramp's top ({ramp_top}): {series}"
    );
}
