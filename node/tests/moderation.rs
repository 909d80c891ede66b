//! The word filter end to end: mask mode stores and delivers the masked text,
//! reject mode refuses with `filtered` and stores nothing, danmaku are filtered
//! too, and the admin API reloads and tests the word list.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use chorus_config::{ModerationMode, Secret};
use chorus_wire::{ClientFrame, ErrorCode, ServerFrame};
use common::{RawTcp, RawWs, TestNode, WAIT, start_node_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ADMIN: &str = "admin-token-for-tests";

async fn node_with_words(dir: &tempfile::TempDir, words: &str, mode: ModerationMode) -> TestNode {
    let path = dir.path().join("words.txt");
    std::fs::write(&path, words).unwrap();
    start_node_with(|c| {
        c.moderation.words = Some(path);
        c.moderation.mode = mode;
        c.admin.token = Some(Secret::new(ADMIN));
    })
    .await
}

async fn admin_post(node: &TestNode, path: &str, body: &[u8]) -> (u16, serde_json::Value) {
    tokio::time::timeout(WAIT, async {
        let mut s = tokio::net::TcpStream::connect(node.node.addrs().admin).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.0\r\nHost: chorus\r\nAuthorization: Bearer {ADMIN}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
    })
    .await
    .unwrap()
}

async fn history_bodies(c: &mut RawTcp, conv: &str) -> Vec<String> {
    c.send(&ClientFrame::History {
        reference: "h".into(),
        conv: conv.into(),
        after: None,
        before: None,
        limit: None,
    })
    .await;
    match c
        .recv_until(|f| matches!(f, ServerFrame::HistoryPage { .. }))
        .await
    {
        ServerFrame::HistoryPage { messages, .. } => messages.into_iter().map(|m| m.body).collect(),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn mask_mode_masks_what_is_stored_and_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_words(&dir, "# words\nbadword\n坏蛋\n", ModerationMode::Mask).await;
    let mut alice = RawTcp::login(&node, "alice").await;
    let mut bob = RawWs::login(&node, "bob").await;

    let text = "you Ｂ a d-w o r d! 你是坏 蛋 ok";
    alice
        .send(&ClientFrame::Send {
            id: "m1".into(),
            to: "user:bob".into(),
            body: text.into(),
        })
        .await;
    alice
        .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
        .await;
    let ServerFrame::Msg(m) = bob.recv_until(|f| matches!(f, ServerFrame::Msg(_))).await else {
        unreachable!()
    };
    let want = "you *************! 你是*** ok";
    assert_eq!(m.body, want);
    assert_eq!(
        m.body.chars().count(),
        text.chars().count(),
        "same length in characters"
    );
    assert_eq!(
        history_bodies(&mut alice, "dm:alice:bob").await,
        vec![want.to_string()]
    );

    // Danmaku are masked the same way.
    bob.send(&ClientFrame::LiveJoin {
        reference: "j".into(),
        room: "r".into(),
    })
    .await;
    bob.recv_until(|f| matches!(f, ServerFrame::LiveJoined { .. }))
        .await;
    alice
        .send(&ClientFrame::Danmaku {
            id: "d1".into(),
            room: "r".into(),
            body: "BADWORD".into(),
        })
        .await;
    let ServerFrame::LiveBatch { items, .. } = bob
        .recv_until(|f| matches!(f, ServerFrame::LiveBatch { .. }))
        .await
    else {
        unreachable!()
    };
    assert_eq!(items[0].body, "*******");
}

#[tokio::test]
async fn reject_mode_refuses_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_words(&dir, "badword\n", ModerationMode::Reject).await;
    let mut alice = RawTcp::login(&node, "alice").await;
    alice
        .send(&ClientFrame::Send {
            id: "m1".into(),
            to: "user:bob".into(),
            body: "a b.a.d.w.o.r.d".into(),
        })
        .await;
    match alice
        .recv_until(|f| matches!(f, ServerFrame::Ack { .. } | ServerFrame::Reject { .. }))
        .await
    {
        ServerFrame::Reject { id, code, .. } => {
            assert_eq!((id.as_str(), code), ("m1", ErrorCode::Filtered))
        }
        other => panic!("expected reject, got {other:?}"),
    }
    assert!(history_bodies(&mut alice, "dm:alice:bob").await.is_empty());
    // A clean message still goes through on the same connection.
    alice
        .send(&ClientFrame::Send {
            id: "m2".into(),
            to: "user:bob".into(),
            body: "fine".into(),
        })
        .await;
    assert!(matches!(
        alice
            .recv_until(|f| matches!(f, ServerFrame::Ack { .. } | ServerFrame::Reject { .. }))
            .await,
        ServerFrame::Ack { .. }
    ));
}

#[tokio::test]
async fn the_admin_api_reloads_and_tests_the_word_list() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_words(&dir, "badword\n", ModerationMode::Mask).await;

    let (status, body) = admin_post(&node, "/admin/filter/test", "so badword".as_bytes()).await;
    assert_eq!(status, 200);
    assert_eq!(body["masked"], "so *******");
    assert_eq!(body["hits"][0]["word"], "badword");

    std::fs::write(dir.path().join("words.txt"), "newword\n").unwrap();
    let (status, body) = admin_post(&node, "/admin/filter/reload", b"").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["words"], 1);
    let (_, body) = admin_post(&node, "/admin/filter/test", "badword newword".as_bytes()).await;
    assert_eq!(body["masked"], "badword *******");

    // A list that is not UTF-8 is refused and the filter in use stays.
    std::fs::write(dir.path().join("words.txt"), [0xff, 0xfe, b'\n']).unwrap();
    let (status, body) = admin_post(&node, "/admin/filter/reload", b"").await;
    assert_eq!(status, 400, "{body}");
    let (_, body) = admin_post(&node, "/admin/filter/test", "newword".as_bytes()).await;
    assert_eq!(body["masked"], "*******");
}
