//! The cluster layer of a running node: membership and transport started, the
//! region connected to them, and placement kept in step with who serves.
//!
//! ```text
//! Membership.live (every live incarnation) ─┐
//!                                           ├─► serving = status serving ∧ alive
//! Transport.incarnations (node → generation │     ∧ (this node's own generation
//!   its session was authenticated under) ───┘       ∨ the peer's confirmed one)
//!                              │
//!                              ▼ Placement::set_members ─► ShardRegion::rebalance
//! Transport inbox ─► ShardRegion::receive (decode fallibly, route)
//! ```
//!
//! A member counts only once it holds a transport session to this node, and only
//! as the incarnation that session was authenticated under. Gossip is sealed with
//! a key derived from the cookie, but a sealed packet can still be replayed within
//! its window or told by any holder of the cookie; a session proves the cookie
//! under the node's name and generation. So a new generation of a known node id
//! seen in gossip changes nothing here until a session of that generation
//! replaces the old one: gossip alone cannot evict a node from placement. A killed
//! node's sessions close at once (its kernel closes the sockets), well before
//! gossip declares it dead, which is what makes failover fast.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chorus_actors::ShardRegion;
use chorus_actors::remote::Outbox;
use chorus_config::{Config, ListenAddrs};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Member, MemberStatus, Membership, MembershipConfig, Transport, TransportConfig};

#[cfg(test)]
mod tests;

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
            membership.generation(),
            transport.watch_incarnations(),
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

    /// The membership (gossip), for the scaling service's load samples.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Every node gossip knows, one incarnation each: the one its transport
    /// session confirms (this node: its own), else the newest; with whether this
    /// node is connected to that incarnation.
    pub async fn members(&self) -> Vec<MemberView> {
        let confirmed = self.transport.watch_incarnations().borrow().clone();
        let me = self.membership.node_id();
        let my_generation = self.membership.generation();
        let mut views: Vec<MemberView> = Vec::new();
        for member in self.membership.incarnations().await {
            let proven = if member.node_id == me {
                member.generation == my_generation
            } else {
                confirmed.get(&member.node_id) == Some(&member.generation)
            };
            let view = MemberView {
                connected: proven,
                this: member.node_id == me,
                member,
            };
            match views.last_mut() {
                // Incarnations come sorted by node id, then generation: a later
                // one replaces an earlier one unless the earlier one is proven.
                Some(last) if last.member.node_id == view.member.node_id => {
                    if !last.connected || view.connected {
                        *last = view;
                    }
                }
                _ => views.push(view),
            }
        }
        views
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

/// The members that serve: `serving`, alive and not quarantined, as the
/// incarnation this node knows to be real: its own generation for this node
/// (once it is `active`, see [`JOIN_PROPAGATION`]), the generation its transport
/// session proved for a peer. Any other incarnation gossip shows is ignored.
fn serving(
    members: &[Member],
    confirmed: &BTreeMap<String, u64>,
    quarantine: &Quarantine,
    me: (&str, u64),
    active: bool,
) -> Vec<String> {
    let mut serving: Vec<String> = members
        .iter()
        .filter(|m| m.alive && m.status == MemberStatus::Serving)
        .filter(|m| quarantine.get(&m.node_id) != Some(&m.generation))
        .filter(|m| {
            if m.node_id == me.0 {
                active && m.generation == me.1
            } else {
                confirmed.get(&m.node_id) == Some(&m.generation)
            }
        })
        .map(|m| m.node_id.clone())
        .collect();
    serving.dedup();
    serving
}

/// Live incarnations no session proves: restarts not yet confirmed, nodes this
/// one cannot reach, or gossip that lies about a node id.
fn unconfirmed(members: &[Member], confirmed: &BTreeMap<String, u64>, me: (&str, u64)) -> usize {
    members
        .iter()
        .filter(|m| {
            if m.node_id == me.0 {
                m.generation != me.1
            } else {
                confirmed.get(&m.node_id) != Some(&m.generation)
            }
        })
        .count()
}

/// Keeps the region's placement equal to the serving members.
async fn follow_placement(
    mut live: watch::Receiver<Vec<Member>>,
    generation: u64,
    mut incarnations: watch::Receiver<BTreeMap<String, u64>>,
    mut active: watch::Receiver<bool>,
    mut quarantine: watch::Receiver<Quarantine>,
    region: ShardRegion,
) {
    let node_id = region.settings().node_id.clone();
    let me = (node_id.as_str(), generation);
    let mut unproven = 0;
    loop {
        let members = live.borrow_and_update().clone();
        let confirmed = incarnations.borrow_and_update().clone();
        let is_active = *active.borrow_and_update();
        let banned = quarantine.borrow_and_update().clone();
        let next = serving(&members, &confirmed, &banned, me, is_active);
        let now_unproven = unconfirmed(&members, &confirmed, me);
        if now_unproven > unproven {
            tracing::info!(
                unconfirmed = now_unproven,
                "gossip shows incarnations no transport session proves; placement ignores them"
            );
        }
        unproven = now_unproven;
        metrics::gauge!("chorus_cluster_unconfirmed_incarnations").set(unproven as f64);
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
            r = incarnations.changed() => if r.is_err() { return },
            r = active.changed() => if r.is_err() { return },
            r = quarantine.changed() => if r.is_err() { return },
        }
    }
}
