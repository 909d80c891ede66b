//! Appending: each message's idempotency entry claimed by a lightweight
//! transaction, then the messages with their bucket index and `last_seq`, plus
//! conversation links, as LOGGED batches.
//!
//! # Dedup is insert-if-absent
//!
//! ```text
//! 1. per message, several at once:  INSERT INTO dedup ... IF NOT EXISTS USING TTL
//!    applied      → the key is ours: the message is stored at its seq (step 2)
//!    not applied  → the answer holds the first claim's (seq, ts_ms, claimed_ms),
//!                   which is settled (below)
//! 2. LOGGED batches: links, then each stored message with its bucket entry and
//!    its conversation's `last_seq` raise
//! 3. acked only if steps 1–2 took at most ACK_DEADLINE (5 s); else the append
//!    fails and the caller's retry finds whichever claim stands
//! ```
//!
//! The claim is a Paxos round on the key's own partition (`SERIAL`, or
//! `LOCAL_SERIAL` with `LOCAL_QUORUM`), so of two appends of one key — a retry
//! racing the write of the original on another owner — exactly one wins, and the
//! other yields the winner's seq: a message is never stored under two seqs. It
//! cannot share a commit with the message row (a conditional batch must stay in
//! one partition, and the message lives in its conversation's), so a claim can
//! be found without its message: the write is still on its way, or its appender
//! died (`kill -9`) between the two. Settling such a claim:
//!
//! ```text
//! message at the claimed seq stored          → Duplicate: ack with that seq
//! not stored, claim younger than 8 s         → Unsettled: nothing stored, the
//!   (looked for again for 200 ms first when     sender is told to retry
//!    younger than 1 s: a write about to land)
//! not stored, claim older than 8 s           → abandoned: its appender can no
//!   (ACK_DEADLINE + 3 s of clock skew)          longer ack it (step 3). Fence its
//!                                               row, take the key over (LWT on
//!                                               exactly that claim), store the
//!                                               message at its own, new seq
//! ```
//!
//! Taking over at a new seq, not completing the claim at the old one, keeps the
//! protocol's order: the retry's ack and `msg` carry a seq above everything the
//! conversation acked since (a `msg` below a client's held seq is dropped as a
//! duplicate). The fence is a tombstone on the old row whose write timestamp is
//! one microsecond past the row's own — every message row is written `USING
//! TIMESTAMP` of its message's time — so the first write, should it land after
//! all, never shows. The cost is one Paxos round (four round trips to a quorum
//! of replicas) per message, run concurrently for the messages of a batch;
//! docs/benchmarks.md has the figures.
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
//! claim answers with their seqs; those not written are settled as above.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chorus_wire::backoff::Backoff;
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

/// How long after its claim an append may still ack what it claimed. Past it
/// the append fails (its caller retries), so a claim older than this, plus
/// [`MAX_CLOCK_SKEW`], can never be acked by its appender.
const ACK_DEADLINE: Duration = Duration::from_secs(5);

/// How far apart the clocks of two nodes may be.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(3);

/// The age (by the clock of the append that finds it) past which a claim
/// without its message is abandoned and may be taken over.
const TAKE_OVER_AFTER_MS: u64 = (ACK_DEADLINE.as_millis() + MAX_CLOCK_SKEW.as_millis()) as u64;

/// A claim younger than this without its message is most likely a write about
/// to land: it is looked for again [`LANDING_LOOKS`] times, [`LANDING_PAUSE`]
/// apart, before the message is answered as unsettled.
const LANDING_MS: u64 = 1_000;
const LANDING_LOOKS: u32 = 5;
const LANDING_PAUSE: Duration = Duration::from_millis(40);

/// The pause before claim attempt `n` after a timeout.
const CLAIM_RETRY: Backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(160));

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
    /// An earlier message holds the key; store nothing new (but see [`settle`]).
    Taken(Found),
}

/// The claim an earlier append holds on a key.
#[derive(Debug, Clone, Copy)]
struct Found {
    hit: DedupHit,
    /// When its appender made it, by that appender's clock; `None` when the
    /// answer did not say (a failed compare names only the compared columns).
    claimed_ms: Option<u64>,
}

