//! The load history on CQL: `load_samples` holds a member's samples in one
//! partition, clustered by time, each row written with a TTL that ends when the
//! sample expires; `load_members` lists the members in a single small partition
//! (`shard = 0`), each row with the TTL of its member's latest sample.
//!
//! One partition per member stays bounded: a member writes one sample per
//! sample interval and the node keeps at most `MAX_HISTORY_SAMPLES` of them, so
//! with [`MAX_SAMPLE_BYTES`] a partition holds well under the ~100 MB where
//! Cassandra starts to suffer. Reads start at the caller's `after_ms` (the start
//! of its history window), past the expired rows, so they do not walk the
//! tombstones TTLs leave behind. The exact expiry is a column too, so a read
//! decides it to the millisecond, as the embedded backend does.
//!
//! The cap on members reads the members partition before adding one: two
//! nodes adding the last two members at once may both pass, so the cap may be
//! overshot by the number of racing writers, never grown without bound (reads
//! list at most [`MAX_MEMBERS`]).

use futures_util::TryStreamExt;

use super::ScyllaStore;
use super::append::Batches;
use super::error::{from_cql, next_row_error, pager_error, query_error, to_cql, type_error};
use crate::load::{MAX_MEMBERS, MAX_SAMPLE_BYTES, Refusal, check_append, read_limit};
use crate::{LoadRecord, StoreError, StoreResult};

/// The one partition of `load_members`.
const MEMBERS_SHARD: i32 = 0;

/// Rows of the members partition read at most: live members plus expired
/// ones whose tombstones have not been compacted away.
const MEMBER_ROWS_READ: i32 = 4 * MAX_MEMBERS as i32;

/// A TTL in whole seconds (at least 1) for a row that expires at `expires_ms`.
fn ttl_s(expires_ms: u64, now_ms: u64) -> i32 {
    let s = expires_ms.saturating_sub(now_ms).div_ceil(1000).max(1);
    i32::try_from(s).unwrap_or(i32::MAX)
}

/// The rows of the members partition: `(member, expires_ms)`.
async fn member_rows(store: &ScyllaStore) -> StoreResult<Vec<(String, u64)>> {
    let what = "reading the load history's members";
    let rows: Vec<(String, i64)> = store
        .session
        .execute_iter(
            store.st.select_load_members.clone(),
            (MEMBERS_SHARD, MEMBER_ROWS_READ),
        )
        .await
        .map_err(|e| pager_error(what, e))?
        .rows_stream::<(String, i64)>()
        .map_err(|e| type_error(what, e))?
        .try_collect()
        .await
        .map_err(|e| next_row_error(what, e))?;
    rows.into_iter()
        .map(|(m, e)| Ok((m, from_cql(e, "load member expiry")?)))
        .collect()
}

pub(super) async fn append(
    store: &ScyllaStore,
    member: &str,
    samples: &[LoadRecord],
    keep_ms: u64,
    now_ms: u64,
) -> StoreResult<()> {
    check_append(member, samples)?;
    let live: Vec<&LoadRecord> = samples
        .iter()
        .filter(|r| r.expires_ms(keep_ms) > now_ms)
        .collect();
    let Some(latest) = live.iter().map(|r| r.expires_ms(keep_ms)).max() else {
        return Ok(());
    };
    let members = member_rows(store).await?;
    let known = members
        .iter()
        .find(|(m, e)| m == member && *e > now_ms)
        .map(|(_, e)| *e);
    if known.is_none() && members.iter().filter(|(_, e)| *e > now_ms).count() >= MAX_MEMBERS {
        return Err(Refusal::Members.refuse(format!(
            "member {member:?} would be one past the {MAX_MEMBERS} members kept"
        )));
    }
    // One member's samples are one partition: every batch is a single-partition
    // write, which the server applies without the batch log.
    let mut batches = Batches::new();
    for record in live {
        let expires = record.expires_ms(keep_ms);
        let values = (
            member.to_string(),
            to_cql(record.at_ms, "load sample time")?,
            to_cql(expires, "load sample expiry")?,
            record.data.clone(),
            ttl_s(expires, now_ms),
        );
        batches.push_rotating(&store.st.insert_load_sample, values, record.data.len() + 64);
    }
    batches.run(&store.session, "writing load samples").await?;
    // After the samples: a member is listed only once it has samples to read.
    let expires = known.map_or(latest, |k| k.max(latest));
    store
        .session
        .execute_unpaged(
            &store.st.insert_load_member,
            (
                MEMBERS_SHARD,
                member,
                to_cql(expires, "load member expiry")?,
                ttl_s(expires, now_ms),
            ),
        )
        .await
        .map_err(|e| query_error("listing a load history member", e))?;
    Ok(())
}

pub(super) async fn members(store: &ScyllaStore, now_ms: u64) -> StoreResult<Vec<String>> {
    let mut live: Vec<String> = member_rows(store)
        .await?
        .into_iter()
        .filter(|(_, e)| *e > now_ms)
        .map(|(m, _)| m)
        .collect();
    live.sort();
    live.truncate(MAX_MEMBERS);
    Ok(live)
}

pub(super) async fn history(
    store: &ScyllaStore,
    member: &str,
    after_ms: u64,
    limit: usize,
    now_ms: u64,
) -> StoreResult<Vec<LoadRecord>> {
    crate::load::check_member(member).map_err(StoreError::Refused)?;
    let limit = read_limit(limit);
    // Past what a bigint holds nothing was ever stored.
    let Ok(after) = i64::try_from(after_ms) else {
        return Ok(Vec::new());
    };
    if limit == 0 {
        return Ok(Vec::new());
    }
    let what = "reading a load history";
    let fetch = i32::try_from(limit).unwrap_or(i32::MAX);
    let mut rows = store
        .session
        .execute_iter(store.st.select_load_samples.clone(), (member, after, fetch))
        .await
        .map_err(|e| pager_error(what, e))?
        .rows_stream::<(i64, i64, Vec<u8>)>()
        .map_err(|e| type_error(what, e))?;
    let mut out = Vec::new();
    while let Some((at_ms, expires, data)) =
        rows.try_next().await.map_err(|e| next_row_error(what, e))?
    {
        if from_cql(expires, "load sample expiry")? <= now_ms {
            continue;
        }
        if data.len() > MAX_SAMPLE_BYTES {
            return Err(StoreError::Corrupt(format!(
                "a stored load sample of {} bytes",
                data.len()
            )));
        }
        out.push(LoadRecord {
            at_ms: from_cql(at_ms, "load sample time")?,
            data,
        });
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}
