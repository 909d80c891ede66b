//! Every frame the node sends fits the announced `max_frame`, as encoded, in both
//! encodings — also when a list would not: long history pages are cut and say
//! `more`, long conversation lists are paged, long live batches are split. The
//! connection stays open throughout (before, a frame over the WebSocket writer's
//! buffer closed it, for a live batch every JSON viewer of the room at once).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use chorus_client::{Client, ClientConfig, Event, Transport};
use chorus_wire::codec::Frame;
use chorus_wire::limits::DEFAULT_MAX_FRAME;
use chorus_wire::{ClientFrame, ConversationsPage, Message, ServerFrame, Trailing};
use common::{RawTcp, RawWs, TestNode, WAIT, send_msg, start_node_with};
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The body JSON writes longest: 4,096 control characters, 6 bytes each.
fn worst_body() -> String {
    "\u{1}".repeat(4_096)
}

/// The next frame on a raw TCP connection and its size on the wire (without the
/// length prefix); None when the node closed the connection.
async fn tcp_frame(c: &mut RawTcp) -> Option<(ServerFrame, usize)> {
    tokio::time::timeout(WAIT, async {
        let mut prefix = [0u8; 4];
        c.stream.read_exact(&mut prefix).await.ok()?;
        let mut payload = vec![0u8; u32::from_be_bytes(prefix) as usize];
        c.stream.read_exact(&mut payload).await.ok()?;
        let frame = ServerFrame::from_binary(&payload).expect("a frame");
        Some((frame, payload.len()))
    })
    .await
    .expect("a frame or close within the wait")
}

