//! History pages (docs/protocol.md §7.6, §7.7) and offline catch-up (§4.5) over real
//! sockets to a real node, mixing TCP-binary and WebSocket-JSON sessions.
//!
//! Expected pages come from the list of acked seqs, not from assumed seq values:
//! seqs may be skipped, and `history` is the authority.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use chorus_wire::{ConversationItem, ErrorCode, Message};
use common::{
    RawClient, RawTcp, RawWs, ack_of, conversations, frames_before_pong, history, send_msg,
    start_node,
};

/// Pipelines `n` messages `m0..` from `c` to `to` and returns their acked seqs, in
/// sending order.
async fn send_many(c: &mut impl RawClient, to: &str, n: usize) -> Vec<u64> {
    for i in 0..n {
        send_msg(c, &format!("m{i}"), to, &format!("body {i}")).await;
    }
    let mut seqs = Vec::with_capacity(n);
    for i in 0..n {
        seqs.push(ack_of(c, &format!("m{i}")).await.1);
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "one session's sends get increasing seqs"
    );
    seqs
}

/// The page docs/protocol.md §7.6 prescribes over the stored `seqs` (ascending):
/// `(seqs of the page, more)`.
fn expected(
    seqs: &[u64],
    after: Option<u64>,
    before: Option<u64>,
    limit: usize,
) -> (Vec<u64>, bool) {
    let range: Vec<u64> = seqs
        .iter()
        .copied()
        .filter(|s| after.is_none_or(|a| *s > a) && before.is_none_or(|b| *s < b))
        .collect();
    if after.is_some() {
        let page = range.iter().copied().take(limit).collect();
        (page, range.len() > limit)
    } else {
        let start = range.len().saturating_sub(limit);
        (range[start..].to_vec(), start > 0)
    }
}

/// Asks for a page and checks it against [`expected`], message by message.
async fn check_page(
    c: &mut impl RawClient,
    conv: &str,
    seqs: &[u64],
    after: Option<u64>,
    before: Option<u64>,
    limit: Option<u32>,
    effective_limit: usize,
) -> Vec<Message> {
    let (page, more) = history(c, conv, after, before, limit)
        .await
        .unwrap_or_else(|code| panic!("history failed: {code}"));
    let got: Vec<u64> = page.iter().map(|m| m.seq).collect();
    let (want, want_more) = expected(seqs, after, before, effective_limit);
    let what = format!("after {after:?} before {before:?} limit {limit:?}");
    assert_eq!(got, want, "page seqs, {what}");
    assert_eq!(more, want_more, "more, {what}");
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "ascending order, {what}"
    );
    for m in &page {
        let i = seqs.iter().position(|s| *s == m.seq).expect("an acked seq");
        assert_eq!(
            (
                m.conv.as_str(),
                m.id.as_str(),
                m.from.as_str(),
                m.body.as_str()
            ),
            (
                conv,
                format!("m{i}").as_str(),
                "alice",
                format!("body {i}").as_str()
            ),
            "message content, {what}"
        );
    }
    page
}

/// A history query: `after`, `before`, the `limit` asked for, the limit in effect.
type Case = (Option<u64>, Option<u64>, Option<u32>, usize);

#[tokio::test]
async fn history_pages_over_120_messages() {
    let node = start_node().await;
    let mut alice = RawTcp::login(&node, "alice").await;
    let mut bob = RawWs::login(&node, "bob").await;
    let conv = "dm:alice:bob";
    let s = send_many(&mut alice, "user:bob", 120).await;
    let n = s.len();

    let cases: Vec<Case> = vec![
        // With `after`: the oldest `limit` past it.
        (Some(0), None, Some(50), 50),
        (Some(0), None, None, 50),
        (Some(0), None, Some(120), 120),
        (Some(0), None, Some(119), 119),
        (Some(s[49]), None, Some(50), 50),
        (Some(s[69]), None, Some(50), 50), // exactly the rest: more = false
        (Some(s[99]), None, Some(50), 50),
        (Some(s[n - 1]), None, Some(10), 10),
        (Some(s[n - 1] + 1000), None, None, 50),
        // With `before`: the newest `limit` before it.
        (None, Some(s[50]), Some(20), 20),
        (None, Some(s[20]), Some(20), 20), // exactly the rest: more = false
        (None, Some(s[10]), Some(50), 50),
        (None, Some(s[0]), None, 50),
        (None, Some(s[n - 1] + 1), Some(30), 30),
        // Both: the oldest `limit` strictly between. (Only a page cut short by its
        // limit: whether `more` looks past `before` is not pinned down.)
        (Some(s[9]), Some(s[30]), Some(5), 5),
        (Some(s[59]), Some(s[100]), Some(40), 40),
        // Neither: the newest `limit`.
        (None, None, Some(30), 30),
        (None, None, Some(120), 120),
        (None, None, None, 50),
    ];
    for (after, before, limit, effective) in cases {
        check_page(&mut bob, conv, &s, after, before, limit, effective).await;
        check_page(&mut alice, conv, &s, after, before, limit, effective).await;
    }

    // Paging forward from the beginning with `after` = the last seq held, and
    // backward from the end with `before` = the first seq held, each see all 120.
    let mut held = Vec::new();
    let mut after = 0;
    loop {
        let page = check_page(&mut bob, conv, &s, Some(after), None, Some(50), 50).await;
        held.extend(page.iter().map(|m| m.seq));
        match page.last() {
            Some(m) if held.len() < n => after = m.seq,
            _ => break,
        }
    }
    assert_eq!(held, s);
    let mut held = Vec::new();
    let mut before = None;
    loop {
        let page = check_page(&mut alice, conv, &s, None, before, Some(50), 50).await;
        let first = page.first().map(|m| m.seq);
        held.splice(0..0, page.iter().map(|m| m.seq));
        match first {
            Some(f) if held.len() < n => before = Some(f),
            _ => break,
        }
    }
    assert_eq!(held, s);
    node.node.shutdown().await;
}

