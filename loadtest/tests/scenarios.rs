//! Each scenario, briefly, against a real node started in-process on ephemeral
//! loopback ports with the real embedded store in a temporary directory: the
//! reports' delivery counts must balance (sent = acked = delivered, no duplicates,
//! nothing missing or out of order).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // Tests: a panic is the report.

use std::time::Duration;

use chorus_client::Transport;
use chorus_config::{Config, Secret};
use chorus_loadtest::Target;
use chorus_loadtest::chat::{self, ChatConfig};
use chorus_loadtest::connect::{self, ConnectConfig};
use chorus_loadtest::storm::{self, DropMode, StormConfig};
use chorus_node::Node;

const ADMIN_TOKEN: &str = "loadtest-admin-token";

struct TestNode {
    node: Node,
    _dir: tempfile::TempDir,
}

async fn start_node() -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.listen.tcp = "127.0.0.1:0".into();
    config.listen.ws = "127.0.0.1:0".into();
    config.listen.admin = "127.0.0.1:0".into();
    config.storage.path = dir.path().to_path_buf();
    config.admin.token = Some(Secret::new(ADMIN_TOKEN));
    let node = Node::start(config).await.expect("node starts");
    TestNode { node, _dir: dir }
}

fn target(node: &TestNode, transport: Transport) -> Target {
    let a = node.node.addrs();
    Target::new(a.tcp, a.ws, Some(a.admin), transport).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_one_to_one_over_tcp_delivers_every_acked_message_once() {
    let node = start_node().await;
    let cfg = ChatConfig {
        users: 6,
        rate: 300.0,
        duration: Duration::from_millis(1500),
        ..ChatConfig::new(target(&node, Transport::Tcp))
    };
    let report = chat::run(cfg).await.unwrap();
    let d = &report.delivery;
    assert_eq!(d.sent, 450, "300/s for 1.5 s");
    assert_eq!(d.acked, d.sent, "every send acked: {:?}", report.errors);
    assert_eq!(d.expected, d.acked, "1:1: one receiver per message");
    assert_eq!(d.delivered, d.acked);
    assert_eq!((d.missing, d.duplicates, d.out_of_order), (0, 0, 0));
    assert_eq!(d.misdelivered + d.seq_collisions + d.delivered_unacked, 0);
    assert!(report.passed);
    assert_eq!(report.send_to_ack.count, d.acked);
    assert_eq!(report.send_to_delivery.count, d.delivered);
    assert!(
        report.send_to_ack.p50_us > 0 && report.send_to_ack.p99_us >= report.send_to_ack.p50_us
    );
    assert!(report.acked_per_s > 100.0, "{}", report.acked_per_s);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["scenario"], "chat");
    assert_eq!(json["delivery"]["missing"], 0);
    let svg = report.plot.to_svg().unwrap();
    assert!(svg.contains("latency (ms)") && svg.contains("percentile"));
    node.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_with_groups_over_websocket_json_reaches_every_member() {
    let node = start_node().await;
    let cfg = ChatConfig {
        users: 8,
        group_size: 4,
        group_fraction: 0.5,
        rate: 200.0,
        duration: Duration::from_secs(1),
        ..ChatConfig::new(target(&node, Transport::WsJson))
    };
    let report = chat::run(cfg).await.unwrap();
    let d = &report.delivery;
    assert_eq!(report.conversations, 4 + 2, "4 pairs and 2 groups");
    assert_eq!(d.acked, d.sent);
    assert_eq!(d.sent, 200);
    // Each user sends 25: its odd-numbered 12 to its group of 4 (3 receivers each),
    // the other 13 to its pair (1 receiver).
    assert_eq!(d.expected, 8 * (12 * 3 + 13));
    assert_eq!(d.delivered, d.expected);
    assert!(report.passed, "{d:?}");
    node.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_holds_websocket_sessions_and_reads_the_nodes_memory() {
    let node = start_node().await;
    let cfg = ConnectConfig {
        connections: 40,
        rate: 200.0,
        hold: Duration::from_millis(1200),
        source_ips: 2,
        ..ConnectConfig::new(target(&node, Transport::WsBinary))
    };
    let report = connect::run(cfg).await.unwrap();
    assert_eq!(report.connected, 40, "{:?}", report.errors);
    assert_eq!((report.failed, report.dropped), (0, 0));
    assert!(report.passed);
    assert_eq!(report.connect_latency.count, 40);
    assert_eq!(report.source_ips, ["127.0.0.2", "127.0.0.3"]);
    assert!(report.rss_baseline_bytes.unwrap() > 0);
    assert!(report.rss_connected_bytes.unwrap() > 0);
    assert!(report.rss_per_connection_bytes.is_some());
    node.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_through_the_relay_loses_nothing() {
    let node = start_node().await;
    let cfg = StormConfig {
        users: 8,
        history: 5,
        rate: 150.0,
        duration: Duration::from_secs(2),
        cut_after: Duration::from_millis(700),
        ..StormConfig::new(target(&node, Transport::Tcp))
    };
    let report = storm::run(cfg).await.unwrap();
    let d = &report.delivery;
    assert_eq!(report.cut_connections, 8);
    assert_eq!(report.reconnected, 8);
    assert_eq!(d.sent, 8 * 5 + 300);
    assert_eq!(
        d.acked, d.sent,
        "sends across the drop are retried: {:?}",
        report.errors
    );
    assert_eq!(d.delivered, d.acked);
    assert_eq!((d.missing, d.duplicates, d.out_of_order), (0, 0, 0));
    assert_eq!((report.history_missing, report.history_errors), (0, 0));
    assert!(report.passed);
    let all = report.all_caught_up_ms.unwrap();
    assert!(all >= report.all_reconnected_ms.unwrap());
    node.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_by_admin_kick_over_websocket_loses_nothing() {
    let node = start_node().await;
    let cfg = StormConfig {
        users: 6,
        history: 3,
        rate: 100.0,
        duration: Duration::from_millis(1500),
        cut_after: Duration::from_millis(500),
        drop: DropMode::Kick {
            token: ADMIN_TOKEN.into(),
        },
        ..StormConfig::new(target(&node, Transport::WsJson))
    };
    let report = storm::run(cfg).await.unwrap();
    let d = &report.delivery;
    assert_eq!(
        report.cut_connections, 6,
        "each user had one session to kick"
    );
    assert_eq!(report.reconnected, 6);
    assert_eq!(d.acked, d.sent);
    assert_eq!(d.delivered, d.acked);
    assert!(report.passed, "{report:?}");
    node.node.shutdown().await;
}

#[tokio::test]
async fn non_loopback_targets_and_bad_options_are_refused() {
    let far = "192.0.2.1:7400".parse().unwrap();
    let lo = "127.0.0.1:1".parse().unwrap();
    assert!(Target::new(far, lo, None, Transport::Tcp).is_err());
    let odd = ChatConfig {
        users: 3,
        ..ChatConfig::new(Target::new(lo, lo, None, Transport::Tcp).unwrap())
    };
    assert!(matches!(
        chat::run(odd).await,
        Err(chorus_loadtest::LoadError::Config(_))
    ));
}
