//! Core chat semantics (docs/protocol.md §6, §7.3–4.8) over real sockets to a real node,
//! mixing TCP-binary and WebSocket-JSON sessions: delivery to every session but the
//! sending one, sending to oneself, seq order, idempotent retries, read receipts,
//! and the conversation list.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use chorus_wire::{ClientFrame, ConversationItem, ServerFrame};
use common::{
    RawClient, RawTcp, RawWs, ack_of, conversations, frames_before_pong, history, next_frame,
    next_msg, send_acked, send_msg, start_node,
};

/// The next frame, which must be the ack of `id`: `(conv, seq)`.
async fn strict_ack(c: &mut impl RawClient, id: &str) -> (String, u64) {
    match next_frame(c).await {
        ServerFrame::Ack {
            id: got, conv, seq, ..
        } if got == id => (conv, seq),
        other => panic!("expected only the ack of {id}, got {other:?}"),
    }
}

#[tokio::test]
async fn every_session_gets_the_msg_but_the_sending_one_gets_only_the_ack() {
    let node = start_node().await;
    let mut alice_tcp = RawTcp::login(&node, "alice").await;
    let mut alice_ws = RawWs::login(&node, "alice").await;
    let mut bob = RawWs::login(&node, "bob").await;

    // Someone else's message reaches both of alice's sessions.
    let (conv, seq) = send_acked(&mut bob, "b1", "user:alice", "hi alice").await;
    assert_eq!(conv, "dm:alice:bob");
    for m in [
        next_msg(&mut alice_tcp).await,
        next_msg(&mut alice_ws).await,
    ] {
        assert_eq!(
            (
                m.conv.as_str(),
                m.seq,
                m.id.as_str(),
                m.from.as_str(),
                m.body.as_str()
            ),
            ("dm:alice:bob", seq, "b1", "bob", "hi alice")
        );
    }

    // Alice's own message: the sending session gets the ack and nothing else; her
    // other session and bob get the msg.
    send_msg(&mut alice_tcp, "a1", "user:bob", "hi bob").await;
    let (conv, seq) = strict_ack(&mut alice_tcp, "a1").await;
    assert_eq!(conv, "dm:alice:bob");
    for m in [next_msg(&mut alice_ws).await, next_msg(&mut bob).await] {
        assert_eq!(
            (
                m.conv.as_str(),
                m.seq,
                m.id.as_str(),
                m.from.as_str(),
                m.body.as_str()
            ),
            ("dm:alice:bob", seq, "a1", "alice", "hi bob")
        );
    }
    // Alice's User entity has fanned the msg out (her other session has it), so a
    // copy for the sending session would already be queued before this pong.
    assert_eq!(frames_before_pong(&mut alice_tcp).await, vec![]);

    // The same from the WebSocket session.
    send_msg(&mut alice_ws, "a2", "user:bob", "again").await;
    let (_, seq2) = strict_ack(&mut alice_ws, "a2").await;
    assert!(seq2 > seq);
    assert_eq!(next_msg(&mut alice_tcp).await.seq, seq2);
    assert_eq!(next_msg(&mut bob).await.seq, seq2);
    assert_eq!(frames_before_pong(&mut alice_ws).await, vec![]);
    node.node.shutdown().await;
}

#[tokio::test]
async fn sending_to_yourself() {
    let node = start_node().await;
    let mut tcp = RawTcp::login(&node, "alice").await;
    let mut ws = RawWs::login(&node, "alice").await;

    send_msg(&mut tcp, "note", "user:alice", "remember the milk").await;
    let (conv, seq) = strict_ack(&mut tcp, "note").await;
    assert_eq!(conv, "dm:alice:alice");
    let m = next_msg(&mut ws).await;
    assert_eq!(
        (m.conv.as_str(), m.seq, m.from.as_str(), m.body.as_str()),
        ("dm:alice:alice", seq, "alice", "remember the milk")
    );
    assert_eq!(frames_before_pong(&mut tcp).await, vec![]);
    // Delivered once to the other session.
    assert_eq!(frames_before_pong(&mut ws).await, vec![]);

    let (page, more) = history(&mut ws, &conv, None, None, None).await.unwrap();
    assert_eq!(page, vec![m]);
    assert!(!more);
    assert_eq!(
        conversations(&mut tcp).await,
        vec![ConversationItem {
            conv,
            last_seq: seq,
            read_seq: 0
        }]
    );
    node.node.shutdown().await;
}

