//! Membership: which nodes form the cluster, where to reach them, and whether they
//! are alive.
//!
//! A thin layer over chitchat (scuttlebutt gossip over UDP with a phi-accrual failure
//! detector). Every node publishes a few keys about itself; every node reads the keys
//! of all the others. The values are plain strings, so what a peer gossips is parsed
//! fallibly here and never trusted to be well formed.
//!
//! | key | value |
//! |---|---|
//! | [`KEY_CLUSTER_ADDR`] | `host:port` of the node's actor transport (`listen.cluster`) |
//! | [`KEY_TCP`], [`KEY_WS`], [`KEY_ADMIN`] | `host:port` of its client and admin listeners |
//! | [`KEY_STATUS`] | `joining`, `serving` or `draining` ([`MemberStatus`]) |
//! | [`KEY_LOAD`] | a decimal `u64`, e.g. the number of client connections |
//! | [`KEY_LOAD_SAMPLE`] | the latest load sample for predictive scaling (JSON, `crate::scaling`) |
//!
//! A node is one chitchat identity per *incarnation*: the same `node_id` with a new
//! `generation` (its start time in milliseconds) after every restart, so a restarted
//! node is never mistaken for its previous life. The [`Membership::live`] watch
//! shows every live incarnation: a node id appears twice while a restarted node's
//! previous life is not yet declared dead. Which incarnation is the node is not
//! gossip's to say: the one the transport holds a session to, authenticated by the
//! cookie, is (see [`crate::cluster::runtime`]). [`Membership::members`] shows one
//! [`Member`] per node id, its newest generation.
//!
//! Gossip is authenticated: every datagram is sealed with an HMAC under a key
//! derived from `cluster.cookie`, stamped, and accepted once ([`seal`], [`udp`]);
//! a packet from anyone without the cookie never reaches chitchat.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chitchat::{
    ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, NodeState, ProtocolVersion,
    spawn_chitchat,
};
use chorus_config::{ClusterConfig, ListenAddrs};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod seal;
#[cfg(test)]
mod tests;
pub mod udp;

pub use seal::{GossipKey, Rejected};
pub use udp::SealedUdp;

/// Key: `host:port` of the node's actor transport.
pub const KEY_CLUSTER_ADDR: &str = "cluster_addr";
/// Key: `host:port` of the node's client TCP listener.
pub const KEY_TCP: &str = "tcp";
/// Key: `host:port` of the node's client WebSocket listener.
pub const KEY_WS: &str = "ws";
/// Key: `host:port` of the node's admin HTTP listener.
pub const KEY_ADMIN: &str = "admin";
/// Key: the node's [`MemberStatus`].
pub const KEY_STATUS: &str = "status";
/// Key: the node's load, a decimal `u64`.
pub const KEY_LOAD: &str = "load";
/// Key: the node's latest load sample (JSON), read by every node's scaling
/// service (`crate::scaling`).
pub const KEY_LOAD_SAMPLE: &str = "load_sample";

/// The chitchat cluster id. Gossip from a different cluster id is refused; it is a
/// constant because the cookie, which keys the gossip MAC, is what keeps
/// strangers out.
pub const CLUSTER_ID: &str = "chorus";

/// Where a node is in its life, as the others see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberStatus {
    /// Started, not yet taking shards or clients (the initial status).
    Joining,
    /// Owns its share of the shards and accepts clients.
    Serving,
    /// Handing its shards off before it exits; takes no new ones.
    Draining,
}

impl MemberStatus {
    /// The gossiped spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Joining => "joining",
            Self::Serving => "serving",
            Self::Draining => "draining",
        }
    }

    /// Parses the gossiped spelling; `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "joining" => Some(Self::Joining),
            "serving" => Some(Self::Serving),
            "draining" => Some(Self::Draining),
            _ => None,
        }
    }
}

