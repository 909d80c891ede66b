//! The knobs the actors take from the node's configuration.

use std::time::Duration;

/// Behaviour settings; the node fills them from its config file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's id, announced in `welcome.node`.
    pub node_id: String,
    /// Shards entities are hashed into (`[cluster] shards`), the same on every node.
    pub shards: u32,
    /// Largest frame in bytes (`limits.max_frame`): every list frame (history
    /// page, conversation list, live batch) is cut or split to fit it as encoded.
    pub max_frame: u32,
    /// Largest `body` in bytes.
    pub max_body: usize,
    /// Largest `history` page.
    pub history_max: u32,
    /// `history` page size when the client gives none.
    pub history_default: u32,
    /// Most conversations in one `conversation_list` (fewer when they do not fit
    /// one frame).
    pub list_max: u32,
    /// Units of a session's request budget (`limits.max_inflight`): a request
    /// holds one, or a sixteenth of the budget if its answer may fill a frame,
    /// until its answer is written; past it the session stops reading its socket
    /// (backpressure, not an error). See [`crate::budget`].
    pub max_inflight: usize,
    /// History and conversation-list pages read from the store at once, for all
    /// sessions of the node (`limits.store_reads`): a crowd of readers waits its
    /// turn instead of filling the blocking pool and slowing everyone else.
    pub store_reads: usize,
    /// Bytes a session's queue may hold, as encoded (`limits.outbound_bytes`);
    /// past it the session is a slow consumer and is closed.
    pub outbound_bytes: usize,
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
    pub live: LiveSettings,
    /// What the word filter does with a hit (`[moderation] mode`).
    pub moderation: crate::moderation::Policy,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            node_id: "node-1".into(),
            shards: 1024,
            max_frame: chorus_wire::limits::DEFAULT_MAX_FRAME,
            max_body: chorus_wire::limits::DEFAULT_MAX_BODY as usize,
            history_max: 200,
            history_default: 50,
            list_max: 500,
            max_inflight: 256,
            outbound_bytes: 4 << 20,
            store_reads: 32,
            seq_block: 1000,
            conversation_idle: Duration::from_secs(120),
            user_idle: Duration::from_secs(60),
            max_group_members: 500,
            max_groups_per_user: 500,
            max_users: 200_000,
            max_conversations: 100_000,
            max_live_rooms: 10_000,
            group_cache_members: 1_000_000,
            meltdown_restarts: 20,
            meltdown_window: Duration::from_secs(10),
            live: LiveSettings::default(),
            moderation: crate::moderation::Policy::Mask,
        }
    }
}

/// Live-room settings, from `[live]`.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    /// A batch closes this long after its first item.
    pub window: Duration,
    /// A batch closes early at this many items.
    pub max_batch: usize,
    /// Items per second a room delivers at most.
    pub budget_per_s: u32,
    /// Items kept for `live_joined.recent`.
    pub recent: usize,
    /// Danmaku per user per `rate_window`.
    pub rate_per_user: u32,
    /// The rate-limit window.
    pub rate_window: Duration,
    /// Batches queued per viewer.
    pub viewer_queue: usize,
    /// A viewer further behind than this is disconnected.
    pub max_lag: Duration,
    /// Slow mode of a room without an operator setting (zero: off).
    pub slow_mode: Duration,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            window: Duration::from_millis(200),
            max_batch: 50,
            budget_per_s: 200,
            recent: 20,
            rate_per_user: 5,
            rate_window: Duration::from_secs(10),
            viewer_queue: 64,
            max_lag: Duration::from_secs(5),
            slow_mode: Duration::ZERO,
        }
    }
}
