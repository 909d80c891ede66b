//! Appending: messages with their dedup entries, bucket index and `last_seq`, plus
//! conversation links, as LOGGED batches.
//!
//! # Why logged batches
//!
//! A message's row, its dedup entry and its conversation's `last_seq` live in
//! different partitions. If a message could land without its dedup entry, a
//! retried send would be stored twice; if the dedup entry could land without the
//! message, a retry would be acked with a seq whose message is gone. A LOGGED
//! batch goes to the batch log first, so once any part of it is applied all of it
//! will be, even if the coordinator dies. It costs one extra write (to the batch
//! log) per batch, which one group commit shares between all its messages.
//!
//! # Chunks
//!
//! Servers refuse batches above a size (Cassandra's `batch_size_fail_threshold`
//! defaults to 50 KiB), so a large [`AppendBatch`] is written as several batches of
//! at most about [`CHUNK_BYTES`], one after another. Each message travels with its
//! own dedup entry, bucket index entry and `last_seq`, so every chunk is
//! self-consistent on its own; links go first, so a conversation never has
//! messages that its members' lists lack. If a later chunk fails the call fails,
//! nothing is acked, and the messages already written are found by the dedup
//! lookup of the client's retry.

use std::collections::{HashMap, HashSet};

use scylla::client::session::Session;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;

use super::error::{check_id, query_error, to_cql};
use super::{BUCKET_SIZE, ScyllaStore};
use crate::{AppendBatch, DEDUP_WINDOW_MS, StoreResult};

/// Target size of one batch, in bytes of bound values: well under the 50 KiB
/// Cassandra refuses by default, since its own accounting adds per-row overhead.
pub(super) const CHUNK_BYTES: usize = 32 * 1024;

/// Bytes a statement costs beyond its text values (keys, numbers, row overhead).
const STATEMENT_OVERHEAD: usize = 48;

/// One statement's bound values, boxed so that one batch can hold several kinds.
type Values = Box<dyn SerializeRow + Send + Sync>;

/// One batch being filled.
struct Pending {
    batch: Batch,
    values: Vec<Values>,
    bytes: usize,
}

impl Pending {
    fn new() -> Self {
        let mut batch = Batch::new(BatchType::Logged);
        // Every statement in these batches is an insert of fixed values, a delete,
        // or a max-merge by timestamp: applying one twice changes nothing, so the
        // driver may retry the batch after a timeout.
        batch.set_is_idempotent(true);
        Self {
            batch,
            values: Vec::new(),
            bytes: 0,
        }
    }
}

/// Splits statements into LOGGED batches of about [`CHUNK_BYTES`] each.
pub(super) struct Batches {
    done: Vec<Pending>,
    current: Pending,
}

impl Batches {
    pub(super) fn new() -> Self {
        Self {
            done: Vec::new(),
            current: Pending::new(),
        }
    }

    /// Whether statements of `bytes` more would overflow the batch being filled
    /// (an empty batch takes anything, so a big unit still gets written).
    pub(super) fn is_full_for(&self, bytes: usize) -> bool {
        !self.current.values.is_empty() && self.current.bytes + bytes > CHUNK_BYTES
    }

    /// Closes the batch being filled and starts another.
    pub(super) fn rotate(&mut self) {
        if !self.current.values.is_empty() {
            self.done
                .push(std::mem::replace(&mut self.current, Pending::new()));
        }
    }

    /// Adds a statement to the batch being filled.
    pub(super) fn push(
        &mut self,
        statement: &PreparedStatement,
        values: impl SerializeRow + Send + Sync + 'static,
        bytes: usize,
    ) {
        self.current.batch.append_statement(statement.clone());
        self.current.values.push(Box::new(values));
        self.current.bytes += bytes + STATEMENT_OVERHEAD;
    }

