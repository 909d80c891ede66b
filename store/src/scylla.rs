//! The shared backend: a ScyllaDB or Apache Cassandra cluster over CQL (the
//! `scylla` driver, protocol v4), for a cluster of Chorus nodes.
//!
//! - [`ScyllaStore`]: the [`MessageStore`] implementation; [`ScyllaOptions`] and
//!   [`Consistency`] say where and how it runs.
//! - `schema`: keyspace and tables, created idempotently at connect.
//! - `statements`: every statement, prepared once at connect.
//! - `append`: messages, dedup entries and links as logged batches.
//! - `read`: history pages across buckets, conversation lists.
//! - `seqs`: seq blocks fenced by a lightweight transaction; `lwt` reads the
//!   answers of lightweight transactions.
//! - `groups`: group records and their members' links.
//! - live rooms' settings: one row per room in `room_settings`, here.
//! - `load`: the load history, rows with TTLs.
//! - `error`: driver errors as [`StoreError`]s.
//!
//! # How the contract is kept
//!
//! | promise | how |
//! |---|---|
//! | `append` durable on `Ok` | one LOGGED batch per chunk, acknowledged at the configured consistency |
//! | seq blocks never overlap | compare-and-set on `seq_alloc` (Paxos, serial consistency) |
//! | read positions, `last_seq` never go back | the value is written with itself as the write timestamp, so the server's last-write-wins keeps the maximum |
//! | dedup window of 24 h | `USING TTL`, and the exact window checked against `ts_ms` on read |
//! | dedup insert-if-absent | each message's entry claimed with `INSERT ... IF NOT EXISTS` before it is written (see `append`) |
//! | group ids first-wins | `INSERT ... IF NOT EXISTS` |
//! | room settings read back as last written | one row per room, replaced whole (deleted when all default) |
//! | load samples kept until they expire | `USING TTL` per row, and the exact expiry checked on read |
//!
//! Timelines are partitioned by `(conv, bucket)` with `bucket = seq / BUCKET_SIZE`,
//! so no partition grows past [`BUCKET_SIZE`] messages however long a conversation
//! lives, and a range of seqs maps to a known range of partitions.

mod append;
mod error;
mod groups;
mod load;
mod lwt;
mod read;
mod schema;
mod seqs;
mod statements;

#[cfg(test)]
mod tests;

use std::time::Duration;

use async_trait::async_trait;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::deserialize::row::DeserializeRow;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency as CqlConsistency, SerialConsistency};

use self::error::{check_id, from_cql, query_error, to_cql};
use self::statements::Statements;
use crate::{
    AppendBatch, AppendOutcome, DEDUP_WINDOW_MS, DedupHit, DedupKey, GroupRecord, HistoryQuery,
    HistorySlice, ListQuery, ListSlice, LoadRecord, MessageStore, RoomSettings, SeqBlock,
    StoreError, StoreResult,
};

/// Seqs per timeline partition: `bucket = seq / BUCKET_SIZE`. 10,000 messages of at
/// most 4 KiB keep a partition well under the ~100 MB where Cassandra and ScyllaDB
/// start to suffer, while a page of history rarely spans two partitions.
pub const BUCKET_SIZE: u64 = 10_000;

/// The CQL port used when a contact point names no port.
const DEFAULT_PORT: u16 = 9042;

/// The consistency level of every read and write of the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Consistency {
    /// One replica answers: fast, but a read may miss an acknowledged write and a
    /// write survives only as long as that replica does. For a one-node database.
    One,
    /// A majority of the replicas of the local data centre answer (the default).
    /// Seq blocks are then fenced with `LOCAL_SERIAL`: enough as long as every
    /// Chorus node of a cluster talks to the same data centre.
    #[default]
    LocalQuorum,
    /// A majority of all replicas answer, across data centres; seq blocks are
    /// fenced with `SERIAL`.
    Quorum,
}

impl Consistency {
    /// The level of ordinary reads and writes.
    fn cql(self) -> CqlConsistency {
        match self {
            Consistency::One => CqlConsistency::One,
            Consistency::LocalQuorum => CqlConsistency::LocalQuorum,
            Consistency::Quorum => CqlConsistency::Quorum,
        }
    }

