//! Recovery against a scripted node over real sockets: reconnect with the same send
//! id, gap repair, resync after a reconnect and on a resumed first connect, heartbeat
//! death, `goaway`, and malformed frames.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use chorus_client::{Client, ClientError, ErrorCode, Event, Events, Transport};
use chorus_wire::{ClientFrame, ConversationItem, ServerFrame};
use support::{Peer, PeerConn, msg, next_event, next_message, step};

const DM: &str = "dm:alice:bob";

/// Expects `history(conv, after, limit 200)` and answers it with `seqs`.
async fn answer_history(node: &mut PeerConn, conv: &str, after: u64, seqs: &[u64], more: bool) {
    match node.recv_no_ping().await {
        Some(ClientFrame::History {
            reference,
            conv: c,
            after: a,
            before,
            limit,
        }) => {
            assert_eq!(
                (c.as_str(), a, before, limit),
                (conv, Some(after), None, Some(200))
            );
            let messages = seqs.iter().map(|&s| msg(conv, s)).collect();
            node.send(&ServerFrame::HistoryPage {
                reference,
                conv: conv.into(),
                messages,
                more,
            })
            .await;
        }
        other => panic!("expected history after {after}, got {other:?}"),
    }
}

/// Alice connected to a scripted node that answered her first conversation list
/// with none: the node's listener (keep it alive), the client, its events and the
/// node's end of the connection.
async fn alice_connected(transport: Transport) -> (Peer, Client, Events, PeerConn) {
    let peer = Peer::bind(transport).await;
    let (client, node) = tokio::join!(
        Client::connect(peer.config("alice")),
        peer.accept_hello("alice", "s1")
    );
    let (client, events) = client.expect("connect");
    let mut node = node;
    node.answer_conversations(vec![]).await;
    (peer, client, events, node)
}

#[tokio::test]
async fn a_send_cut_off_by_a_dropped_connection_is_resent_with_the_same_id() {
    let (peer, client, mut events, mut node) = alice_connected(Transport::Tcp).await;
    let sending = tokio::spawn({
        let c = client.clone();
        async move { c.send_with_id("m-7", "group:g", "hello").await }
    });
    assert!(matches!(node.recv_no_ping().await, Some(ClientFrame::Send { id, .. }) if id == "m-7"));
    node.kill();

    let mut node = peer.accept_hello("alice", "s2").await;
    node.answer_conversations(vec![]).await;
    match node.recv_no_ping().await {
        Some(ClientFrame::Send { id, to, body }) => {
            assert_eq!(
                (id.as_str(), to.as_str(), body.as_str()),
                ("m-7", "group:g", "hello")
            );
        }
        other => panic!("expected the resent send, got {other:?}"),
    }
    node.send(&ServerFrame::Ack {
        id: "m-7".into(),
        conv: "group:g".into(),
        seq: 1,
        ts_ms: 1,
    })
    .await;
    let ack = step("resent send", sending)
        .await
        .expect("task")
        .expect("acked");
    assert_eq!((ack.id.as_str(), ack.seq), ("m-7", 1));

    assert!(
        matches!(next_event(&mut events).await, Event::Connected { session, .. } if session == "s1")
    );
    assert!(matches!(
        next_event(&mut events).await,
        Event::Disconnected { .. }
    ));
    assert!(
        matches!(next_event(&mut events).await, Event::Connected { session, .. } if session == "s2")
    );
    client.close().await;
}

#[tokio::test]
async fn without_reconnect_a_lost_connection_fails_the_send_and_ends_the_events() {
    let peer = Peer::bind(Transport::WsJson).await;
    let mut cfg = peer.config("alice");
    cfg.reconnect = false;
    let (client, node) = tokio::join!(Client::connect(cfg), peer.accept_hello("alice", "s1"));
    let (client, mut events) = client.expect("connect");
    let mut node = node;
    node.answer_conversations(vec![]).await;
    let sending = tokio::spawn({
        let c = client.clone();
        async move { c.send("user:bob", "hello").await }
    });
    assert!(matches!(
        node.recv_no_ping().await,
        Some(ClientFrame::Send { .. })
    ));
    node.kill();
    let result = step("send", sending).await.expect("task");
    assert!(
        matches!(result, Err(ClientError::ConnectionLost)),
        "{result:?}"
    );
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected { .. }
    ));
    assert!(matches!(
        next_event(&mut events).await,
        Event::Disconnected { .. }
    ));
    assert_eq!(step("end of events", events.next()).await, None);
}

