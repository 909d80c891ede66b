//! The Rust SDK against a real node: offline catch-up without the app's help.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use chorus_actors::CloseReason;
use chorus_client::{Client, ClientConfig, Event, Events, Transport};
use common::{TestNode, WAIT, start_node};

async fn connect(node: &TestNode, user: &str, transport: Transport) -> (Client, Events) {
    let addr = match transport {
        Transport::Tcp => node.node.addrs().tcp,
        _ => node.node.addrs().ws,
    };
    Client::connect(ClientConfig::new(addr.to_string(), transport, user))
        .await
        .expect("connects")
}

/// Collects `n` chat messages from `events`, skipping other events.
async fn messages(events: &mut Events, n: usize) -> Vec<chorus_client::Message> {
    let mut got = Vec::new();
    tokio::time::timeout(WAIT * 3, async {
        while got.len() < n {
            match events.next().await {
                Some(Event::Message(m)) => got.push(m),
                Some(_) => {}
                None => panic!("event stream ended"),
            }
        }
    })
    .await
    .expect("every message arrives");
    got
}

#[tokio::test]
async fn an_app_restarted_from_saved_positions_catches_up_by_itself() {
    let node = start_node().await;
    let (alice, _alice_events) = connect(&node, "alice", Transport::WsJson).await;
    let (bob, mut bob_events) = connect(&node, "bob", Transport::Tcp).await;
    alice.send("user:bob", "before").await.unwrap();
    let first = messages(&mut bob_events, 1).await;
    assert_eq!(first[0].body, "before");
    let saved = bob.positions();
    bob.close().await;
    drop(bob_events);

    let mut acked = Vec::new();
    for i in 0..100 {
        acked.push(
            alice
                .send("user:bob", &format!("offline {i}"))
                .await
                .unwrap(),
        );
    }

    let mut cfg = ClientConfig::new(node.node.addrs().tcp.to_string(), Transport::Tcp, "bob");
    cfg.resume = saved;
    let (_bob, mut bob_events) = Client::connect(cfg).await.unwrap();
    let got = messages(&mut bob_events, 100).await;
    let bodies: Vec<String> = got.iter().map(|m| m.body.clone()).collect();
    let want: Vec<String> = (0..100).map(|i| format!("offline {i}")).collect();
    assert_eq!(bodies, want, "all 100, in order, once");
    let seqs: Vec<u64> = got.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, acked.iter().map(|a| a.seq).collect::<Vec<_>>());
    // Nothing more: a ping round trip, then no queued message.
    _bob.ping().await.unwrap();
    assert!(!matches!(bob_events.try_next(), Some(Event::Message(_))));
}

#[tokio::test]
async fn a_dropped_connection_reconnects_and_resyncs_exactly_once() {
    let node = start_node().await;
    let (alice, _alice_events) = connect(&node, "alice", Transport::Tcp).await;
    let (bob, mut bob_events) = connect(&node, "bob", Transport::WsBinary).await;
    alice.send("user:bob", "warm-up").await.unwrap();
    messages(&mut bob_events, 1).await;

    // The node drops bob's connection (as a kick does) while alice keeps sending.
    let sender = tokio::spawn({
        let alice = alice.clone();
        async move {
            let mut seqs = Vec::new();
            for i in 0..100 {
                seqs.push(alice.send("user:bob", &format!("m{i}")).await.unwrap().seq);
            }
            seqs
        }
    });
    for s in node.node.region().sessions().of("bob") {
        s.close(CloseReason::Kicked);
    }
    let seqs = sender.await.unwrap();
    let got = messages(&mut bob_events, 100).await;
    assert_eq!(
        got.iter().map(|m| m.seq).collect::<Vec<_>>(),
        seqs,
        "every message once, in order"
    );
    bob.ping().await.unwrap();
    assert!(!matches!(bob_events.try_next(), Some(Event::Message(_))));
}
