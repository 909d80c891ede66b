//! Heartbeats against a real node (docs/protocol.md §7.11), on tokio's paused clock.
//!
//! Every test runs the node, its clients and (for the adaptive heartbeat) a NAT in
//! one current-thread runtime whose clock is paused: whenever every task is waiting,
//! time jumps to the next timer. Sockets are real; a byte written on loopback is
//! readable before the runtime next looks for work, so no timer fires "early".
//! That makes the node's idle deadlines exact to the millisecond, and lets the
//! adaptive heartbeat run with its real parameters (minutes) through hours of
//! simulated time in about a second.
//!
//! 1. The node's idle rule: a connection silent for longer than its idle timeout
//!    is closed — at that instant, not before; a `ping` announces an interval
//!    (clamped to [`min_s`, `max_s`]) that sets the timeout; any frame, and a
//!    WebSocket ping control frame, resets the deadline.
//! 2. The SDK's adaptive heartbeat behind a simulated carrier NAT that silently
//!    forgets mappings idle for longer than T: it settles on an interval in
//!    (T − step − margin, T), stops losing connections, starts over when T shrinks,
//!    and the node closes the connections the NAT blackholed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chorus_client::{
    AdaptiveHeartbeat, Client, ClientConfig, Event, Events, HeartbeatStore, MemoryStore, Phase,
    Record, Transport,
};
use chorus_wire::{ClientFrame, HeartbeatInfo, ServerFrame};
use common::{RawTcp, RawWs, TestNode, start_node};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

// ---------------------------------------------------------------------------------
// 1. The node's idle rule.
// ---------------------------------------------------------------------------------

/// The node's default bounds: the announced interval lies in [30 s, 600 s]; before
/// any announcement a client may be silent for ceil(1.5 × 600) + 5 = 905 s.
const DEFAULT_BOUNDS: HeartbeatInfo = HeartbeatInfo {
    min_s: 30,
    max_s: 600,
    idle_timeout_s: 905,
};

/// Logs in over TCP; the `welcome`'s heartbeat bounds must be the defaults.
async fn login_tcp(node: &TestNode, user: &str) -> RawTcp {
    let mut c = RawTcp::connect(node).await;
    c.send(&ClientFrame::Hello {
        protocol: 1,
        token: user.into(),
        device: None,
    })
    .await;
    match c.recv().await {
        Some(ServerFrame::Welcome { heartbeat, .. }) => assert_eq!(heartbeat, DEFAULT_BOUNDS),
        other => panic!("expected welcome, got {other:?}"),
    }
    c
}

/// Sends `ping` and waits for its `pong`: proof the connection is open at this instant.
async fn ping(c: &mut RawTcp, interval_s: Option<u32>) {
    c.send(&ClientFrame::Ping { interval_s }).await;
    assert_eq!(c.recv().await, Some(ServerFrame::Pong), "the node answers");
}

/// Waits (in paused time, without limit) for the node to close `stream`; returns
/// when it did. Nothing else is expected on the socket.
async fn closed_at(stream: &mut TcpStream) -> Instant {
    let mut buf = [0u8; 256];
    match stream.read(&mut buf).await {
        Ok(0) | Err(_) => Instant::now(),
        Ok(n) => panic!("unexpected {n} bytes before the close"),
    }
}

