//! Seq blocks, fenced by a compare-and-set on the conversation's `seq_alloc` row.
//!
//! ```text
//! 1. read next (any consistency: a stale value only costs a failed CAS)
//! 2. start = max(next, last_seq + 1, 1), end = start + size
//! 3A. no row yet:  INSERT ... (conv, end) IF NOT EXISTS
//! 3B. a row:       UPDATE ... SET next = end WHERE conv = ? IF next = <next read>
//! 4. applied → the block [start, end) is ours alone
//!    not applied → the answer holds the current next: back to 2 with it
//!    timeout / unavailable → back to 1 after a short random pause
//! ```
//!
//! The CAS runs a Paxos round among a majority of replicas (`SERIAL`, or
//! `LOCAL_SERIAL` with `LOCAL_QUORUM`), so of two owners racing for one
//! conversation — during a membership split, say — exactly one moves `next` past a
//! given value: blocks never overlap. A CAS whose outcome is unknown (a timeout)
//! may have moved `next` without us learning it; that block is simply never used,
//! and seqs skip, which the protocol allows.

use std::time::{Duration, Instant};

use chorus_wire::backoff::Backoff;

use super::ScyllaStore;
use super::error::{check_id, from_cql, is_transient, query_error, to_cql};
use super::lwt::LwtOutcome;
use crate::{MessageStore, SeqBlock, StoreError, StoreResult};

/// The pause before attempt `n` after an error: 2^n ms, at most 200 ms.
const TRANSIENT: Backoff = Backoff::new(Duration::from_millis(2), Duration::from_millis(200));

/// The pause after several lost compare-and-sets in a row: 2^n ms, at most
/// 20 ms, random enough to let one of the owners in lockstep through.
const LOCKSTEP: Backoff = Backoff::new(Duration::from_millis(2), Duration::from_millis(20));

/// Hands out the next `size` seqs of `conv`.
pub(super) async fn allocate(store: &ScyllaStore, conv: &str, size: u64) -> StoreResult<SeqBlock> {
    check_id("conversation id", conv)?;
    let what = "allocating a seq block";
    let size = to_cql(size, "seq block size")?;
    // Starting past `last_seq` as well keeps blocks clear of seqs written without
    // an allocation (imported data), as the embedded backend does.
    let floor = to_cql(store.last_seq(conv).await?, "last_seq")?.saturating_add(1);
    // Contention resolves in a few rounds; this bounds a pathological case (a
    // partitioned replica set) to a few request timeouts before giving up.
    let patience = store
        .options
        .request_timeout
        .saturating_mul(6)
        .max(Duration::from_secs(10));
    let deadline = Instant::now() + patience;
    let st = &store.st;

    // `Some(current)` when the last CAS answer told us the allocator's value.
    let mut known: Option<Option<i64>> = None;
    let mut attempt: u32 = 0;
    loop {
        attempt = attempt.saturating_add(1);
        let current = match known.take() {
            Some(current) => current,
            None => read_next(store, conv).await?,
        };
        let start = current.unwrap_or(1).max(floor).max(1);
        let end = start
            .checked_add(size)
            .ok_or_else(|| StoreError::Backend(format!("the seq space of {conv} is exhausted")))?;
        let result = match current {
            None => {
                store
                    .session
                    .execute_unpaged(&st.insert_seq_alloc, (conv, end))
                    .await
            }
            Some(expected) => {
                store
                    .session
                    .execute_unpaged(&st.update_seq_alloc, (end, conv, expected))
                    .await
            }
        };
        match result {
            Ok(answer) => {
                let outcome = LwtOutcome::parse(what, answer)?;
                if outcome.applied {
                    return Ok(SeqBlock {
                        start: from_cql(start, "seq")?,
                        end: from_cql(end, "seq")?,
                    });
                }
                // Another owner moved `next` first; its answer says where to.
                metrics::counter!("chorus_store_seq_alloc_conflicts_total").increment(1);
                known = Some(outcome.bigint("next"));
                if attempt > 2 {
                    // Several losses in a row: the owners are in lockstep; a
                    // short random pause lets one of them through.
                    tokio::time::sleep(LOCKSTEP.random_delay(attempt)).await;
                }
            }
            Err(e) if is_transient(&e) => {
                if Instant::now() >= deadline {
                    return Err(query_error(what, e));
                }
                tracing::debug!(conv, attempt, error = %e, "seq block CAS failed, retrying");
                tokio::time::sleep(TRANSIENT.random_delay(attempt)).await;
            }
            Err(e) => return Err(query_error(what, e)),
        }
        if Instant::now() >= deadline {
            return Err(StoreError::Unavailable(format!(
                "{what} for {conv}: still contended after {attempt} attempts in {patience:?}"
            )));
        }
    }
}

/// The allocator's current `next`, `None` if the conversation never allocated.
async fn read_next(store: &ScyllaStore, conv: &str) -> StoreResult<Option<i64>> {
    let row: Option<(Option<i64>,)> = store
        .one_row(
            "reading the seq allocator",
            &store.st.select_seq_alloc,
            (conv,),
        )
        .await?;
    Ok(row.and_then(|(next,)| next))
}