/// Claims `m`'s idempotency key for its seq: insert-if-absent, or, with
/// `replacing`, in place of exactly that earlier claim.
async fn claim(
    store: &ScyllaStore,
    m: &Message,
    ttl: i32,
    mut replacing: Option<DedupHit>,
) -> StoreResult<Claim> {
    let what = "claiming a client message id";
    let seq = to_cql(m.seq, "seq")?;
    let ts_ms = to_cql(m.ts_ms, "ts_ms")?;
    let claimed_ms = to_cql(now_ms(), "claim time")?;
    // After a timeout the claim may have been applied without our hearing of
    // it; an answer that then names exactly our seq and time is our own claim.
    let mut maybe_ours = false;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = match replacing {
            None => {
                store
                    .session
                    .execute_unpaged(
                        &store.st.claim_dedup,
                        (&m.conv, &m.from, &m.id, seq, ts_ms, claimed_ms, ttl),
                    )
                    .await
            }
            Some(old) => {
                let (old_seq, old_ts) = (to_cql(old.seq, "seq")?, to_cql(old.ts_ms, "ts_ms")?);
                store
                    .session
                    .execute_unpaged(
                        &store.st.replace_dedup,
                        (
                            ttl, seq, ts_ms, claimed_ms, &m.conv, &m.from, &m.id, old_seq, old_ts,
                        ),
                    )
                    .await
            }
        };
        let outcome = match result {
            Ok(answer) => LwtOutcome::parse(what, answer)?,
            Err(e) if is_transient(&e) && attempt < CLAIM_ATTEMPTS => {
                maybe_ours = true;
                tracing::debug!(conv = %m.conv, attempt, error = %e, "dedup claim failed, retrying");
                tokio::time::sleep(CLAIM_RETRY.random_delay(attempt)).await;
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
            replacing = None;
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
            let claimed_ms = match outcome.bigint("claimed_ms") {
                Some(at) => Some(from_cql(at, "dedup claimed_ms")?),
                // A claim written before claims carried their time: its
                // message's time is as old or older.
                None if outcome.has("claimed_ms") => Some(hit.ts_ms),
                None => None,
            };
            return Ok(Claim::Taken(Found { hit, claimed_ms }));
        }
        // The row found is past the window (the TTL counts from its write, the
        // window from its `ts_ms`): replace it if it is still that one.
        if attempt >= CLAIM_ATTEMPTS {
            return Err(StoreError::Unavailable(format!(
                "{what}: the entry kept changing"
            )));
        }
        replacing = Some(hit);
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
        claim(store, m, ttl, None).await.map(Some)
    } else {
        Ok(None)
    }
}

/// What becomes of a message whose key an earlier append holds.
enum Settled {
    /// The earlier message is stored: this one is its duplicate.
    Duplicate(DedupHit),
    /// The earlier claim was abandoned and is now this message's: store it at
    /// its own seq.
    Ours,
    /// The earlier message is not stored, and its appender may still ack it.
    Unsettled(DedupHit),
}

