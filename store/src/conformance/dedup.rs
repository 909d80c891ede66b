//! The idempotency window: `(conv, sender, client id) → (seq, ts)`, remembered for
//! [`DEDUP_WINDOW_MS`] after acceptance, and insert-if-absent: a second append of
//! a key stores nothing and names the first seq, also when appends race. Expiry
//! is checked with `now_ms` arithmetic (and old `ts_ms`), never by waiting.

use tokio::task::JoinSet;

use super::{CheckResult, Namespace, SharedStore, dm, message, query, seqs};
use crate::{AppendBatch, AppendOutcome, Appended, DEDUP_WINDOW_MS, DedupHit, DedupKey};

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

/// A second append of a stored message's key stores nothing and names the first
/// seq and time, whatever seq and body it carries; the conversation holds the
/// first message only.
pub async fn second_append_stores_nothing(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let (a, b) = (ns.user(), ns.user());
    let conv = dm(&a, &b);
    let first = message(ns, &conv, 5, &a, "first");
    let outcome = store
        .append(AppendBatch {
            messages: vec![first.clone()],
            links: vec![],
        })
        .await?;
    ensure_eq!(outcome, AppendOutcome::all_stored(1), "the first append");
    let mut again = first.clone();
    again.seq = 9;
    again.body = "second".into();
    again.ts_ms = first.ts_ms + 1_000;
    let outcome = store
        .append(AppendBatch {
            messages: vec![again],
            links: vec![],
        })
        .await?;
    let hit = DedupHit {
        seq: 5,
        ts_ms: first.ts_ms,
    };
    ensure_eq!(
        outcome,
        AppendOutcome {
            messages: vec![Appended::Duplicate(hit)]
        },
        "the second append of one key"
    );
    let page = store.history(&conv, query(None, None, 10)).await?;
    ensure_eq!(page.messages, vec![first], "history after both appends");
    ensure_eq!(store.last_seq(&conv).await?, 5, "last_seq after both");
    Ok(())
}

/// Two messages with one key in one batch: the first is stored, the second is
/// its duplicate.
pub async fn duplicate_within_a_batch(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let (a, b) = (ns.user(), ns.user());
    let conv = dm(&a, &b);
    let first = message(ns, &conv, 1, &a, "one");
    let mut twin = first.clone();
    twin.seq = 2;
    let other = message(ns, &conv, 3, &a, "three");
    let outcome = store
        .append(AppendBatch {
            messages: vec![first.clone(), twin, other.clone()],
            links: vec![],
        })
        .await?;
    let hit = DedupHit {
        seq: 1,
        ts_ms: first.ts_ms,
    };
    ensure_eq!(
        outcome,
        AppendOutcome {
            messages: vec![Appended::Stored, Appended::Duplicate(hit), Appended::Stored]
        },
        "a batch holding one key twice"
    );
    let page = store.history(&conv, query(None, None, 10)).await?;
    ensure_eq!(seqs(&page.messages), vec![1, 3], "history of the batch");
    Ok(())
}

/// Many appends of one key at once, each with a seq of its own (as owners
/// racing each other would assign): exactly one is stored, every other answers
/// with its seq — as a duplicate, or (a backend whose claim and message are two
/// writes, while the winner's write is still on its way) as unsettled — and the
/// conversation holds one message.
pub async fn racing_appends_store_once(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let (a, b) = (ns.user(), ns.user());
    let conv = dm(&a, &b);
    let original = message(ns, &conv, 1, &a, "raced");
    let mut tasks = JoinSet::new();
    for i in 0..16u64 {
        let mut m = original.clone();
        m.seq = 1 + i * 1_000;
        let store = SharedStore::clone(store);
        tasks.spawn(async move {
            let outcome = store
                .append(AppendBatch {
                    messages: vec![m.clone()],
                    links: vec![],
                })
                .await?;
            Ok::<_, crate::StoreError>((m, outcome.of(0)))
        });
    }
    let mut winners = Vec::new();
    let mut answers = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (m, appended) = joined??;
        match appended {
            Appended::Stored => winners.push(m),
            Appended::Duplicate(hit) | Appended::Unsettled(hit) => answers.push(hit),
        }
    }
    ensure_eq!(winners.len(), 1, "appends of one key that stored it");
    let won = winners.remove(0);
    let want = DedupHit {
        seq: won.seq,
        ts_ms: won.ts_ms,
    };
    ensure!(
        answers.iter().all(|hit| *hit == want),
        "every other append names the stored seq {want:?}: {answers:?}"
    );
    let page = store.history(&conv, query(None, None, 100)).await?;
    ensure_eq!(page.messages, vec![won], "the conversation holds it once");
    Ok(())
}

/// A key whose entry is past the window counts as new: the message is stored
/// again, at its own seq.
pub async fn past_the_window_stores_again(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let (a, b) = (ns.user(), ns.user());
    let conv = dm(&a, &b);
    let mut old = message(ns, &conv, 1, &a, "yesterday");
    old.ts_ms = old.ts_ms.saturating_sub(DEDUP_WINDOW_MS + 60_000);
    store
        .append(AppendBatch {
            messages: vec![old.clone()],
            links: vec![],
        })
        .await?;
    let mut new = old.clone();
    new.seq = 2;
    new.ts_ms = super::now_ms();
    let outcome = store
        .append(AppendBatch {
            messages: vec![new],
            links: vec![],
        })
        .await?;
    ensure_eq!(
        outcome,
        AppendOutcome::all_stored(1),
        "an append of a key past its window"
    );
    let page = store.history(&conv, query(None, None, 10)).await?;
    ensure_eq!(seqs(&page.messages), vec![1, 2], "both are stored");
    Ok(())
}