#[tokio::test]
async fn a_seq_gap_is_fetched_from_history_and_duplicates_are_dropped() {
    let (_peer, client, mut events, mut node) = alice_connected(Transport::WsJson).await;
    node.send(&ServerFrame::Msg(msg(DM, 1))).await;
    node.send(&ServerFrame::Msg(msg(DM, 4))).await;
    assert_eq!(next_message(&mut events).await.seq, 1);
    // 5 arrives while the gap is being fetched: it must wait for 2..4.
    node.send(&ServerFrame::Msg(msg(DM, 5))).await;
    answer_history(&mut node, DM, 1, &[2, 3, 4], false).await;
    for expected in [2, 3, 4, 5] {
        assert_eq!(next_message(&mut events).await.seq, expected);
    }
    node.send(&ServerFrame::Msg(msg(DM, 5))).await;
    node.send(&ServerFrame::Msg(msg(DM, 6))).await;
    assert_eq!(
        next_message(&mut events).await.seq,
        6,
        "the repeated 5 is dropped"
    );
    assert_eq!(client.positions(), HashMap::from([(DM.to_string(), 6)]));
    client.close().await;
}

#[tokio::test]
async fn a_failing_gap_fetch_is_retried_until_history_answers() {
    let (_peer, client, mut events, mut node) = alice_connected(Transport::Tcp).await;
    node.send(&ServerFrame::Msg(msg(DM, 1))).await;
    node.send(&ServerFrame::Msg(msg(DM, 4))).await;
    assert_eq!(next_message(&mut events).await.seq, 1);
    // The conversation is moving between nodes: history fails more often than any
    // fixed number of attempts would allow, and 4 must still wait for 2 and 3.
    for _ in 0..5 {
        match node.recv_no_ping().await {
            Some(ClientFrame::History {
                reference, after, ..
            }) => {
                assert_eq!(after, Some(1));
                node.send(&ServerFrame::Error {
                    reference: Some(reference),
                    code: ErrorCode::Internal,
                    message: "the node owning this is unreachable; retry".into(),
                })
                .await;
            }
            other => panic!("expected a history retry, got {other:?}"),
        }
    }
    answer_history(&mut node, DM, 1, &[2, 3, 4], false).await;
    for expected in [2, 3, 4] {
        assert_eq!(next_message(&mut events).await.seq, expected);
    }
    assert_eq!(client.positions(), HashMap::from([(DM.to_string(), 4)]));
    client.close().await;
}

#[tokio::test]
async fn an_own_ack_left_above_a_hole_fetches_the_hole_a_second_later() {
    let (_peer, client, mut events, mut node) = alice_connected(Transport::Tcp).await;
    node.send(&ServerFrame::Msg(msg(DM, 1))).await;
    assert_eq!(next_message(&mut events).await.seq, 1);
    let sending = tokio::spawn({
        let c = client.clone();
        async move { c.send_with_id("m-3", DM, "hi").await }
    });
    assert!(matches!(node.recv_no_ping().await, Some(ClientFrame::Send { id, .. }) if id == "m-3"));
    // Seq 2 went to another owner and its msg never comes: the ack stays above a
    // hole, and only history can fill it.
    let asked = std::time::Instant::now();
    node.send(&ServerFrame::Ack {
        id: "m-3".into(),
        conv: DM.into(),
        seq: 3,
        ts_ms: 1,
    })
    .await;
    step("send", sending).await.expect("task").expect("acked");
    answer_history(&mut node, DM, 1, &[2, 3], false).await;
    assert!(
        asked.elapsed() >= Duration::from_millis(900),
        "the msg before an ack gets its time to arrive"
    );
    assert_eq!(next_message(&mut events).await.seq, 2);
    // The own message from the page is emitted too (the app sees its echo).
    assert_eq!(next_message(&mut events).await.seq, 3);
    assert_eq!(client.positions(), HashMap::from([(DM.to_string(), 3)]));
    client.close().await;
}

