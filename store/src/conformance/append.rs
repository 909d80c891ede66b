//! Appending: batches across conversations, `last_seq`, field fidelity, and many
//! appenders at once.

use tokio::task::JoinSet;

use super::{CheckResult, Namespace, SharedStore, dm, message, query, seqs};
use crate::{AppendBatch, ConversationItem, Message};

/// One batch writing several messages into each of many conversations, with
/// links: every message, `last_seq` and list entry appears.
pub async fn batch_with_many_conversations(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let sender = ns.user();
    let peers: Vec<String> = (0..25).map(|_| ns.user()).collect();
    let mut batch = AppendBatch::default();
    for peer in &peers {
        let conv = dm(&sender, peer);
        for seq in 1..=4 {
            batch.messages.push(message(
                ns,
                &conv,
                seq,
                &sender,
                &format!("to {peer} #{seq}"),
            ));
        }
        batch.links.push((sender.clone(), conv.clone()));
        batch.links.push((peer.clone(), conv));
    }
    let written = batch.messages.clone();
    let outcome = store.append(batch).await?;
    ensure_eq!(
        outcome,
        crate::AppendOutcome::all_stored(written.len()),
        "outcome of a batch of new messages"
    );

    for peer in &peers {
        let conv = dm(&sender, peer);
        ensure_eq!(store.last_seq(&conv).await?, 4, "last_seq of {conv}");
        let page = store.history(&conv, query(None, None, 200)).await?;
        let expected: Vec<&Message> = written.iter().filter(|m| m.conv == conv).collect();
        let got: Vec<&Message> = page.messages.iter().collect();
        ensure_eq!(got, expected, "history of {conv}");
        ensure_eq!(page.more, false, "more of {conv}");
        let list = store.conversations(peer).await?;
        let want = vec![ConversationItem {
            conv: conv.clone(),
            last_seq: 4,
            read_seq: 0,
        }];
        ensure_eq!(list, want, "conversations of {peer}");
    }

    let mut convs: Vec<String> = peers.iter().map(|p| dm(&sender, p)).collect();
    convs.sort();
    let listed: Vec<String> = store
        .conversations(&sender)
        .await?
        .into_iter()
        .map(|item| item.conv)
        .collect();
    ensure_eq!(listed, convs, "conversations of the sender, in id order");
    Ok(())
}

/// `last_seq` is the highest seq ever stored, whatever order batches arrive in.
pub async fn last_seq_is_the_maximum(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let (a, b) = (ns.user(), ns.user());
    let conv = dm(&a, &b);
    ensure_eq!(
        store.last_seq(&conv).await?,
        0,
        "last_seq of an empty conversation"
    );

    let batch = |seq| AppendBatch {
        messages: vec![message(ns, &conv, seq, &a, "x")],
        links: vec![],
    };
    store.append(batch(5)).await?;
    ensure_eq!(store.last_seq(&conv).await?, 5, "last_seq after seq 5");
    store.append(batch(3)).await?;
    ensure_eq!(
        store.last_seq(&conv).await?,
        5,
        "last_seq after a later, lower seq 3"
    );
    store.append(batch(9)).await?;
    ensure_eq!(store.last_seq(&conv).await?, 9, "last_seq after seq 9");

    let page = store.history(&conv, query(Some(0), None, 10)).await?;
    ensure_eq!(seqs(&page.messages), vec![3, 5, 9], "history in seq order");
    Ok(())
}

/// Every field comes back as written: non-ASCII text, an empty body, a 4 KiB
/// body, ids using the whole id alphabet, and distinct timestamps.
pub async fn fields_round_trip(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let (a, b) = (ns.user(), ns.user());
    let conv = dm(&a, &b);
    let long = "é".repeat(2048);
    let mut messages = vec![
        message(ns, &conv, 1, &a, "héllo wörld ✓ 你好 🎉"),
        message(ns, &conv, 2, &b, ""),
        message(ns, &conv, 3, &a, &long),
    ];
    messages[0].id = format!("{}.AZaz09_-", ns.client_id());
    messages[1].ts_ms = messages[1].ts_ms.saturating_sub(1_000);
    messages[2].ts_ms += 1;
    store
        .append(AppendBatch {
            messages: messages.clone(),
            links: vec![],
        })
        .await?;
    let page = store.history(&conv, query(None, None, 10)).await?;
    ensure_eq!(page.messages, messages, "messages read back");
    Ok(())
}

/// Many tasks append at once, to a shared conversation and their own: once every
/// append has returned `Ok`, every message is there.
pub async fn concurrent_appends_all_land(store: &SharedStore, ns: &Namespace) -> CheckResult {
    const TASKS: u64 = 64;
    let hub = ns.user();
    let shared = dm(&hub, &ns.user());
    let mut tasks = JoinSet::new();
    let mut own_convs = Vec::new();
    for i in 0..TASKS {
        let own = dm(&hub, &ns.user());
        own_convs.push(own.clone());
        let batch = AppendBatch {
            messages: vec![
                message(ns, &shared, i + 1, &hub, &format!("shared {i}")),
                message(ns, &own, 1, &hub, "own 1"),
                message(ns, &own, 2, &hub, "own 2"),
            ],
            links: vec![(hub.clone(), shared.clone()), (hub.clone(), own)],
        };
        let store = SharedStore::clone(store);
        tasks.spawn(async move { store.append(batch).await });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }

    let page = store.history(&shared, query(Some(0), None, 200)).await?;
    let all: Vec<u64> = (1..=TASKS).collect();
    ensure_eq!(
        seqs(&page.messages),
        all,
        "shared conversation after concurrent appends"
    );
    ensure_eq!(
        store.last_seq(&shared).await?,
        TASKS,
        "last_seq of the shared conversation"
    );
    for own in &own_convs {
        let page = store.history(own, query(None, None, 10)).await?;
        ensure_eq!(seqs(&page.messages), vec![1, 2], "history of {own}");
    }
    let listed = store.conversations(&hub).await?.len();
    ensure_eq!(listed, own_convs.len() + 1, "conversations of the hub user");
    Ok(())
}
