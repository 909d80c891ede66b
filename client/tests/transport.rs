//! The SDK against a scripted node over real sockets: the handshake on every
//! transport, request matching by `ref` and by id, errors, ping and close.

mod support;

use chorus_client::{Client, ClientError, ErrorCode, Event, Transport};
use chorus_wire::{ClientFrame, ConversationItem, Encoding, LiveItem, Prio, ServerFrame};
use support::{Peer, PeerConn, msg, next_event, next_message, step};

async fn handshake_then_chat(transport: Transport) {
    let peer = Peer::bind(transport).await;
    let cfg = peer.config("alice");
    let (client, node) = tokio::join!(Client::connect(cfg), peer.accept_hello("alice", "s1"));
    let (client, mut events) = client.expect("connect");
    let mut node = node;
    node.answer_conversations(vec![]).await;
    assert_eq!(client.user(), "alice");
    assert_eq!(client.welcome().session, "s1");
    assert_eq!(
        next_event(&mut events).await,
        Event::Connected {
            session: "s1".into(),
            node: "n1".into()
        }
    );

    // A send is answered by its id.
    let sending = tokio::spawn({
        let client = client.clone();
        async move { client.send_with_id("m-1", "user:bob", "hi").await }
    });
    match node.recv_no_ping().await {
        Some(ClientFrame::Send { id, to, body }) => {
            assert_eq!(
                (id.as_str(), to.as_str(), body.as_str()),
                ("m-1", "user:bob", "hi")
            );
        }
        other => panic!("expected send, got {other:?}"),
    }
    node.send(&ServerFrame::Ack {
        id: "m-1".into(),
        conv: "dm:alice:bob".into(),
        seq: 1,
        ts_ms: 7,
    })
    .await;
    let ack = step("ack", sending).await.expect("task").expect("acked");
    assert_eq!(
        (ack.conv.as_str(), ack.seq, ack.ts_ms),
        ("dm:alice:bob", 1, 7)
    );

    // A pushed message becomes an event; the own ack moved the position to 1.
    node.send(&ServerFrame::Msg(msg("dm:alice:bob", 2))).await;
    assert_eq!(next_message(&mut events).await.seq, 2);
    assert_eq!(client.positions().get("dm:alice:bob"), Some(&2));

    // Receipts and live batches pass through as they are.
    node.send(&ServerFrame::Receipt {
        conv: "dm:alice:bob".into(),
        user: "bob".into(),
        seq: 2,
    })
    .await;
    assert_eq!(
        next_event(&mut events).await,
        Event::Receipt {
            conv: "dm:alice:bob".into(),
            user: "bob".into(),
            seq: 2
        }
    );
    let item = LiveItem {
        seq: 9,
        id: "d1".into(),
        from: "bob".into(),
        body: "666".into(),
        ts_ms: 5,
        prio: Prio::Paid,
    };
    node.send(&ServerFrame::LiveBatch {
        room: "r1".into(),
        items: vec![item.clone()],
        viewers: 3,
        dropped: 4,
    })
    .await;
    assert_eq!(
        next_event(&mut events).await,
        Event::LiveBatch {
            room: "r1".into(),
            items: vec![item],
            viewers: 3,
            dropped: 4
        }
    );

    // The node answers in the encoding the client spoke.
    let expected = match transport {
        Transport::WsJson => Some(Encoding::Json),
        Transport::WsBinary => Some(Encoding::Binary),
        Transport::Tcp => None,
    };
    if let PeerConn::Ws { encoding, .. } = &node {
        assert_eq!(*encoding, expected);
    }

    // A frame over the node's limit is refused here, without costing the connection.
    let huge = "x".repeat(70_000);
    let result = client.send("user:bob", &huge).await;
    assert!(
        matches!(
            result,
            Err(ClientError::Rejected {
                code: ErrorCode::TooLarge,
                ..
            })
        ),
        "{result:?}"
    );
    client.close().await;
}

#[tokio::test]
async fn tcp_handshake_send_and_receive() {
    handshake_then_chat(Transport::Tcp).await;
}

#[tokio::test]
async fn websocket_json_handshake_send_and_receive() {
    handshake_then_chat(Transport::WsJson).await;
}