/// Settles `m` against the claim `found` holds on its key (see the module docs).
async fn settle(
    store: &ScyllaStore,
    m: &Message,
    mut found: Found,
    ttl: i32,
    ours_at: impl Fn(u64) -> bool,
) -> StoreResult<Settled> {
    for _ in 0..CLAIM_ATTEMPTS {
        let hit = found.hit;
        if ours_at(hit.seq) || is_stored(store, &m.conv, hit.seq).await? {
            return Ok(Settled::Duplicate(hit));
        }
        // Unknown: as young as can be.
        let claimed_ms = found.claimed_ms.unwrap_or_else(now_ms);
        let age = now_ms().saturating_sub(claimed_ms);
        if age < TAKE_OVER_AFTER_MS {
            // A claim this young is most likely a write about to land (a retry
            // racing its original on another owner): look again, briefly.
            if age < LANDING_MS {
                for _ in 0..LANDING_LOOKS {
                    tokio::time::sleep(LANDING_PAUSE).await;
                    if is_stored(store, &m.conv, hit.seq).await? {
                        return Ok(Settled::Duplicate(hit));
                    }
                }
            }
            metrics::counter!("chorus_store_claims_unsettled_total").increment(1);
            return Ok(Settled::Unsettled(hit));
        }
        // Abandoned: its appender can no longer ack it. Fence its row first, so
        // that a write of it still on its way never shows, then take the key.
        let fence = write_timestamp(hit.ts_ms)?.saturating_add(1);
        let seq = to_cql(hit.seq, "seq")?;
        let bucket = seq / to_cql(BUCKET_SIZE, "bucket size")?;
        store
            .session
            .execute_unpaged(&store.st.fence_message, (fence, &m.conv, bucket, seq))
            .await
            .map_err(|e| query_error("fencing an abandoned claim's message", e))?;
        match claim(store, m, ttl, Some(hit)).await? {
            Claim::Ours => {
                metrics::counter!("chorus_store_claims_taken_over_total").increment(1);
                tracing::info!(conv = %m.conv, abandoned_seq = hit.seq, seq = m.seq, "took over an abandoned claim");
                return Ok(Settled::Ours);
            }
            // Another append replaced it first: settle against that one.
            Claim::Taken(next) => found = next,
        }
    }
    Err(StoreError::Unavailable(format!(
        "claiming a client message id in {}: the entry kept changing",
        m.conv
    )))
}

/// The write timestamp (microseconds) of the row of a message sent at `ts_ms`.
/// Fixed by the message, not by when the write happens: every write of the row
/// carries the same one, and a fence one microsecond later beats them all.
fn write_timestamp(ts_ms: u64) -> StoreResult<i64> {
    to_cql(ts_ms.saturating_mul(1_000), "write timestamp")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether the message at `seq` of `conv` is stored.
pub(super) async fn is_stored(store: &ScyllaStore, conv: &str, seq: u64) -> StoreResult<bool> {
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
    // Claims made from here are acked only within `ACK_DEADLINE` of now.
    let claiming = Instant::now();
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
        let appended = match (claimed, same) {
            (Some(Claim::Ours), _) => Appended::Stored,
            (Some(Claim::Taken(found)), _) => {
                let ours_at = |seq: u64| stored.iter().any(|s| s.conv == m.conv && s.seq == seq);
                match settle(store, &m, found, ttl, ours_at).await? {
                    Settled::Ours => Appended::Stored,
                    Settled::Duplicate(hit) => Appended::Duplicate(hit),
                    Settled::Unsettled(hit) => Appended::Unsettled(hit),
                }
            }
            // The same key earlier in this batch: as that one went.
            (None, Some(first)) => match outcome.of(first) {
                Appended::Stored => {
                    Appended::Duplicate(assigned.get(first).copied().unwrap_or(DedupHit {
                        seq: m.seq,
                        ts_ms: m.ts_ms,
                    }))
                }
                other => other,
            },
            (None, None) => Appended::Stored,
        };
        if appended == Appended::Stored {
            stored.push(m);
        }
        outcome.messages.push(appended);
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
        let written_at = write_timestamp(m.ts_ms)?;
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
            (m.conv, bucket, seq, m.id, m.from, m.body, ts_ms, written_at),
            message_bytes + 8,
        );
    }
    close(&mut out, &mut tops);
    out.run(&store.session, "appending messages").await?;
    // Past the deadline another append may take these claims over as abandoned
    // (`settle`): acking them now could ack a seq that another message of the
    // same key is about to be stored in place of. The caller's retry finds
    // whichever claim stands.
    let took = claiming.elapsed();
    if took > ACK_DEADLINE {
        metrics::counter!("chorus_store_appends_past_deadline_total").increment(1);
        return Err(StoreError::Unavailable(format!(
            "appending messages took {} ms, past the {} ms within which a claim may be acked; retry",
            took.as_millis(),
            ACK_DEADLINE.as_millis()
        )));
    }
    Ok(outcome)
}
