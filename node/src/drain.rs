//! Draining a node: the way a node leaves the cluster without losing anything.
//!
//! 1. The node publishes `draining`. Every node (this one too) drops it from the
//!    serving members, so its shards move: its entities finish what they accepted
//!    and stop, and their next messages go to the new owners, which restart them
//!    from the store.
//! 2. After [`PROPAGATION`], when the others have seen the change, every client
//!    gets `goaway` naming the other serving nodes' client addresses.
//! 3. After `reconnect_after_ms` the node closes what is still connected and
//!    asks the binary to exit.
//!
//! A client whose send was in flight at the close retries it with the same id on
//! its next node; the idempotency window answers it with its original seq.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use chorus_actors::{CloseReason, ShardRegion};
use chorus_wire::ServerFrame;
use tokio_util::sync::CancellationToken;

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

/// A node's drain: its state, and the signal that it is over.
#[derive(Debug)]
pub struct Drain {
    region: ShardRegion,
    cluster: Option<Arc<ClusterRuntime>>,
    ws_path: String,
    state: AtomicU8,
    done: CancellationToken,
}

impl Drain {
    /// The drain of a node that serves.
    pub fn new(region: ShardRegion, cluster: Option<Arc<ClusterRuntime>>, ws_path: String) -> Self {
        Self {
            region,
            cluster,
            ws_path,
            state: AtomicU8::new(SERVING),
            done: CancellationToken::new(),
        }
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
    pub fn start(self: &Arc<Self>) -> bool {
        if self
            .state
            .compare_exchange(SERVING, DRAINING, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        let this = self.clone();
        tokio::spawn(async move { this.run().await });
        true
    }

    async fn run(&self) {
        tracing::info!("draining: handing shards off");
        metrics::gauge!("chorus_draining").set(1.0);
        let mut nodes = Vec::new();
        if let Some(cluster) = &self.cluster {
            cluster.set_status(MemberStatus::Draining).await;
            tokio::time::sleep(PROPAGATION).await;
            for view in cluster.members().await {
                let m = &view.member;
                if !view.this && view.connected && m.alive && m.status == MemberStatus::Serving {
                    nodes.push(format!("tcp://{}", m.tcp));
                    nodes.push(format!("ws://{}{}", m.ws, self.ws_path));
                }
            }
        }
        let sessions = self.region.sessions().all();
        tracing::info!(
            sessions = sessions.len(),
            ?nodes,
            "draining: sending goaway"
        );
        let goaway = chorus_actors::OutFrame::new(ServerFrame::Goaway {
            reason: "node is draining".into(),
            reconnect_after_ms: u64::try_from(RECONNECT_AFTER.as_millis()).unwrap_or(1000),
            nodes,
        });
        for session in &sessions {
            session.push(goaway.clone());
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
        for session in self.region.sessions().all() {
            session.close(CloseReason::Shutdown);
        }
        self.state.store(DRAINED, Ordering::Relaxed);
        tracing::info!("drained");
        self.done.cancel();
    }
}
