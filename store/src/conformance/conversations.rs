//! Conversation lists, read positions and unlinking.

use tokio::task::JoinSet;

use super::{CheckResult, Namespace, SharedStore, dm, group_conv, message};
use crate::{AppendBatch, ConversationItem, ListQuery, ListSlice};

/// A user's list: every linked conversation once, in id order, with its
/// `last_seq` (0 for a linked conversation without messages) and the user's
/// `read_seq`.
pub async fn list_with_last_and_read_seq(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let user = ns.user();
    ensure_eq!(
        store.conversations(&user).await?,
        vec![],
        "conversations of a new user"
    );

    let peers = [ns.user(), ns.user(), ns.user()];
    let group = group_conv(&ns.group_id());
    // Links arrive in no particular order and more than once.
    let mut batch = AppendBatch::default();
    for (i, peer) in peers.iter().enumerate().rev() {
        let conv = dm(&user, peer);
        let count = i as u64 + 1;
        for seq in 1..=count {
            batch.messages.push(message(ns, &conv, seq, peer, "hi"));
        }
        batch.links.push((user.clone(), conv.clone()));
        batch.links.push((user.clone(), conv));
    }
    batch.links.push((user.clone(), group.clone()));
    store.append(batch).await?;
    store
        .append(AppendBatch {
            messages: vec![],
            links: vec![(user.clone(), dm(&user, &peers[0]))],
        })
        .await?;

    let mut want: Vec<ConversationItem> = peers
        .iter()
        .enumerate()
        .map(|(i, peer)| ConversationItem {
            conv: dm(&user, peer),
            last_seq: i as u64 + 1,
            read_seq: 0,
        })
        .collect();
    want.push(ConversationItem {
        conv: group.clone(),
        last_seq: 0,
        read_seq: 0,
    });
    want.sort_by(|x, y| x.conv.cmp(&y.conv));
    ensure_eq!(
        store.conversations(&user).await?,
        want,
        "conversations before reading"
    );

    let read_conv = dm(&user, &peers[2]);
    ensure_eq!(store.set_read(&user, &read_conv, 2).await?, 2, "set_read");
    for item in &mut want {
        if item.conv == read_conv {
            item.read_seq = 2;
        }
    }
    ensure_eq!(
        store.conversations(&user).await?,
        want,
        "conversations after reading"
    );
    Ok(())
}

/// `set_read` raises and never lowers; positions are per user and conversation.
pub async fn read_positions_never_move_backwards(
    store: &SharedStore,
    ns: &Namespace,
) -> CheckResult {
    let (alice, bob) = (ns.user(), ns.user());
    let conv = dm(&alice, &bob);
    let other = dm(&alice, &ns.user());
    ensure_eq!(
        store.read_seq(&alice, &conv).await?,
        0,
        "read_seq never set"
    );
    ensure_eq!(
        store.set_read(&alice, &conv, 0).await?,
        0,
        "set_read 0 on a new position"
    );

    ensure_eq!(store.set_read(&alice, &conv, 5).await?, 5, "set_read 5");
    ensure_eq!(
        store.set_read(&alice, &conv, 3).await?,
        5,
        "set_read 3 after 5 answers"
    );
    ensure_eq!(
        store.read_seq(&alice, &conv).await?,
        5,
        "read_seq after a lower set_read"
    );
    ensure_eq!(
        store.set_read(&alice, &conv, 5).await?,
        5,
        "set_read 5 again"
    );
    ensure_eq!(store.set_read(&alice, &conv, 7).await?, 7, "set_read 7");
    ensure_eq!(store.read_seq(&alice, &conv).await?, 7, "read_seq after 7");

    ensure_eq!(
        store.read_seq(&bob, &conv).await?,
        0,
        "another user's position"
    );
    ensure_eq!(
        store.read_seq(&alice, &other).await?,
        0,
        "another conversation's position"
    );
    Ok(())
}

/// Many racing `set_read`s of one position: the highest wins, and no call is
/// told a position below the one it asked for.
pub async fn concurrent_reads_keep_the_highest(store: &SharedStore, ns: &Namespace) -> CheckResult {
    const HIGHEST: u64 = 50;
    let user = ns.user();
    let conv = dm(&user, &ns.user());
    let mut tasks = JoinSet::new();
    // Interleave high and low values so the order of arrival is mixed.
    for i in 0..HIGHEST {
        let seq = if i % 2 == 0 { HIGHEST - i } else { i };
        let (store, user, conv) = (SharedStore::clone(store), user.clone(), conv.clone());
        tasks.spawn(async move { (seq, store.set_read(&user, &conv, seq).await) });
    }
    while let Some(joined) = tasks.join_next().await {
        let (asked, answered) = joined?;
        let answered = answered?;
        ensure!(answered >= asked, "set_read({asked}) answered {answered}");
    }
    ensure_eq!(
        store.read_seq(&user, &conv).await?,
        HIGHEST,
        "read_seq after the race"
    );
    Ok(())
}

