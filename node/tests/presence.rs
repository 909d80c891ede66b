//! Presence and typing (protocol 1.1, docs/protocol.md §8) over real sockets on
//! one node: `presence` at once and on change, the flap window, the 500-user
//! bound, `typing` to the other members only, rate-limited and never stored,
//! and both through the Rust SDK.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use chorus_actors::CloseReason;
use chorus_client::{Client, ClientConfig, Event, Events, Transport};
use chorus_wire::limits::{MAX_PRESENCE_SUBS, PRESENCE_FLAP_MS};
use chorus_wire::{ClientFrame, ErrorCode, PresenceStatus, ServerFrame, TypingState};
use common::{
    RawClient, RawTcp, RawWs, WAIT, frames_before_pong, history, request, send_acked, start_node,
};

const FLAP: Duration = Duration::from_millis(PRESENCE_FLAP_MS);

fn now_ms() -> u64 {
    chorus_actors::now_ms()
}

fn sub(reference: &str, users: &[String]) -> ClientFrame {
    ClientFrame::PresenceSub {
        reference: reference.into(),
        users: users.to_vec(),
    }
}

fn names(users: &[&str]) -> Vec<String> {
    users.iter().map(|u| u.to_string()).collect()
}

/// The next `presence`, skipping other frames.
async fn presence(c: &mut impl RawClient) -> (String, PresenceStatus, Option<u64>) {
    loop {
        match c.next().await.expect("connection stays open") {
            ServerFrame::Presence {
                user,
                status,
                last_seen_ms,
            } => return (user, status, last_seen_ms),
            _ => continue,
        }
    }
}

fn presences(frames: &[ServerFrame]) -> Vec<&ServerFrame> {
    frames
        .iter()
        .filter(|f| matches!(f, ServerFrame::Presence { .. }))
        .collect()
}

fn typings(frames: &[ServerFrame]) -> Vec<(String, String, TypingState)> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Typing { conv, user, state } => Some((conv.clone(), user.clone(), *state)),
            _ => None,
        })
        .collect()
}

fn typing(conv: &str, state: TypingState) -> ClientFrame {
    ClientFrame::Typing {
        conv: conv.into(),
        state,
    }
}

#[tokio::test]
async fn watchers_see_online_at_once_and_offline_when_the_flap_window_closes() {
    let node = start_node().await;
    let mut alice = RawTcp::login(&node, "alice").await;
    let ok = request(&mut alice, "p1", &sub("p1", &names(&["bob"]))).await;
    assert_eq!(
        ok,
        ServerFrame::Ok {
            reference: "p1".into()
        }
    );
    // Never seen: offline, without a last-seen time.
    assert_eq!(
        presence(&mut alice).await,
        ("bob".into(), PresenceStatus::Offline, None)
    );

    let before = now_ms();
    let connected = Instant::now();
    let bob = RawWs::login(&node, "bob").await;
    assert_eq!(
        presence(&mut alice).await,
        ("bob".into(), PresenceStatus::Online, None)
    );
    let online_after = connected.elapsed();

    let closed = Instant::now();
    drop(bob);
    let (user, status, last_seen) = presence(&mut alice).await;
    let offline_after = closed.elapsed();
    assert_eq!((user.as_str(), status), ("bob", PresenceStatus::Offline));
    let last_seen = last_seen.expect("a user seen before has a last-seen time");
    assert!(
        (before..=now_ms()).contains(&last_seen),
        "last seen {last_seen} is when the session closed"
    );
    assert!(
        offline_after >= FLAP,
        "offline only after the flap window: {offline_after:?}"
    );
    eprintln!("one node: online after {online_after:?}, offline after {offline_after:?}");
    assert!(online_after < Duration::from_secs(2), "{online_after:?}");
    assert!(
        offline_after < FLAP + Duration::from_secs(2),
        "{offline_after:?}"
    );

    // A new watcher hears the same at once.
    let mut carol = RawTcp::login(&node, "carol").await;
    request(&mut carol, "p2", &sub("p2", &names(&["bob", "alice"]))).await;
    let mut heard = vec![presence(&mut carol).await, presence(&mut carol).await];
    heard.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        heard,
        vec![
            ("alice".into(), PresenceStatus::Online, None),
            ("bob".into(), PresenceStatus::Offline, Some(last_seen)),
        ]
    );
}