impl std::fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One incarnation of a node of the cluster, as gossip describes it.
///
/// Gossip is authenticated by the cookie, but only as a whole: any node with the
/// cookie can say anything about any node id. Only an incarnation that also holds
/// a transport session (it proved the cookie under that very name and
/// generation) is given work; see [`crate::cluster::runtime`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// `cluster.node_id` of the node.
    pub node_id: String,
    /// Incarnation of the node: its start time in ms since the Unix epoch.
    pub generation: u64,
    /// The UDP address it gossips on.
    pub gossip_addr: SocketAddr,
    /// `host:port` of its actor transport ([`KEY_CLUSTER_ADDR`]).
    pub cluster_addr: String,
    /// `host:port` of its client TCP listener (empty if not gossiped).
    pub tcp: String,
    /// `host:port` of its client WebSocket listener (empty if not gossiped).
    pub ws: String,
    /// `host:port` of its admin listener (empty if not gossiped).
    pub admin: String,
    /// Its status. A value this version does not know reads as `Joining`, so a
    /// node is never given shards on the strength of a status we cannot parse.
    pub status: MemberStatus,
    /// Its last published load (0 if absent or not a number).
    pub load: u64,
    /// Whether the failure detector considers it alive. Always true for this node.
    pub alive: bool,
}

/// Failure-detector and gossip timings.
///
/// chitchat's detector declares a node dead when the time since its last heartbeat
/// exceeds `phi_threshold` × the mean interval between the heartbeats we observed
/// (a heartbeat counter rises on every gossip round and every gossip message a node
/// handles, and reaches us in every digest, directly or through a third node).
/// `initial_interval` is the prior of that mean, weighted as five samples, so the
/// first seconds of a new peer are judged leniently. Liveness is re-evaluated once
/// per gossip round.
///
/// With the defaults (250 ms rounds, threshold 12), a node of a 3-node cluster
/// observes a heartbeat of each peer about every 150–170 ms (a timeout of about
/// 1.8–2 s), so a killed node is declared dead 1.7–2.7 s after it died, measured on
/// loopback by `node/tests/cluster_transport.rs`, also with both cores busy. Larger
/// clusters observe heartbeats more often and detect a little sooner. A node
/// silent for that long (a long pause, a saturated host) is declared dead too,
/// and its sessions are closed: that is the price of detecting in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GossipTiming {
    /// How often this node gossips with (up to 3) random peers. Default 250 ms.
    pub gossip_interval: Duration,
    /// The multiple of the mean heartbeat interval after which a silent node is
    /// dead. Default 12.
    pub phi_threshold: f64,
    /// The prior mean heartbeat interval of a new peer. Default 250 ms.
    pub initial_interval: Duration,
    /// Heartbeat intervals longer than this (a paused process) are left out of the
    /// mean. Default 5 s.
    pub max_interval: Duration,
    /// How long a dead node's state is kept (and shown by
    /// [`Membership::members`] with `alive: false`) before it is forgotten.
    /// Default 1 h.
    pub dead_node_grace_period: Duration,
}

impl Default for GossipTiming {
    fn default() -> Self {
        Self {
            gossip_interval: Duration::from_millis(250),
            phi_threshold: 12.0,
            initial_interval: Duration::from_millis(250),
            max_interval: Duration::from_secs(5),
            dead_node_grace_period: Duration::from_secs(3600),
        }
    }
}

/// The addresses a node publishes for the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertised {
    /// `host:port` of the actor transport.
    pub cluster: String,
    /// `host:port` of the client TCP listener.
    pub tcp: String,
    /// `host:port` of the client WebSocket listener.
    pub ws: String,
    /// `host:port` of the admin listener.
    pub admin: String,
}

/// Everything [`Membership::start`] needs.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// This node's id (`cluster.node_id`).
    pub node_id: String,
    /// This incarnation; [`new_generation`] unless a test needs a fixed one.
    pub generation: u64,
    /// The UDP address to bind (`listen.gossip`). Its port must not be 0: peers and
    /// seeds need to know it.
    pub gossip_listen: SocketAddr,
    /// The UDP address the others gossip to (usually `gossip_listen`).
    pub gossip_advertise: SocketAddr,
    /// Gossip `host:port` of nodes to join through (`cluster.seeds`).
    pub seeds: Vec<String>,
    /// The addresses published under the address keys.
    pub advertised: Advertised,
    /// The status published at start.
    pub status: MemberStatus,
    /// Gossip and failure-detector timings.
    pub timing: GossipTiming,
    /// The key every gossip packet is sealed with ([`GossipKey::from_cookie`] of
    /// `cluster.cookie`).
    pub gossip_key: GossipKey,
}

