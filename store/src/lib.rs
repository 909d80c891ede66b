//! Chorus message storage.
//!
//! - [`MessageStore`]: the one seam between the behaviour and the disk. Every
//!   backend implements it; [`conformance`] checks that one does so correctly.
//! - [`embedded`]: the single-node backend on fjall, with group commit.
//!
//! The contract every backend keeps:
//! - `append` returns `Ok` only once every message of the batch is durable
//!   (fsync'd on `embedded`, acknowledged at the configured consistency on `scylla`).
//!   A caller acks nothing before that.
//! - Dedup is insert-if-absent: a message whose `(conv, sender, client id)` is
//!   already in the idempotency window is not stored again, and `append` says
//!   where the first one is ([`Appended::Duplicate`]), however the two appends race.
//!   A dedup hit always names a stored message: a claim whose message never
//!   landed is no hit, and an ack never names a seq that history lacks.
//! - Seqs come from blocks handed out by `allocate_seq_block`; two callers never get
//!   overlapping blocks for one conversation, even across restarts.
//! - Read positions never move backwards.
//! - The idempotency window keeps `(conv, sender, client id) → seq` for 24 h.
//! - A live room's [`RoomSettings`] read back as last written, by any node.
//! - A member's load samples ([`LoadRecord`]) read back, oldest first, until
//!   they expire `keep_ms` after their own time; then they are gone, and so is
//!   a member none of whose samples is left. Every size is bounded (see
//!   [`load`]); a request past a bound is refused whole
//!   ([`StoreError::Refused`]) and counted in
//!   `chorus_store_load_refused_total{reason}`.

use async_trait::async_trait;
pub use chorus_wire::{ConversationItem, Message};

pub mod conformance;
pub mod embedded;
pub mod load;
pub mod scylla;

pub use load::LoadRecord;

/// How long a client message id is remembered for idempotent retries.
pub const DEDUP_WINDOW_MS: u64 = 24 * 60 * 60 * 1000;

/// A store failure. Callers turn it into `reject`/`error` `internal`, never an ack.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or timed out; worth retrying later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with an error.
    #[error("store error: {0}")]
    Backend(String),
    /// Stored bytes did not decode: a bug or disk corruption.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The request is past one of the store's bounds (see [`load`]): retrying
    /// it unchanged fails the same way.
    #[error("refused: {0}")]
    Refused(String),
    /// The store has been closed.
    #[error("store is closed")]
    Closed,
}

/// A shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// The idempotency key a message is stored under: the same sender, client id and
/// conversation (which the target determines) mean the same message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupKey {
    /// Conversation id.
    pub conv: String,
    /// Sender's user id.
    pub sender: String,
    /// The client's message id.
    pub client_id: String,
}

/// Where a remembered client message id was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupHit {
    /// The seq it was given.
    pub seq: u64,
    /// When it was accepted.
    pub ts_ms: u64,
}

/// One durable write: messages (of any conversations) plus the conversation-list
/// links they create. Written atomically and durably, or not at all.
#[derive(Debug, Clone, Default)]
pub struct AppendBatch {
    /// Messages, each with its seq already assigned. Their `(conv, from, id)` is
    /// recorded in the idempotency window with the same write.
    pub messages: Vec<Message>,
    /// `(user, conv)` pairs to add to users' conversation lists (idempotent).
    pub links: Vec<(String, String)>,
}

/// What [`MessageStore::append`] did with one message of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored at the seq it was given, with its idempotency entry.
    Stored,
    /// Its `(conv, sender, client id)` was already in the idempotency window:
    /// nothing was stored, and the first message with that key is here. The
    /// caller acks with this seq and timestamp, not the ones it had assigned.
    Duplicate(DedupHit),
    /// Its key is claimed by an earlier append whose message is not stored: that
    /// write may still land and be acked, or its appender died between the
    /// claim and the write. Nothing was stored; the caller answers that the
    /// message should be sent again. Once the claim is past every ack its
    /// appender could still make, a later append of the key takes it over and
    /// stores the message at its own seq. Only a backend that cannot write the
    /// claim and the message in one commit answers this.
    Unsettled(DedupHit),
}

/// What [`MessageStore::append`] did with a batch: one [`Appended`] per message,
/// in the batch's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Per message of the batch, in order.
    pub messages: Vec<Appended>,
}

