//! Supervision: a Conversation entity that fails restarts from the store. Its next
//! send is acked with a higher seq, its history is intact, retries still find
//! their seq, and a send that meets the failure is answered rather than lost.
//!
//! Real entities on a real embedded store in a temporary directory; sessions are
//! [`SessionHandle`]s whose queues the test reads as a gateway would.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use chorus_actors::conversation::ConversationMsg;
use chorus_actors::outbound::OutboundQueue;
use chorus_actors::region::Lifecycle;
use chorus_actors::{Identity, Roles, Session, SessionHandle, Settings, ShardRegion};
use chorus_store::embedded::EmbeddedStore;
use chorus_wire::{ClientFrame, ConvId, ErrorCode, Message, ServerFrame};

/// How long the test waits for an expected frame before failing.
const WAIT: Duration = Duration::from_secs(10);

/// A session as a gateway sees it: the protocol logic and its outbound queue.
struct Client {
    session: Session,
    queue: OutboundQueue,
}

impl Client {
    async fn open(region: &ShardRegion, id: u64, user: &str) -> Self {
        let (handle, queue) = SessionHandle::new(id, user.into(), 1024);
        let identity = Identity {
            user: user.into(),
            roles: Roles::default(),
        };
        let session = Session::open(region.clone(), identity, handle).await;
        Self { session, queue }
    }

    async fn next(&mut self) -> ServerFrame {
        let frame = tokio::time::timeout(WAIT, self.queue.recv())
            .await
            .expect("a frame within the wait")
            .expect("the session queue stays open");
        frame.frame().clone()
    }

    async fn send(&mut self, id: &str, to: &str, body: &str) {
        self.session
            .handle_frame(ClientFrame::Send {
                id: id.into(),
                to: to.into(),
                body: body.into(),
            })
            .await;
    }

    /// The `ack` or `reject` of send `id`, skipping other frames.
    async fn answer(&mut self, id: &str) -> ServerFrame {
        loop {
            let f = self.next().await;
            if matches!(&f, ServerFrame::Ack { id: i, .. } | ServerFrame::Reject { id: i, .. } if i == id)
            {
                return f;
            }
        }
    }

    async fn send_acked(&mut self, id: &str, to: &str, body: &str) -> u64 {
        self.send(id, to, body).await;
        match self.answer(id).await {
            ServerFrame::Ack { seq, .. } => seq,
            other => panic!("expected the ack of {id}, got {other:?}"),
        }
    }

    async fn next_msg(&mut self) -> Message {
        loop {
            if let ServerFrame::Msg(m) = self.next().await {
                return m;
            }
        }
    }

    async fn history_from_start(&mut self, conv: &str) -> Vec<Message> {
        self.session
            .handle_frame(ClientFrame::History {
                reference: "h".into(),
                conv: conv.into(),
                after: Some(0),
                before: None,
                limit: Some(200),
            })
            .await;
        loop {
            match self.next().await {
                ServerFrame::HistoryPage { messages, more, .. } => {
                    assert!(!more, "the whole conversation fits one page");
                    return messages;
                }
                ServerFrame::Error { code, message, .. } => {
                    panic!("history failed: {code}: {message}")
                }
                _ => {}
            }
        }
    }
}

async fn start_region(dir: &std::path::Path) -> ShardRegion {
    let store = EmbeddedStore::open(dir).expect("store opens");
    ShardRegion::start(Arc::new(store), Settings::default())
        .await
        .expect("region starts")
}

/// Makes the conversation's entity fail and waits until it is gone.
async fn fail_and_wait(region: &ShardRegion, conv: &ConvId) {
    let actor = region
        .conversation_actor(conv)
        .expect("the conversation is running");
    region.tell_conversation(conv, ConversationMsg::Lifecycle(Lifecycle::fail()));
    actor
        .get_cell()
        .wait(Some(WAIT))
        .await
        .expect("the failed entity exits");
}