/// The next frame on a raw WebSocket (JSON) connection and its size.
async fn ws_frame(c: &mut RawWs) -> Option<(ServerFrame, usize)> {
    tokio::time::timeout(WAIT, async {
        loop {
            match c.ws.next().await {
                Some(Ok(WsMessage::Text(t))) => {
                    let frame = ServerFrame::from_json(t.as_str()).expect("a frame");
                    return Some((frame, t.len()));
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("a frame or close within the wait")
}

/// A raw connection of either transport that tells the size of every frame.
enum Conn<'a> {
    Tcp(&'a mut RawTcp),
    Ws(&'a mut RawWs),
}

impl Conn<'_> {
    async fn send(&mut self, frame: &ClientFrame) {
        match self {
            Self::Tcp(c) => c.send(frame).await,
            Self::Ws(c) => c.send(frame).await,
        }
    }

    async fn next(&mut self) -> Option<(ServerFrame, usize)> {
        match self {
            Self::Tcp(c) => tcp_frame(c).await,
            Self::Ws(c) => ws_frame(c).await,
        }
    }
}

/// The next frame answering `reference` (skipping others), checked against the limit.
async fn answer(conn: &mut Conn<'_>, reference: &str) -> ServerFrame {
    loop {
        let (frame, len) = conn.next().await.expect("the connection stays open");
        assert!(
            len <= DEFAULT_MAX_FRAME as usize,
            "{} of {len} bytes over max_frame",
            frame.type_name()
        );
        if common::answered_ref(&frame) == Some(reference) {
            return frame;
        }
    }
}

/// Reads `live_batch` frames until `n` items arrived; returns the items and the
/// batches they came in. Every frame fits the limit and reports nothing dropped.
async fn live_items(conn: &mut Conn<'_>, n: usize) -> (usize, usize) {
    let (mut items, mut frames) = (0, 0);
    while items < n {
        let (frame, len) = conn.next().await.expect("the viewer stays connected");
        assert!(len <= DEFAULT_MAX_FRAME as usize, "a batch of {len} bytes");
        if let ServerFrame::LiveBatch {
            items: batch,
            dropped,
            ..
        } = frame
        {
            assert_eq!(dropped, 0);
            items += batch.len();
            frames += 1;
        }
    }
    (items, frames)
}

/// Alice sends `n` messages with `body` to bob, pipelined; returns once all are acked.
async fn fill_dm(node: &TestNode, n: usize, body: &str) {
    let mut alice = RawTcp::login(node, "alice").await;
    // Ids unique across calls: a repeated id would be an idempotent retry.
    let batch = rand::random::<u32>();
    for i in 0..n {
        send_msg(&mut alice, &format!("m{batch}-{i}"), "user:bob", body).await;
    }
    let mut acked = 0;
    while acked < n {
        if let ServerFrame::Ack { .. } = common::next_frame(&mut alice).await {
            acked += 1;
        }
    }
}

fn history(reference: &str, after: Option<u64>, before: Option<u64>) -> ClientFrame {
    ClientFrame::History {
        reference: reference.into(),
        conv: "dm:alice:bob".into(),
        after,
        before,
        limit: Some(200),
    }
}

fn page_of(frame: ServerFrame) -> (Vec<Message>, bool) {
    match frame {
        ServerFrame::HistoryPage { messages, more, .. } => (messages, more),
        other => panic!("expected history_page, got {other:?}"),
    }
}

/// Reads the whole dm forward and backward, 200 at a time.
async fn read_both_ways(conn: &mut Conn<'_>, n: u64) {
    let mut seqs = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        conn.send(&history("fwd", Some(after), None)).await;
        let (messages, more) = page_of(answer(conn, "fwd").await);
        pages += 1;
        assert!(
            !messages.is_empty(),
            "a page that is cut still holds a message"
        );
        after = messages.last().map_or(after, |m| m.seq);
        seqs.extend(messages.iter().map(|m| m.seq));
        if !more {
            break;
        }
    }
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<_>>(),
        "forward, all once, in order"
    );
    assert!(pages > 1, "the pages were cut below the asked-for 200");

    let mut seqs = Vec::new();
    let mut before = None;
    loop {
        conn.send(&history("back", None, before)).await;
        let (messages, more) = page_of(answer(conn, "back").await);
        before = messages.first().map(|m| m.seq);
        let mut page: Vec<u64> = messages.iter().map(|m| m.seq).collect();
        page.extend(seqs);
        seqs = page;
        if !more {
            break;
        }
    }
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<_>>(),
        "backward, all once, in order"
    );
}

#[tokio::test]
async fn history_pages_of_the_largest_bodies_fit_and_say_more() {
    let node = start_node_with(|_| {}).await;
    fill_dm(&node, 200, &worst_body()).await;

    let mut ws = RawWs::login(&node, "bob").await;
    read_both_ways(&mut Conn::Ws(&mut ws), 200).await;
    let mut tcp = RawTcp::login(&node, "bob").await;
    read_both_ways(&mut Conn::Tcp(&mut tcp), 200).await;
}

#[tokio::test]
async fn the_sdk_resyncs_through_pages_shorter_than_it_asked_for() {
    let node = start_node_with(|_| {}).await;
    // A message bob has seen: his saved position, from which he resumes.
    fill_dm(&node, 1, "seen").await;
    let mut before = 1;
    for transport in [Transport::WsJson, Transport::Tcp] {
        fill_dm(&node, 150, &worst_body()).await;
        let addr = match transport {
            Transport::Tcp => node.node.addrs().tcp,
            _ => node.node.addrs().ws,
        };
        let mut cfg = ClientConfig::new(addr.to_string(), transport, "bob");
        cfg.resume = [("dm:alice:bob".to_string(), before)].into();
        let (bob, mut events) = Client::connect(cfg).await.expect("connects");
        let mut seqs = Vec::new();
        tokio::time::timeout(WAIT * 3, async {
            while seqs.len() < 150 {
                match events.next().await {
                    Some(Event::Message(m)) => seqs.push(m.seq),
                    Some(Event::Disconnected { .. }) => panic!("the connection dropped"),
                    Some(_) => {}
                    None => panic!("event stream ended"),
                }
            }
        })
        .await
        .expect("all 150 arrive");
        assert_eq!(seqs, ((before + 1)..=(before + 150)).collect::<Vec<_>>());
        before += 150;
        bob.close().await;
    }
}

#[tokio::test]
async fn a_long_conversation_list_fits_one_frame_and_pages() {
    // More items per page than fit one frame, so frames are cut by bytes.
    let node = start_node_with(|c| c.limits.list_max = 5_000).await;
    let peers: Vec<String> = (0..1_500)
        .map(|i| format!("{i:04}{}", "p".repeat(60)))
        .collect();
    let mut alice = RawTcp::login(&node, "alice").await;
    for (i, peer) in peers.iter().enumerate() {
        send_msg(&mut alice, &format!("m{i}"), &format!("user:{peer}"), "hi").await;
    }
    let mut acked = 0;
    while acked < peers.len() {
        if let ServerFrame::Ack { .. } = common::next_frame(&mut alice).await {
            acked += 1;
        }
    }
    let mut want: Vec<String> = peers
        .iter()
        .map(|p| chorus_wire::ConvId::dm("alice", p).to_string())
        .collect();
    want.sort();

    let mut ws = RawWs::login(&node, "alice").await;
    // A v1 request: one frame that fits, without `more`.
    ws.send(&ClientFrame::Conversations {
        reference: "v1".into(),
        page: Trailing::ABSENT,
    })
    .await;
    let ServerFrame::ConversationList { items, more, .. } =
        answer(&mut Conn::Ws(&mut ws), "v1").await
    else {
        panic!("expected conversation_list")
    };
    assert!(more.is_absent());
    assert!(!items.is_empty() && items.len() < want.len());

    // Paged: every conversation once, in order, each page within the limit.
    for encoding in ["json", "binary"] {
        let mut listed = Vec::new();
        let mut after = None;
        let mut tcp = RawTcp::login(&node, "alice").await;
        loop {
            let frame = ClientFrame::Conversations {
                reference: "p".into(),
                page: Trailing::some(ConversationsPage {
                    after: after.clone(),
                    limit: Some(5_000),
                }),
            };
            let mut conn = if encoding == "json" {
                Conn::Ws(&mut ws)
            } else {
                Conn::Tcp(&mut tcp)
            };
            conn.send(&frame).await;
            let answered = answer(&mut conn, "p").await;
            let ServerFrame::ConversationList { items, more, .. } = answered else {
                panic!("expected conversation_list")
            };
            after = items.last().map(|i| i.conv.clone());
            listed.extend(items.into_iter().map(|i| i.conv));
            if more != Trailing::some(true) {
                break;
            }
        }
        assert_eq!(
            listed, want,
            "{encoding}: every conversation once, in order"
        );
    }

    // The SDK pages through it too.
    let (sdk, _events) = Client::connect(ClientConfig::new(
        node.node.addrs().tcp.to_string(),
        Transport::Tcp,
        "alice",
    ))
    .await
    .expect("connects");
    let listed: Vec<String> = sdk
        .conversations()
        .await
        .expect("lists")
        .into_iter()
        .map(|i| i.conv)
        .collect();
    assert_eq!(listed, want);
}

#[tokio::test]
async fn a_live_batch_of_long_items_is_split_for_every_viewer() {
    let node = start_node_with(|c| {
        c.live.budget_per_s = 10_000;
        c.live.window_ms = 1_000;
    })
    .await;
    let mut json_viewer = RawWs::login(&node, "jv").await;
    let mut binary_viewer = RawTcp::login(&node, "bv").await;
    let join = |reference: &str| ClientFrame::LiveJoin {
        reference: reference.into(),
        room: "stage".into(),
    };
    let mut json_viewer = Conn::Ws(&mut json_viewer);
    let mut binary_viewer = Conn::Tcp(&mut binary_viewer);
    for viewer in [&mut json_viewer, &mut binary_viewer] {
        viewer.send(&join("j")).await;
        answer(viewer, "j").await;
    }

    // 20 users, one long danmaku each, within one window: ~500 KB as JSON.
    let mut senders = Vec::new();
    for i in 0..20 {
        let mut s = RawTcp::login(&node, &format!("s{i}")).await;
        s.send(&ClientFrame::Danmaku {
            id: format!("d{i}"),
            room: "stage".into(),
            body: worst_body(),
        })
        .await;
        senders.push(s);
    }
    for s in &mut senders {
        assert!(matches!(
            common::next_frame(s).await,
            ServerFrame::Ack { .. }
        ));
    }

    let (json_items, json_frames) = live_items(&mut json_viewer, 20).await;
    let (binary_items, _) = live_items(&mut binary_viewer, 20).await;
    assert_eq!((json_items, binary_items), (20, 20));
    assert!(
        json_frames > 1,
        "the JSON viewer got the window in several batches"
    );

    // A late viewer's `recent` fits too, holding the newest items.
    let mut late = RawWs::login(&node, "late").await;
    late.send(&join("late")).await;
    let ServerFrame::LiveJoined { recent, .. } = answer(&mut Conn::Ws(&mut late), "late").await
    else {
        panic!("expected live_joined")
    };
    assert!(!recent.is_empty() && recent.len() < 20);
}