#[tokio::test]
async fn a_reconnect_resyncs_every_conversation_past_its_held_seq() {
    let peer = Peer::bind(Transport::WsBinary).await;
    let (client, node) = tokio::join!(
        Client::connect(peer.config("alice")),
        peer.accept_hello("alice", "s1")
    );
    let (client, mut events) = client.expect("connect");
    let mut node = node;
    node.answer_conversations(vec![]).await;
    node.send(&ServerFrame::Msg(msg(DM, 1))).await;
    node.send(&ServerFrame::Msg(msg(DM, 2))).await;
    assert_eq!(next_message(&mut events).await.seq, 1);
    assert_eq!(next_message(&mut events).await.seq, 2);
    node.kill();

    let mut node = peer.accept_hello("alice", "s2").await;
    node.answer_conversations(vec![
        ConversationItem {
            conv: DM.into(),
            last_seq: 5,
            read_seq: 2,
        },
        ConversationItem {
            conv: "group:quiet".into(),
            last_seq: 0,
            read_seq: 0,
        },
    ])
    .await;
    answer_history(&mut node, DM, 2, &[3, 4], true).await;
    answer_history(&mut node, DM, 4, &[5], false).await;

    // Connected came before messages 1 and 2.
    assert!(matches!(
        next_event(&mut events).await,
        Event::Disconnected { .. }
    ));
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected { .. }
    ));
    for expected in [3, 4, 5] {
        assert_eq!(next_message(&mut events).await.seq, expected);
    }
    assert_eq!(
        next_event(&mut events).await,
        Event::Resynced {
            conv: DM.into(),
            count: 3
        }
    );
    assert_eq!(client.positions().get(DM), Some(&5));
    client.close().await;
}

#[tokio::test]
async fn a_reconnect_catches_up_from_the_first_connects_floor_not_from_zero() {
    let peer = Peer::bind(Transport::Tcp).await;
    let (client, node) = tokio::join!(
        Client::connect(peer.config("alice")),
        peer.accept_hello("alice", "s1")
    );
    let (client, mut events) = client.expect("connect");
    let mut node = node;
    // The conversation had 7 messages before this client existed.
    node.answer_conversations(vec![ConversationItem {
        conv: DM.into(),
        last_seq: 7,
        read_seq: 0,
    }])
    .await;
    let sending = tokio::spawn({
        let c = client.clone();
        async move { c.send("user:bob", "mine").await }
    });
    let Some(ClientFrame::Send { id, .. }) = node.recv_no_ping().await else {
        panic!("expected send")
    };
    node.send(&ServerFrame::Ack {
        id,
        conv: DM.into(),
        seq: 8,
        ts_ms: 1,
    })
    .await;
    assert_eq!(
        step("send", sending).await.expect("task").expect("ack").seq,
        8
    );
    assert_eq!(client.positions(), HashMap::from([(DM.to_string(), 8)]));
    node.kill();

    let mut node = peer.accept_hello("alice", "s2").await;
    node.answer_conversations(vec![ConversationItem {
        conv: DM.into(),
        last_seq: 9,
        read_seq: 0,
    }])
    .await;
    answer_history(&mut node, DM, 8, &[9], false).await;
    assert_eq!(next_message(&mut events).await.seq, 9);
    assert_eq!(
        next_event(&mut events).await,
        Event::Resynced {
            conv: DM.into(),
            count: 1
        }
    );
    client.close().await;
}

#[tokio::test]
async fn a_client_resumed_from_saved_positions_catches_up_on_its_first_connect() {
    let peer = Peer::bind(Transport::Tcp).await;
    let mut cfg = peer.config("alice");
    cfg.resume = HashMap::from([(DM.to_string(), 3)]);
    let (client, node) = tokio::join!(Client::connect(cfg), peer.accept_hello("alice", "s1"));
    let (client, mut events) = client.expect("connect");
    let mut node = node;
    assert_eq!(client.positions().get(DM), Some(&3));
    node.answer_conversations(vec![ConversationItem {
        conv: DM.into(),
        last_seq: 4,
        read_seq: 3,
    }])
    .await;
    answer_history(&mut node, DM, 3, &[4], false).await;
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected { .. }
    ));
    assert_eq!(next_message(&mut events).await.seq, 4);
    assert_eq!(
        next_event(&mut events).await,
        Event::Resynced {
            conv: DM.into(),
            count: 1
        }
    );
    client.close().await;
}