#[tokio::test]
async fn a_failed_conversation_restarts_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let region = start_region(dir.path()).await;
    let mut alice = Client::open(&region, 1, "alice").await;
    let mut bob = Client::open(&region, 2, "bob").await;
    let conv = ConvId::dm("alice", "bob");

    let mut seqs = Vec::new();
    for i in 0..3 {
        seqs.push(
            alice
                .send_acked(&format!("m{i}"), "user:bob", "before")
                .await,
        );
        assert_eq!(bob.next_msg().await.seq, seqs[i]);
    }
    let before = region.conversation_actor(&conv).unwrap().get_id();

    fail_and_wait(&region, &conv).await;

    let after = alice.send_acked("m3", "user:bob", "after").await;
    assert!(
        after > seqs[2],
        "seq {after} after the restart must exceed {}",
        seqs[2]
    );
    let restarted = region.conversation_actor(&conv).expect("a fresh entity");
    assert_ne!(
        restarted.get_id(),
        before,
        "a new actor serves the conversation"
    );
    let m = bob.next_msg().await;
    assert_eq!(
        (m.seq, m.id.as_str(), m.body.as_str()),
        (after, "m3", "after")
    );
    seqs.push(after);

    // The idempotency window survives the restart (it is read from the store).
    alice.send("m0", "user:bob", "before").await;
    match alice.answer("m0").await {
        ServerFrame::Ack { seq, .. } => assert_eq!(seq, seqs[0]),
        other => panic!("expected the ack of the retry, got {other:?}"),
    }

    let history = bob.history_from_start(&conv.to_string()).await;
    let got: Vec<(u64, &str)> = history.iter().map(|m| (m.seq, m.id.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (seqs[0], "m0"),
            (seqs[1], "m1"),
            (seqs[2], "m2"),
            (seqs[3], "m3")
        ]
    );
}

#[tokio::test]
async fn a_send_queued_behind_a_failure_is_answered_and_its_retry_acked() {
    let dir = tempfile::tempdir().unwrap();
    let region = start_region(dir.path()).await;
    let mut alice = Client::open(&region, 1, "alice").await;
    let conv = ConvId::dm("alice", "bob");
    let first = alice.send_acked("m0", "user:bob", "one").await;

    // The failure and the send reach the entity's mailbox back to back: the send
    // is behind the failure and cannot be handled by the failing actor.
    region.tell_conversation(&conv, ConversationMsg::Lifecycle(Lifecycle::fail()));
    alice.send("m1", "user:bob", "two").await;
    let seq = match alice.answer("m1").await {
        ServerFrame::Ack { seq, .. } => seq,
        ServerFrame::Reject { code, .. } => {
            assert_eq!(code, ErrorCode::Internal, "a retryable reject");
            alice.send_acked("m1", "user:bob", "two").await
        }
        other => unreachable!("{other:?}"),
    };
    assert!(seq > first);

    let mut bob = Client::open(&region, 2, "bob").await;
    let history = bob.history_from_start(&conv.to_string()).await;
    let got: Vec<(u64, &str)> = history.iter().map(|m| (m.seq, m.id.as_str())).collect();
    assert_eq!(got, vec![(first, "m0"), (seq, "m1")]);
}

#[tokio::test]
async fn a_panicking_entity_is_restarted_and_serves_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let region = start_region(dir.path()).await;
    let mut alice = Client::open(&region, 1, "alice").await;
    let conv = ConvId::dm("alice", "bob");
    let first = alice.send_acked("m0", "user:bob", "one").await;
    let actor = region.conversation_actor(&conv).unwrap();
    region.tell_conversation(&conv, ConversationMsg::Lifecycle(Lifecycle::panic()));
    actor.get_cell().wait(Some(WAIT)).await.unwrap();
    let second = alice.send_acked("m1", "user:bob", "two").await;
    assert!(second > first);
    wait_counts(&region, (1, 0)).await;
}

/// Waits until the supervisor has handled `counts` (restarts, meltdowns): it
/// hears of a failure after the failed actor is gone.
async fn wait_counts(region: &ShardRegion, counts: (u64, u64)) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while region.supervision_counts() != counts {
        assert!(
            tokio::time::Instant::now() < deadline,
            "counts {:?}, expected {counts:?}",
            region.supervision_counts()
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_restart_storm_beyond_the_limit_is_a_meltdown() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).expect("store opens");
    let settings = Settings {
        meltdown_restarts: 3,
        meltdown_window: Duration::from_secs(60),
        ..Settings::default()
    };
    let region = ShardRegion::start(Arc::new(store), settings).await.unwrap();
    let mut alice = Client::open(&region, 1, "alice").await;
    let conv = ConvId::dm("alice", "bob");
    for i in 0..4 {
        // Every panic is handled, and the entity serves the next send.
        alice.send_acked(&format!("m{i}"), "user:bob", "x").await;
        let actor = region.conversation_actor(&conv).unwrap();
        region.tell_conversation(&conv, ConversationMsg::Lifecycle(Lifecycle::panic()));
        actor.get_cell().wait(Some(WAIT)).await.unwrap();
    }
    // Four failures within the window, over the limit of three: one meltdown.
    wait_counts(&region, (4, 1)).await;
    alice.send_acked("m9", "user:bob", "after the storm").await;
}
