//! `[cluster]`: this node's identity and how it finds the others.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::error::Problems;
use crate::rules::{host_name_error, host_port_error, node_id_error};
use crate::secret::Secret;

/// The default `cluster.cookie`: fine on one machine, refused once gossip or the
/// cluster transport can be reached from another.
pub const DEV_COOKIE: &str = "chorus-dev-cookie";

/// Shortest `cluster.cookie`, in bytes, once gossip or the cluster transport can
/// be reached from another machine: the cookie keys the gossip MAC and answers
/// the transport's challenge, so it must not be guessable.
pub const MIN_COOKIE_LEN: usize = 32;

/// `[cluster]`: membership of this node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's id, unique in the cluster: 1–64 bytes of `[A-Za-z0-9_.-]`.
    /// Announced to clients in `welcome.node`. Default `node-1`.
    pub node_id: String,
    /// Run the cluster layer (gossip on `listen.gossip`, the actor transport on
    /// `listen.cluster`) even without seeds: the first node of a cluster. A node
    /// with seeds always runs it. Default false: a standalone node.
    pub enabled: bool,
    /// Gossip `"host:port"` of other nodes to join through. Empty: this node starts
    /// a cluster of its own (others may join it).
    pub seeds: Vec<String>,
    /// Shared secret of the cluster: it authenticates the actor transport's
    /// sessions, and the gossip MAC key is derived from it. Every node of a
    /// cluster must have the same. At least [`MIN_COOKIE_LEN`] bytes unless every
    /// gossip and cluster address is loopback. Default [`DEV_COOKIE`].
    pub cookie: Secret,
    /// Number of shards entities are hashed into. Must be the same on every node and
    /// never change while the cluster holds data. Default 1024.
    pub shards: u32,
    /// The host name or IP address other nodes and redirected clients use to reach
    /// this node. Unset: the IP address each listener is bound to.
    pub advertise_host: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node_id: "node-1".into(),
            enabled: false,
            seeds: Vec::new(),
            cookie: Secret::new(DEV_COOKIE),
            shards: 1024,
            advertise_host: None,
        }
    }
}

impl ClusterConfig {
    /// The `"host:port"` other nodes and clients should use for a listener bound to
    /// `bound`: `advertise_host` with `bound`'s port, or `bound` itself.
    pub fn advertised(&self, bound: SocketAddr) -> String {
        match &self.advertise_host {
            Some(host) if host.contains(':') => format!("[{host}]:{}", bound.port()),
            Some(host) => format!("{host}:{}", bound.port()),
            None => bound.to_string(),
        }
    }

    /// Whether this node runs the cluster layer: `enabled`, or it has seeds.
    pub fn is_clustered(&self) -> bool {
        self.enabled || !self.seeds.is_empty()
    }

    pub(crate) fn check(&self, problems: &mut Problems) {
        if let Some(why) = node_id_error(&self.node_id) {
            problems.push("cluster.node_id", why);
        }
        for (i, seed) in self.seeds.iter().enumerate() {
            if let Some(why) = host_port_error(seed) {
                problems.push(format!("cluster.seeds[{i}]"), why);
            }
        }
        if self.cookie.expose().is_empty() {
            problems.push("cluster.cookie", "must not be empty");
        }
        if self.shards == 0 {
            problems.push("cluster.shards", "must be at least 1");
        }
        if let Some(host) = &self.advertise_host
            && let Some(why) = host_name_error(host)
        {
            problems.push("cluster.advertise_host", why);
        }
    }
}