/// Asserts the node closed the connection `idle` after `since`, to the second.
fn assert_closed_after(closed: Instant, since: Instant, idle: Duration) {
    let silent = closed - since;
    assert!(
        silent >= idle && silent < idle + secs(1),
        "closed after {silent:?} of silence; the idle timeout is {idle:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_closed_at_the_welcome_idle_timeout_and_not_before() {
    let node = start_node().await;
    let mut c = login_tcp(&node, "alice").await;
    let since = Instant::now();
    let closed = closed_at(&mut c.stream).await;
    assert_closed_after(closed, since, secs(905));
}

#[tokio::test(start_paused = true)]
async fn a_ping_sets_the_idle_timeout_from_its_interval_clamped_to_the_bounds() {
    let node = start_node().await;
    // (announced interval_s, idle timeout: ceil(1.5 × clamped) + 5)
    let cases = [
        (60, 95),
        (45, 73),
        (1, 50),        // below min_s: 30
        (100_000, 905), // above max_s: 600
    ];
    for (interval_s, idle_s) in cases {
        let mut c = login_tcp(&node, "alice").await;
        ping(&mut c, Some(interval_s)).await;
        let since = Instant::now();
        let closed = closed_at(&mut c.stream).await;
        assert_closed_after(closed, since, secs(idle_s));
    }
}

#[tokio::test(start_paused = true)]
async fn any_frame_just_before_the_deadline_resets_it_and_keeps_the_interval() {
    let node = start_node().await;
    let mut c = login_tcp(&node, "alice").await;
    ping(&mut c, Some(60)).await; // idle timeout 95 s
    tokio::time::sleep(secs(94)).await;
    ping(&mut c, None).await; // open at 94 s; no interval: 60 still holds
    tokio::time::sleep(secs(94)).await;
    // Not a ping: a request is activity too.
    let list = ClientFrame::Conversations {
        reference: "c".into(),
        page: chorus_wire::Trailing::ABSENT,
    };
    c.send(&list).await;
    assert!(matches!(
        c.recv().await,
        Some(ServerFrame::ConversationList { .. })
    ));
    let since = Instant::now();
    let closed = closed_at(&mut c.stream).await;
    assert_closed_after(closed, since, secs(95));
}

#[tokio::test(start_paused = true)]
async fn websocket_ping_control_frames_keep_a_connection_open() {
    let node = start_node().await;
    let mut c = RawWs::login(&node, "alice").await;
    c.send(&ClientFrame::Ping {
        interval_s: Some(30),
    })
    .await; // idle timeout 50 s
    assert_eq!(c.recv().await, Some(ServerFrame::Pong));
    // Five minutes of nothing but WebSocket pings, 40 s apart.
    for _ in 0..8 {
        tokio::time::sleep(secs(40)).await;
        c.ws.send(WsMessage::Ping(Vec::new().into())).await.unwrap();
    }
    let since = Instant::now();
    // Still open: a protocol ping is answered (the node's pong control frames to
    // our pings are skipped by `recv`).
    c.send(&ClientFrame::Ping { interval_s: None }).await;
    assert_eq!(c.recv().await, Some(ServerFrame::Pong));
    // Then silence: closed 50 s after the last frame.
    let closed = loop {
        match c.ws.next().await {
            None | Some(Err(_) | Ok(WsMessage::Close(_))) => break Instant::now(),
            Some(Ok(WsMessage::Pong(_))) => {}
            Some(Ok(other)) => panic!("unexpected {other:?} before the close"),
        }
    };
    assert_closed_after(closed, since, secs(50));
}

// ---------------------------------------------------------------------------------
// 2. The adaptive heartbeat behind a NAT.
// ---------------------------------------------------------------------------------

/// A carrier NAT in front of the node. Each accepted connection is a mapping,
/// forgotten once no packet has crossed it (either way) for longer than the timeout,
/// which the test may change at any time. A forgotten mapping blackholes both
/// directions: bytes are read and dropped and no close is passed on, so neither end
/// sees a FIN or a reset.
struct Nat {
    addr: SocketAddr,
    timeout_ms: Arc<AtomicU64>,
    /// Mappings forgotten.
    expired: Arc<AtomicU64>,
    /// Forgotten mappings whose node side the node has since closed.
    reaped: Arc<AtomicU64>,
}

impl Nat {
    async fn start(upstream: SocketAddr, timeout: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let nat = Self {
            addr: listener.local_addr().unwrap(),
            timeout_ms: Arc::new(AtomicU64::new(0)),
            expired: Arc::new(AtomicU64::new(0)),
            reaped: Arc::new(AtomicU64::new(0)),
        };
        nat.set_timeout(timeout);
        let (timeout_ms, expired, reaped) = (
            nat.timeout_ms.clone(),
            nat.expired.clone(),
            nat.reaped.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let Ok(node) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let mapping = Mapping {
                    timeout_ms: timeout_ms.clone(),
                    expired: expired.clone(),
                    reaped: reaped.clone(),
                    last_packet: Instant::now(),
                    forgotten: false,
                };
                tokio::spawn(mapping.run(client, node));
            }
        });
        nat
    }

    fn set_timeout(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis()).unwrap();
        self.timeout_ms.store(ms, Ordering::Relaxed);
    }

    fn expired(&self) -> u64 {
        self.expired.load(Ordering::Relaxed)
    }

    fn reaped(&self) -> u64 {
        self.reaped.load(Ordering::Relaxed)
    }
}

