//! The cluster layer of a running node: membership and transport started, the
//! region connected to them, and placement kept in step with who serves.
//!
//! ```text
//! Membership.live ─┐
//!                  ├─► serving = status serving ∧ alive ∧ (self ∨ connected)
//! Transport.connected ┘        │
//!                              ▼ Placement::set_members ─► ShardRegion::rebalance
//! Transport inbox ─► ShardRegion::receive (decode fallibly, route)
//! ```
//!
//! A member counts only once it holds a transport session to this node: gossip is
//! unauthenticated, only the cookie proves a member is ours, and a killed node's
//! sessions close at once (its kernel closes the sockets), well before gossip
//! declares it dead — which is what makes failover fast.

use std::sync::Arc;
use std::time::Duration;

use chorus_actors::ShardRegion;
use chorus_actors::remote::Outbox;
use chorus_config::{Config, ListenAddrs};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Member, MemberStatus, Membership, MembershipConfig, Transport, TransportConfig};

/// How long a joining node waits to reach the members gossip shows it before it
/// serves anyway.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a node that starts serving waits before it counts itself an owner:
/// the time for its `serving` status to reach the others. Until then it forwards
/// like everyone else still does, so a shard never has two owners accepting
/// sends at once (the old owner stops when it sees the newcomer, the newcomer
/// starts after that). A node leaving stops owning at once.
pub const JOIN_PROPAGATION: Duration = Duration::from_millis(1500);

/// A second rebalance after a placement change, once the other nodes have seen
/// the change too: sessions re-attached while tables disagreed land right, and
/// entities started here meanwhile for shards owned elsewhere are handed off.
const SETTLE: Duration = Duration::from_secs(3);

/// Undecodable envelopes after which a peer is quarantined: left out of
/// placement (it owns no shard) until it restarts as a new incarnation. A peer
/// with the cookie is trusted to be a Chorus node; one that keeps sending
/// garbage is not one, or not a healthy one.
pub const QUARANTINE_STRIKES: u32 = 3;

/// Peers left out of placement: node id → the generation that misbehaved.
type Quarantine = std::collections::HashMap<String, u64>;

/// The transport as the region's outbox.
struct TransportOutbox(Transport);

impl Outbox for TransportOutbox {
    fn send(&self, node: &str, bytes: Vec<u8>) -> bool {
        self.0.send(node, bytes).is_ok()
    }

    fn generation(&self, node: &str) -> Option<u64> {
        self.0.generation_of(node)
    }
}

/// The cluster layer of a node.
pub struct ClusterRuntime {
    membership: Membership,
    transport: Transport,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ClusterRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterRuntime")
            .field("node_id", &self.membership.node_id())
            .finish_non_exhaustive()
    }
}

/// A member as the admin API shows it.
#[derive(Debug, Clone)]
pub struct MemberView {
    /// The gossiped member.
    pub member: Member,
    /// Whether this node holds a transport session to it (always for itself).
    pub connected: bool,
    /// Whether it is this node.
    pub this: bool,
}