impl AppendOutcome {
    /// An outcome where every one of `n` messages was stored.
    pub fn all_stored(n: usize) -> Self {
        Self {
            messages: vec![Appended::Stored; n],
        }
    }

    /// The outcome of message `i` (stored when the backend said nothing of it).
    pub fn of(&self, i: usize) -> Appended {
        self.messages.get(i).copied().unwrap_or(Appended::Stored)
    }
}

/// A `history` request, already validated (limit in 1..=200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only `seq > after`.
    pub after: Option<u64>,
    /// Only `seq < before`.
    pub before: Option<u64>,
    /// Page size.
    pub limit: u32,
}

/// A page of history (docs/protocol.md §7.6): ascending seq; `more` says whether further
/// messages exist in the page's direction (past its last message when `after` is
/// given, before its first otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistorySlice {
    /// Messages in ascending seq.
    pub messages: Vec<Message>,
    /// Whether more exist in the page's direction.
    pub more: bool,
}

/// A page of a user's conversation list: the first `limit` conversations whose id
/// sorts after `after` (byte order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Only conversations after this id.
    pub after: Option<String>,
    /// Page size (at least 1).
    pub limit: usize,
}

/// A page of a conversation list, in conversation id order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListSlice {
    /// The conversations of the page.
    pub items: Vec<ConversationItem>,
    /// Whether conversations after the last item exist.
    pub more: bool,
}

/// A half-open range of seqs `[start, end)` owned by one conversation owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqBlock {
    /// First seq of the block (≥ 1).
    pub start: u64,
    /// One past the last seq of the block.
    pub end: u64,
}

/// A group's durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Group id (without `group:`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Owner's user id.
    pub owner: String,
    /// Members, sorted, without duplicates; includes the owner while they remain.
    pub members: Vec<String>,
}

/// An operator's settings of one live room, kept in the store so that they follow
/// the room to whichever node runs it next (drain, failover, restart). A field that
/// is `None` follows the node's configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RoomSettings {
    /// Slow mode: seconds a user must wait after a danmaku of theirs is accepted
    /// before the room accepts another. `Some(0)` turns it off for this room;
    /// `None` follows `[live] slow_mode_s`.
    pub slow_mode_s: Option<u32>,
}

impl RoomSettings {
    /// Whether nothing is set: the room follows the configuration entirely, and
    /// a backend need not keep a record for it.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The storage seam. See the crate docs for the contract.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Writes a batch durably (group commit: one sync covers the whole batch, and
    /// concurrent callers may share it). `Ok` means every message is durable:
    /// stored now, or — for a message whose `(conv, sender, client id)` is already
    /// in the idempotency window (see [`DEDUP_WINDOW_MS`], measured from the
    /// message's `ts_ms`) — stored before, at the seq the outcome names. The
    /// idempotency entry is written with the message, and two appends of one key
    /// never both store it, even when they race.
    async fn append(&self, batch: AppendBatch) -> StoreResult<AppendOutcome>;

    /// A page of a conversation's history.
    async fn history(&self, conv: &str, query: HistoryQuery) -> StoreResult<HistorySlice>;

    /// The highest seq stored for a conversation (0 when empty).
    async fn last_seq(&self, conv: &str) -> StoreResult<u64>;

    /// A page of the conversations linked to a user, with `last_seq` and the user's
    /// `read_seq`, ordered by conversation id: the first `limit` after `after`.
    /// The work is bounded by `limit`, however many conversations the user has.
    async fn conversation_page(&self, user: &str, query: ListQuery) -> StoreResult<ListSlice>;

    /// Every conversation linked to a user, by paging through
    /// [`conversation_page`](Self::conversation_page): for tools and tests, not for a
    /// request path (its work grows with the list).
    async fn conversations(&self, user: &str) -> StoreResult<Vec<ConversationItem>> {
        let mut all = Vec::new();
        let mut query = ListQuery {
            after: None,
            limit: 1_000,
        };
        loop {
            let page = self.conversation_page(user, query.clone()).await?;
            let last = page.items.last().map(|i| i.conv.clone());
            all.extend(page.items);
            match last {
                Some(last) if page.more => query.after = Some(last),
                _ => return Ok(all),
            }
        }
    }

    /// Removes a conversation from a user's list (a member who left a group).
    async fn unlink(&self, user: &str, conv: &str) -> StoreResult<()>;