#[tokio::test]
async fn a_limit_above_200_is_capped() {
    let node = start_node().await;
    let mut alice = RawWs::login(&node, "alice").await;
    let mut bob = RawTcp::login(&node, "bob").await;
    let conv = "dm:alice:bob";
    let s = send_many(&mut alice, "user:bob", 230).await;

    check_page(&mut bob, conv, &s, None, None, Some(201), 200).await;
    check_page(&mut bob, conv, &s, None, None, Some(u32::MAX), 200).await;
    check_page(&mut bob, conv, &s, Some(0), None, Some(1000), 200).await;
    check_page(&mut alice, conv, &s, None, Some(s[220]), Some(500), 200).await;
    check_page(&mut alice, conv, &s, None, None, Some(200), 200).await;
    node.node.shutdown().await;
}

#[tokio::test]
async fn history_access_and_bad_requests() {
    let node = start_node().await;
    let mut alice = RawTcp::login(&node, "alice").await;
    let mut bob = RawWs::login(&node, "bob").await;
    let mut carol = RawWs::login(&node, "carol").await;
    let s = send_many(&mut alice, "user:bob", 3).await;
    check_page(&mut bob, "dm:alice:bob", &s, None, None, None, 50).await;

    // Not a party.
    assert_eq!(
        history(&mut carol, "dm:alice:bob", None, None, None).await,
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(
        history(&mut carol, "dm:alice:bob", Some(0), None, Some(10)).await,
        Err(ErrorCode::Forbidden)
    );
    // Not a conversation id, or not one with history.
    for bad in [
        "alice",
        "dm:alice",
        "dm:alice:b ob",
        "group:",
        "group:a/b",
        "user:bob",
        "",
    ] {
        assert_eq!(
            history(&mut alice, bad, None, None, None).await,
            Err(ErrorCode::Invalid),
            "conv {bad:?}"
        );
    }
    assert_eq!(
        history(&mut alice, "live:room1", None, None, None).await,
        Err(ErrorCode::Invalid)
    );
    assert_eq!(
        history(&mut alice, "dm:alice:bob", None, None, Some(0)).await,
        Err(ErrorCode::Invalid)
    );

    // A dm of the asking user with no messages is an empty page, not an error.
    assert_eq!(
        history(&mut alice, "dm:alice:zed", None, None, None).await,
        Ok((vec![], false))
    );
    assert_eq!(
        history(&mut alice, "dm:alice:alice", Some(0), None, None).await,
        Ok((vec![], false))
    );
    assert_eq!(
        history(&mut carol, "dm:bob:carol", None, Some(10), Some(5)).await,
        Ok((vec![], false))
    );
    // The connection stays usable after the errors.
    assert_eq!(frames_before_pong(&mut alice).await, vec![]);
    node.node.shutdown().await;
}

#[tokio::test]
async fn an_offline_user_catches_up_with_conversations_and_history() {
    let node = start_node().await;
    let mut alice = RawWs::login(&node, "alice").await;
    let conv = "dm:alice:bob";

    // Bob is offline for the first 100, catches up, then misses 20 more.
    let s = send_many(&mut alice, "user:bob", 100).await;
    let mut bob = RawTcp::login(&node, "bob").await;
    let items = conversations(&mut bob).await;
    assert_eq!(
        items,
        vec![ConversationItem {
            conv: conv.into(),
            last_seq: s[99],
            read_seq: 0
        }]
    );
    let mut held = catch_up(&mut bob, conv, 0).await;
    let got: Vec<u64> = held.iter().map(|m| m.seq).collect();
    assert_eq!(got, s);
    for (i, m) in held.iter().enumerate() {
        assert_eq!(
            (m.id.clone(), m.body.clone()),
            (format!("m{i}"), format!("body {i}"))
        );
    }
    // Nothing was delivered live: the messages predate the session.
    assert_eq!(frames_before_pong(&mut bob).await, vec![]);
    drop(bob);

    for i in 100..120 {
        send_msg(&mut alice, &format!("n{i}"), "user:bob", "later").await;
    }
    let mut more = Vec::new();
    for i in 100..120 {
        more.push(ack_of(&mut alice, &format!("n{i}")).await.1);
    }
    let mut bob = RawWs::login(&node, "bob").await;
    let last_held = held.last().map(|m| m.seq).unwrap();
    let item = &conversations(&mut bob).await[0];
    assert_eq!(item.last_seq, more[19]);
    assert!(item.last_seq > last_held);
    let fresh = catch_up(&mut bob, conv, last_held).await;
    let got: Vec<u64> = fresh.iter().map(|m| m.seq).collect();
    assert_eq!(got, more);
    held.extend(fresh);
    assert_eq!(held.len(), 120);
    node.node.shutdown().await;
}

/// Pages forward from `after` until `more` is false; every page ascends and
/// continues the previous one.
async fn catch_up(c: &mut impl RawClient, conv: &str, mut after: u64) -> Vec<Message> {
    let mut all = Vec::new();
    loop {
        let (page, more) = history(c, conv, Some(after), None, None).await.unwrap();
        for m in &page {
            assert!(m.seq > after, "seq {} after {after}", m.seq);
            after = m.seq;
        }
        all.extend(page);
        if !more {
            return all;
        }
    }
}