#[tokio::test]
async fn a_session_that_reconnects_within_the_flap_window_shows_no_change() {
    let node = start_node().await;
    let mut alice = RawTcp::login(&node, "alice").await;
    let bob = RawTcp::login(&node, "bob").await;
    request(&mut alice, "p", &sub("p", &names(&["bob"]))).await;
    assert_eq!(presence(&mut alice).await.1, PresenceStatus::Online);

    drop(bob);
    let bob = RawTcp::login(&node, "bob").await;
    // Past the window of the first close: nothing was shown.
    tokio::time::sleep(FLAP + Duration::from_millis(500)).await;
    let frames = frames_before_pong(&mut alice).await;
    assert!(
        presences(&frames).is_empty(),
        "a flap is hidden: {frames:?}"
    );

    // Two sessions: closing one of them is no change either.
    let bob2 = RawWs::login(&node, "bob").await;
    drop(bob);
    tokio::time::sleep(FLAP + Duration::from_millis(500)).await;
    let frames = frames_before_pong(&mut alice).await;
    assert!(presences(&frames).is_empty(), "still online: {frames:?}");
    drop(bob2);
    assert_eq!(presence(&mut alice).await.1, PresenceStatus::Offline);
}

#[tokio::test]
async fn a_session_watches_at_most_500_users_and_a_refused_watch_changes_nothing() {
    let node = start_node().await;
    let mut alice = RawTcp::login(&node, "alice").await;
    let first: Vec<String> = (0..400).map(|i| format!("u{i}")).collect();
    let ok = request(&mut alice, "a", &sub("a", &first)).await;
    assert!(matches!(ok, ServerFrame::Ok { .. }), "{ok:?}");
    for _ in 0..400 {
        assert_eq!(presence(&mut alice).await.1, PresenceStatus::Offline);
    }

    // 101 more would make 501: refused whole.
    let more: Vec<String> = (400..=MAX_PRESENCE_SUBS).map(|i| format!("u{i}")).collect();
    assert_eq!(more.len(), 101);
    match request(&mut alice, "b", &sub("b", &more)).await {
        ServerFrame::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::Invalid);
            assert!(message.contains("500"), "{message}");
        }
        other => panic!("expected invalid, got {other:?}"),
    }
    let _u450 = RawTcp::login(&node, "u450").await;
    let _u0 = RawTcp::login(&node, "u0").await;
    // u0 is watched; u450 is not: only u0's change is heard.
    assert_eq!(
        presence(&mut alice).await,
        ("u0".into(), PresenceStatus::Online, None)
    );
    let frames = frames_before_pong(&mut alice).await;
    assert!(presences(&frames).is_empty(), "{frames:?}");

    // Users already watched do not count again: 100 of them and 100 new fit.
    let mut again: Vec<String> = (0..100).map(|i| format!("u{i}")).collect();
    again.extend((400..500).map(|i| format!("u{i}")));
    let ok = request(&mut alice, "c", &sub("c", &again)).await;
    assert!(matches!(ok, ServerFrame::Ok { .. }), "{ok:?}");
    let mut heard = 0;
    while heard < 200 {
        presence(&mut alice).await;
        heard += 1;
    }
    // Full now.
    let one = names(&["u999"]);
    assert!(matches!(
        request(&mut alice, "d", &sub("d", &one)).await,
        ServerFrame::Error {
            code: ErrorCode::Invalid,
            ..
        }
    ));

    // After an unsubscribe, changes of u0 are no longer heard.
    let unsub = ClientFrame::PresenceUnsub {
        reference: "e".into(),
        users: names(&["u0", "never-watched"]),
    };
    assert!(matches!(
        request(&mut alice, "e", &unsub).await,
        ServerFrame::Ok { .. }
    ));
    drop(_u0);
    tokio::time::sleep(FLAP + Duration::from_millis(500)).await;
    let frames = frames_before_pong(&mut alice).await;
    assert!(presences(&frames).is_empty(), "{frames:?}");
    // And there is room for one again.
    assert!(matches!(
        request(&mut alice, "f", &sub("f", &one)).await,
        ServerFrame::Ok { .. }
    ));
}