/// One NAT mapping: a client connection and its connection to the node.
struct Mapping {
    timeout_ms: Arc<AtomicU64>,
    expired: Arc<AtomicU64>,
    reaped: Arc<AtomicU64>,
    last_packet: Instant,
    forgotten: bool,
}

impl Mapping {
    /// Whether a packet arriving now still finds the mapping.
    fn pass(&mut self) -> bool {
        let now = Instant::now();
        let timeout = Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed));
        if !self.forgotten && now - self.last_packet > timeout {
            self.forgotten = true;
            self.expired.fetch_add(1, Ordering::Relaxed);
        }
        if !self.forgotten {
            self.last_packet = now;
        }
        !self.forgotten
    }

    async fn run(mut self, client: TcpStream, node: TcpStream) {
        let (mut client_rx, mut client_tx) = client.into_split();
        let (mut node_rx, mut node_tx) = node.into_split();
        let (mut up, mut down) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
        let (mut client_open, mut node_open) = (true, true);
        while client_open || node_open {
            tokio::select! {
                read = client_rx.read(&mut up), if client_open => match read {
                    Ok(n) if n > 0 => {
                        if self.pass() {
                            let _ = node_tx.write_all(&up[..n]).await;
                        }
                    }
                    _ => {
                        client_open = false;
                        if !self.forgotten {
                            let _ = node_tx.shutdown().await;
                        }
                    }
                },
                read = node_rx.read(&mut down), if node_open => match read {
                    Ok(n) if n > 0 => {
                        if self.pass() {
                            let _ = client_tx.write_all(&down[..n]).await;
                        }
                    }
                    _ => {
                        node_open = false;
                        if self.forgotten {
                            self.reaped.fetch_add(1, Ordering::Relaxed);
                        } else {
                            let _ = client_tx.shutdown().await;
                        }
                    }
                },
            }
        }
    }
}

/// Counts the client's lost connections.
fn count_disconnects(mut events: Events) -> Arc<AtomicU64> {
    let lost = Arc::new(AtomicU64::new(0));
    let counter = lost.clone();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let Event::Disconnected { .. } = event {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    lost
}

/// Lets paused time run until `network`'s record is stable; panics after `limit`.
async fn settle(store: &MemoryStore, network: &str, limit: Duration) -> Record {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        tokio::time::sleep(MIN).await;
        if let Some(record) = store.load(network).filter(Record::is_stable) {
            return record;
        }
    }
    panic!("not stable within {limit:?}: {:?}", store.load(network));
}