/// `unlink` removes exactly one entry, is idempotent, and a later link brings the
/// conversation back.
pub async fn unlink_removes_one_conversation(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let user = ns.user();
    let (keep, drop) = (dm(&user, &ns.user()), group_conv(&ns.group_id()));
    let link = |conv: &String| AppendBatch {
        messages: vec![],
        links: vec![(user.clone(), conv.clone())],
    };
    store.append(link(&keep)).await?;
    store.append(link(&drop)).await?;
    ensure_eq!(
        store.conversations(&user).await?.len(),
        2,
        "linked conversations"
    );

    store.unlink(&user, &drop).await?;
    let listed: Vec<String> = store
        .conversations(&user)
        .await?
        .into_iter()
        .map(|item| item.conv)
        .collect();
    ensure_eq!(listed, vec![keep.clone()], "conversations after unlink");

    store.unlink(&user, &drop).await?;
    store.unlink(&user, &group_conv(&ns.group_id())).await?;
    store.unlink(&ns.user(), &keep).await?;
    ensure_eq!(
        store.conversations(&user).await?.len(),
        1,
        "after repeated unlinks"
    );

    store.append(link(&drop)).await?;
    ensure_eq!(
        store.conversations(&user).await?.len(),
        2,
        "after linking again"
    );
    Ok(())
}

/// `conversation_page` walks the list in id order: the first `limit` after
/// `after`, `more` exactly when conversations follow the page, read positions on
/// the items; paging to the end yields every conversation once.
pub async fn pages_walk_the_list_in_id_order(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let user = ns.user();
    let convs: Vec<String> = {
        let mut convs: Vec<String> = (0..7).map(|_| group_conv(&ns.group_id())).collect();
        convs.sort();
        convs
    };
    let mut batch = AppendBatch::default();
    for conv in convs.iter().rev() {
        batch.links.push((user.clone(), conv.clone()));
    }
    batch.messages.push(message(ns, &convs[2], 1, &user, "hi"));
    store.append(batch).await?;
    store.set_read(&user, &convs[2], 1).await?;

    let page = |after: Option<&String>, limit: usize| ListQuery {
        after: after.cloned(),
        limit,
    };
    let first = store.conversation_page(&user, page(None, 3)).await?;
    let listed =
        |slice: &ListSlice| -> Vec<String> { slice.items.iter().map(|i| i.conv.clone()).collect() };
    ensure_eq!(listed(&first), convs[..3].to_vec(), "first page");
    ensure!(first.more, "more after the first page");
    ensure_eq!(
        (first.items[2].last_seq, first.items[2].read_seq),
        (1, 1),
        "last and read seq on a page"
    );
    let second = store
        .conversation_page(&user, page(Some(&convs[2]), 3))
        .await?;
    ensure_eq!(listed(&second), convs[3..6].to_vec(), "second page");
    ensure!(second.more, "more after the second page");
    let last = store
        .conversation_page(&user, page(Some(&convs[5]), 3))
        .await?;
    ensure_eq!(listed(&last), convs[6..].to_vec(), "last page");
    ensure!(!last.more, "no more after the last page");
    let exact = store
        .conversation_page(&user, page(Some(&convs[3]), 3))
        .await?;
    ensure_eq!(
        listed(&exact),
        convs[4..].to_vec(),
        "a page that ends the list"
    );
    ensure!(!exact.more, "no more when the page ends exactly at the end");
    let past = store
        .conversation_page(&user, page(Some(&convs[6]), 3))
        .await?;
    ensure_eq!(
        past,
        ListSlice::default(),
        "a page after the last conversation"
    );
    // `after` need not be in the list: the page starts at the next id.
    let between = format!("{}-", convs[0]);
    let from_between = store
        .conversation_page(&user, page(Some(&between), 1))
        .await?;
    ensure_eq!(
        listed(&from_between),
        convs[1..2].to_vec(),
        "a page after an id not listed"
    );
    // Another user's list is not part of this one.
    ensure_eq!(
        store.conversation_page(&ns.user(), page(None, 10)).await?,
        ListSlice::default(),
        "a new user's first page"
    );
    ensure_eq!(
        store.conversations(&user).await?.len(),
        7,
        "paging to the end"
    );
    Ok(())
}
