//! The node and its cluster: `/admin/status`, `/admin/members`, `/admin/shards`,
//! `/admin/where/{key}`, `/admin/drain`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /admin/status`: a summary of the node that answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusResponse {
    /// Its node id (`cluster.node_id`).
    pub node: String,
    /// `serving`, `draining` or `drained`.
    pub status: String,
    /// Where it listens.
    pub listen: Listen,
    /// Client sessions open on it.
    pub sessions: u64,
    /// Entities running on it, by kind.
    pub entities: EntityCounts,
}

/// The addresses a node's listeners are bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Listen {
    /// The client TCP listener, `host:port`.
    pub tcp: String,
    /// The client WebSocket listener, `host:port`.
    pub ws: String,
    /// The admin listener, `host:port`.
    pub admin: String,
}

/// Entities running on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EntityCounts {
    /// User entities.
    pub user: u64,
    /// Conversations (direct and group).
    pub conversation: u64,
    /// Live rooms.
    pub live_room: u64,
}

/// `GET /admin/members`: the cluster as the answering node's membership sees it,
/// that node included (on a node without a cluster, only itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MembersResponse {
    /// The node that answered.
    pub node: String,
    /// Every member it knows of, alive or not.
    pub members: Vec<MemberInfo>,
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MemberInfo {
    /// Its `cluster.node_id`.
    pub node_id: String,
    /// Its incarnation: its start time in ms since the Unix epoch. A node
    /// restarted under the same id has a new one.
    pub generation: u64,
    /// `joining`, `serving` or `draining` (`drained` for a node without a cluster
    /// that finished draining).
    pub status: String,
    /// Whether the failure detector considers it alive.
    pub alive: bool,
    /// Whether the answering node has a transport session to it.
    pub connected: bool,
    /// Whether it is the node that answered.
    #[serde(rename = "self")]
    pub this: bool,
    /// Its advertised client TCP address (empty if not gossiped).
    pub tcp: String,
    /// Its advertised WebSocket address (empty if not gossiped).
    pub ws: String,
    /// Its advertised admin address (empty if not gossiped).
    pub admin: String,
    /// Its actor transport address; `null` on a node without a cluster.
    pub cluster: Option<String>,
    /// Its last published load (sessions).
    pub load: u64,
}

/// `GET /admin/shards`: the placement the answering node computes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShardsResponse {
    /// The node that answered.
    pub node: String,
    /// How many shards there are.
    pub shards: u32,
    /// The serving members, in placement order.
    pub serving: Vec<String>,
    /// The shards each serving member owns.
    pub owners: BTreeMap<String, Vec<u32>>,
}

/// `GET /admin/where/{key}`: where an entity lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WhereResponse {
    /// The node that answered.
    pub node: String,
    /// The key as asked (`user:alice`, `conv:dm:alice:bob`, `live:r1`, ...).
    pub key: String,
    /// `user`, `conversation` or `live_room`.
    pub kind: String,
    /// The entity's id within its kind.
    pub entity: String,
    /// The shard its key hashes to.
    pub shard: u32,
    /// The member that owns that shard.
    pub owner: String,
    /// Whether the entity runs on the answering node now.
    pub running_here: bool,
}

/// `POST /admin/drain`: the drain started (or was already under way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DrainResponse {
    /// The node that drains.
    pub node: String,
    /// Its status now: `draining` (or `drained`).
    pub status: String,
    /// Whether this request started the drain (`false`: one was under way).
    pub started: bool,
}
