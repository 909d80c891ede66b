//! Sequence fencing: two owners of one conversation — two regions, as two nodes
//! during a membership split would have — write to the same keyspace at once, and
//! no seq is ever handed out twice.
//!
//! Needs a real Cassandra/ScyllaDB at `CHORUS_CASSANDRA` (the embedded store
//! cannot be shared by two owners), so it is `#[ignore]`d; `scripts/test` starts
//! Cassandra and runs it with `--include-ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chorus_actors::outbound::OutboundQueue;
use chorus_actors::{Identity, Roles, Session, SessionHandle, Settings, ShardRegion};
use chorus_store::scylla::{Consistency, ScyllaOptions, ScyllaStore};
use chorus_store::{HistoryQuery, MessageStore};
use chorus_wire::{ClientFrame, ServerFrame};

const PER_OWNER: usize = 300;

async fn store(keyspace: &str, contact: &str) -> Arc<dyn MessageStore> {
    let options = ScyllaOptions {
        contact_points: vec![contact.to_string()],
        keyspace: keyspace.to_string(),
        replication_factor: 1,
        consistency: Consistency::One,
        request_timeout: Duration::from_secs(10),
    };
    Arc::new(
        ScyllaStore::connect(options)
            .await
            .expect("Cassandra at CHORUS_CASSANDRA answers"),
    )
}

/// Sends `n` messages to bob as alice through one owner and returns id → seq.
async fn drive(region: ShardRegion, session_id: u64, owner: &str) -> HashMap<String, u64> {
    let (handle, mut queue): (SessionHandle, OutboundQueue) =
        SessionHandle::new(session_id, "alice".into(), 4096);
    let identity = Identity {
        user: "alice".into(),
        roles: Roles::default(),
    };
    let mut session = Session::open(region, identity, handle).await;
    let mut acked = HashMap::new();
    let reader = async {
        while acked.len() < PER_OWNER {
            let frame = tokio::time::timeout(Duration::from_secs(60), queue.recv())
                .await
                .expect("answers")
                .expect("open");
            match frame.frame() {
                ServerFrame::Ack { id, seq, .. } => {
                    acked.insert(id.clone(), *seq);
                }
                ServerFrame::Reject { id, code, .. } => panic!("{id} rejected: {code}"),
                _ => {}
            }
        }
    };
    let writer = async {
        for i in 0..PER_OWNER {
            let frame = ClientFrame::Send {
                id: format!("{owner}-{i}"),
                to: "user:bob".into(),
                body: format!("{owner} {i}"),
            };
            session.handle_frame(frame).await;
        }
    };
    tokio::join!(reader, writer);
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Cassandra at CHORUS_CASSANDRA: scripts/test starts one and runs it"]
async fn two_owners_of_one_conversation_never_share_a_seq() {
    let contact = std::env::var("CHORUS_CASSANDRA")
        .expect("CHORUS_CASSANDRA names the Cassandra node of this test (scripts/cassandra start)");
    let keyspace = format!("chorus_fence_{:016x}", rand::random::<u64>());
    // Small blocks so the owners interleave many allocations.
    let settings = Settings {
        seq_block: 7,
        ..Settings::default()
    };
    let a = ShardRegion::start(store(&keyspace, &contact).await, settings.clone())
        .await
        .unwrap();
    let b = ShardRegion::start(store(&keyspace, &contact).await, settings)
        .await
        .unwrap();

    let (from_a, from_b) = tokio::join!(drive(a, 1, "a"), drive(b, 2, "b"));
    let mut by_seq: BTreeMap<u64, String> = BTreeMap::new();
    for (id, seq) in from_a.iter().chain(from_b.iter()) {
        if let Some(other) = by_seq.insert(*seq, id.clone()) {
            panic!("seq {seq} handed out twice: {other} and {id}");
        }
    }

    // The whole history agrees: every message once, at its acked seq.
    let reader = store(&keyspace, &contact).await;
    let mut after = 0;
    let mut stored = BTreeMap::new();
    loop {
        let page = reader
            .history(
                "dm:alice:bob",
                HistoryQuery {
                    after: Some(after),
                    before: None,
                    limit: 200,
                },
            )
            .await
            .unwrap();
        for m in &page.messages {
            assert!(
                stored.insert(m.seq, m.id.clone()).is_none(),
                "seq {} stored twice",
                m.seq
            );
            after = m.seq;
        }
        if !page.more {
            break;
        }
    }
    assert_eq!(stored, by_seq);
}