#[tokio::test(start_paused = true)]
async fn the_adaptive_heartbeat_learns_the_nat_timeout_and_relearns_when_it_shrinks() {
    let node = start_node().await;
    let nat = Nat::start(node.node.addrs().tcp, secs(480)).await;
    let store = MemoryStore::new();
    let mut cfg = ClientConfig::new(nat.addr.to_string(), Transport::Tcp, "alice");
    cfg.resync = false;
    let mut adaptive = AdaptiveHeartbeat::new("wifi:home");
    adaptive.store = Arc::new(store.clone());
    let params = adaptive.params; // Mars's: from 4.5 min by 1 min steps, 20 s margin, k = 3
    cfg.adaptive_heartbeat = Some(adaptive);
    let (client, events) = Client::connect(cfg).await.unwrap();
    let lost = count_disconnects(events);
    let in_range = |t: Duration, r: &Record| {
        t.saturating_sub(params.step + params.margin) < r.interval && r.interval < t
    };

    // T = 8 min: 270, 330, 390 and 450 s survive three times each, 510 s dies.
    let t = secs(480);
    let learned = settle(&store, "wifi:home", 4 * HOUR).await;
    assert!(in_range(t, &learned), "{learned:?}");
    assert_eq!(learned.interval, secs(430), "the last good 450 s less 20 s");
    assert_eq!((nat.expired(), lost.load(Ordering::Relaxed)), (1, 1));

    // Settled: hours without a lost connection (the first re-probe is due after 6 h).
    tokio::time::sleep(5 * HOUR).await;
    assert_eq!(nat.expired(), 1, "no mapping forgotten after settling");
    assert_eq!(lost.load(Ordering::Relaxed), 1);
    assert_eq!(store.load("wifi:home").map(|r| r.interval), Some(secs(430)));

    // The NAT turns stricter (T = 6 min 15 s): three losses in a row at 430 s, then
    // probing from the minimum again.
    let t = secs(375);
    nat.set_timeout(t);
    let started_over = |r: &Record| r.phase == (Phase::Probing { last_good: None });
    let deadline = Instant::now() + 30 * MIN;
    while !store.load("wifi:home").is_some_and(|r| started_over(&r)) {
        assert!(Instant::now() < deadline, "{:?}", store.load("wifi:home"));
        tokio::time::sleep(MIN).await;
    }
    assert_eq!(
        store.load("wifi:home").map(|r| r.interval),
        Some(params.min)
    );
    assert_eq!(nat.expired(), 1 + 3);
    let relearned = settle(&store, "wifi:home", 4 * HOUR).await;
    assert!(in_range(t, &relearned), "{relearned:?}");
    assert_eq!(relearned.interval, secs(310), "330 s survived, 390 s died");
    let expired = nat.expired();
    tokio::time::sleep(4 * HOUR).await;
    assert_eq!(nat.expired(), expired, "settled again: nothing lost");
    assert_eq!(lost.load(Ordering::Relaxed), expired);

    // Every blackholed connection was closed by the node's idle deadline.
    assert_eq!(nat.reaped(), nat.expired());
    client.close().await;
}

/// The same in real time, scaled down to sub-second intervals: the SDK pings more
/// often than the node's `min_s` (30 s), which the protocol allows (the node merely
/// assumes 30 s, so its idle deadline never interferes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_real_time_a_scaled_down_heartbeat_settles_below_the_nat_timeout() {
    let ms = Duration::from_millis;
    let node = start_node().await;
    let t = ms(1_350);
    let nat = Nat::start(node.node.addrs().tcp, t).await;
    let store = MemoryStore::new();
    let mut cfg = ClientConfig::new(nat.addr.to_string(), Transport::Tcp, "alice");
    cfg.resync = false;
    cfg.backoff_initial = ms(20);
    cfg.backoff_max = ms(100);
    let mut adaptive = AdaptiveHeartbeat::new("lab");
    adaptive.store = Arc::new(store.clone());
    adaptive.params = chorus_client::AdaptiveParams {
        min: ms(300),
        max: secs(10),
        step: ms(300),
        margin: ms(90),
        k: 3,
        reprobe_after: HOUR,
        pong_timeout: ms(500),
    };
    cfg.adaptive_heartbeat = Some(adaptive);
    let (client, events) = Client::connect(cfg).await.unwrap();
    let lost = count_disconnects(events);

    // 300, 600, 900, 1200 ms survive; 1500 ms dies; stable at 1200 − 90 = 1110 ms.
    let started = std::time::Instant::now();
    let learned = loop {
        tokio::time::sleep(ms(100)).await;
        if let Some(r) = store.load("lab").filter(Record::is_stable) {
            break r;
        }
        assert!(started.elapsed() < secs(30), "{:?}", store.load("lab"));
    };
    assert!(
        t - ms(300 + 90) < learned.interval && learned.interval < t,
        "{learned:?}"
    );
    let expired = nat.expired();
    tokio::time::sleep(secs(4)).await;
    assert_eq!(nat.expired(), expired, "nothing lost after settling");
    assert_eq!(lost.load(Ordering::Relaxed), expired);
    client.close().await;
}