#[tokio::test]
async fn typing_reaches_the_other_members_only_is_rate_limited_and_never_stored() {
    let node = start_node().await;
    let mut alice = RawTcp::login(&node, "alice").await;
    let mut bob = RawWs::login(&node, "bob").await;
    let mut carol = RawTcp::login(&node, "carol").await;
    let mut dave = RawTcp::login(&node, "dave").await;
    // erin speaks v1 only: she is never sent `typing`. bob and carol say
    // they speak 1.1 with an empty `presence_sub`.
    let mut erin = RawTcp::login(&node, "erin").await;
    assert!(matches!(
        request(&mut bob, "b", &sub("b", &[])).await,
        ServerFrame::Ok { .. }
    ));
    assert!(matches!(
        request(&mut carol, "c", &sub("c", &[])).await,
        ServerFrame::Ok { .. }
    ));
    let create = ClientFrame::GroupCreate {
        reference: "g".into(),
        id: Some("team".into()),
        name: "Team".into(),
        members: names(&["bob", "carol", "erin"]),
    };
    assert!(matches!(
        request(&mut alice, "g", &create).await,
        ServerFrame::Group { .. }
    ));

    // A burst within one second: only the first is forwarded. The message
    // after it passes the same entity and the same queues, so any `typing`
    // forwarded would arrive before it.
    for _ in 0..5 {
        alice.put(&typing("group:team", TypingState::Start)).await;
    }
    let (conv, seq) = send_acked(&mut alice, "m1", "group:team", "hello").await;
    let mut before_msg = Vec::new();
    loop {
        match bob.next().await.expect("open") {
            ServerFrame::Msg(m) => {
                assert_eq!((m.conv.as_str(), m.seq), (conv.as_str(), seq));
                break;
            }
            f => before_msg.push(f),
        }
    }
    assert_eq!(
        typings(&before_msg),
        vec![("group:team".into(), "alice".into(), TypingState::Start)]
    );
    let mut before_msg = Vec::new();
    loop {
        match carol.next().await.expect("open") {
            ServerFrame::Msg(_) => break,
            f => before_msg.push(f),
        }
    }
    assert_eq!(typings(&before_msg).len(), 1, "{before_msg:?}");
    let mut before_msg = Vec::new();
    loop {
        match erin.next().await.expect("open") {
            ServerFrame::Msg(_) => break,
            f => before_msg.push(f),
        }
    }
    assert!(
        typings(&before_msg).is_empty(),
        "a v1 session: {before_msg:?}"
    );
    // Not to the typist's own session.
    let frames = frames_before_pong(&mut alice).await;
    assert!(typings(&frames).is_empty(), "{frames:?}");

    // A non-member is refused, and stays connected.
    dave.put(&typing("group:team", TypingState::Start)).await;
    match dave.next().await.expect("open") {
        ServerFrame::Error {
            reference, code, ..
        } => assert_eq!((reference, code), (None, ErrorCode::Forbidden)),
        other => panic!("expected forbidden, got {other:?}"),
    }
    dave.put(&typing("dm:alice:bob", TypingState::Start)).await;
    assert!(matches!(
        dave.next().await,
        Some(ServerFrame::Error {
            code: ErrorCode::Forbidden,
            ..
        })
    ));
    assert!(frames_before_pong(&mut dave).await.is_empty());

    // After the interval, the next one goes through (a `stop`, in a dm).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    alice.put(&typing("dm:alice:bob", TypingState::Stop)).await;
    let (conv, _) = send_acked(&mut alice, "m2", "user:bob", "psst").await;
    let mut before_msg = Vec::new();
    loop {
        match bob.next().await.expect("open") {
            ServerFrame::Msg(m) if m.conv == conv => break,
            f => before_msg.push(f),
        }
    }
    assert_eq!(
        typings(&before_msg),
        vec![("dm:alice:bob".into(), "alice".into(), TypingState::Stop)]
    );
    let frames = frames_before_pong(&mut carol).await;
    assert!(
        typings(&frames).is_empty(),
        "a dm's typing is the dm's: {frames:?}"
    );

    // Never stored: history holds the messages only.
    let (messages, _) = history(&mut bob, "group:team", None, None, None)
        .await
        .unwrap();
    assert_eq!(
        messages.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["hello"]
    );
}

async fn connect(node: &common::TestNode, user: &str) -> (Client, Events) {
    let addr = node.node.addrs().ws.to_string();
    Client::connect(ClientConfig::new(addr, Transport::WsJson, user))
        .await
        .expect("connects")
}

/// The next event of `events` that `pick` maps to something.
async fn next_event<T>(events: &mut Events, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.next().await.expect("events continue");
            if let Some(t) = pick(event) {
                return t;
            }
        }
    })
    .await
    .expect("the event arrives")
}

