//! Every statement the store runs, prepared once at connect. Each names its
//! columns (never `*`): a prepared statement's result metadata is fixed when it is
//! prepared, so a column added to a table later must not shift what a running node
//! decodes.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use super::error::query_error;
use crate::{StoreError, StoreResult};

/// Rows per page of the paged reads (conversation lists, history partitions):
/// big enough that a typical list is one round trip, small enough to bound the
/// memory of a huge one.
const PAGE_SIZE: i32 = 1_000;

/// The prepared statements, by what they do.
pub(super) struct Statements {
    /// `(conv, bucket, seq, id, sender, body, ts_ms, write timestamp)`; the write
    /// timestamp comes from the message's own time (see `append::write_timestamp`).
    pub(super) insert_message: PreparedStatement,
    /// `(conv, bucket)`.
    pub(super) insert_bucket: PreparedStatement,
    /// `(timestamp = last_seq, last_seq, conv)`.
    pub(super) raise_last_seq: PreparedStatement,
    /// `(conv, sender, client_id, seq, ts_ms, claimed_ms, ttl) IF NOT EXISTS`.
    pub(super) claim_dedup: PreparedStatement,
    /// `(ttl, seq, ts_ms, claimed_ms, conv, sender, client_id) IF seq, ts_ms =
    /// (expected)`.
    pub(super) replace_dedup: PreparedStatement,
    /// `(timestamp, conv, bucket, seq)`: the tombstone that keeps an abandoned
    /// claim's message from ever showing.
    pub(super) fence_message: PreparedStatement,
    /// `(conv, bucket, seq)` → `id`.
    pub(super) select_message_id: PreparedStatement,
    /// `(user_id, lowest conv, conv bound, limit)` → `conv`.
    pub(super) select_group_links: PreparedStatement,
    /// `(user_id, conv)`.
    pub(super) insert_link: PreparedStatement,
    /// `(user_id, conv)`.
    pub(super) delete_link: PreparedStatement,
    /// `(timestamp = read_seq, read_seq, user_id, conv)`.
    pub(super) raise_read: PreparedStatement,
    /// `(user_id, conv)` → `read_seq`.
    pub(super) select_read: PreparedStatement,
    /// `(user_id, conv after, conv up to)` → `conv, read_seq`, paged.
    pub(super) select_reads_between: PreparedStatement,
    /// `(user_id, conv after, limit)` → `conv`.
    pub(super) select_links_after: PreparedStatement,
    /// `(conv)` → `last_seq`.
    pub(super) select_last_seq: PreparedStatement,
    /// `(conv, lowest, highest)` → `bucket` ascending, paged.
    pub(super) select_buckets_asc: PreparedStatement,
    /// `(conv, lowest, highest)` → `bucket` descending, paged.
    pub(super) select_buckets_desc: PreparedStatement,
    /// `(conv, bucket, lowest seq, highest seq, limit)` → message columns ascending.
    pub(super) select_messages_asc: PreparedStatement,
    /// `(conv, bucket, lowest seq, highest seq, limit)` → message columns descending.
    pub(super) select_messages_desc: PreparedStatement,
    /// `(conv, sender, client_id)` → `seq, ts_ms`.
    pub(super) select_dedup: PreparedStatement,
    /// `(conv)` → `next`.
    pub(super) select_seq_alloc: PreparedStatement,
    /// `(conv, next) IF NOT EXISTS`.
    pub(super) insert_seq_alloc: PreparedStatement,
    /// `(new next, conv) IF next = (expected)`.
    pub(super) update_seq_alloc: PreparedStatement,
    /// `(id, name, owner, members) IF NOT EXISTS`.
    pub(super) insert_group: PreparedStatement,
    /// `(name, owner, members, id)`.
    pub(super) update_group: PreparedStatement,
    /// `(id)` → `name, owner, members`.
    pub(super) select_group: PreparedStatement,
    /// `(timestamp = at_ms × 1000, at_ms, user_id)`.
    pub(super) raise_last_seen: PreparedStatement,
    /// `(user_id)` → `at_ms`.
    pub(super) select_last_seen: PreparedStatement,
    /// `(room, slow_mode_s)`.
    pub(super) insert_room_settings: PreparedStatement,
    /// `(room)`.
    pub(super) delete_room_settings: PreparedStatement,
    /// `(room)` → `slow_mode_s`.
    pub(super) select_room_settings: PreparedStatement,
    /// `(member, at_ms, expires_ms, data, ttl)`.
    pub(super) insert_load_sample: PreparedStatement,
    /// `(shard, member, expires_ms, ttl)`.
    pub(super) insert_load_member: PreparedStatement,
    /// `(shard, limit)` → `member, expires_ms`.
    pub(super) select_load_members: PreparedStatement,
    /// `(member, after at_ms, limit)` → `at_ms, expires_ms, data` ascending.
    pub(super) select_load_samples: PreparedStatement,
}