impl MembershipConfig {
    /// The membership of a node configured by `cluster`, whose listeners are bound
    /// to `bound` (the actual addresses, after any port 0 was resolved).
    ///
    /// Advertised addresses use `cluster.advertise_host` when set. A listener bound
    /// to an unspecified address (`0.0.0.0`, `[::]`) without an `advertise_host`
    /// cannot be advertised and is an error, as is a gossip port of 0.
    pub async fn from_config(
        cluster: &ClusterConfig,
        bound: &ListenAddrs,
    ) -> Result<Self, MembershipError> {
        for (key, addr) in [
            ("listen.gossip", bound.gossip),
            ("listen.cluster", bound.cluster),
        ] {
            if addr.port() == 0 {
                return Err(MembershipError::Config(format!(
                    "{key} needs a fixed port in a cluster: the other nodes dial it"
                )));
            }
            if addr.ip().is_unspecified() && cluster.advertise_host.is_none() {
                return Err(MembershipError::Config(format!(
                    "{key} is bound to {addr}, which the other nodes cannot dial: \
                     set cluster.advertise_host"
                )));
            }
        }
        let gossip_advertise = resolve(&cluster.advertised(bound.gossip)).await?;
        Ok(Self {
            node_id: cluster.node_id.clone(),
            generation: new_generation(),
            gossip_listen: bound.gossip,
            gossip_advertise,
            seeds: cluster.seeds.clone(),
            advertised: Advertised {
                cluster: cluster.advertised(bound.cluster),
                tcp: cluster.advertised(bound.tcp),
                ws: cluster.advertised(bound.ws),
                admin: cluster.advertised(bound.admin),
            },
            status: MemberStatus::Joining,
            timing: GossipTiming::default(),
            gossip_key: GossipKey::from_cookie(cluster.cookie.expose()),
        })
    }
}

/// A fresh generation: now, in milliseconds since the Unix epoch. A restarted node
/// gets a larger one as long as the clock does not step back across the restart.
pub fn new_generation() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

async fn resolve(host_port: &str) -> Result<SocketAddr, MembershipError> {
    let mut addrs = tokio::net::lookup_host(host_port)
        .await
        .map_err(|e| MembershipError::Config(format!("cannot resolve {host_port}: {e}")))?;
    addrs
        .next()
        .ok_or_else(|| MembershipError::Config(format!("{host_port} resolves to no address")))
}

/// Why membership could not start.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The configuration cannot work (the message names the key).
    #[error("cluster membership: {0}")]
    Config(String),
    /// The gossip socket could not be opened.
    #[error("cluster membership could not start: {0}")]
    Start(String),
}