#[tokio::test]
async fn websocket_binary_handshake_send_and_receive() {
    handshake_then_chat(Transport::WsBinary).await;
}

#[tokio::test]
async fn answers_are_matched_by_ref_in_any_order() {
    let peer = Peer::bind(Transport::WsJson).await;
    let (client, node) = tokio::join!(
        Client::connect(peer.config("alice")),
        peer.accept_hello("alice", "s1")
    );
    let (client, _events) = client.expect("connect");
    let mut node = node;
    node.answer_conversations(vec![]).await;

    let history = tokio::spawn({
        let c = client.clone();
        async move { c.history("dm:alice:bob", Some(0), None, Some(10)).await }
    });
    let Some(ClientFrame::History {
        reference: history_ref,
        conv,
        after,
        limit,
        ..
    }) = node.recv_no_ping().await
    else {
        panic!("expected history")
    };
    assert_eq!(
        (conv.as_str(), after, limit),
        ("dm:alice:bob", Some(0), Some(10))
    );
    let lists = tokio::spawn({
        let c = client.clone();
        async move { c.conversations().await }
    });
    let Some(ClientFrame::Conversations {
        reference: list_ref,
        ..
    }) = node.recv_no_ping().await
    else {
        panic!("expected conversations")
    };
    let info = tokio::spawn({
        let c = client.clone();
        async move { c.group_info("g1").await }
    });
    let Some(ClientFrame::GroupInfo {
        reference: info_ref,
        ..
    }) = node.recv_no_ping().await
    else {
        panic!("expected group_info")
    };
    assert!(history_ref != list_ref && list_ref != info_ref);

    // Answer in reverse order; one of them is an error for its ref.
    node.send(&ServerFrame::Error {
        reference: Some(info_ref),
        code: ErrorCode::Forbidden,
        message: "not a member".into(),
    })
    .await;
    node.send(&ServerFrame::ConversationList {
        reference: list_ref,
        items: vec![ConversationItem {
            conv: "dm:alice:bob".into(),
            last_seq: 2,
            read_seq: 1,
        }],
        more: chorus_wire::Trailing::ABSENT,
    })
    .await;
    node.send(&ServerFrame::HistoryPage {
        reference: history_ref,
        conv: "dm:alice:bob".into(),
        messages: vec![msg("dm:alice:bob", 1), msg("dm:alice:bob", 2)],
        more: false,
    })
    .await;

    let info = step("group_info", info).await.expect("task");
    assert!(
        matches!(
            info,
            Err(ClientError::Server {
                code: ErrorCode::Forbidden,
                ..
            })
        ),
        "{info:?}"
    );
    let lists = step("conversations", lists)
        .await
        .expect("task")
        .expect("list");
    assert_eq!(lists[0].last_seq, 2);
    let page = step("history", history).await.expect("task").expect("page");
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(!page.more);
    // The connection stays up after a request's error.
    let pinging = tokio::spawn({
        let c = client.clone();
        async move { c.ping().await }
    });
    assert!(matches!(node.recv().await, Some(ClientFrame::Ping { .. })));
    node.send(&ServerFrame::Pong).await;
    assert!(step("ping", pinging).await.expect("task").is_ok());
    client.close().await;
}

#[tokio::test]
async fn rejects_fail_the_send_with_their_code() {
    let peer = Peer::bind(Transport::Tcp).await;
    let (client, node) = tokio::join!(
        Client::connect(peer.config("alice")),
        peer.accept_hello("alice", "s1")
    );
    let (client, _events) = client.expect("connect");
    let mut node = node;
    node.answer_conversations(vec![]).await;
    let sending = tokio::spawn({
        let c = client.clone();
        async move { c.danmaku("room1", "so fast").await }
    });
    let Some(ClientFrame::Danmaku { id, room, .. }) = node.recv_no_ping().await else {
        panic!("expected danmaku")
    };
    assert_eq!(room, "room1");
    node.send(&ServerFrame::Reject {
        id,
        code: ErrorCode::RateLimited,
        message: "5 per 10 s".into(),
        retry_after_ms: Some(800),
    })
    .await;
    let result = step("danmaku", sending).await.expect("task");
    assert!(
        matches!(
            result,
            Err(ClientError::Rejected {
                code: ErrorCode::RateLimited,
                retry_after_ms: Some(800),
                ..
            })
        ),
        "{result:?}"
    );
    client.close().await;
}

