//! Draining a node: the way a node leaves the cluster without losing anything.
//!
//! 1. The node publishes `draining` and `/healthz` turns `503 draining`, so load
//!    balancers stop sending clients. Every node (this one too) drops it from the
//!    serving members, so its shards move: its entities finish what they accepted
//!    and stop, and their next messages go to the new owners, which restart them
//!    from the store. From now on a client that completes a `hello` here gets
//!    `goaway` instead of `welcome` ([`Drain::goaway_for_handshake`]).
//! 2. After [`PROPAGATION`], when the others have seen the change, every client
//!    gets `goaway` naming the other serving nodes' client addresses.
//! 3. After `reconnect_after_ms` the node closes what is still connected and
//!    asks the binary to exit.
//!
//! A client whose send was in flight at the close retries it with the same id on
//! its next node; the idempotency window answers it with its original seq.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use parking_lot::RwLock;

use chorus_actors::{CloseReason, ShardRegion};
use chorus_wire::ServerFrame;
use tokio_util::sync::CancellationToken;

use crate::admin::Readiness;
use crate::cluster::MemberStatus;
use crate::cluster::runtime::ClusterRuntime;

/// Time for the `draining` status to reach the other nodes (gossip rounds are
/// 250 ms) before clients are sent to them.
pub const PROPAGATION: Duration = Duration::from_millis(1500);

/// How long clients get, after `goaway`, to leave by themselves.
pub const RECONNECT_AFTER: Duration = Duration::from_millis(1000);

const SERVING: u8 = 0;
const DRAINING: u8 = 1;
const DRAINED: u8 = 2;

/// How clients reach the other nodes: the schemes and path of the addresses a
/// `goaway` names. Every node of a cluster has the same TLS settings, so this
/// node's own say what the others speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSchemes {
    /// `tls` when the TCP listeners speak TLS, else `tcp`.
    pub tcp: &'static str,
    /// `wss` when the WebSocket listeners speak TLS, else `ws`.
    pub ws: &'static str,
    /// `listen.ws_path`.
    pub ws_path: String,
}

impl ClientSchemes {
    /// The schemes for the TLS settings `tcp_tls` and `ws_tls`.
    pub fn new(tcp_tls: bool, ws_tls: bool, ws_path: String) -> Self {
        Self {
            tcp: if tcp_tls { "tls" } else { "tcp" },
            ws: if ws_tls { "wss" } else { "ws" },
            ws_path,
        }
    }
}

/// A node's drain: its state, and the signal that it is over.
#[derive(Debug)]
pub struct Drain {
    region: ShardRegion,
    cluster: Option<Arc<ClusterRuntime>>,
    schemes: ClientSchemes,
    readiness: Readiness,
    state: AtomicU8,
    /// Set just before the `goaway` broadcast takes its list of sessions: a
    /// session opened after that looks here and sends itself the `goaway`.
    broadcast: AtomicBool,
    /// The other serving nodes' client addresses, for every `goaway`.
    nodes: RwLock<Vec<String>>,
    done: CancellationToken,
}

impl Drain {
    /// The drain of a node that serves; `readiness` turns to draining when it starts.
    pub fn new(
        region: ShardRegion,
        cluster: Option<Arc<ClusterRuntime>>,
        schemes: ClientSchemes,
        readiness: Readiness,
    ) -> Self {
        Self {
            region,
            cluster,
            schemes,
            readiness,
            state: AtomicU8::new(SERVING),
            broadcast: AtomicBool::new(false),
            nodes: RwLock::new(Vec::new()),
            done: CancellationToken::new(),
        }
    }

    /// Whether the node is draining or drained: new clients are sent elsewhere.
    pub fn is_draining(&self) -> bool {
        self.state.load(Ordering::Acquire) != SERVING
    }

    /// The answer to a `hello` while the node drains: a `goaway` naming the other
    /// nodes; `None` while it serves.
    pub fn goaway_for_handshake(&self) -> Option<ServerFrame> {
        self.is_draining().then(|| self.goaway())
    }

    /// The `goaway` a session opened after the broadcast sends itself; `None` if
    /// the broadcast has not taken its list of sessions yet (it will include it).
    pub fn goaway_for_late_session(&self) -> Option<ServerFrame> {
        self.broadcast.load(Ordering::SeqCst).then(|| self.goaway())
    }

    fn goaway(&self) -> ServerFrame {
        ServerFrame::Goaway {
            reason: "node is draining".into(),
            reconnect_after_ms: u64::try_from(RECONNECT_AFTER.as_millis()).unwrap_or(1000),
            nodes: self.nodes.read().clone(),
        }
    }

    /// Looks up the other serving nodes' client addresses for `goaway`.
    async fn refresh_nodes(&self) {
        let Some(cluster) = &self.cluster else { return };
        let mut nodes = Vec::new();
        for view in cluster.members().await {
            let m = &view.member;
            if !view.this && view.connected && m.alive && m.status == MemberStatus::Serving {
                nodes.push(format!("{}://{}", self.schemes.tcp, m.tcp));
                nodes.push(format!(
                    "{}://{}{}",
                    self.schemes.ws, m.ws, self.schemes.ws_path
                ));
            }
        }
        *self.nodes.write() = nodes;
    }

    /// `serving`, `draining` or `drained`.
    pub fn status(&self) -> &'static str {
        match self.state.load(Ordering::Relaxed) {
            SERVING => "serving",
            DRAINING => "draining",
            _ => "drained",
        }
    }

    /// Completes when the drain is over.
    pub async fn finished(&self) {
        self.done.cancelled().await;
    }

    /// Starts draining (once); returns false if a drain had already started.
    /// The other nodes' addresses are looked up first, so that the very first
    /// `goaway` names them.
    pub async fn start(self: &Arc<Self>) -> bool {
        if self.is_draining() {
            return false;
        }
        self.refresh_nodes().await;
        if self
            .state
            .compare_exchange(SERVING, DRAINING, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.readiness.set_draining();
        let this = self.clone();
        tokio::spawn(async move { this.run().await });
        true
    }

    async fn run(&self) {
        tracing::info!("draining: handing shards off");
        metrics::gauge!("chorus_draining").set(1.0);
        // Clients that say hello during the propagation are sent to the nodes that
        // served at the start; the list is looked at again once the others have
        // seen the change.
        if let Some(cluster) = &self.cluster {
            cluster.set_status(MemberStatus::Draining).await;
            tokio::time::sleep(PROPAGATION).await;
            self.refresh_nodes().await;
        }
        let goaway = chorus_actors::OutFrame::new(self.goaway());
        // Before the list is taken (SeqCst on both sides): a session opened after
        // this sees the flag; one opened before is in the list.
        self.broadcast.store(true, Ordering::SeqCst);
        let sessions = self.region.sessions().all();
        tracing::info!(
            sessions = sessions.len(),
            nodes = ?self.nodes.read(),
            "draining: sending goaway"
        );
        for session in &sessions {
            session.push(goaway.clone());
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
        for session in self.region.sessions().all() {
            session.close(CloseReason::Shutdown);
        }
        self.state.store(DRAINED, Ordering::Release);
        tracing::info!("drained");
        self.done.cancel();
    }
}
