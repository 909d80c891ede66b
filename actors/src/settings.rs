//! The knobs the actors take from the node's configuration.

use std::time::Duration;

/// Behaviour settings; the node fills them from its config file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's id, announced in `welcome.node`.
    pub node_id: String,
    /// Shards entities are hashed into (`[cluster] shards`), the same on every node.
    pub shards: u32,
    /// Largest `body` in bytes.
    pub max_body: usize,
    /// Largest `history` page.
    pub history_max: u32,
    /// `history` page size when the client gives none.
    pub history_default: u32,
    /// Sends a session may have waiting for their ack; past it the session stops
    /// reading its socket until acks come back (backpressure, not an error).
    pub max_inflight_sends: usize,
    /// Seqs a Conversation reserves at a time.
    pub seq_block: u64,
    /// A Conversation with nothing to do for this long stops (it restarts on demand).
    pub conversation_idle: Duration,
    /// A User with no sessions for this long stops.
    pub user_idle: Duration,
    /// Largest group.
    pub max_group_members: usize,
    /// Groups one user may belong to (`[limits] max_groups_per_user`).
    pub max_groups_per_user: usize,
    /// Running User entities the region steers to (`[entities] max_users`).
    pub max_users: usize,
    /// Running Conversation entities (`[entities] max_conversations`).
    pub max_conversations: usize,
    /// Running LiveRoom entities (`[entities] max_live_rooms`).
    pub max_live_rooms: usize,
    /// Member ids the access cache of groups holds at most
    /// (`[entities] group_cache_members`).
    pub group_cache_members: usize,
    /// Restarts of one entity kind within `meltdown_window` that count as a meltdown.
    pub meltdown_restarts: usize,
    /// The window of the meltdown limit.
    pub meltdown_window: Duration,
    /// Live rooms.
    pub live: crate::live::LiveSettings,
    /// What the word filter does with a hit (`[moderation] mode`).
    pub moderation: crate::moderation::Policy,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            node_id: "node-1".into(),
            shards: 1024,
            max_body: chorus_wire::limits::DEFAULT_MAX_BODY as usize,
            history_max: 200,
            history_default: 50,
            max_inflight_sends: 256,
            seq_block: 1000,
            conversation_idle: Duration::from_secs(120),
            user_idle: Duration::from_secs(60),
            max_group_members: 2000,
            max_groups_per_user: 500,
            max_users: 200_000,
            max_conversations: 100_000,
            max_live_rooms: 10_000,
            group_cache_members: 1_000_000,
            meltdown_restarts: 20,
            meltdown_window: Duration::from_secs(10),
            live: crate::live::LiveSettings::default(),
            moderation: crate::moderation::Policy::Mask,
        }
    }
}