#[tokio::test]
async fn msgs_of_a_conversation_arrive_in_increasing_seq() {
    const EACH: usize = 40;
    let node = start_node().await;
    let mut alice_tcp = RawTcp::login(&node, "alice").await;
    let mut alice_ws = RawWs::login(&node, "alice").await;
    let mut bob_tcp = RawTcp::login(&node, "bob").await;
    let mut bob_ws = RawWs::login(&node, "bob").await;

    // Both parties pipeline their sends into the same conversation at once.
    for i in 0..EACH {
        send_msg(&mut alice_tcp, &format!("a{i}"), "user:bob", "from alice").await;
        send_msg(&mut bob_tcp, &format!("b{i}"), "user:alice", "from bob").await;
    }
    let mut acked = Vec::new();
    for i in 0..EACH {
        acked.push(ack_of(&mut alice_tcp, &format!("a{i}")).await.1);
        acked.push(ack_of(&mut bob_tcp, &format!("b{i}")).await.1);
    }
    acked.sort_unstable();
    acked.dedup();
    assert_eq!(acked.len(), 2 * EACH, "every message has its own seq");

    // The WebSocket sessions were not sending: they see every message.
    for c in [&mut alice_ws as &mut RawWs, &mut bob_ws] {
        let mut seen = Vec::new();
        let mut from_alice = Vec::new();
        while seen.len() < 2 * EACH {
            let m = next_msg(c).await;
            if let Some(last) = seen.last() {
                assert!(m.seq > *last, "seq {} after {last}", m.seq);
            }
            if m.from == "alice" {
                from_alice.push(m.id.clone());
            }
            seen.push(m.seq);
        }
        assert_eq!(seen, acked);
        // One sender's messages keep the order she sent them in.
        let sent: Vec<String> = (0..EACH).map(|i| format!("a{i}")).collect();
        assert_eq!(from_alice, sent);
    }
    node.node.shutdown().await;
}

#[tokio::test]
async fn a_retried_send_after_its_ack_gets_the_same_seq_and_is_stored_once() {
    let node = start_node().await;
    let mut alice = RawTcp::login(&node, "alice").await;
    let mut alice_ws = RawWs::login(&node, "alice").await;
    let mut bob = RawWs::login(&node, "bob").await;

    let first = send_acked(&mut alice, "m1", "user:bob", "hello").await;
    let m = next_msg(&mut bob).await;
    assert_eq!((m.seq, m.id.as_str()), (first.1, "m1"));
    assert_eq!(next_msg(&mut alice_ws).await.seq, first.1);

    // Retried by the same session, and by another session of the same sender.
    assert_eq!(
        send_acked(&mut alice, "m1", "user:bob", "hello").await,
        first
    );
    assert_eq!(
        send_acked(&mut alice_ws, "m1", "user:bob", "hello").await,
        first
    );

    // A later message is the next thing bob sees: the retries were not delivered.
    let (_, seq2) = send_acked(&mut alice, "m2", "user:bob", "next").await;
    assert!(seq2 > first.1);
    match next_frame(&mut bob).await {
        ServerFrame::Msg(m) => assert_eq!((m.seq, m.id.as_str()), (seq2, "m2")),
        other => panic!("expected m2, got {other:?}"),
    }

    let (page, _) = history(&mut bob, "dm:alice:bob", Some(0), None, None)
        .await
        .unwrap();
    let ids: Vec<(&str, u64)> = page.iter().map(|m| (m.id.as_str(), m.seq)).collect();
    assert_eq!(ids, vec![("m1", first.1), ("m2", seq2)]);
    node.node.shutdown().await;
}

#[tokio::test]
async fn a_retry_sent_before_the_first_ack_gets_the_same_seq_and_is_stored_once() {
    let node = start_node().await;
    let mut alice = RawWs::login(&node, "alice").await;
    let mut bob = RawTcp::login(&node, "bob").await;

    // Back to back: the retry reaches the node while the first is still in flight.
    send_msg(&mut alice, "r1", "user:bob", "hello").await;
    send_msg(&mut alice, "r1", "user:bob", "hello").await;
    let first = strict_ack(&mut alice, "r1").await;
    let second = strict_ack(&mut alice, "r1").await;
    assert_eq!(first, second);
    assert_eq!(first.0, "dm:alice:bob");

    let m = next_msg(&mut bob).await;
    assert_eq!((m.seq, m.id.as_str()), (first.1, "r1"));
    let (_, seq2) = send_acked(&mut alice, "r2", "user:bob", "next").await;
    match next_frame(&mut bob).await {
        ServerFrame::Msg(m) => assert_eq!((m.seq, m.id.as_str()), (seq2, "r2")),
        other => panic!("expected r2, got {other:?}"),
    }

    let (page, more) = history(&mut alice, "dm:alice:bob", None, None, None)
        .await
        .unwrap();
    let ids: Vec<&str> = page.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, vec!["r1", "r2"]);
    assert!(!more);
    node.node.shutdown().await;
}