impl Statements {
    /// Prepares every statement against the keyspace `ks`.
    pub(super) async fn prepare(session: &Session, ks: &str) -> StoreResult<Self> {
        let p = Preparer { session, ks };
        Ok(Self {
            insert_message: p
                .write(
                    "INSERT INTO {ks}.messages (conv, bucket, seq, id, sender, body, ts_ms) \
                     VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?",
                )
                .await?,
            insert_bucket: p
                .write("INSERT INTO {ks}.conv_buckets (conv, bucket) VALUES (?, ?)")
                .await?,
            raise_last_seq: p
                .write("UPDATE {ks}.conv_meta USING TIMESTAMP ? SET last_seq = ? WHERE conv = ?")
                .await?,
            claim_dedup: p
                .lwt(
                    "INSERT INTO {ks}.dedup (conv, sender, client_id, seq, ts_ms, claimed_ms) \
                     VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?",
                )
                .await?,
            replace_dedup: p
                .lwt(
                    "UPDATE {ks}.dedup USING TTL ? SET seq = ?, ts_ms = ?, claimed_ms = ? \
                     WHERE conv = ? AND sender = ? AND client_id = ? IF seq = ? AND ts_ms = ?",
                )
                .await?,
            fence_message: p
                .write(
                    "DELETE FROM {ks}.messages USING TIMESTAMP ? \
                     WHERE conv = ? AND bucket = ? AND seq = ?",
                )
                .await?,
            select_message_id: p
                .read("SELECT id FROM {ks}.messages WHERE conv = ? AND bucket = ? AND seq = ?")
                .await?,
            select_group_links: p
                .read(
                    "SELECT conv FROM {ks}.user_convs \
                     WHERE user_id = ? AND conv >= ? AND conv < ? LIMIT ?",
                )
                .await?,
            insert_link: p
                .write("INSERT INTO {ks}.user_convs (user_id, conv) VALUES (?, ?)")
                .await?,
            delete_link: p
                .write("DELETE FROM {ks}.user_convs WHERE user_id = ? AND conv = ?")
                .await?,
            raise_read: p
                .write(
                    "UPDATE {ks}.read_pos USING TIMESTAMP ? SET read_seq = ? \
                     WHERE user_id = ? AND conv = ?",
                )
                .await?,
            select_read: p
                .read("SELECT read_seq FROM {ks}.read_pos WHERE user_id = ? AND conv = ?")
                .await?,
            select_reads_between: p
                .read(
                    "SELECT conv, read_seq FROM {ks}.read_pos \
                     WHERE user_id = ? AND conv > ? AND conv <= ?",
                )
                .await?,
            select_links_after: p
                .read("SELECT conv FROM {ks}.user_convs WHERE user_id = ? AND conv > ? LIMIT ?")
                .await?,
            select_last_seq: p
                .read("SELECT last_seq FROM {ks}.conv_meta WHERE conv = ?")
                .await?,
            select_buckets_asc: p
                .read(
                    "SELECT bucket FROM {ks}.conv_buckets \
                     WHERE conv = ? AND bucket >= ? AND bucket <= ? ORDER BY bucket ASC",
                )
                .await?,
            select_buckets_desc: p
                .read(
                    "SELECT bucket FROM {ks}.conv_buckets \
                     WHERE conv = ? AND bucket >= ? AND bucket <= ? ORDER BY bucket DESC",
                )
                .await?,
            select_messages_asc: p
                .read(
                    "SELECT seq, id, sender, body, ts_ms FROM {ks}.messages \
                     WHERE conv = ? AND bucket = ? AND seq >= ? AND seq <= ? \
                     ORDER BY seq ASC LIMIT ?",
                )
                .await?,
            select_messages_desc: p
                .read(
                    "SELECT seq, id, sender, body, ts_ms FROM {ks}.messages \
                     WHERE conv = ? AND bucket = ? AND seq >= ? AND seq <= ? \
                     ORDER BY seq DESC LIMIT ?",
                )
                .await?,
            select_dedup: p
                .read(
                    "SELECT seq, ts_ms FROM {ks}.dedup \
                     WHERE conv = ? AND sender = ? AND client_id = ?",
                )
                .await?,
            select_seq_alloc: p
                .read("SELECT next FROM {ks}.seq_alloc WHERE conv = ?")
                .await?,
            insert_seq_alloc: p
                .lwt("INSERT INTO {ks}.seq_alloc (conv, next) VALUES (?, ?) IF NOT EXISTS")
                .await?,
            update_seq_alloc: p
                .lwt("UPDATE {ks}.seq_alloc SET next = ? WHERE conv = ? IF next = ?")
                .await?,
            insert_group: p
                .lwt(
                    "INSERT INTO {ks}.chat_groups (id, name, owner, members) \
                     VALUES (?, ?, ?, ?) IF NOT EXISTS",
                )
                .await?,
            update_group: p
                .write("UPDATE {ks}.chat_groups SET name = ?, owner = ?, members = ? WHERE id = ?")
                .await?,
            select_group: p
                .read("SELECT name, owner, members FROM {ks}.chat_groups WHERE id = ?")
                .await?,
            raise_last_seen: p
                .write("UPDATE {ks}.last_seen USING TIMESTAMP ? SET at_ms = ? WHERE user_id = ?")
                .await?,
            select_last_seen: p
                .read("SELECT at_ms FROM {ks}.last_seen WHERE user_id = ?")
                .await?,
            insert_room_settings: p
                .write("INSERT INTO {ks}.room_settings (room, slow_mode_s) VALUES (?, ?)")
                .await?,
            delete_room_settings: p
                .write("DELETE FROM {ks}.room_settings WHERE room = ?")
                .await?,
            select_room_settings: p
                .read("SELECT slow_mode_s FROM {ks}.room_settings WHERE room = ?")
                .await?,
            insert_load_sample: p
                .write(
                    "INSERT INTO {ks}.load_samples (member, at_ms, expires_ms, data) \
                     VALUES (?, ?, ?, ?) USING TTL ?",
                )
                .await?,
            insert_load_member: p
                .write(
                    "INSERT INTO {ks}.load_members (shard, member, expires_ms) \
                     VALUES (?, ?, ?) USING TTL ?",
                )
                .await?,
            select_load_members: p
                .read("SELECT member, expires_ms FROM {ks}.load_members WHERE shard = ? LIMIT ?")
                .await?,
            select_load_samples: p
                .read(
                    "SELECT at_ms, expires_ms, data FROM {ks}.load_samples \
                     WHERE member = ? AND at_ms > ? ORDER BY at_ms ASC LIMIT ?",
                )
                .await?,
        })
    }
}

