//! Appending: each message's idempotency entry claimed by a lightweight
//! transaction, then the messages with their bucket index and `last_seq`, plus
//! conversation links, as LOGGED batches.
//!
//! # Dedup is insert-if-absent
//!
//! ```text
//! 1. per message, several at once:  INSERT INTO dedup ... IF NOT EXISTS USING TTL
//!    applied      → the key is ours: the message is stored at its seq (step 2)
//!    not applied  → the answer holds the first message's (seq, ts_ms):
//!                   nothing new is stored; if the first message's row is not
//!                   there (its write failed, or has not landed yet), it is
//!                   written at *that* seq, so an acked duplicate always has its
//!                   message
//! 2. LOGGED batches: links, then each stored message with its bucket entry and
//!    its conversation's `last_seq` raise
//! ```
//!
//! The claim is a Paxos round on the key's own partition (`SERIAL`, or
//! `LOCAL_SERIAL` with `LOCAL_QUORUM`), so of two appends of one key — a retry
//! racing the write of the original on another owner — exactly one wins, and the
//! other yields the winner's seq: a message is never stored under two seqs. It
//! cannot share a commit with the message row (a conditional batch must stay in
//! one partition, and the message lives in its conversation's), hence the
//! repair in step 1: a claim whose message never landed is completed by the
//! next append of the same key, at the claimed seq. The cost is one Paxos round
//! (four round trips to a quorum of replicas) per message, run concurrently for
//! the messages of a batch; docs/benchmarks.md has the figures.
//!
//! # Why logged batches
//!
//! A message's row, its bucket entry and its conversation's `last_seq` live in
//! different partitions. A LOGGED batch goes to the batch log first, so once any
//! part of it is applied all of it will be, even if the coordinator dies. It
//! costs one extra write (to the batch log) per batch, which one group commit
//! shares between all its messages.
//!
//! # Chunks
//!
//! Servers refuse batches above a size (Cassandra's `batch_size_fail_threshold`
//! defaults to 50 KiB), so a large [`AppendBatch`] is written as several batches of
//! at most about [`CHUNK_BYTES`], one after another. Each message travels with its
//! own bucket index entry and `last_seq`, so every chunk is self-consistent on
//! its own; links go first, so a conversation never has messages that its
//! members' lists lack. If a later chunk fails the call fails, nothing is acked,
//! and the messages already written are found by the client's retry, whose
//! claim answers with their seqs.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, stream};
use scylla::client::session::Session;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;

use super::error::{check_id, from_cql, is_transient, query_error, to_cql};
use super::lwt::LwtOutcome;
use super::{BUCKET_SIZE, ScyllaStore};
use crate::{
    AppendBatch, AppendOutcome, Appended, DEDUP_WINDOW_MS, DedupHit, Message, StoreError,
    StoreResult,
};

/// Idempotency claims of one append in flight at once: enough to hide the
/// round trips of a group commit of many messages, few enough not to flood the
/// coordinator with Paxos rounds.
const CLAIMS_IN_FLIGHT: usize = 32;

/// Attempts of a claim whose outcome is unknown (a timeout), or that met an
/// expired entry the TTL has not removed yet.
const CLAIM_ATTEMPTS: u32 = 4;

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

/// What the claim of one message's idempotency key found.
enum Claim {
    /// The key is ours: store the message at its seq.
    Ours,
    /// An earlier message holds the key; store nothing new (but see `repair`).
    Taken(DedupHit),
}

/// Claims `m`'s idempotency key for its seq, insert-if-absent.
async fn claim(store: &ScyllaStore, m: &Message, ttl: i32) -> StoreResult<Claim> {
    let what = "claiming a client message id";
    let seq = to_cql(m.seq, "seq")?;
    let ts_ms = to_cql(m.ts_ms, "ts_ms")?;
    // After a timeout the claim may have been applied without our hearing of
    // it; an answer that then names exactly our seq and time is our own claim.
    let mut maybe_ours = false;
    // `Some(ts)`: the row found is past the window (the TTL counts from its
    // write, the window from its `ts_ms`); replace it if it is still that one.
    let mut stale: Option<i64> = None;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = match stale {
            None => {
                store
                    .session
                    .execute_unpaged(
                        &store.st.claim_dedup,
                        (&m.conv, &m.from, &m.id, seq, ts_ms, ttl),
                    )
                    .await
            }
            Some(old) => {
                store
                    .session
                    .execute_unpaged(
                        &store.st.replace_dedup,
                        (ttl, seq, ts_ms, &m.conv, &m.from, &m.id, old),
                    )
                    .await
            }
        };
        let outcome = match result {
            Ok(answer) => LwtOutcome::parse(what, answer)?,
            Err(e) if is_transient(&e) && attempt < CLAIM_ATTEMPTS => {
                maybe_ours = true;
                tracing::debug!(conv = %m.conv, attempt, error = %e, "dedup claim failed, retrying");
                tokio::time::sleep(Duration::from_millis(20) * attempt).await;
                continue;
            }
            Err(e) => return Err(query_error(what, e)),
        };
        if outcome.applied {
            return Ok(Claim::Ours);
        }
        let (Some(first_seq), Some(first_ts)) = (outcome.bigint("seq"), outcome.bigint("ts_ms"))
        else {
            // The row vanished between the compare and the answer (its TTL ran
            // out): claim again.
            stale = None;
            if attempt >= CLAIM_ATTEMPTS {
                return Err(StoreError::Unavailable(format!(
                    "{what}: the entry kept changing"
                )));
            }
            continue;
        };
        if maybe_ours && first_seq == seq && first_ts == ts_ms {
            return Ok(Claim::Ours);
        }
        let hit = DedupHit {
            seq: from_cql(first_seq, "dedup seq")?,
            ts_ms: from_cql(first_ts, "dedup ts_ms")?,
        };
        if m.ts_ms.saturating_sub(hit.ts_ms) <= DEDUP_WINDOW_MS {
            return Ok(Claim::Taken(hit));
        }
        if attempt >= CLAIM_ATTEMPTS {
            return Err(StoreError::Unavailable(format!(
                "{what}: the entry kept changing"
            )));
        }
        stale = Some(first_ts);
    }
}