    /// The level of the Paxos rounds of lightweight transactions. `ONE` has no
    /// serial counterpart: fencing always needs a majority, so it gets `SERIAL`.
    fn serial(self) -> SerialConsistency {
        match self {
            Consistency::LocalQuorum => SerialConsistency::LocalSerial,
            Consistency::One | Consistency::Quorum => SerialConsistency::Serial,
        }
    }
}

/// Where and how a [`ScyllaStore`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScyllaOptions {
    /// `"host:port"` (or `"host"`, port 9042) of the nodes the driver first
    /// connects to; it discovers the rest of the cluster from them.
    pub contact_points: Vec<String>,
    /// The keyspace holding Chorus's tables, created if missing. Letters, digits
    /// and `_`, at most 48 characters.
    pub keyspace: String,
    /// Replication factor of the keyspace when this store creates it
    /// (`SimpleStrategy`). An existing keyspace is left as it is.
    pub replication_factor: u32,
    /// Consistency of every read and write.
    pub consistency: Consistency,
    /// How long one database request may take before it fails as
    /// [`StoreError::Unavailable`].
    pub request_timeout: Duration,
}

impl Default for ScyllaOptions {
    fn default() -> Self {
        Self {
            contact_points: vec![format!("127.0.0.1:{DEFAULT_PORT}")],
            keyspace: "chorus".into(),
            replication_factor: 1,
            consistency: Consistency::LocalQuorum,
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// A [`MessageStore`] on a ScyllaDB or Apache Cassandra cluster. Any number of
/// stores, in any number of processes, may share one keyspace: that is what a
/// multi-node Chorus cluster does. Dropping the store closes its connections.
pub struct ScyllaStore {
    /// The driver session: connection pools to every node, shared by all calls.
    session: Session,
    /// Every statement the store runs, prepared at connect.
    st: Statements,
    /// The options it was connected with (timeouts, consistency, keyspace).
    options: ScyllaOptions,
}

impl ScyllaStore {
    /// Connects, creates the keyspace and tables if they are missing, and prepares
    /// every statement. Fails with [`StoreError::Unavailable`] when no contact point
    /// answers.
    pub async fn connect(options: ScyllaOptions) -> StoreResult<Self> {
        schema::check_keyspace_name(&options.keyspace)?;
        if options.replication_factor == 0 {
            return Err(StoreError::Backend(
                "replication factor must be at least 1".into(),
            ));
        }
        if options.contact_points.is_empty() {
            return Err(StoreError::Backend("no contact points given".into()));
        }
        let profile = ExecutionProfile::builder()
            .consistency(options.consistency.cql())
            .serial_consistency(Some(options.consistency.serial()))
            .request_timeout(Some(options.request_timeout))
            .build();
        let nodes: Vec<String> = options
            .contact_points
            .iter()
            .map(|p| with_default_port(p))
            .collect();
        let session = SessionBuilder::new()
            .known_nodes(&nodes)
            .connection_timeout(options.request_timeout)
            .default_execution_profile_handle(profile.into_handle())
            .build()
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot connect to the database at {}: {e}",
                    nodes.join(", ")
                ))
            })?;
        schema::create(&session, &options).await?;
        let st = Statements::prepare(&session, &options.keyspace).await?;
        tracing::info!(
            nodes = %nodes.join(", "),
            keyspace = %options.keyspace,
            consistency = ?options.consistency,
            "connected to the message database"
        );
        Ok(Self {
            session,
            st,
            options,
        })
    }

    /// The options the store was connected with.
    pub fn options(&self) -> &ScyllaOptions {
        &self.options
    }

    /// Runs a prepared statement whose result is at most one row, and decodes it.
    async fn one_row<R>(
        &self,
        what: &str,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> StoreResult<Option<R>>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let result = self
            .session
            .execute_unpaged(statement, values)
            .await
            .map_err(|e| query_error(what, e))?;
        error::first_row(what, result)
    }
}

/// `host` → `host:9042`; anything that already ends in a port is kept.
fn with_default_port(point: &str) -> String {
    let has_port = match point.rsplit_once(':') {
        // `[::1]:9042` or `host:9042`, but not a bare IPv6 address like `::1`.
        Some((host, port)) => {
            port.parse::<u16>().is_ok() && (host.ends_with(']') || !host.contains(':'))
        }
        None => false,
    };
    if has_port {
        point.to_string()
    } else if point.contains(':') && !point.starts_with('[') {
        format!("[{point}]:{DEFAULT_PORT}")
    } else {
        format!("{point}:{DEFAULT_PORT}")
    }
}