/// Prepares statement texts written with a `{ks}` placeholder.
struct Preparer<'a> {
    session: &'a Session,
    ks: &'a str,
}

impl Preparer<'_> {
    async fn prepare(&self, text: &str) -> StoreResult<PreparedStatement> {
        let text = text.replace("{ks}", self.ks);
        self.session.prepare(text.as_str()).await.map_err(|e| {
            match query_error("preparing a statement", e.into()) {
                StoreError::Backend(why) => StoreError::Backend(format!("{why} ({text})")),
                other => other,
            }
        })
    }

    /// A write that gives the same outcome however often it is applied, so the
    /// driver may retry it after a timeout.
    async fn write(&self, text: &str) -> StoreResult<PreparedStatement> {
        let mut statement = self.prepare(text).await?;
        statement.set_is_idempotent(true);
        Ok(statement)
    }

    /// A read, paged.
    async fn read(&self, text: &str) -> StoreResult<PreparedStatement> {
        let mut statement = self.prepare(text).await?;
        statement.set_is_idempotent(true);
        statement.set_page_size(PAGE_SIZE);
        Ok(statement)
    }

    /// A lightweight transaction: never retried blindly by the driver, since a
    /// second application of a compare-and-set is a different request.
    async fn lwt(&self, text: &str) -> StoreResult<PreparedStatement> {
        let mut statement = self.prepare(text).await?;
        statement.set_is_idempotent(false);
        Ok(statement)
    }
}
