//! Each scenario, briefly, against a real node started in-process on ephemeral
//! loopback ports with the real embedded store in a temporary directory: the
//! reports' delivery counts must balance (sent = acked = delivered, no duplicates,
//! nothing missing or out of order; for live rooms, accepted = delivered + dropped
//! for every viewer, and every paid/system item delivered).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // Tests: a panic is the report.

use std::time::Duration;

use chorus_client::Transport;
use chorus_config::{Config, Secret};
use chorus_loadtest::Target;
use chorus_loadtest::chat::{self, ChatConfig};
use chorus_loadtest::connect::{self, ConnectConfig};
use chorus_loadtest::live::{self, Burst, LiveConfig, RoleShares};
use chorus_loadtest::storm::{self, DropMode, StormConfig};
use chorus_loadtest::token::Tokens;
use chorus_node::Node;

const ADMIN_TOKEN: &str = "loadtest-admin-token";
const JWT_SECRET: &str = "loadtest-jwt-secret-of-enough-length";

struct TestNode {
    node: Node,
    _dir: tempfile::TempDir,
}

async fn start_node() -> TestNode {
    start_node_with(|_| {}).await
}

async fn start_node_with(adjust: impl FnOnce(&mut Config)) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.listen.tcp = "127.0.0.1:0".into();
    config.listen.ws = "127.0.0.1:0".into();
    config.listen.admin = "127.0.0.1:0".into();
    config.storage.path = dir.path().to_path_buf();
    config.admin.token = Some(Secret::new(ADMIN_TOKEN));
    adjust(&mut config);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_viewers_account_for_every_accepted_item_through_a_burst() {
    // A budget below the offered rate, so the room samples and `dropped` counts.
    let node = start_node_with(|c| {
        c.auth.mode = chorus_config::AuthMode::Jwt;
        c.auth.secret = Some(Secret::new(JWT_SECRET));
        c.live.rate_per_user = 100_000;
        c.live.rate_window_s = 1;
        c.live.budget_per_s = 100;
    })
    .await;
    let cfg = LiveConfig {
        viewers: 50,
        senders: 5,
        rate: 60.0,
        duration: Duration::from_secs(2),
        bursts: vec![Burst {
            at_s: 1.0,
            count: 200,
        }],
        roles: RoleShares {
            system: 0.2,
            paid: 0.2,
            vip: 0.0,
        },
        tokens: Tokens::from_secret(Some(JWT_SECRET.into())),
        latency_viewers: 10,
        source_ips: 2,
        ..LiveConfig::new(target(&node, Transport::WsBinary))
    };
    let report = live::run(cfg).await.unwrap();
    let c = &report.check;
    assert_eq!(report.joined, 50, "{:?}", report.join_errors);
    assert_eq!(report.sent, 120 + 200);
    assert_eq!(report.accepted, report.sent, "{:?}", report.errors);
    let p = report.accepted_by_prio;
    assert_eq!((report.senders.system, report.senders.paid), (1, 1));
    assert_eq!(
        p.system + p.paid,
        2 * 320 / 5,
        "one sender in five of each role"
    );
    assert_eq!(p.normal + p.vip + p.paid + p.system, report.accepted);
    assert_eq!(c.viewers_checked, 50);
    assert_eq!(
        c.balanced, 50,
        "accepted = delivered + dropped: {:?}",
        c.samples
    );
    assert_eq!(c.paid_system_complete, 50, "{:?}", c.samples);
    assert_eq!((c.out_of_order, c.disconnected, c.unanswered), (0, 0, 0));
    assert!(report.passed);
    assert!(report.dropped > 0, "the burst exceeded the budget");
    assert_eq!(
        report.deliveries + report.dropped,
        50 * report.accepted,
        "summed over viewers"
    );
    assert_eq!(report.latency_viewers, 10);
    assert!(report.send_to_visible.count > 0);
    assert!(report.send_to_visible_burst.count > 0);
    assert_eq!(
        report.send_to_visible_paid_system.count,
        10 * (p.system + p.paid),
        "every sampled viewer saw every paid/system item"
    );
    assert!(report.node.rss.max_bytes.unwrap() > 0);
    assert_eq!(report.node.items_accepted, Some(report.accepted as f64));
    assert_eq!(report.node.slow_viewer_disconnects.unwrap_or(0.0), 0.0);
    let svg = report.plot.to_svg().unwrap();
    assert!(svg.contains("send→visible") && svg.contains("resident memory (MB)"));
    node.node.shutdown().await;
}

#[tokio::test]
async fn live_roles_need_signed_tokens() {
    let lo = "127.0.0.1:1".parse().unwrap();
    let cfg = LiveConfig {
        roles: RoleShares {
            paid: 0.5,
            ..RoleShares::default()
        },
        ..LiveConfig::new(Target::new(lo, lo, None, Transport::Tcp).unwrap())
    };
    assert!(matches!(
        live::run(cfg).await,
        Err(chorus_loadtest::LoadError::Config(_))
    ));
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

/// A node with `[tls]` (a certificate for 127.0.0.1 from a CA made here, the
/// admin listener left in the clear for the memory figures) and a target that
/// speaks TLS with that CA.
async fn tls_node_and_target(transport: Transport) -> (TestNode, Target, tempfile::TempDir) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let (ca_file, cert_file, key_file) = (
        dir.path().join("ca.pem"),
        dir.path().join("node.pem"),
        dir.path().join("node.key"),
    );
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let node = start_node_with(|c| {
        c.tls.cert = Some(cert_file);
        c.tls.key = Some(key_file);
        c.tls.admin = false;
    })
    .await;
    let mut target = target(&node, transport);
    target.tls = Some(chorus_loadtest::target::TlsTarget::from_ca_file(&ca_file).unwrap());
    (node, target, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_over_tls_and_connect_over_wss_balance() {
    let (node, tls_target, _dir) = tls_node_and_target(Transport::Tcp).await;
    let cfg = ChatConfig {
        users: 6,
        rate: 200.0,
        duration: Duration::from_secs(1),
        ..ChatConfig::new(tls_target.clone())
    };
    let report = chat::run(cfg).await.unwrap();
    let d = &report.delivery;
    assert_eq!(
        (d.sent, d.acked, d.delivered),
        (200, 200, 200),
        "{:?}",
        report.errors
    );
    assert!(report.passed);

    let mut wss = tls_target;
    wss.transport = Transport::WsBinary;
    let cfg = ConnectConfig {
        connections: 20,
        rate: 200.0,
        hold: Duration::from_millis(1200),
        ..ConnectConfig::new(wss)
    };
    let report = connect::run(cfg).await.unwrap();
    assert_eq!(report.connected, 20, "{:?}", report.errors);
    assert!(report.passed);
    node.node.shutdown().await;
}