#[tokio::test]
async fn a_silent_node_is_detected_by_the_heartbeat_and_replaced() {
    let peer = Peer::bind(Transport::Tcp).await;
    let mut cfg = peer.config("alice");
    cfg.ping_interval = Some(Duration::from_millis(500));
    let (client, node) = tokio::join!(Client::connect(cfg), peer.accept_hello("alice", "s1"));
    let (client, mut events) = client.expect("connect");
    let mut node = node;
    node.answer_conversations(vec![]).await;
    // The first ping comes at once and announces the interval (rounded up to 1 s).
    assert_eq!(
        node.recv().await,
        Some(ClientFrame::Ping {
            interval_s: Some(1)
        })
    );
    node.send(&ServerFrame::Pong).await;
    assert_eq!(
        node.recv().await,
        Some(ClientFrame::Ping {
            interval_s: Some(1)
        })
    );
    node.send(&ServerFrame::Pong).await;
    // Now the node goes silent without closing the socket.
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected { .. }
    ));
    match next_event(&mut events).await {
        Event::Disconnected { reason } => assert!(reason.contains("heartbeat"), "{reason}"),
        other => panic!("expected a disconnect, got {other:?}"),
    }
    let _node2 = peer.accept_hello("alice", "s2").await;
    assert!(
        matches!(next_event(&mut events).await, Event::Connected { session, .. } if session == "s2")
    );
    drop(node);
    client.close().await;
}

#[tokio::test]
async fn goaway_moves_the_client_to_a_named_node() {
    let draining = Peer::bind(Transport::WsJson).await;
    let other = Peer::bind(Transport::WsJson).await;
    let (client, node) = tokio::join!(
        Client::connect(draining.config("alice")),
        draining.accept_hello("alice", "s1")
    );
    let (client, mut events) = client.expect("connect");
    let mut node = node;
    node.answer_conversations(vec![]).await;
    node.send(&ServerFrame::Goaway {
        reason: "drain".into(),
        reconnect_after_ms: 50,
        nodes: vec![other.addr()],
    })
    .await;
    let mut node2 = other.accept_hello("alice", "s2").await;
    node2.answer_conversations(vec![]).await;
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected { .. }
    ));
    assert_eq!(
        next_event(&mut events).await,
        Event::Goaway {
            reason: "drain".into(),
            nodes: vec![other.addr()]
        }
    );
    assert!(matches!(
        next_event(&mut events).await,
        Event::Disconnected { .. }
    ));
    assert!(
        matches!(next_event(&mut events).await, Event::Connected { session, .. } if session == "s2")
    );
    assert_eq!(client.welcome().session, "s2");
    client.close().await;
}

#[tokio::test]
async fn a_malformed_frame_closes_the_connection_and_the_client_reconnects() {
    for transport in [Transport::Tcp, Transport::WsBinary] {
        let peer = Peer::bind(transport).await;
        let (client, node) = tokio::join!(
            Client::connect(peer.config("alice")),
            peer.accept_hello("alice", "s1")
        );
        let (client, mut events) = client.expect("connect");
        let mut node = node;
        node.answer_conversations(vec![]).await;
        node.send_raw(&[0xff, 0xff, 0xff]).await;
        assert!(matches!(
            next_event(&mut events).await,
            Event::Connected { .. }
        ));
        assert!(matches!(
            next_event(&mut events).await,
            Event::Disconnected { .. }
        ));
        assert_eq!(
            node.recv().await,
            None,
            "the client dropped the bad connection"
        );
        let _node2 = peer.accept_hello("alice", "s2").await;
        assert!(
            matches!(next_event(&mut events).await, Event::Connected { session, .. } if session == "s2")
        );
        client.close().await;
    }
}

#[tokio::test]
async fn a_hello_refused_on_reconnect_ends_the_client() {
    let peer = Peer::bind(Transport::Tcp).await;
    let (client, node) = tokio::join!(
        Client::connect(peer.config("alice")),
        peer.accept_hello("alice", "s1")
    );
    let (client, mut events) = client.expect("connect");
    node.kill();
    let mut node = peer.accept().await;
    assert!(matches!(node.recv().await, Some(ClientFrame::Hello { .. })));
    node.send(&ServerFrame::Error {
        reference: None,
        code: ErrorCode::Unauthenticated,
        message: "expired".into(),
    })
    .await;
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected { .. }
    ));
    assert!(matches!(
        next_event(&mut events).await,
        Event::Disconnected { .. }
    ));
    match next_event(&mut events).await {
        Event::Disconnected { reason } => assert!(reason.contains("unauthenticated"), "{reason}"),
        other => panic!("expected the final disconnect, got {other:?}"),
    }
    assert_eq!(step("end of events", events.next()).await, None);
    assert!(matches!(
        client.conversations().await,
        Err(ClientError::Closed)
    ));
}