#[tokio::test]
async fn a_refused_hello_fails_connect_with_the_server_error() {
    let peer = Peer::bind(Transport::Tcp).await;
    let refuse = async {
        let mut node = peer.accept().await;
        assert!(matches!(node.recv().await, Some(ClientFrame::Hello { .. })));
        node.send(&ServerFrame::Error {
            reference: None,
            code: ErrorCode::Unauthenticated,
            message: "bad token".into(),
        })
        .await;
        node
    };
    let (result, _node) = tokio::join!(Client::connect(peer.config("mallory")), refuse);
    match result {
        Err(ClientError::Server { code, message }) => {
            assert_eq!(code, ErrorCode::Unauthenticated);
            assert_eq!(message, "bad token");
        }
        Err(other) => panic!("expected a server error, got {other}"),
        Ok(_) => panic!("expected a server error, got a client"),
    }
}

#[tokio::test]
async fn connect_tries_the_next_endpoint() {
    let dead = Peer::bind(Transport::Tcp).await;
    let dead_addr = dead.addr();
    drop(dead);
    let peer = Peer::bind(Transport::Tcp).await;
    let mut cfg = peer.config("alice");
    cfg.endpoints = vec![dead_addr, peer.addr()];
    let (client, _node) = tokio::join!(Client::connect(cfg), peer.accept_hello("alice", "s1"));
    let (client, _events) = client.expect("connect via the second endpoint");
    client.close().await;
}

#[tokio::test]
async fn ping_measures_the_round_trip_and_read_is_fire_and_forget() {
    let peer = Peer::bind(Transport::WsBinary).await;
    let (client, node) = tokio::join!(
        Client::connect(peer.config("alice")),
        peer.accept_hello("alice", "s1")
    );
    let (client, _events) = client.expect("connect");
    let mut node = node;
    node.answer_conversations(vec![]).await;
    client.read("dm:alice:bob", 3).await.expect("queued");
    assert_eq!(
        node.recv().await,
        Some(ClientFrame::Read {
            conv: "dm:alice:bob".into(),
            seq: 3
        })
    );
    let pinging = tokio::spawn({
        let c = client.clone();
        async move { c.ping().await }
    });
    assert!(matches!(node.recv().await, Some(ClientFrame::Ping { .. })));
    node.send(&ServerFrame::Pong).await;
    let rtt = step("ping", pinging).await.expect("task").expect("pong");
    assert!(rtt < support::STEP);
    client.close().await;
}

#[tokio::test]
async fn close_fails_pending_calls_and_ends_the_events() {
    let peer = Peer::bind(Transport::Tcp).await;
    let (client, node) = tokio::join!(
        Client::connect(peer.config("alice")),
        peer.accept_hello("alice", "s1")
    );
    let (client, mut events) = client.expect("connect");
    let mut node = node;
    node.answer_conversations(vec![]).await;
    assert!(matches!(
        next_event(&mut events).await,
        Event::Connected { .. }
    ));
    let pending = tokio::spawn({
        let c = client.clone();
        async move { c.conversations().await }
    });
    assert!(matches!(
        node.recv().await,
        Some(ClientFrame::Conversations { .. })
    ));
    client.close().await;
    let result = step("pending call", pending).await.expect("task");
    assert!(matches!(result, Err(ClientError::Closed)), "{result:?}");
    assert_eq!(step("end of events", events.next()).await, None);
    assert_eq!(node.recv().await, None, "the socket is closed");
    assert!(matches!(
        client.send("user:bob", "late").await,
        Err(ClientError::Closed)
    ));
}

#[tokio::test]
async fn request_timeout_bounds_an_unanswered_call() {
    let peer = Peer::bind(Transport::Tcp).await;
    let mut cfg = peer.config("alice");
    cfg.request_timeout = std::time::Duration::from_millis(200);
    let (client, _node) = tokio::join!(Client::connect(cfg), peer.accept_hello("alice", "s1"));
    let (client, _events) = client.expect("connect");
    let result = client.group_info("g1").await;
    assert!(matches!(result, Err(ClientError::Timeout)), "{result:?}");
    client.close().await;
}