/// A running membership: this node's gossip and its view of the others.
///
/// Cheap to clone; every clone talks to the same gossip server. The server stops
/// at [`Membership::shutdown`] or when the last clone is dropped.
#[derive(Clone)]
pub struct Membership {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: String,
    generation: u64,
    handle: ChitchatHandle,
    live: watch::Receiver<Vec<Member>>,
    /// Turns chitchat's live-node watch into [`Member`]s; aborted on drop.
    forwarder: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.forwarder.abort();
        let _ = self.handle.initiate_shutdown();
    }
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("node_id", &self.inner.node_id)
            .field("generation", &self.inner.generation)
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// Binds the gossip socket, publishes this node's keys and starts gossiping with
    /// the seeds.
    pub async fn start(config: MembershipConfig) -> Result<Self, MembershipError> {
        if config.gossip_listen.port() == 0 || config.gossip_advertise.port() == 0 {
            return Err(MembershipError::Config(
                "the gossip port must not be 0: the other nodes gossip to it".into(),
            ));
        }
        let timing = config.timing;
        let chitchat_id = ChitchatId::new(
            config.node_id.clone(),
            config.generation,
            config.gossip_advertise,
        );
        let chitchat_config = ChitchatConfig {
            chitchat_id,
            cluster_id: CLUSTER_ID.to_string(),
            gossip_interval: timing.gossip_interval,
            listen_addr: config.gossip_listen,
            seed_nodes: config.seeds.clone(),
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: timing.phi_threshold,
                sampling_window_size: 1_000,
                max_interval: timing.max_interval,
                initial_interval: timing.initial_interval,
                dead_node_grace_period: timing.dead_node_grace_period,
            },
            // Keys are overwritten, never deleted: tombstones need no long memory.
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            // A chitchat node that publishes no transport address is not a Chorus
            // node; never report it as a member.
            extra_liveness_predicate: Some(Box::new(|state: &NodeState| {
                state.get(KEY_CLUSTER_ADDR).is_some()
            })),
            // V0 until every node of a cluster is known to decode V1.
            protocol_version: ProtocolVersion::V0,
        };
        let advertised = &config.advertised;
        let keys = vec![
            (KEY_CLUSTER_ADDR.to_string(), advertised.cluster.clone()),
            (KEY_TCP.to_string(), advertised.tcp.clone()),
            (KEY_WS.to_string(), advertised.ws.clone()),
            (KEY_ADMIN.to_string(), advertised.admin.clone()),
            (KEY_STATUS.to_string(), config.status.as_str().to_string()),
            (KEY_LOAD.to_string(), "0".to_string()),
        ];
        let transport = SealedUdp::new(
            config.gossip_key.clone(),
            seal::DEFAULT_WINDOW,
            seal::DEFAULT_REMEMBERED,
        );
        let handle = spawn_chitchat(chitchat_config, keys, &transport)
            .await
            .map_err(|e| MembershipError::Start(format!("{e:#}")))?;

        let mut watcher = handle
            .with_chitchat(|chitchat| chitchat.live_nodes_watcher())
            .await;
        let (live_tx, live) = watch::channel(live_members(&watcher.borrow_and_update()));
        let me = handle.chitchat_id().clone();
        let forwarder = tokio::spawn(async move {
            let mut reported = HashSet::new();
            while watcher.changed().await.is_ok() {
                let members = {
                    let nodes = watcher.borrow_and_update();
                    warn_of_duplicate_ids(&me, &nodes, &mut reported);
                    live_members(&nodes)
                };
                live_tx.send_if_modified(|current| {
                    let changed = *current != members;
                    if changed {
                        *current = members;
                    }
                    changed
                });
            }
        });
        let termination = handle.termination_watcher();
        let node_id = config.node_id.clone();
        tokio::spawn(async move {
            if let Err(error) = termination.await {
                tracing::error!(node = %node_id, error = %error, "cluster gossip stopped");
            }
        });

        Ok(Self {
            inner: Arc::new(Inner {
                node_id: config.node_id,
                generation: config.generation,
                handle,
                live,
                forwarder,
            }),
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// This node's generation (its incarnation).
    pub fn generation(&self) -> u64 {
        self.inner.generation
    }

    /// The live incarnations, this node included, sorted by node id and then
    /// generation; updated whenever a node joins, dies, or changes one of its keys.
    /// A node id appears more than once while gossip shows more than one live
    /// incarnation of it (a restart in progress, or gossip from a node that
    /// lies): the transport tells them apart.
    pub fn live(&self) -> watch::Receiver<Vec<Member>> {
        self.inner.live.clone()
    }

    /// Every node known to gossip, dead ones too (until the dead-node grace period
    /// forgets them), sorted by node id: the newest generation of each.
    pub async fn members(&self) -> Vec<Member> {
        newest_per_node(self.incarnations().await.into_iter())
    }

    /// Every incarnation known to gossip, dead ones too (until the dead-node grace
    /// period forgets them), sorted by node id and then generation.
    pub async fn incarnations(&self) -> Vec<Member> {
        self.inner
            .handle
            .with_chitchat(|chitchat| {
                let live: HashSet<&ChitchatId> = chitchat.live_nodes().collect();
                let mut all: Vec<Member> = chitchat
                    .node_states()
                    .iter()
                    .filter_map(|(id, state)| member_of(id, state, live.contains(id)))
                    .collect();
                sort_incarnations(&mut all);
                all
            })
            .await
    }

    /// Publishes a new status for this node.
    pub async fn set_status(&self, status: MemberStatus) {
        self.set_key(KEY_STATUS, status.as_str().to_string()).await;
    }

    /// Publishes this node's load (e.g. its client connection count). Publishing
    /// the same value again costs nothing; call it as often as it is sampled.
    pub async fn set_load(&self, load: u64) {
        self.set_key(KEY_LOAD, load.to_string()).await;
    }

    /// Publishes this node's latest load sample ([`KEY_LOAD_SAMPLE`]).
    pub async fn set_load_sample(&self, json: String) {
        self.set_key(KEY_LOAD_SAMPLE, json).await;
    }

    /// The [`KEY_LOAD_SAMPLE`] value of every live node, with its node id, as
    /// gossiped (unparsed: the scaling service checks what peers publish).
    pub async fn load_samples(&self) -> Vec<(String, String)> {
        self.inner
            .handle
            .with_chitchat(|chitchat| {
                let live: HashSet<&ChitchatId> = chitchat.live_nodes().collect();
                chitchat
                    .node_states()
                    .iter()
                    .filter(|(id, _)| live.contains(id))
                    .filter_map(|(id, state)| {
                        Some((
                            id.node_id.to_string(),
                            state.get(KEY_LOAD_SAMPLE)?.to_string(),
                        ))
                    })
                    .collect()
            })
            .await
    }

    async fn set_key(&self, key: &'static str, value: String) {
        self.inner
            .handle
            .with_chitchat(|chitchat| chitchat.self_node_state().set(key, &value))
            .await;
    }

    /// The silence after which `node_id` would be declared dead right now (the
    /// failure detector's adaptive timeout), or `None` if it is this node, unknown,
    /// or has too few heartbeats observed.
    pub async fn failure_detection_timeout(&self, node_id: &str) -> Option<Duration> {
        self.inner
            .handle
            .with_chitchat(|chitchat| {
                let id = chitchat
                    .node_states()
                    .keys()
                    .filter(|id| &*id.node_id == node_id)
                    .max_by_key(|id| id.generation_id)?
                    .clone();
                chitchat.failure_detection_timeout(&id)
            })
            .await
    }

    /// Stops gossiping. The others declare this node dead once its silence exceeds
    /// their failure-detection timeout.
    pub fn shutdown(&self) {
        let _ = self.inner.handle.initiate_shutdown();
        self.inner.forwarder.abort();
    }
}

/// Logs, once per address, another live node that uses this node's id: the two
/// hide each other (only the newest generation of an id is a member) and neither
/// can connect to the other.
fn warn_of_duplicate_ids(
    me: &ChitchatId,
    nodes: &BTreeMap<ChitchatId, NodeState>,
    reported: &mut HashSet<SocketAddr>,
) {
    for id in nodes.keys() {
        // An older generation elsewhere may be this node before it moved; the
        // older of two nodes sharing an id reports the newer one.
        if id.node_id == me.node_id
            && id.gossip_advertise_addr != me.gossip_advertise_addr
            && id.generation_id >= me.generation_id
            && reported.insert(id.gossip_advertise_addr)
        {
            tracing::error!(
                node = %me.node_id,
                other = %id.gossip_advertise_addr,
                "another node gossips with this node's id: every cluster.node_id must be unique"
            );
        }
    }
}

/// The live nodes of chitchat's watch as members, every incarnation.
fn live_members(nodes: &BTreeMap<ChitchatId, NodeState>) -> Vec<Member> {
    let mut live: Vec<Member> = nodes
        .iter()
        .filter_map(|(id, state)| member_of(id, state, true))
        .collect();
    sort_incarnations(&mut live);
    live
}

/// By node id, then generation; two incarnations with the same generation (only
/// a node id used twice) by gossip address.
fn sort_incarnations(members: &mut [Member]) {
    members.sort_by(|a, b| {
        (&a.node_id, a.generation, a.gossip_addr).cmp(&(&b.node_id, b.generation, b.gossip_addr))
    });
}

/// Keeps the newest generation of each node id, sorted by node id.
fn newest_per_node(members: impl Iterator<Item = Member>) -> Vec<Member> {
    let mut newest: HashMap<String, Member> = HashMap::new();
    for member in members {
        match newest.get(&member.node_id) {
            Some(seen) if seen.generation >= member.generation => {}
            _ => {
                newest.insert(member.node_id.clone(), member);
            }
        }
    }
    let mut members: Vec<Member> = newest.into_values().collect();
    members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    members
}

/// One node's gossiped state as a member; `None` if it publishes no transport
/// address (not a Chorus node, or its keys have not arrived yet).
fn member_of(id: &ChitchatId, state: &NodeState, alive: bool) -> Option<Member> {
    let cluster_addr = state.get(KEY_CLUSTER_ADDR)?.to_string();
    let text = |key: &str| state.get(key).unwrap_or_default().to_string();
    Some(Member {
        node_id: id.node_id.to_string(),
        generation: id.generation_id,
        gossip_addr: id.gossip_advertise_addr,
        cluster_addr,
        tcp: text(KEY_TCP),
        ws: text(KEY_WS),
        admin: text(KEY_ADMIN),
        status: state
            .get(KEY_STATUS)
            .and_then(MemberStatus::parse)
            .unwrap_or(MemberStatus::Joining),
        load: state
            .get(KEY_LOAD)
            .and_then(|load| load.parse().ok())
            .unwrap_or(0),
        alive,
    })
}