#[async_trait]
impl MessageStore for ScyllaStore {
    async fn append(&self, batch: AppendBatch) -> StoreResult<AppendOutcome> {
        append::append(self, batch).await
    }

    async fn history(&self, conv: &str, query: HistoryQuery) -> StoreResult<HistorySlice> {
        read::history(self, conv, query).await
    }

    async fn last_seq(&self, conv: &str) -> StoreResult<u64> {
        check_id("conversation id", conv)?;
        let row: Option<(Option<i64>,)> = self
            .one_row("reading last_seq", &self.st.select_last_seq, (conv,))
            .await?;
        match row.and_then(|(last,)| last) {
            Some(last) => from_cql(last, "last_seq"),
            None => Ok(0),
        }
    }

    async fn conversation_page(&self, user: &str, query: ListQuery) -> StoreResult<ListSlice> {
        read::conversation_page(self, user, &query).await
    }

    async fn unlink(&self, user: &str, conv: &str) -> StoreResult<()> {
        check_id("user id", user)?;
        check_id("conversation id", conv)?;
        self.session
            .execute_unpaged(&self.st.delete_link, (user, conv))
            .await
            .map_err(|e| query_error("unlinking a conversation", e))?;
        Ok(())
    }

    async fn set_read(&self, user: &str, conv: &str, seq: u64) -> StoreResult<u64> {
        check_id("user id", user)?;
        check_id("conversation id", conv)?;
        if seq > 0 {
            let value = to_cql(seq, "read position")?;
            // The position is its own write timestamp: whatever order racing
            // writes arrive in, last-write-wins keeps the highest, with no
            // read-before-write and no Paxos round (see the module docs).
            self.session
                .execute_unpaged(&self.st.raise_read, (value, value, user, conv))
                .await
                .map_err(|e| query_error("raising a read position", e))?;
        }
        // What is stored is at least `seq` now; a read at a weak consistency may
        // not see our own write yet, hence the `max`.
        Ok(self.read_seq(user, conv).await?.max(seq))
    }

    async fn read_seq(&self, user: &str, conv: &str) -> StoreResult<u64> {
        check_id("user id", user)?;
        check_id("conversation id", conv)?;
        let row: Option<(Option<i64>,)> = self
            .one_row(
                "reading a read position",
                &self.st.select_read,
                (user, conv),
            )
            .await?;
        match row.and_then(|(seq,)| seq) {
            Some(seq) => from_cql(seq, "read position"),
            None => Ok(0),
        }
    }

    async fn create_group(&self, group: &GroupRecord) -> StoreResult<bool> {
        groups::create(self, group).await
    }

    async fn group(&self, id: &str) -> StoreResult<Option<GroupRecord>> {
        groups::get(self, id).await
    }

    async fn update_group(
        &self,
        group: &GroupRecord,
        added: &[String],
        removed: &[String],
    ) -> StoreResult<()> {
        groups::update(self, group, added, removed).await
    }

    async fn find_dedup(&self, key: &DedupKey, now_ms: u64) -> StoreResult<Option<DedupHit>> {
        check_id("conversation id", &key.conv)?;
        check_id("sender", &key.sender)?;
        check_id("client message id", &key.client_id)?;
        let row: Option<(i64, i64)> = self
            .one_row(
                "looking up a client message id",
                &self.st.select_dedup,
                (&key.conv, &key.sender, &key.client_id),
            )
            .await?;
        let Some((seq, ts_ms)) = row else {
            return Ok(None);
        };
        let hit = DedupHit {
            seq: from_cql(seq, "dedup seq")?,
            ts_ms: from_cql(ts_ms, "dedup ts_ms")?,
        };
        // The TTL only clears the row eventually (and counts from the write, not
        // from `ts_ms`); the window itself is decided here, to the millisecond.
        if now_ms.saturating_sub(hit.ts_ms) > DEDUP_WINDOW_MS {
            return Ok(None);
        }
        // The claim and its message are two writes: a claim whose message is
        // not there is no hit. The caller's append settles it (`append::settle`).
        if !append::is_stored(self, &key.conv, hit.seq).await? {
            return Ok(None);
        }
        Ok(Some(hit))
    }

    async fn allocate_seq_block(&self, conv: &str, size: u64) -> StoreResult<SeqBlock> {
        seqs::allocate(self, conv, size).await
    }

