//! The load history: members' samples read back in time order and paged,
//! replaced at the same time, gone once expired (and their member with them),
//! kept apart per member, and every bound refused whole.
//!
//! Times are real (around [`now_ms`]) because a backend with TTLs expires rows
//! by the server's clock; expiry is checked through the `now_ms` argument of
//! the reads, never by waiting.

use super::{CheckResult, Namespace, SharedStore, now_ms};
use crate::load::{MAX_MEMBER_ID_BYTES, MAX_MEMBERS, MAX_SAMPLE_BYTES, MAX_SAMPLES_PER_APPEND};
use crate::{LoadRecord, StoreError};

/// An hour: how long the checks keep their samples unless they test expiry.
const KEEP_MS: u64 = 60 * 60 * 1000;

fn record(at_ms: u64, text: &str) -> LoadRecord {
    LoadRecord {
        at_ms,
        data: text.as_bytes().to_vec(),
    }
}

fn times(records: &[LoadRecord]) -> Vec<u64> {
    records.iter().map(|r| r.at_ms).collect()
}

/// Samples come back oldest first whatever order they were written in, after
/// `after_ms` only, `limit` at a time, with their bytes intact; a second write
/// at the same time replaces the first.
pub async fn samples_read_back_in_time_order(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let member = ns.user();
    let now = now_ms();
    let t = |i: u64| now - 100_000 + i * 1000;
    store
        .append_load_samples(
            &member,
            &[record(t(3), "c"), record(t(1), "a"), record(t(2), "b")],
            KEEP_MS,
            now,
        )
        .await?;
    store
        .append_load_samples(&member, &[record(t(4), "{\"x\":\u{e9}}")], KEEP_MS, now)
        .await?;
    let all = store.load_history(&member, 0, 100, now).await?;
    ensure_eq!(
        times(&all),
        vec![t(1), t(2), t(3), t(4)],
        "times of all samples"
    );
    ensure_eq!(all[0].data, b"a".to_vec(), "bytes of the first sample");
    ensure_eq!(
        all[3].data,
        "{\"x\":\u{e9}}".as_bytes().to_vec(),
        "bytes of a non-ASCII sample"
    );
    let after = store.load_history(&member, t(2), 100, now).await?;
    ensure_eq!(times(&after), vec![t(3), t(4)], "samples after the second");
    let page = store.load_history(&member, 0, 2, now).await?;
    ensure_eq!(times(&page), vec![t(1), t(2)], "a page of two");
    let next = store.load_history(&member, t(2), 2, now).await?;
    ensure_eq!(times(&next), vec![t(3), t(4)], "the next page");
    ensure!(
        store.load_history(&member, t(4), 2, now).await?.is_empty(),
        "nothing after the last sample"
    );
    store
        .append_load_samples(&member, &[record(t(2), "B")], KEEP_MS, now)
        .await?;
    let again = store.load_history(&member, 0, 100, now).await?;
    ensure_eq!(
        times(&again),
        vec![t(1), t(2), t(3), t(4)],
        "times after a rewrite"
    );
    ensure_eq!(again[1].data, b"B".to_vec(), "the rewritten sample");
    ensure!(
        store.load_members(now).await?.contains(&member),
        "the member is listed"
    );
    Ok(())
}

/// A sample is gone once `keep_ms` past its own time; a member none of whose
/// samples is left is no longer listed; a sample already expired is not kept.
pub async fn samples_expire(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let member = ns.user();
    let now = now_ms();
    let keep = 60_000;
    let (old, new) = (now - 50_000, now - 10_000);
    store
        .append_load_samples(
            &member,
            &[record(old, "old"), record(new, "new")],
            keep,
            now,
        )
        .await?;
    ensure_eq!(
        times(&store.load_history(&member, 0, 100, now).await?),
        vec![old, new],
        "both samples while young"
    );
    // `old` expires at now + 10 s, `new` at now + 50 s.
    let later = now + 20_000;
    ensure_eq!(
        times(&store.load_history(&member, 0, 100, later).await?),
        vec![new],
        "samples 20 s later"
    );
    ensure!(
        store.load_members(later).await?.contains(&member),
        "a member with a live sample is listed"
    );
    let gone = now + 50_000;
    ensure!(
        store.load_history(&member, 0, 100, gone).await?.is_empty(),
        "no sample once both expired"
    );
    ensure!(
        !store.load_members(gone).await?.contains(&member),
        "a member with no live sample is not listed"
    );
    let stale = ns.user();
    store
        .append_load_samples(&stale, &[record(now - 2 * keep, "stale")], keep, now)
        .await?;
    ensure!(
        store.load_history(&stale, 0, 100, now).await?.is_empty(),
        "an already expired sample is not kept"
    );
    ensure!(
        !store.load_members(now).await?.contains(&stale),
        "nor is its member listed"
    );
    Ok(())
}