impl ClusterRuntime {
    /// Joins the cluster of `config.cluster.seeds` (or starts one), connects the
    /// region to the transport, and serves once it reaches the members it sees.
    pub async fn start(
        config: &Config,
        bound: &ListenAddrs,
        region: ShardRegion,
        tls: Option<crate::tls::NodeTls>,
    ) -> Result<Self, String> {
        let membership_config = MembershipConfig::from_config(&config.cluster, bound)
            .await
            .map_err(|e| e.to_string())?;
        let membership = Membership::start(membership_config)
            .await
            .map_err(|e| e.to_string())?;
        let advertise_host = config
            .cluster
            .advertise_host
            .clone()
            .unwrap_or_else(|| bound.cluster.ip().to_string());
        let (transport, mut inbox) = Transport::start(
            TransportConfig {
                node_id: membership.node_id().to_string(),
                generation: membership.generation(),
                listen: bound.cluster,
                advertise_host,
                cookie: config.cluster.cookie.expose().to_string(),
                inbox_capacity: 65_536,
                tls,
            },
            membership.live(),
        )
        .await
        .map_err(|e| e.to_string())?;
        region.connect_cluster(
            membership.generation(),
            Arc::new(TransportOutbox(transport.clone())),
        );

        let mut tasks = Vec::new();
        let (quarantine_tx, quarantine) = watch::channel(Quarantine::new());
        let pump_region = region.clone();
        let pump_transport = transport.clone();
        tasks.push(tokio::spawn(async move {
            let mut strikes: std::collections::HashMap<(String, u64), u32> =
                std::collections::HashMap::new();
            while let Some(inbound) = inbox.recv().await {
                if pump_region.receive(&inbound.from, &inbound.payload) {
                    continue;
                }
                let generation = pump_transport.generation_of(&inbound.from).unwrap_or(0);
                let count = strikes.entry((inbound.from.clone(), generation)).or_default();
                *count += 1;
                if *count == QUARANTINE_STRIKES {
                    tracing::error!(peer = %inbound.from, generation, "peer keeps sending undecodable envelopes: quarantined (it owns no shard until it restarts)");
                    metrics::counter!("chorus_cluster_quarantined_total").increment(1);
                    quarantine_tx.send_modify(|q| {
                        q.insert(inbound.from.clone(), generation);
                    });
                }
            }
        }));
        let (active_tx, active) = watch::channel(false);
        tasks.push(tokio::spawn(follow_placement(
            membership.live(),
            transport.watch_connected(),
            active,
            quarantine,
            region.clone(),
        )));
        let sweep_region = region.clone();
        let load_membership = membership.clone();
        tasks.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                sweep_region.link().sweep();
                load_membership
                    .set_load(sweep_region.sessions().count() as u64)
                    .await;
            }
        }));

        let mut runtime = Self {
            membership,
            transport,
            tasks,
        };
        runtime.join(!config.cluster.seeds.is_empty()).await;
        runtime.membership.set_status(MemberStatus::Serving).await;
        runtime.tasks.push(tokio::spawn(async move {
            tokio::time::sleep(JOIN_PROPAGATION).await;
            let _ = active_tx.send(true);
            // Keep the watch open for the follower.
            std::future::pending::<()>().await;
        }));
        tracing::info!(
            node = runtime.membership.node_id(),
            "cluster member serving"
        );
        Ok(runtime)
    }

    /// Waits until this node holds a session to every live member gossip shows
    /// (with seeds: and it has seen at least one other member), within
    /// [`JOIN_TIMEOUT`].
    async fn join(&self, has_seeds: bool) {
        let mut live = self.membership.live();
        let mut connected = self.transport.watch_connected();
        let me = self.membership.node_id().to_string();
        let reached = async {
            loop {
                let members = live.borrow_and_update().clone();
                let peers: Vec<&Member> = members.iter().filter(|m| m.node_id != me).collect();
                let links = connected.borrow_and_update().clone();
                let all = peers.iter().all(|m| links.contains(&m.node_id));
                if all && (!has_seeds || !peers.is_empty()) {
                    return;
                }
                tokio::select! {
                    r = live.changed() => if r.is_err() { return },
                    r = connected.changed() => if r.is_err() { return },
                }
            }
        };
        if tokio::time::timeout(JOIN_TIMEOUT, reached).await.is_err() {
            tracing::warn!("could not reach every member within the join timeout; serving anyway");
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        self.membership.node_id()
    }

    /// Every member gossip knows, with whether this node is connected to it.
    pub async fn members(&self) -> Vec<MemberView> {
        let connected = self.transport.connected();
        let me = self.membership.node_id();
        self.membership
            .members()
            .await
            .into_iter()
            .map(|member| MemberView {
                connected: member.node_id == me || connected.contains(&member.node_id),
                this: member.node_id == me,
                member,
            })
            .collect()
    }

    /// Publishes this node's status.
    pub async fn set_status(&self, status: MemberStatus) {
        self.membership.set_status(status).await;
    }

    /// Leaves the cluster: transport sessions closed, gossip stopped.
    pub async fn shutdown(&self) {
        for task in &self.tasks {
            task.abort();
        }
        self.transport.shutdown().await;
        self.membership.shutdown();
    }
}

/// The members that serve: `serving`, alive, connected and not quarantined;
/// this node once it is `active` (see [`JOIN_PROPAGATION`]).
fn serving(
    members: &[Member],
    connected: &[String],
    quarantine: &Quarantine,
    me: &str,
    active: bool,
) -> Vec<String> {
    members
        .iter()
        .filter(|m| m.alive && m.status == MemberStatus::Serving)
        .filter(|m| quarantine.get(&m.node_id) != Some(&m.generation))
        .filter(|m| {
            if m.node_id == me {
                active
            } else {
                connected.contains(&m.node_id)
            }
        })
        .map(|m| m.node_id.clone())
        .collect()
}

/// Keeps the region's placement equal to the serving members.
async fn follow_placement(
    mut live: watch::Receiver<Vec<Member>>,
    mut connected: watch::Receiver<Vec<String>>,
    mut active: watch::Receiver<bool>,
    mut quarantine: watch::Receiver<Quarantine>,
    region: ShardRegion,
) {
    let me = region.settings().node_id.clone();
    loop {
        let members = live.borrow_and_update().clone();
        let links = connected.borrow_and_update().clone();
        let is_active = *active.borrow_and_update();
        let banned = quarantine.borrow_and_update().clone();
        let next = serving(&members, &links, &banned, &me, is_active);
        if let Some(previous) = region.placement().set_members(next.clone()) {
            tracing::info!(serving = ?next, "placement changed");
            metrics::counter!("chorus_placement_changes_total").increment(1);
            metrics::gauge!("chorus_cluster_serving_members").set(next.len() as f64);
            region.rebalance(&previous);
            let settle = region.clone();
            tokio::spawn(async move {
                tokio::time::sleep(SETTLE).await;
                settle.rebalance(&previous);
            });
        }
        tokio::select! {
            r = live.changed() => if r.is_err() { return },
            r = connected.changed() => if r.is_err() { return },
            r = active.changed() => if r.is_err() { return },
            r = quarantine.changed() => if r.is_err() { return },
        }
    }
}
