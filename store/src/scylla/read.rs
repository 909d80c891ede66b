//! Reads that page: history across timeline buckets, and conversation lists.

use std::collections::HashMap;

use futures_util::{StreamExt, TryStreamExt, stream};

use super::error::{check_id, from_cql, next_row_error, pager_error, type_error};
use super::{BUCKET_SIZE, ScyllaStore};
use crate::{
    ConversationItem, HistoryQuery, HistorySlice, ListQuery, ListSlice, Message, StoreResult,
};

/// How many `last_seq` lookups of one conversation list run at once: enough to
/// hide round trips, few enough not to flood the coordinator for a huge list.
const LIST_LOOKUPS_IN_FLIGHT: usize = 16;

/// The seqs a query may return, as an inclusive range of CQL `bigint`s, or `None`
/// when no seq can qualify.
pub(super) fn seq_range(q: &HistoryQuery) -> Option<(i64, i64)> {
    let lo = match q.after {
        Some(after) => after.checked_add(1)?,
        None => 0,
    };
    let hi = match q.before {
        Some(before) => before.checked_sub(1)?,
        None => u64::MAX,
    };
    // Nothing above `i64::MAX` is ever stored (appends refuse it), so clamping
    // the top loses nothing and a bottom above it matches nothing.
    let lo = i64::try_from(lo).ok()?;
    let hi = i64::try_from(hi).unwrap_or(i64::MAX);
    (lo <= hi).then_some((lo, hi))
}

/// The bucket of a seq.
pub(super) fn bucket_of(seq: i64) -> i64 {
    // BUCKET_SIZE is a small constant; the fallback is unreachable.
    seq / i64::try_from(BUCKET_SIZE).unwrap_or(i64::MAX)
}

/// A page of history with docs/protocol.md §7.6 semantics.
///
/// The page is read with one message more than asked: if it comes back, `more` is
/// true. With `after` the walk runs forward from the lowest qualifying bucket,
/// otherwise backward from the highest, visiting only buckets the index says
/// hold messages, and stopping as soon as the page is full.
pub(super) async fn history(
    store: &ScyllaStore,
    conv: &str,
    q: HistoryQuery,
) -> StoreResult<HistorySlice> {
    check_id("conversation id", conv)?;
    let Some((lo, hi)) = seq_range(&q) else {
        return Ok(HistorySlice::default());
    };
    let want = usize::try_from(q.limit).unwrap_or(usize::MAX);
    let forward = q.after.is_some();
    let st = &store.st;
    let what = "reading history";

    let bucket_query = if forward {
        &st.select_buckets_asc
    } else {
        &st.select_buckets_desc
    };
    let mut buckets = store
        .session
        .execute_iter(bucket_query.clone(), (conv, bucket_of(lo), bucket_of(hi)))
        .await
        .map_err(|e| pager_error(what, e))?
        .rows_stream::<(i64,)>()
        .map_err(|e| type_error(what, e))?;

    let message_query = if forward {
        &st.select_messages_asc
    } else {
        &st.select_messages_desc
    };
    let mut messages: Vec<Message> = Vec::with_capacity(want.min(256).saturating_add(1));
    while messages.len() <= want {
        let Some((bucket,)) = buckets
            .try_next()
            .await
            .map_err(|e| next_row_error(what, e))?
        else {
            break;
        };
        let need = want.saturating_add(1) - messages.len();
        let limit = i32::try_from(need).unwrap_or(i32::MAX);
        let mut rows = store
            .session
            .execute_iter(message_query.clone(), (conv, bucket, lo, hi, limit))
            .await
            .map_err(|e| pager_error(what, e))?
            .rows_stream::<(i64, String, String, String, i64)>()
            .map_err(|e| type_error(what, e))?;
        while let Some((seq, id, from, body, ts_ms)) =
            rows.try_next().await.map_err(|e| next_row_error(what, e))?
        {
            messages.push(Message {
                conv: conv.to_string(),
                seq: from_cql(seq, "message seq")?,
                id,
                from,
                body,
                ts_ms: from_cql(ts_ms, "message ts_ms")?,
            });
            if messages.len() > want {
                break;
            }
        }
    }
    let more = messages.len() > want;
    messages.truncate(want);
    if !forward {
        messages.reverse();
    }
    Ok(HistorySlice { messages, more })
}

/// A page of a user's conversations in id order, with `last_seq` and the user's
/// `read_seq`.
///
/// One read of the user's links from `after` (one past the page, to learn
/// `more`), one read of the user's read positions over the page's range, then one
/// `last_seq` point read per conversation, several in flight at once.
pub(super) async fn conversation_page(
    store: &ScyllaStore,
    user: &str,
    query: &ListQuery,
) -> StoreResult<ListSlice> {
    check_id("user id", user)?;
    let after = match &query.after {
        Some(after) => {
            check_id("conversation id", after)?;
            after.as_str()
        }
        // Every conversation id sorts after the empty string.
        None => "",
    };
    let what = "listing conversations";
    let st = &store.st;
    let want = query.limit.max(1);
    let fetch = i32::try_from(want.saturating_add(1)).unwrap_or(i32::MAX);

    let mut convs: Vec<String> = store
        .session
        .execute_iter(st.select_links_after.clone(), (user, after, fetch))
        .await
        .map_err(|e| pager_error(what, e))?
        .rows_stream::<(String,)>()
        .map_err(|e| type_error(what, e))?
        .map_ok(|(conv,)| conv)
        .try_collect()
        .await
        .map_err(|e| next_row_error(what, e))?;
    // Clustering order is already byte order; sorting again is nearly free on
    // sorted input and keeps the promise whatever the server's collation.
    convs.sort_unstable();
    let more = convs.len() > want;
    convs.truncate(want);
    let Some(last) = convs.last().cloned() else {
        return Ok(ListSlice::default());
    };

    let reads: HashMap<String, i64> = store
        .session
        .execute_iter(
            st.select_reads_between.clone(),
            (user, after, last.as_str()),
        )
        .await
        .map_err(|e| pager_error(what, e))?
        .rows_stream::<(String, Option<i64>)>()
        .map_err(|e| type_error(what, e))?
        .try_filter_map(|(conv, seq)| async move { Ok(seq.map(|seq| (conv, seq))) })
        .try_collect()
        .await
        .map_err(|e| next_row_error(what, e))?;

    let lookups = convs.into_iter().map(|conv| {
        let read = reads.get(&conv).copied();
        async move {
            let last_seq = crate::MessageStore::last_seq(store, &conv).await?;
            let read_seq = match read {
                Some(seq) => from_cql(seq, "read position")?,
                None => 0,
            };
            Ok::<_, crate::StoreError>(ConversationItem {
                conv,
                last_seq,
                read_seq,
            })
        }
    });
    // `buffered` keeps the input order: the list stays sorted.
    let items = stream::iter(lookups)
        .buffered(LIST_LOOKUPS_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(ListSlice { items, more })
}