/// Members whose ids share a prefix keep their own samples.
pub async fn members_stay_apart(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let first = ns.user();
    let longer = format!("{first}x");
    let now = now_ms();
    store
        .append_load_samples(&first, &[record(now - 2000, "1")], KEEP_MS, now)
        .await?;
    store
        .append_load_samples(&longer, &[record(now - 1000, "2")], KEEP_MS, now)
        .await?;
    ensure_eq!(
        times(&store.load_history(&first, 0, 100, now).await?),
        vec![now - 2000],
        "the first member's samples"
    );
    ensure_eq!(
        times(&store.load_history(&longer, 0, 100, now).await?),
        vec![now - 1000],
        "the samples of a member whose id extends the first's"
    );
    let members = store.load_members(now).await?;
    ensure!(
        members.contains(&first) && members.contains(&longer),
        "both members listed: {members:?}"
    );
    let mut sorted = members.clone();
    sorted.sort();
    ensure_eq!(members, sorted, "members in id order");
    ensure!(
        store
            .load_history(&ns.user(), 0, 100, now)
            .await?
            .is_empty(),
        "an unknown member has no samples"
    );
    Ok(())
}

/// An append past a bound is refused whole, and stores nothing.
pub async fn bounds_are_refused(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let member = ns.user();
    let now = now_ms();
    let big = LoadRecord {
        at_ms: now - 1000,
        data: vec![b'x'; MAX_SAMPLE_BYTES + 1],
    };
    let refused = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Refused(_)));
    ensure!(
        refused(
            store
                .append_load_samples(&member, &[record(now - 2000, "ok"), big], KEEP_MS, now)
                .await
        ),
        "a sample past {MAX_SAMPLE_BYTES} bytes is refused"
    );
    let many: Vec<LoadRecord> = (0..=MAX_SAMPLES_PER_APPEND as u64)
        .map(|i| record(now - 1_000_000 + i, "s"))
        .collect();
    ensure!(
        refused(
            store
                .append_load_samples(&member, &many, KEEP_MS, now)
                .await
        ),
        "more than {MAX_SAMPLES_PER_APPEND} samples in one append are refused"
    );
    ensure!(
        store.load_history(&member, 0, 100, now).await?.is_empty(),
        "a refused append stores nothing"
    );
    let one = [record(now - 1000, "s")];
    for bad in [String::new(), "x".repeat(MAX_MEMBER_ID_BYTES + 1)] {
        ensure!(
            refused(store.append_load_samples(&bad, &one, KEEP_MS, now).await),
            "member id of {} bytes is refused",
            bad.len()
        );
    }
    let exact = LoadRecord {
        at_ms: now - 500,
        data: vec![b'y'; MAX_SAMPLE_BYTES],
    };
    store
        .append_load_samples(&member, std::slice::from_ref(&exact), KEEP_MS, now)
        .await?;
    ensure_eq!(
        store.load_history(&member, 0, 100, now).await?,
        vec![exact],
        "a sample of exactly {MAX_SAMPLE_BYTES} bytes"
    );
    Ok(())
}

/// At most [`MAX_MEMBERS`] members are kept: one more is refused until one
/// expires. Fills the store's members, so [`super::run_all`] runs it last; its
/// members expire a minute after it.
pub async fn members_are_capped(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let now = now_ms();
    let keep = 60_000;
    let sample = [record(now, "m")];
    let already = store.load_members(now).await?.len();
    for _ in already..MAX_MEMBERS {
        store
            .append_load_samples(&ns.user(), &sample, keep, now)
            .await?;
    }
    ensure_eq!(
        store.load_members(now).await?.len(),
        MAX_MEMBERS,
        "members listed when full"
    );
    let one_more = ns.user();
    ensure!(
        matches!(
            store
                .append_load_samples(&one_more, &sample, keep, now)
                .await,
            Err(StoreError::Refused(_))
        ),
        "a member past {MAX_MEMBERS} is refused"
    );
    let listed = store.load_members(now).await?;
    ensure!(
        !listed.contains(&one_more),
        "the refused member is not listed"
    );
    // A known member still writes.
    let known = listed.last().cloned().unwrap_or_default();
    store
        .append_load_samples(&known, &[record(now + 1, "m")], keep, now)
        .await?;
    // Once they expire, there is room again.
    // Past every other check's samples too (kept an hour).
    let later = now + KEEP_MS + keep;
    store
        .append_load_samples(&one_more, &[record(later, "m")], keep, later)
        .await?;
    ensure!(
        store.load_members(later).await?.contains(&one_more),
        "a new member once the others expired"
    );
    Ok(())
}
