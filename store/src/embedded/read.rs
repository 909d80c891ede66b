//! Reads that scan: history pages and conversation lists. They run on the blocking
//! pool because a scan may touch several on-disk blocks.

use std::ops::Bound;

use fjall::Readable;

use super::layout::{self, Space, Spaces, check_id};
use super::{backend, record};
use crate::{ConversationItem, HistoryQuery, HistorySlice, ListQuery, ListSlice, StoreResult};

/// A page of history with docs/protocol.md §7.6 semantics.
///
/// The page is read with one extra message: if it comes back, `more` is true. With
/// `after` the scan runs forward from `after`; otherwise it runs backward from
/// `before` (or the end), then the page is put back in ascending order.
pub(super) fn history(spaces: &Spaces, conv: &str, q: HistoryQuery) -> StoreResult<HistorySlice> {
    check_id("conversation id", conv)?;
    let lo = match q.after {
        Some(after) => match after.checked_add(1) {
            Some(lo) => lo,
            None => return Ok(HistorySlice::default()),
        },
        None => 0,
    };
    let hi = match q.before {
        Some(before) if before <= lo => return Ok(HistorySlice::default()),
        Some(before) => Bound::Excluded(layout::message(conv, before)),
        None => Bound::Included(layout::message(conv, u64::MAX)),
    };
    let range = (Bound::Included(layout::message(conv, lo)), hi);
    let want = usize::try_from(q.limit).unwrap_or(usize::MAX);
    let prefix_len = layout::prefix(conv).len();
    let decode = |guard: fjall::Guard| -> StoreResult<crate::Message> {
        let (key, value) = guard.into_inner().map_err(backend)?;
        let seq = layout::message_seq(&key, prefix_len)?;
        record::decode_message(conv, seq, &value)
    };

    let keyspace = spaces.get(Space::Messages);
    // Whole group commits only: a page must never hold a message without the
    // conversation's earlier ones (the SDK trusts a page as complete).
    let snapshot = spaces.snapshot();
    let mut messages = Vec::with_capacity(want.min(256).saturating_add(1));
    if q.after.is_some() {
        for guard in snapshot.range(keyspace, range).take(want.saturating_add(1)) {
            messages.push(decode(guard)?);
        }
    } else {
        for guard in snapshot
            .range(keyspace, range)
            .rev()
            .take(want.saturating_add(1))
        {
            messages.push(decode(guard)?);
        }
    }
    let more = messages.len() > want;
    messages.truncate(want);
    if q.after.is_none() {
        messages.reverse();
    }
    Ok(HistorySlice { messages, more })
}

/// A page of a user's conversations in id order, with `last_seq` and the user's
/// `read_seq`: one range scan of the user's links from `after`, read one past the
/// page to learn `more`, and two point reads per conversation of the page.
pub(super) fn conversation_page(
    spaces: &Spaces,
    user: &str,
    query: &ListQuery,
) -> StoreResult<ListSlice> {
    check_id("user id", user)?;
    let prefix = layout::prefix(user);
    let lo = match &query.after {
        Some(after) => {
            check_id("conversation id", after)?;
            Bound::Excluded(layout::pair(user, after))
        }
        None => Bound::Included(prefix.clone()),
    };
    let hi = Bound::Excluded(layout::prefix_end(user));
    let meta = spaces.get(Space::ConvMeta);
    let reads = spaces.get(Space::ReadPos);
    let snapshot = spaces.snapshot();
    let want = query.limit.max(1);
    let mut items = Vec::with_capacity(want.min(1_024));
    let mut more = false;
    for guard in snapshot.range(spaces.get(Space::UserConvs), (lo, hi)) {
        if items.len() == want {
            more = true;
            break;
        }
        let key = guard.key().map_err(backend)?;
        let conv = layout::pair_tail(&key, prefix.len())?;
        let last_seq = match snapshot.get(meta, conv.as_bytes()).map_err(backend)? {
            Some(v) => record::decode_u64(&v, "conversation meta")?,
            None => 0,
        };
        let read_seq = match snapshot.get(reads, &key).map_err(backend)? {
            Some(v) => record::decode_u64(&v, "read position")?,
            None => 0,
        };
        items.push(ConversationItem {
            conv,
            last_seq,
            read_seq,
        });
    }
    Ok(ListSlice { items, more })
}

/// How many groups `user` is linked to, counting at most `up_to`: a scan of the
/// user's links that start with `group:`, which stops at `up_to`.
pub(super) fn count_groups(spaces: &Spaces, user: &str, up_to: u64) -> StoreResult<u64> {
    check_id("user id", user)?;
    let prefix = layout::pair(user, "group:");
    let snapshot = spaces.snapshot();
    let mut count = 0u64;
    for guard in snapshot.prefix(spaces.get(Space::UserConvs), &prefix) {
        if count >= up_to {
            break;
        }
        guard.key().map_err(backend)?;
        count += 1;
    }
    Ok(count)
}