/// Waits for the next `receipt` and returns `(conv, user, seq)`.
async fn next_receipt(c: &mut impl RawClient) -> (String, String, u64) {
    loop {
        if let ServerFrame::Receipt { conv, user, seq } = next_frame(c).await {
            return (conv, user, seq);
        }
    }
}

async fn read(c: &mut impl RawClient, conv: &str, seq: u64) {
    c.put(&ClientFrame::Read {
        conv: conv.into(),
        seq,
    })
    .await;
}

async fn item(c: &mut impl RawClient, conv: &str) -> ConversationItem {
    conversations(c)
        .await
        .into_iter()
        .find(|i| i.conv == conv)
        .unwrap_or_else(|| panic!("{conv} is listed"))
}

#[tokio::test]
async fn read_sends_receipts_and_never_moves_backwards() {
    let node = start_node().await;
    let mut alice_tcp = RawTcp::login(&node, "alice").await;
    let mut alice_ws = RawWs::login(&node, "alice").await;
    let mut bob = RawWs::login(&node, "bob").await;
    let conv = "dm:alice:bob";

    let mut seqs = Vec::new();
    for i in 0..3 {
        seqs.push(
            send_acked(&mut alice_tcp, &format!("m{i}"), "user:bob", "x")
                .await
                .1,
        );
    }
    for &s in &seqs {
        assert_eq!(next_msg(&mut bob).await.seq, s);
    }

    read(&mut bob, conv, seqs[1]).await;
    let want = (conv.to_string(), "bob".to_string(), seqs[1]);
    assert_eq!(next_receipt(&mut alice_tcp).await, want);
    assert_eq!(next_receipt(&mut alice_ws).await, want);
    assert_eq!(
        item(&mut bob, conv).await,
        ConversationItem {
            conv: conv.into(),
            last_seq: seqs[2],
            read_seq: seqs[1]
        }
    );
    // The reader's own sessions get no receipt: alice's User entity has delivered
    // it, and a msg alice sends now reaches bob after anything queued for him.
    send_acked(&mut alice_tcp, "after-read", "user:bob", "y").await;
    match next_frame(&mut bob).await {
        ServerFrame::Msg(m) => assert_eq!(m.id, "after-read"),
        other => panic!("expected the msg, got {other:?}"),
    }

    // A lower read leaves the position where it was.
    read(&mut bob, conv, seqs[0]).await;
    assert_eq!(next_receipt(&mut alice_ws).await.2, seqs[1]);
    assert_eq!(item(&mut bob, conv).await.read_seq, seqs[1]);

    // A higher one moves it on.
    read(&mut bob, conv, seqs[2]).await;
    assert_eq!(next_receipt(&mut alice_ws).await.2, seqs[2]);
    assert_eq!(item(&mut bob, conv).await.read_seq, seqs[2]);
    // Alice has read nothing.
    assert_eq!(item(&mut alice_ws, conv).await.read_seq, 0);
    node.node.shutdown().await;
}

#[tokio::test]
async fn conversations_lists_every_dm_with_a_message_and_its_last_seq() {
    let node = start_node().await;
    let mut alice = RawTcp::login(&node, "alice").await;
    let mut bob = RawWs::login(&node, "bob").await;
    let mut carol = RawTcp::login(&node, "carol").await;
    let mut dave = RawWs::login(&node, "dave").await;

    send_acked(&mut alice, "1", "user:bob", "x").await;
    let (_, ab) = send_acked(&mut bob, "2", "user:alice", "y").await;
    let (_, ac) = send_acked(&mut carol, "3", "user:alice", "z").await;
    let (_, bc) = send_acked(&mut bob, "4", "user:carol", "w").await;
    // Looking at an empty dm does not make it a conversation.
    let (empty, more) = history(&mut alice, "dm:alice:dave", None, None, None)
        .await
        .unwrap();
    assert!(empty.is_empty() && !more);

    let item = |conv: &str, last_seq| ConversationItem {
        conv: conv.into(),
        last_seq,
        read_seq: 0,
    };
    let sorted = |mut items: Vec<ConversationItem>| {
        items.sort_by(|a, b| a.conv.cmp(&b.conv));
        items
    };
    assert_eq!(
        sorted(conversations(&mut alice).await),
        vec![item("dm:alice:bob", ab), item("dm:alice:carol", ac)]
    );
    assert_eq!(
        sorted(conversations(&mut bob).await),
        vec![item("dm:alice:bob", ab), item("dm:bob:carol", bc)]
    );
    assert_eq!(
        sorted(conversations(&mut carol).await),
        vec![item("dm:alice:carol", ac), item("dm:bob:carol", bc)]
    );
    assert_eq!(conversations(&mut dave).await, vec![]);
    node.node.shutdown().await;
}