    async fn flush(&self) -> StoreResult<()> {
        // Nothing is buffered here: every write was acknowledged at the configured
        // consistency before the call that made it returned.
        Ok(())
    }

    async fn set_last_seen(&self, user: &str, at_ms: u64) -> StoreResult<()> {
        check_id("user id", user)?;
        let value = to_cql(at_ms, "last seen")?;
        // The time is its own write timestamp (in microseconds): the latest
        // close wins whatever order the writes arrive in.
        let timestamp = value.saturating_mul(1000);
        self.session
            .execute_unpaged(&self.st.raise_last_seen, (timestamp, value, user))
            .await
            .map_err(|e| query_error("writing a last-seen time", e))?;
        Ok(())
    }

    async fn last_seen(&self, user: &str) -> StoreResult<Option<u64>> {
        check_id("user id", user)?;
        let row: Option<(Option<i64>,)> = self
            .one_row(
                "reading a last-seen time",
                &self.st.select_last_seen,
                (user,),
            )
            .await?;
        row.and_then(|(at,)| at)
            .map(|at| from_cql(at, "last seen"))
            .transpose()
    }

    async fn set_room_settings(&self, room: &str, settings: &RoomSettings) -> StoreResult<()> {
        check_id("room id", room)?;
        let result = if settings.is_default() {
            self.session
                .execute_unpaged(&self.st.delete_room_settings, (room,))
                .await
        } else {
            // Every column is written, `null` included, so the row is replaced whole.
            let slow_mode_s = settings.slow_mode_s.map(i64::from);
            self.session
                .execute_unpaged(&self.st.insert_room_settings, (room, slow_mode_s))
                .await
        };
        result.map_err(|e| query_error("writing a room's settings", e))?;
        Ok(())
    }

    async fn room_settings(&self, room: &str) -> StoreResult<RoomSettings> {
        check_id("room id", room)?;
        let row: Option<(Option<i64>,)> = self
            .one_row(
                "reading a room's settings",
                &self.st.select_room_settings,
                (room,),
            )
            .await?;
        let slow_mode_s = match row.and_then(|(slow,)| slow) {
            Some(s) => Some(u32::try_from(s).map_err(|_| {
                StoreError::Corrupt(format!("slow_mode_s {s} of room {room} is not a u32"))
            })?),
            None => None,
        };
        Ok(RoomSettings { slow_mode_s })
    }

    async fn count_groups(&self, user: &str, up_to: u64) -> StoreResult<u64> {
        check_id("user id", user)?;
        if up_to == 0 {
            return Ok(0);
        }
        let what = "counting a user's groups";
        // `group;` is the first string past every `group:<id>` (`;` follows `:`),
        // so this is the user's group links and nothing else, at most `up_to`.
        let limit = i32::try_from(up_to).unwrap_or(i32::MAX);
        let rows = self
            .session
            .execute_unpaged(
                &self.st.select_group_links,
                (user, "group:", "group;", limit),
            )
            .await
            .map_err(|e| query_error(what, e))?
            .into_rows_result()
            .map_err(|e| StoreError::Backend(format!("{what}: expected rows: {e}")))?;
        Ok((rows.rows_num() as u64).min(up_to))
    }

    async fn probe(&self) -> StoreResult<()> {
        // A read of the store's own keyspace at the configured consistency: it
        // fails when the database cannot serve Chorus, not only when it is gone.
        // A key no conversation has (the database refuses an empty one).
        let _: Option<(Option<i64>,)> = self
            .one_row(
                "probing the database",
                &self.st.select_last_seq,
                ("probe:",),
            )
            .await?;
        Ok(())
    }

    async fn append_load_samples(
        &self,
        member: &str,
        samples: &[LoadRecord],
        keep_ms: u64,
        now_ms: u64,
    ) -> StoreResult<()> {
        load::append(self, member, samples, keep_ms, now_ms).await
    }

    async fn load_members(&self, now_ms: u64) -> StoreResult<Vec<String>> {
        load::members(self, now_ms).await
    }

    async fn load_history(
        &self,
        member: &str,
        after_ms: u64,
        limit: usize,
        now_ms: u64,
    ) -> StoreResult<Vec<LoadRecord>> {
        load::history(self, member, after_ms, limit, now_ms).await
    }
}
