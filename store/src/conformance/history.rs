//! History pages, docs/protocol.md §7.6: ascending seq; with `after` the oldest `limit`
//! past it, with `before` the newest `limit` under it, with both the oldest
//! `limit` between them, with neither the newest `limit`. `more` says whether
//! messages exist beyond the page in its direction — past its last message with
//! `after`, before its first otherwise — and within the bounds asked for: with
//! both bounds, messages at or past `before` do not count, or a client filling
//! a gap would page forever.

use super::{CheckResult, Namespace, SharedStore, dm, message, query, seqs};
use crate::{AppendBatch, HistorySlice};

/// Every mode on a conversation that has nothing: an empty page, `more` false.
pub async fn empty_conversation(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let conv = dm(&ns.user(), &ns.user());
    let modes = [
        (None, None),
        (Some(0), None),
        (None, Some(10)),
        (Some(0), Some(10)),
    ];
    for (after, before) in modes {
        let page = store.history(&conv, query(after, before, 50)).await?;
        ensure_eq!(
            page,
            HistorySlice::default(),
            "history(after {after:?}, before {before:?}) of an empty conversation"
        );
    }
    ensure_eq!(
        store.last_seq(&conv).await?,
        0,
        "last_seq of an empty conversation"
    );
    Ok(())
}

/// The seqs stored for [`every_mode_and_edge`]: gaps included, since seqs may be
/// skipped (docs/protocol.md §7.4).
const STORED: [u64; 10] = [1, 2, 3, 5, 8, 9, 10, 12, 15, 20];

