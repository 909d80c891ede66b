//! Running entities, over real sockets to a real node: requests for
//! conversations the asker may not use start no entity, and a cap on running
//! entities passivates the least recently used without losing or reordering
//! anything a client was told.
//!
//! The counts come from the admin API (`/admin/status`), as an operator sees
//! them; passivations from `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, HashMap};

use chorus_config::Secret;
use chorus_wire::codec::Frame;
use chorus_wire::{ClientFrame, ErrorCode, ServerFrame};
use common::{
    RawClient, RawTcp, RawWs, TestNode, WAIT, history, next_frame, next_msg, request,
    start_node_with,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "entities-test-token";

/// `/admin/status`'s running entities: (users, conversations, live rooms).
async fn running(node: &TestNode) -> (u64, u64, u64) {
    let mut stream = tokio::net::TcpStream::connect(node.node.addrs().admin)
        .await
        .unwrap();
    let request = format!(
        "GET /admin/status HTTP/1.0\r\nHost: chorus\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (_, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let v: serde_json::Value = serde_json::from_str(body).expect("status is JSON");
    let count = |kind: &str| v["entities"][kind].as_u64().expect("a count");
    (count("user"), count("conversation"), count("live_room"))
}

/// The sum of a metric's samples whose labels contain every one of `labels`.
async fn metric_with(node: &TestNode, name: &str, labels: &[&str]) -> f64 {
    let (status, text) = common::admin_get(node, "/metrics").await;
    assert_eq!(status, 200);
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| labels.iter().all(|l| line.contains(l)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_foreign_conversations_start_no_entity() {
    const FOREIGN: usize = 600;
    let node = start_node_with(|c| c.admin.token = Some(Secret::new(TOKEN))).await;
    let mut bob = RawTcp::login(&node, "bob").await;
    let created = request(
        &mut bob,
        "g",
        &ClientFrame::GroupCreate {
            reference: "g".into(),
            id: Some("club".into()),
            name: "club".into(),
            members: vec!["carol".into()],
        },
    )
    .await;
    assert!(matches!(created, ServerFrame::Group { .. }), "{created:?}");
    let mut mallory = RawTcp::login(&node, "mallory").await;
    let (_, before, _) = running(&node).await;

    // Pipelined: per key a `read` (never answered) and then a `history`, whose
    // answer therefore comes after the read was dealt with.
    let mut frames = Vec::new();
    for i in 0..FOREIGN {
        for conv in [format!("dm:x{i}:y{i}"), format!("group:nope{i}")] {
            frames.push(ClientFrame::Read {
                conv: conv.clone(),
                seq: 5,
            });
            frames.push(ClientFrame::History {
                reference: format!("h:{conv}"),
                conv,
                after: Some(0),
                before: None,
                limit: Some(10),
            });
        }
    }
    for reference in ["info", "hist-club"] {
        frames.push(if reference == "info" {
            ClientFrame::GroupInfo {
                reference: reference.into(),
                id: "club".into(),
            }
        } else {
            ClientFrame::History {
                reference: reference.into(),
                conv: "group:club".into(),
                after: None,
                before: None,
                limit: None,
            }
        });
    }
    let mut bytes = Vec::new();
    for frame in &frames {
        bytes.extend_from_slice(&frame.to_tcp());
    }
    mallory.send_raw(&bytes).await;

    let mut codes: HashMap<String, ErrorCode> = HashMap::new();
    while codes.len() < 2 * FOREIGN + 2 {
        match next_frame(&mut mallory).await {
            ServerFrame::Error {
                reference: Some(r),
                code,
                ..
            } => {
                codes.insert(r, code);
            }
            other => panic!("mallory got {other:?} for a conversation of others"),
        }
    }
    for i in 0..FOREIGN {
        assert_eq!(codes[&format!("h:dm:x{i}:y{i}")], ErrorCode::Forbidden);
        // Overloaded is a refusal too: lookups of unknown groups are bounded.
        assert!(
            matches!(
                codes[&format!("h:group:nope{i}")],
                ErrorCode::NotFound | ErrorCode::Overloaded
            ),
            "group:nope{i}: {:?}",
            codes[&format!("h:group:nope{i}")]
        );
    }
    assert_eq!(codes["info"], ErrorCode::Forbidden);
    assert_eq!(codes["hist-club"], ErrorCode::Forbidden);

    let (_, after, _) = running(&node).await;
    assert_eq!(
        after,
        before,
        "{} frames for conversations of others started conversations",
        frames.len()
    );
    assert!(
        metric_with(
            &node,
            "chorus_access_refusals_total",
            &["reason=\"forbidden\""]
        )
        .await
            >= FOREIGN as f64
    );
    // The members are still served.
    let (_, seq) = common::send_acked(&mut bob, "b1", "group:club", "still here").await;
    let mut carol = RawWs::login(&node, "carol").await;
    let (page, _) = history(&mut carol, "group:club", Some(0), None, None)
        .await
        .expect("a member reads");
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![seq]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_passivates_the_least_recently_used_and_loses_nothing() {
    const PEERS: usize = 24;
    const ROUNDS: usize = 5;
    const CAP: u32 = 4;
    let node = start_node_with(|c| {
        c.admin.token = Some(Secret::new(TOKEN));
        c.entities.max_conversations = CAP;
        c.entities.max_users = CAP;
        c.entities.max_live_rooms = 2;
    })
    .await;
    let mut alice = RawTcp::login(&node, "alice").await;
    let mut peers = Vec::new();
    for i in 0..PEERS {
        peers.push(RawWs::login(&node, &format!("p{i}")).await);
    }

    // Every send at once, round-robin over the conversations, so entities are
    // asked to passivate while their writes are in flight.
    let mut bytes = Vec::new();
    for round in 0..ROUNDS {
        for i in 0..PEERS {
            let frame = ClientFrame::Send {
                id: format!("a-{round}-{i}"),
                to: format!("user:p{i}"),
                body: format!("round {round} to p{i}"),
            };
            bytes.extend_from_slice(&frame.to_tcp());
        }
    }
    alice.send_raw(&bytes).await;

    // Acks, in arrival order per conversation: each conversation's seqs rise.
    let mut acked: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    let mut count = 0;
    while count < ROUNDS * PEERS {
        match next_frame(&mut alice).await {
            ServerFrame::Ack { id, conv, seq, .. } => {
                acked.entry(conv).or_default().push((seq, id));
                count += 1;
            }
            other => panic!("alice got {other:?}"),
        }
    }
    for (conv, acks) in &acked {
        assert!(
            acks.windows(2).all(|w| w[0].0 < w[1].0),
            "{conv}: acks out of seq order: {acks:?}"
        );
    }

    // Every peer got its messages, in seq order, though its User entity was
    // passivated under pressure too.
    for (i, peer) in peers.iter_mut().enumerate() {
        let conv = chorus_wire::ConvId::dm("alice", &format!("p{i}")).to_string();
        let want: Vec<u64> = acked[&conv].iter().map(|(s, _)| *s).collect();
        let mut got = Vec::new();
        for _ in 0..ROUNDS {
            let m = next_msg(peer).await;
            assert_eq!(m.conv, conv);
            got.push(m.seq);
        }
        assert_eq!(got, want, "p{i} received its messages in order");
        // And every acked message is in history at its acked seq.
        let (page, _) = history(peer, &conv, Some(0), None, Some(50)).await.unwrap();
        let stored: Vec<(u64, String)> = page.into_iter().map(|m| (m.seq, m.id)).collect();
        assert_eq!(stored, acked[&conv], "{conv} holds what was acked");
    }

    // Live rooms too: danmaku to more rooms than the cap, each acked.
    for room in 0..8 {
        let frame = ClientFrame::Danmaku {
            id: format!("d{room}"),
            room: format!("r{room}"),
            body: "hi".into(),
        };
        alice.put(&frame).await;
        match next_frame(&mut alice).await {
            ServerFrame::Ack { id, .. } => assert_eq!(id, format!("d{room}")),
            // One user's danmaku are rate-limited: refused, not lost.
            ServerFrame::Reject {
                code: ErrorCode::RateLimited,
                ..
            } => {}
            other => panic!("danmaku to r{room}: {other:?}"),
        }
    }

    let pressure = |kind: &'static str| {
        let node = &node;
        async move {
            metric_with(
                node,
                "chorus_entity_passivations_total",
                &[&format!("kind=\"{kind}\""), "reason=\"pressure\""],
            )
            .await
        }
    };
    assert!(
        pressure("conversation").await > 0.0,
        "conversations passivated"
    );
    assert!(pressure("user").await > 0.0, "users passivated");
    // The counts come down to the caps once the work is done (each entity
    // asked to go stops when its last write is acked).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (users, conversations, rooms) = running(&node).await;
        if conversations <= u64::from(CAP) + 1 && users <= u64::from(CAP) + 1 && rooms <= 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "running: {users} users, {conversations} conversations, {rooms} rooms"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await; // poll pacing: no event says "done"
    }
}
