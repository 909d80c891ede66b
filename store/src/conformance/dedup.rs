//! The idempotency window: `(conv, sender, client id) → (seq, ts)`, remembered for
//! [`DEDUP_WINDOW_MS`] after acceptance. Expiry is checked with `now_ms`
//! arithmetic, never by waiting.

use super::{CheckResult, Namespace, SharedStore, dm, message};
use crate::{AppendBatch, DEDUP_WINDOW_MS, DedupHit, DedupKey};

fn key_of(m: &crate::Message) -> DedupKey {
    DedupKey {
        conv: m.conv.clone(),
        sender: m.from.clone(),
        client_id: m.id.clone(),
    }
}

/// Appended messages are found by their exact key, and only by it.
pub async fn finds_stored_messages(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let (a, b) = (ns.user(), ns.user());
    let conv = dm(&a, &b);
    let other_conv = dm(&a, &ns.user());
    let first = message(ns, &conv, 7, &a, "one");
    let second = message(ns, &other_conv, 3, &a, "two");
    store
        .append(AppendBatch {
            messages: vec![first.clone(), second.clone()],
            links: vec![],
        })
        .await?;
    let now = first.ts_ms;

    for m in [&first, &second] {
        let want = Some(DedupHit {
            seq: m.seq,
            ts_ms: m.ts_ms,
        });
        ensure_eq!(
            store.find_dedup(&key_of(m), now).await?,
            want,
            "dedup of {}",
            m.id
        );
    }

    let mut other_id = key_of(&first);
    other_id.client_id = ns.client_id();
    let mut other_sender = key_of(&first);
    other_sender.sender = b.clone();
    let mut other_conversation = key_of(&first);
    other_conversation.conv = other_conv;
    for (what, key) in [
        ("another client id", other_id),
        ("another sender", other_sender),
        ("another conversation", other_conversation),
    ] {
        ensure_eq!(
            store.find_dedup(&key, now).await?,
            None,
            "dedup with {what}"
        );
    }
    Ok(())
}

/// An entry counts until exactly [`DEDUP_WINDOW_MS`] after acceptance and not a
/// millisecond later; a `now_ms` behind the entry (clock skew) still finds it.
pub async fn window_edges(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let (a, b) = (ns.user(), ns.user());
    let m = message(ns, &dm(&a, &b), 1, &a, "once");
    store
        .append(AppendBatch {
            messages: vec![m.clone()],
            links: vec![],
        })
        .await?;
    let key = key_of(&m);
    let hit = Some(DedupHit {
        seq: 1,
        ts_ms: m.ts_ms,
    });
    let ts = m.ts_ms;
    ensure_eq!(store.find_dedup(&key, ts).await?, hit, "at acceptance");
    ensure_eq!(
        store.find_dedup(&key, ts.saturating_sub(5_000)).await?,
        hit,
        "with now behind"
    );
    ensure_eq!(
        store.find_dedup(&key, ts + DEDUP_WINDOW_MS - 1).await?,
        hit,
        "just inside"
    );
    ensure_eq!(
        store.find_dedup(&key, ts + DEDUP_WINDOW_MS).await?,
        hit,
        "at the window's end"
    );
    ensure_eq!(
        store.find_dedup(&key, ts + DEDUP_WINDOW_MS + 1).await?,
        None,
        "past the window"
    );
    ensure_eq!(
        store.find_dedup(&key, u64::MAX).await?,
        None,
        "far in the future"
    );
    Ok(())
}
