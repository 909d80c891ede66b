//! 1:1 chat between a WebSocket-JSON client and a TCP-binary client, over real
//! sockets to a real node.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use chorus_wire::{ClientFrame, ServerFrame};
use common::{RawTcp, RawWs, start_node};

#[tokio::test]
async fn ws_json_and_tcp_binary_chat_both_ways() {
    let node = start_node().await;
    let mut alice = RawWs::login(&node, "alice").await;
    let mut bob = RawTcp::login(&node, "bob").await;

    alice
        .send(&ClientFrame::Send {
            id: "m1".into(),
            to: "user:bob".into(),
            body: "hi bob".into(),
        })
        .await;
    let ack = alice
        .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
        .await;
    let ServerFrame::Ack { conv, seq, .. } = ack else {
        unreachable!()
    };
    assert_eq!(conv, "dm:alice:bob");
    let msg = bob.recv_until(|f| matches!(f, ServerFrame::Msg(_))).await;
    let ServerFrame::Msg(m) = msg else {
        unreachable!()
    };
    assert_eq!(
        (m.conv.as_str(), m.seq, m.from.as_str(), m.body.as_str()),
        ("dm:alice:bob", seq, "alice", "hi bob")
    );

    bob.send(&ClientFrame::Send {
        id: "r1".into(),
        to: "user:alice".into(),
        body: "hello alice".into(),
    })
    .await;
    let ServerFrame::Ack { seq: seq2, .. } = bob
        .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
        .await
    else {
        unreachable!()
    };
    assert!(seq2 > seq);
    let v = loop {
        let v = alice.recv_json().await.expect("frame");
        if v["type"] == "msg" {
            break v;
        }
    };
    assert_eq!(v["body"], "hello alice");
    assert_eq!(v["from"], "bob");
    assert_eq!(v["seq"], seq2);
    node.node.shutdown().await;
}