/// `(after, before, limit, expected seqs, expected more)` for [`every_mode_and_edge`].
type Case = (Option<u64>, Option<u64>, u32, &'static [u64], bool);

const CASES: &[Case] = &[
    // Neither: the newest `limit`; `more` if older ones exist.
    (None, None, 3, &[12, 15, 20], true),
    (None, None, 9, &[2, 3, 5, 8, 9, 10, 12, 15, 20], true),
    (None, None, 10, &STORED, false),
    (None, None, 200, &STORED, false),
    // After: the oldest `limit` past it; `more` if newer ones exist.
    (Some(0), None, 3, &[1, 2, 3], true),
    (Some(0), None, 10, &STORED, false),
    (Some(0), None, 1, &[1], true),
    (Some(4), None, 1, &[5], true),
    (Some(5), None, 2, &[8, 9], true),
    (Some(12), None, 1, &[15], true),
    (Some(12), None, 2, &[15, 20], false),
    (Some(19), None, 5, &[20], false),
    (Some(20), None, 5, &[], false),
    (Some(100), None, 5, &[], false),
    (Some(u64::MAX), None, 5, &[], false),
    // Before: the newest `limit` under it; `more` if older ones exist.
    (None, Some(0), 3, &[], false),
    (None, Some(1), 5, &[], false),
    (None, Some(2), 5, &[1], false),
    (None, Some(4), 3, &[1, 2, 3], false),
    (None, Some(5), 2, &[2, 3], true),
    (None, Some(12), 3, &[8, 9, 10], true),
    (None, Some(20), 9, &[1, 2, 3, 5, 8, 9, 10, 12, 15], false),
    (None, Some(21), 10, &STORED, false),
    (None, Some(100), 3, &[12, 15, 20], true),
    (None, Some(u64::MAX), 200, &STORED, false),
    // Both: the oldest `limit` strictly between them; `more` if more lie between.
    (Some(2), Some(12), 3, &[3, 5, 8], true),
    (Some(2), Some(12), 5, &[3, 5, 8, 9, 10], false),
    (Some(2), Some(12), 6, &[3, 5, 8, 9, 10], false),
    (Some(2), Some(5), 5, &[3], false),
    (Some(0), Some(2), 10, &[1], false),
    (Some(0), Some(21), 10, &STORED, false),
    (Some(5), Some(8), 5, &[], false),
    (Some(10), Some(12), 5, &[], false),
    (Some(10), Some(5), 5, &[], false),
    (Some(3), Some(3), 5, &[], false),
];

/// A table of queries over one conversation, covering every mode, exact page
/// boundaries, `after` past the end and `before` at the start.
pub async fn every_mode_and_edge(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let (a, b) = (ns.user(), ns.user());
    let conv = dm(&a, &b);
    let written: Vec<_> = STORED
        .iter()
        .map(|&seq| {
            message(
                ns,
                &conv,
                seq,
                if seq % 2 == 0 { &a } else { &b },
                &format!("m{seq}"),
            )
        })
        .collect();
    store
        .append(AppendBatch {
            messages: written.clone(),
            links: vec![],
        })
        .await?;
    ensure_eq!(store.last_seq(&conv).await?, 20, "last_seq");

    for &(after, before, limit, want, more) in CASES {
        let what = format!("history(after {after:?}, before {before:?}, limit {limit})");
        let page = store.history(&conv, query(after, before, limit)).await?;
        ensure_eq!(seqs(&page.messages), want.to_vec(), "{what} seqs");
        ensure_eq!(page.more, more, "{what} more");
        for m in &page.messages {
            let original = written.iter().find(|w| w.seq == m.seq);
            ensure!(
                original == Some(m),
                "{what}: message {} differs from what was written",
                m.seq
            );
        }
    }
    Ok(())
}

/// Paging forward with `after` and backward with `before` visits every message
/// exactly once, and `more` turns false exactly at the end.
pub async fn paging_walks_everything(store: &SharedStore, ns: &Namespace) -> CheckResult {
    const TOTAL: u64 = 250;
    let (a, b) = (ns.user(), ns.user());
    let conv = dm(&a, &b);
    let all: Vec<u64> = (1..=TOTAL).collect();
    for chunk in all.chunks(100) {
        let messages = chunk
            .iter()
            .map(|&seq| message(ns, &conv, seq, &a, "w"))
            .collect();
        store
            .append(AppendBatch {
                messages,
                links: vec![],
            })
            .await?;
    }

    let page = store.history(&conv, query(Some(0), None, 200)).await?;
    ensure_eq!(
        seqs(&page.messages),
        (1..=200).collect::<Vec<_>>(),
        "first forward page"
    );
    ensure!(page.more, "first forward page of 200 out of 250 has more");
    let page = store.history(&conv, query(Some(200), None, 200)).await?;
    ensure_eq!(
        seqs(&page.messages),
        (201..=TOTAL).collect::<Vec<_>>(),
        "last forward page"
    );
    ensure!(!page.more, "last forward page has no more");

    let page = store.history(&conv, query(None, None, 200)).await?;
    ensure_eq!(
        seqs(&page.messages),
        (51..=TOTAL).collect::<Vec<_>>(),
        "newest page"
    );
    ensure!(page.more, "newest page of 200 out of 250 has more");
    let page = store.history(&conv, query(None, Some(51), 200)).await?;
    ensure_eq!(
        seqs(&page.messages),
        (1..=50).collect::<Vec<_>>(),
        "oldest page"
    );
    ensure!(!page.more, "oldest page has no more");

    // Small pages: 250 = 35 × 7 + 5, so 36 pages each way.
    let (mut forward, mut pages, mut after) = (Vec::new(), 0, 0);
    loop {
        let page = store.history(&conv, query(Some(after), None, 7)).await?;
        pages += 1;
        forward.extend(seqs(&page.messages));
        match page.messages.last() {
            Some(last) if page.more => after = last.seq,
            _ => break,
        }
        ensure!(pages <= 36, "forward walk does not end");
    }
    ensure_eq!(forward, all, "forward walk in pages of 7");
    ensure_eq!(pages, 36, "forward walk page count");

    let (mut backward, mut pages, mut before) = (Vec::new(), 0, None);
    loop {
        let page = store.history(&conv, query(None, before, 7)).await?;
        pages += 1;
        let mut chunk = seqs(&page.messages);
        chunk.extend(backward);
        backward = chunk;
        match page.messages.first() {
            Some(first) if page.more => before = Some(first.seq),
            _ => break,
        }
        ensure!(pages <= 36, "backward walk does not end");
    }
    ensure_eq!(backward, all, "backward walk in pages of 7");
    ensure_eq!(pages, 36, "backward walk page count");
    Ok(())
}

/// Conversations whose ids share a prefix (`…:u1` and `…:u10`) never see each
/// other's messages.
pub async fn conversations_stay_apart(store: &SharedStore, ns: &Namespace) -> CheckResult {
    // `peer < short < long` and `short` is a prefix of `long`, so the two
    // conversation ids are `dm:<peer>:<short>` and the same with a `0` appended.
    let peer = ns.user();
    let short = format!("{peer}x");
    let long = format!("{short}0");
    let (conv_short, conv_long) = (dm(&peer, &short), dm(&peer, &long));
    let mut messages = Vec::new();
    for seq in 1..=3 {
        messages.push(message(ns, &conv_short, seq, &peer, "short"));
        messages.push(message(ns, &conv_long, seq * 10, &peer, "long"));
    }
    store
        .append(AppendBatch {
            messages,
            links: vec![],
        })
        .await?;
    for (conv, want, last) in [
        (&conv_short, vec![1, 2, 3], 3),
        (&conv_long, vec![10, 20, 30], 30),
    ] {
        for q in [query(None, None, 50), query(Some(0), None, 50)] {
            let page = store.history(conv, q).await?;
            ensure_eq!(seqs(&page.messages), want, "history of {conv}");
            ensure!(!page.more, "history of {conv} has no more");
        }
        ensure_eq!(store.last_seq(conv).await?, last, "last_seq of {conv}");
    }
    Ok(())
}