/// The claim of `m`'s key when it is the first of its batch with that key.
async fn claim_first(
    store: &ScyllaStore,
    m: &Message,
    first: bool,
    ttl: i32,
) -> StoreResult<Option<Claim>> {
    if first {
        claim(store, m, ttl).await.map(Some)
    } else {
        Ok(None)
    }
}

/// Whether the message at `seq` of `conv` is stored.
async fn is_stored(store: &ScyllaStore, conv: &str, seq: u64) -> StoreResult<bool> {
    let seq = to_cql(seq, "seq")?;
    let bucket = seq / to_cql(BUCKET_SIZE, "bucket size")?;
    let row: Option<(String,)> = store
        .one_row(
            "looking for a claimed message",
            &store.st.select_message_id,
            (conv, bucket, seq),
        )
        .await?;
    Ok(row.is_some())
}

/// Writes a batch; `Ok` once every part of it is acknowledged at the configured
/// consistency.
pub(super) async fn append(store: &ScyllaStore, batch: AppendBatch) -> StoreResult<AppendOutcome> {
    if batch.messages.is_empty() && batch.links.is_empty() {
        return Ok(AppendOutcome::default());
    }
    for m in &batch.messages {
        check_id("conversation id", &m.conv)?;
        check_id("sender", &m.from)?;
        check_id("client message id", &m.id)?;
    }
    for (user, conv) in &batch.links {
        check_id("user id", user)?;
        check_id("conversation id", conv)?;
    }
    let st = &store.st;
    let ttl = i32::try_from(DEDUP_WINDOW_MS / 1000).unwrap_or(i32::MAX);

    // Two messages of one batch with one key: the first claims it, the second
    // is its duplicate without a round trip.
    let mut first_of: HashMap<(&str, &str, &str), usize> = HashMap::new();
    let mut same_as: Vec<Option<usize>> = Vec::with_capacity(batch.messages.len());
    for (i, m) in batch.messages.iter().enumerate() {
        let key = (m.conv.as_str(), m.from.as_str(), m.id.as_str());
        same_as.push(first_of.get(&key).copied());
        first_of.entry(key).or_insert(i);
    }
    let pending: Vec<_> = batch
        .messages
        .iter()
        .zip(&same_as)
        .map(|(m, same)| claim_first(store, m, same.is_none(), ttl))
        .collect();
    let claims: Vec<Option<Claim>> = stream::iter(pending)
        .buffered(CLAIMS_IN_FLIGHT)
        .try_collect()
        .await?;

    // What each message was given, for a later message of the batch with its key.
    let assigned: Vec<DedupHit> = batch
        .messages
        .iter()
        .map(|m| DedupHit {
            seq: m.seq,
            ts_ms: m.ts_ms,
        })
        .collect();
    let mut outcome = AppendOutcome::default();
    let mut stored: Vec<Message> = Vec::with_capacity(batch.messages.len());
    for ((m, claimed), same) in batch.messages.into_iter().zip(claims).zip(same_as) {
        let claimed = match (claimed, same) {
            (Some(c), _) => c,
            (None, Some(first)) => Claim::Taken(match outcome.of(first) {
                Appended::Duplicate(hit) => hit,
                Appended::Stored => assigned.get(first).copied().unwrap_or(DedupHit {
                    seq: m.seq,
                    ts_ms: m.ts_ms,
                }),
            }),
            (None, None) => Claim::Ours,
        };
        match claimed {
            Claim::Ours => {
                outcome.messages.push(Appended::Stored);
                stored.push(m);
            }
            Claim::Taken(hit) => {
                outcome.messages.push(Appended::Duplicate(hit));
                let pending_here = stored.iter().any(|s| s.conv == m.conv && s.seq == hit.seq);
                if !pending_here && !is_stored(store, &m.conv, hit.seq).await? {
                    // The claim's own write failed or is still on its way: this
                    // is the same message (same sender, id and conversation),
                    // written at the claimed seq, where a late arrival of the
                    // first write lands on the same row.
                    stored.push(Message {
                        seq: hit.seq,
                        ts_ms: hit.ts_ms,
                        ..m
                    });
                }
            }
        }
    }

    let mut out = Batches::new();
    for (user, conv) in batch.links {
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
    for m in stored {
        let seq = to_cql(m.seq, "seq")?;
        let ts_ms = to_cql(m.ts_ms, "ts_ms")?;
        let bucket = seq / to_cql(BUCKET_SIZE, "bucket size")?;
        let conv_bytes = m.conv.len();
        // The message, a possible bucket entry and a possible `last_seq` raise
        // all go into the same batch.
        let bytes =
            3 * conv_bytes + m.id.len() + m.from.len() + m.body.len() + 48 + 3 * STATEMENT_OVERHEAD;
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
            &st.insert_message,
            (m.conv, bucket, seq, m.id, m.from, m.body, ts_ms),
            message_bytes,
        );
    }
    close(&mut out, &mut tops);
    out.run(&store.session, "appending messages").await?;
    Ok(outcome)
}