#[tokio::test]
async fn the_sdk_subscribes_to_presence_and_sends_and_hears_typing() {
    let node = start_node().await;
    let (alice, mut alice_events) = connect(&node, "alice").await;
    alice.subscribe_presence(&["bob"]).await.unwrap();
    let presence_of = |e: Event| match e {
        Event::Presence { user, status, .. } => Some((user, status)),
        _ => None,
    };
    assert_eq!(
        next_event(&mut alice_events, presence_of).await,
        ("bob".into(), PresenceStatus::Offline)
    );
    let (bob, mut bob_events) = connect(&node, "bob").await;
    assert_eq!(
        next_event(&mut alice_events, presence_of).await,
        ("bob".into(), PresenceStatus::Online)
    );
    // bob sends no 1.1 frame before he hears typing: he says he speaks 1.1.
    bob.subscribe_presence(&[]).await.unwrap();

    alice
        .typing("dm:alice:bob", TypingState::Start)
        .await
        .unwrap();
    let heard = next_event(&mut bob_events, |e| match e {
        Event::Typing { conv, user, state } => Some((conv, user, state)),
        _ => None,
    })
    .await;
    assert_eq!(
        heard,
        ("dm:alice:bob".into(), "alice".into(), TypingState::Start)
    );

    // A refused `typing` is an event; the connection stays up.
    bob.typing("dm:alice:carol", TypingState::Start)
        .await
        .unwrap();
    let refused = next_event(&mut bob_events, |e| match e {
        Event::Refused { code, .. } => Some(code),
        Event::Disconnected { reason } => panic!("disconnected: {reason}"),
        _ => None,
    })
    .await;
    assert_eq!(refused, ErrorCode::Forbidden);
    bob.ping().await.unwrap();

    // A new session watches again by itself: dropped by the node, alice's
    // client reconnects and hears bob's presence at once.
    for s in node.node.region().sessions().of("alice") {
        s.close(CloseReason::Kicked);
    }
    next_event(&mut alice_events, |e| {
        matches!(e, Event::Disconnected { .. }).then_some(())
    })
    .await;
    assert_eq!(
        next_event(&mut alice_events, presence_of).await,
        ("bob".into(), PresenceStatus::Online)
    );

    // Over the limit: the call fails whole.
    let many: Vec<String> = (0..=MAX_PRESENCE_SUBS).map(|i| format!("u{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!(alice.subscribe_presence(&many).await.is_err());

    bob.close().await;
    assert_eq!(
        next_event(&mut alice_events, presence_of).await,
        ("bob".into(), PresenceStatus::Offline)
    );
    alice.unsubscribe_presence(&["bob"]).await.unwrap();
}

/// A `chorus` process on `dir`, killed when dropped.
fn serve(dir: &std::path::Path) -> (common::process::KillOnDrop, common::process::Listening) {
    let file = dir.join("node.toml");
    let data = dir.join("data");
    std::fs::write(
        &file,
        format!(
            "[listen]\ntcp = \"127.0.0.1:0\"\nws = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             [storage]\npath = {:?}\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let mut child = common::process::serve(&file)
        .spawn()
        .expect("chorus starts");
    let listening = common::process::listening(&mut child);
    (common::process::KillOnDrop(child), listening)
}

#[tokio::test]
async fn last_seen_survives_kill_9_of_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let (node, at) = serve(dir.path());
    // Watched: the User entity records it when it shows `offline`.
    let mut alice = RawTcp::login_at(at.tcp, "alice").await;
    request(&mut alice, "p", &sub("p", &names(&["bob"]))).await;
    presence(&mut alice).await;
    let bob = RawTcp::login_at(at.tcp, "bob").await;
    assert_eq!(presence(&mut alice).await.1, PresenceStatus::Online);
    drop(bob);
    let (_, status, bob_seen) = presence(&mut alice).await;
    assert_eq!(status, PresenceStatus::Offline);
    let bob_seen = bob_seen.expect("a last-seen time");
    // Not watched, no User running: the closing session records it.
    let before = now_ms();
    let dave = RawTcp::login_at(at.tcp, "dave").await;
    drop(dave);
    // Both writes are durable once counted (the store answers after its commit).
    let deadline = Instant::now() + WAIT;
    while common::metric_at(at.admin, "chorus_presence_last_seen_written_total").await < 2.0 {
        assert!(
            Instant::now() < deadline,
            "the last-seen times were not written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = now_ms();
    drop(node); // kill -9

    let (_node, at) = serve(dir.path());
    let mut carol = RawTcp::login_at(at.tcp, "carol").await;
    request(&mut carol, "q", &sub("q", &names(&["bob", "dave", "erin"]))).await;
    let mut heard = [
        presence(&mut carol).await,
        presence(&mut carol).await,
        presence(&mut carol).await,
    ];
    heard.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        heard[0],
        ("bob".into(), PresenceStatus::Offline, Some(bob_seen))
    );
    assert_eq!(heard[2], ("erin".into(), PresenceStatus::Offline, None));
    let (user, status, dave_seen) = heard[1].clone();
    assert_eq!((user.as_str(), status), ("dave", PresenceStatus::Offline));
    let dave_seen = dave_seen.expect("dave's last-seen time survived");
    assert!((before..=after).contains(&dave_seen), "{dave_seen}");
}