    /// Raises a user's read position; never lowers it. Returns the position now stored.
    async fn set_read(&self, user: &str, conv: &str, seq: u64) -> StoreResult<u64>;

    /// A user's read position in a conversation (0 when never read).
    async fn read_seq(&self, user: &str, conv: &str) -> StoreResult<u64>;

    /// Creates a group and links its members; `Ok(false)` if the id is taken.
    async fn create_group(&self, group: &GroupRecord) -> StoreResult<bool>;

    /// A group's state, if it exists.
    async fn group(&self, id: &str) -> StoreResult<Option<GroupRecord>>;

    /// Replaces a group's member list (and owner/name), linking `added` and
    /// unlinking `removed` users; durable on return.
    async fn update_group(
        &self,
        group: &GroupRecord,
        added: &[String],
        removed: &[String],
    ) -> StoreResult<()>;

    /// Looks up a client message id in the idempotency window; entries older than
    /// [`DEDUP_WINDOW_MS`] before `now_ms` are treated as absent, and so is an
    /// entry whose message is not stored (its append died between the two
    /// writes: [`Appended::Unsettled`]).
    async fn find_dedup(&self, key: &DedupKey, now_ms: u64) -> StoreResult<Option<DedupHit>>;

    /// Hands out the next `size` seqs of a conversation, durably, so that no other
    /// caller (in this process or another) ever gets any of them.
    async fn allocate_seq_block(&self, conv: &str, size: u64) -> StoreResult<SeqBlock>;

    /// Makes everything written so far durable (used at shutdown).
    async fn flush(&self) -> StoreResult<()>;

    /// Replaces the settings of live room `room` (the id without `live:`),
    /// durably; writing [`RoomSettings::default`] removes them.
    async fn set_room_settings(&self, room: &str, settings: &RoomSettings) -> StoreResult<()>;

    /// The settings of live room `room`; [`RoomSettings::default`] when none were
    /// written.
    async fn room_settings(&self, room: &str) -> StoreResult<RoomSettings>;

    /// Records that the last session of `user` closed at `at_ms` (ms since the
    /// epoch: presence's `last_seen_ms`), durably. A time earlier than the one
    /// stored does not replace it, whatever order the writes arrive in.
    async fn set_last_seen(&self, user: &str, at_ms: u64) -> StoreResult<()>;

    /// When the last session of `user` closed, if that was ever recorded.
    async fn last_seen(&self, user: &str) -> StoreResult<Option<u64>>;

    /// How many groups `user` belongs to, counting no further than `up_to`: the
    /// answer is `min(groups, up_to)`. The work is bounded by `up_to`, not by
    /// the user's groups, so a limit check costs the same for everyone.
    async fn count_groups(&self, user: &str, up_to: u64) -> StoreResult<u64>;

    /// Whether the store can serve now: a cheap round trip to the database
    /// (`scylla`), or the state of the writer (`embedded`, which tries a small
    /// write only after a write failed). `Err` names what is wrong.
    async fn probe(&self) -> StoreResult<()>;

    /// Stores load samples of cluster member `member`, durably, each kept until
    /// `keep_ms` after its own `at_ms` (a sample already past that is skipped).
    /// A sample at an `at_ms` already stored for the member replaces it. Refused
    /// whole past [`load::MAX_SAMPLES_PER_APPEND`] samples, a sample past
    /// [`load::MAX_SAMPLE_BYTES`], a member id past [`load::MAX_MEMBER_ID_BYTES`],
    /// or a new member once [`load::MAX_MEMBERS`] are kept.
    async fn append_load_samples(
        &self,
        member: &str,
        samples: &[LoadRecord],
        keep_ms: u64,
        now_ms: u64,
    ) -> StoreResult<()>;

    /// The members with samples not yet expired at `now_ms`, sorted, at most
    /// [`load::MAX_MEMBERS`].
    async fn load_members(&self, now_ms: u64) -> StoreResult<Vec<String>>;

    /// A member's samples with `at_ms > after_ms` not yet expired at `now_ms`,
    /// oldest first, at most `limit` (itself capped at
    /// [`load::MAX_SAMPLES_PER_READ`]): page on by passing the last `at_ms`.
    async fn load_history(
        &self,
        member: &str,
        after_ms: u64,
        limit: usize,
        now_ms: u64,
    ) -> StoreResult<Vec<LoadRecord>>;
}