    /// Adds a statement, first starting a new batch if this one is full.
    pub(super) fn push_rotating(
        &mut self,
        statement: &PreparedStatement,
        values: impl SerializeRow + Send + Sync + 'static,
        bytes: usize,
    ) {
        if self.is_full_for(bytes + STATEMENT_OVERHEAD) {
            self.rotate();
        }
        self.push(statement, values, bytes);
    }

    /// Writes the batches in order; `Ok` once every one is acknowledged.
    pub(super) async fn run(mut self, session: &Session, what: &str) -> StoreResult<()> {
        self.rotate();
        let count = self.done.len();
        for (i, pending) in self.done.into_iter().enumerate() {
            session
                .batch(&pending.batch, pending.values)
                .await
                .map_err(|e| {
                    let what = if count > 1 {
                        format!("{what} (batch {} of {count})", i + 1)
                    } else {
                        what.to_string()
                    };
                    query_error(&what, e)
                })?;
        }
        Ok(())
    }
}

/// Writes a batch; `Ok` once every part of it is acknowledged at the configured
/// consistency.
pub(super) async fn append(store: &ScyllaStore, batch: AppendBatch) -> StoreResult<()> {
    if batch.messages.is_empty() && batch.links.is_empty() {
        return Ok(());
    }
    let st = &store.st;
    let ttl = i32::try_from(DEDUP_WINDOW_MS / 1000).unwrap_or(i32::MAX);
    let mut out = Batches::new();

    for (user, conv) in batch.links {
        check_id("user id", &user)?;
        check_id("conversation id", &conv)?;
        let bytes = user.len() + conv.len();
        out.push_rotating(&st.insert_link, (user, conv), bytes);
    }

    // Per batch being filled: the buckets already indexed and the highest seq of
    // each conversation, whose `last_seq` raise is added when the batch closes.
    let mut buckets: HashSet<(String, i64)> = HashSet::new();
    let mut tops: HashMap<String, i64> = HashMap::new();
    let close = |out: &mut Batches, tops: &mut HashMap<String, i64>| {
        for (conv, top) in tops.drain() {
            let bytes = conv.len() + 16;
            // The value is its own write timestamp: the highest seq ever written
            // wins, whatever order batches commit in (see `schema`).
            out.push(&st.raise_last_seq, (top, top, conv), bytes);
        }
    };
    for m in batch.messages {
        check_id("conversation id", &m.conv)?;
        check_id("sender", &m.from)?;
        check_id("client message id", &m.id)?;
        let seq = to_cql(m.seq, "seq")?;
        let ts_ms = to_cql(m.ts_ms, "ts_ms")?;
        let bucket = seq / to_cql(BUCKET_SIZE, "bucket size")?;
        let conv_bytes = m.conv.len();
        // The message, its dedup entry, a possible bucket entry and a possible
        // `last_seq` raise all go into the same batch.
        let bytes = 3 * conv_bytes
            + 2 * (m.id.len() + m.from.len())
            + m.body.len()
            + 64
            + 4 * STATEMENT_OVERHEAD;
        if out.is_full_for(bytes) {
            close(&mut out, &mut tops);
            out.rotate();
            buckets.clear();
        }
        if buckets.insert((m.conv.clone(), bucket)) {
            out.push(&st.insert_bucket, (m.conv.clone(), bucket), conv_bytes + 8);
        }
        let top = tops.entry(m.conv.clone()).or_insert(seq);
        *top = (*top).max(seq);
        let message_bytes = conv_bytes + m.id.len() + m.from.len() + m.body.len() + 24;
        out.push(
            &st.insert_dedup,
            (
                m.conv.clone(),
                m.from.clone(),
                m.id.clone(),
                seq,
                ts_ms,
                ttl,
            ),
            conv_bytes + m.from.len() + m.id.len() + 16,
        );
        out.push(
            &st.insert_message,
            (m.conv, bucket, seq, m.id, m.from, m.body, ts_ms),
            message_bytes,
        );
    }
    close(&mut out, &mut tops);
    out.run(&store.session, "appending messages").await
}
