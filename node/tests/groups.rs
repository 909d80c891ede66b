//! Groups (docs/protocol.md §5, §6, §7.5, §7.7) over real sockets to a real node, mixing
//! TCP-binary and WebSocket-JSON sessions: create, add, remove, leave, info, sends
//! to a group, and groups in the conversation list.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use chorus_wire::ids::validate_id;
use chorus_wire::{ClientFrame, ErrorCode, ServerFrame};
use common::{
    RawClient, RawTcp, RawWs, conversations, error_code, frames_before_pong, history, next_frame,
    next_msg, reject_of, request, send_acked, send_msg, start_node,
};

/// A `group` answer: `(id, name, owner, members)`.
type GroupView = (String, String, String, Vec<String>);

fn group_view(reference: &str, f: ServerFrame) -> GroupView {
    match f {
        ServerFrame::Group {
            reference: r,
            id,
            name,
            owner,
            mut members,
        } => {
            assert_eq!(r, reference, "the answer carries the request's ref");
            members.sort();
            (id, name, owner, members)
        }
        other => panic!("expected group, got {other:?}"),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

async fn create(
    c: &mut impl RawClient,
    reference: &str,
    id: Option<&str>,
    name: &str,
    members: &[&str],
) -> ServerFrame {
    let frame = ClientFrame::GroupCreate {
        reference: reference.into(),
        id: id.map(Into::into),
        name: name.into(),
        members: strings(members),
    };
    request(c, reference, &frame).await
}

async fn add(c: &mut impl RawClient, reference: &str, id: &str, members: &[&str]) -> ServerFrame {
    let frame = ClientFrame::GroupAdd {
        reference: reference.into(),
        id: id.into(),
        members: strings(members),
    };
    request(c, reference, &frame).await
}

async fn remove(
    c: &mut impl RawClient,
    reference: &str,
    id: &str,
    members: &[&str],
) -> ServerFrame {
    let frame = ClientFrame::GroupRemove {
        reference: reference.into(),
        id: id.into(),
        members: strings(members),
    };
    request(c, reference, &frame).await
}

async fn leave(c: &mut impl RawClient, reference: &str, id: &str) -> ServerFrame {
    let frame = ClientFrame::GroupLeave {
        reference: reference.into(),
        id: id.into(),
    };
    request(c, reference, &frame).await
}

async fn info(c: &mut impl RawClient, reference: &str, id: &str) -> ServerFrame {
    let frame = ClientFrame::GroupInfo {
        reference: reference.into(),
        id: id.into(),
    };
    request(c, reference, &frame).await
}

/// An `error` answering `reference`: its code.
fn error_for(reference: &str, f: ServerFrame) -> ErrorCode {
    match &f {
        ServerFrame::Error { reference: r, .. } => {
            assert_eq!(r.as_deref(), Some(reference), "the error carries the ref")
        }
        other => panic!("expected an error for {reference}, got {other:?}"),
    }
    error_code(f)
}

/// Sends and returns the reject's code; an ack fails the test.
async fn rejected(c: &mut impl RawClient, id: &str, to: &str) -> ErrorCode {
    send_msg(c, id, to, "x").await;
    reject_of(c, id).await
}

/// The conversations a user's list names.
async fn listed(c: &mut impl RawClient) -> Vec<String> {
    conversations(c).await.into_iter().map(|i| i.conv).collect()
}

#[tokio::test]
async fn group_create_with_and_without_an_id() {
    let node = start_node().await;
    let mut alice = RawWs::login(&node, "alice").await;
    let mut bob = RawTcp::login(&node, "bob").await;

    let g = create(&mut alice, "c1", Some("team"), "Team", &["bob", "carol"]).await;
    assert_eq!(
        group_view("c1", g),
        (
            "team".into(),
            "Team".into(),
            "alice".into(),
            strings(&["alice", "bob", "carol"])
        )
    );
    // Listing the creator among the members changes nothing.
    let g = create(&mut bob, "c2", Some("pair"), "Pair", &["alice", "bob"]).await;
    assert_eq!(group_view("c2", g).3, strings(&["alice", "bob"]));

    // Without an id the server makes one; the creator is owner and member.
    let (id, name, owner, members) =
        group_view("c3", create(&mut bob, "c3", None, "Anon", &["alice"]).await);
    validate_id("group id", &id).expect("a server-made id is a valid id");
    assert!(!["team", "pair"].contains(&id.as_str()));
    assert_eq!(
        (name.as_str(), owner.as_str(), members),
        ("Anon", "bob", strings(&["alice", "bob"]))
    );
    let again = group_view("i1", info(&mut alice, "i1", &id).await);
    assert_eq!(again, (id.clone(), name, owner, strings(&["alice", "bob"])));
    // Each creation without an id gets its own group.
    let (id2, ..) = group_view("c4", create(&mut bob, "c4", None, "Anon", &[]).await);
    assert_ne!(id2, id);

    // A taken id is an error with the ref, and the group stays as it was.
    let dup = create(&mut bob, "dup", Some("team"), "Mine now", &[]).await;
    let _ = error_for("dup", dup);
    let dup = create(&mut alice, "dup2", Some("team"), "Team", &[]).await;
    let _ = error_for("dup2", dup);
    let (_, name, owner, members) = group_view("i2", info(&mut bob, "i2", "team").await);
    assert_eq!(
        (name.as_str(), owner.as_str(), members),
        ("Team", "alice", strings(&["alice", "bob", "carol"]))
    );
    node.node.shutdown().await;
}

#[tokio::test]
async fn only_the_owner_adds_and_removes_members() {
    let node = start_node().await;
    let mut alice = RawTcp::login(&node, "alice").await;
    let mut bob = RawWs::login(&node, "bob").await;
    let mut carol = RawTcp::login(&node, "carol").await;
    let mut dave = RawWs::login(&node, "dave").await;
    group_view("c", create(&mut alice, "c", Some("g"), "G", &["bob"]).await);

    // A member who is not the owner, and a stranger, may change nothing.
    assert_eq!(
        error_for("b1", add(&mut bob, "b1", "g", &["carol"]).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        error_for("b2", remove(&mut bob, "b2", "g", &["alice"]).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        error_for("d1", add(&mut dave, "d1", "g", &["dave"]).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        error_for("d2", remove(&mut dave, "d2", "g", &["bob"]).await),
        ErrorCode::Forbidden
    );
    let (.., members) = group_view("i", info(&mut alice, "i", "g").await);
    assert_eq!(members, strings(&["alice", "bob"]));
    assert_eq!(
        error_for("c1", info(&mut carol, "c1", "g").await),
        ErrorCode::Forbidden
    );

    // The owner adds: the new member is in, sees the group listed and receives.
    let g = add(&mut alice, "a1", "g", &["carol", "dave"]).await;
    assert_eq!(
        group_view("a1", g).3,
        strings(&["alice", "bob", "carol", "dave"])
    );
    assert_eq!(
        group_view("c2", info(&mut carol, "c2", "g").await).3,
        strings(&["alice", "bob", "carol", "dave"])
    );
    assert!(listed(&mut carol).await.contains(&"group:g".to_string()));
    let (_, seq) = send_acked(&mut alice, "m1", "group:g", "welcome").await;
    assert_eq!(next_msg(&mut carol).await.seq, seq);

    // The owner removes: the removed member is out.
    let g = remove(&mut alice, "a2", "g", &["bob", "dave"]).await;
    assert_eq!(group_view("a2", g).3, strings(&["alice", "carol"]));
    assert_eq!(
        error_for("b3", info(&mut bob, "b3", "g").await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        rejected(&mut bob, "late", "group:g").await,
        ErrorCode::Forbidden
    );
    assert!(!listed(&mut bob).await.contains(&"group:g".to_string()));
    assert!(!listed(&mut dave).await.contains(&"group:g".to_string()));
    node.node.shutdown().await;
}

#[tokio::test]
async fn group_leave_ends_delivery_and_access() {
    let node = start_node().await;
    let mut alice = RawWs::login(&node, "alice").await;
    let mut bob = RawTcp::login(&node, "bob").await;
    let mut carol = RawWs::login(&node, "carol").await;
    group_view(
        "c",
        create(&mut alice, "c", Some("g"), "G", &["bob", "carol"]).await,
    );
    let (_, first) = send_acked(&mut alice, "m1", "group:g", "before").await;
    assert_eq!(next_msg(&mut bob).await.seq, first);
    assert_eq!(next_msg(&mut carol).await.seq, first);

    match leave(&mut bob, "bye", "g").await {
        ServerFrame::Ok { reference } => assert_eq!(reference, "bye"),
        other => panic!("expected ok, got {other:?}"),
    }

    // Carol gets the next group message; bob, who left, does not: a dm carol sends
    // him afterwards is the next thing he sees.
    let (_, seq) = send_acked(&mut alice, "m2", "group:g", "after").await;
    assert_eq!(next_msg(&mut carol).await.seq, seq);
    send_acked(&mut carol, "dm1", "user:bob", "psst").await;
    match next_frame(&mut bob).await {
        ServerFrame::Msg(m) => {
            assert_eq!((m.conv.as_str(), m.id.as_str()), ("dm:bob:carol", "dm1"))
        }
        other => panic!("expected carol's dm, got {other:?}"),
    }

    assert_eq!(
        rejected(&mut bob, "m3", "group:g").await,
        ErrorCode::Forbidden
    );
    assert_eq!(
        history(&mut bob, "group:g", None, None, None).await,
        Err(ErrorCode::Forbidden)
    );
    assert_eq!(
        error_for("i", info(&mut bob, "i", "g").await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        error_for("again", leave(&mut bob, "again", "g").await),
        ErrorCode::Forbidden
    );
    assert!(!listed(&mut bob).await.contains(&"group:g".to_string()));
    let (.., members) = group_view("i2", info(&mut carol, "i2", "g").await);
    assert_eq!(members, strings(&["alice", "carol"]));
    // The rest still talk.
    let (page, _) = history(&mut carol, "group:g", Some(0), None, None)
        .await
        .unwrap();
    let ids: Vec<&str> = page.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, vec!["m1", "m2"]);
    node.node.shutdown().await;
}

#[tokio::test]
async fn group_info_is_for_members_and_unknown_groups_are_not_found() {
    let node = start_node().await;
    let mut alice = RawTcp::login(&node, "alice").await;
    let mut bob = RawWs::login(&node, "bob").await;
    let mut eve = RawWs::login(&node, "eve").await;
    group_view("c", create(&mut alice, "c", Some("g"), "G", &["bob"]).await);

    let member_view = group_view("b", info(&mut bob, "b", "g").await);
    assert_eq!(
        member_view,
        (
            "g".into(),
            "G".into(),
            "alice".into(),
            strings(&["alice", "bob"])
        )
    );
    assert_eq!(
        error_for("e", info(&mut eve, "e", "g").await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        error_for("n", info(&mut eve, "n", "nosuch").await),
        ErrorCode::NotFound
    );
    assert_eq!(
        error_for("n2", info(&mut alice, "n2", "nosuch").await),
        ErrorCode::NotFound
    );
    node.node.shutdown().await;
}

#[tokio::test]
async fn a_group_message_reaches_every_members_sessions_but_the_sending_one() {
    let node = start_node().await;
    let mut alice_tcp = RawTcp::login(&node, "alice").await;
    let mut alice_ws = RawWs::login(&node, "alice").await;
    let mut bob_ws = RawWs::login(&node, "bob").await;
    let mut bob_tcp = RawTcp::login(&node, "bob").await;
    let mut carol = RawTcp::login(&node, "carol").await;
    let mut dave = RawWs::login(&node, "dave").await;
    group_view(
        "c",
        create(&mut bob_ws, "c", Some("g"), "G", &["alice", "carol"]).await,
    );

    send_msg(&mut alice_tcp, "hello", "group:g", "hi all").await;
    let (conv, seq) = match next_frame(&mut alice_tcp).await {
        ServerFrame::Ack { id, conv, seq, .. } if id == "hello" => (conv, seq),
        other => panic!("expected only the ack, got {other:?}"),
    };
    assert_eq!(conv, "group:g");
    let check = |m: chorus_wire::Message| {
        assert_eq!(
            (
                m.conv.as_str(),
                m.seq,
                m.id.as_str(),
                m.from.as_str(),
                m.body.as_str()
            ),
            ("group:g", seq, "hello", "alice", "hi all")
        );
    };
    check(next_msg(&mut alice_ws).await);
    check(next_msg(&mut bob_ws).await);
    check(next_msg(&mut bob_tcp).await);
    check(next_msg(&mut carol).await);
    // Alice's other session has it, so a copy for the sending one would be queued.
    assert_eq!(frames_before_pong(&mut alice_tcp).await, vec![]);

    // A non-member may not send, and does not receive: a dm sent to dave after the
    // group message is the next thing he sees.
    assert_eq!(
        rejected(&mut dave, "x", "group:g").await,
        ErrorCode::Forbidden
    );
    send_acked(&mut carol, "dm", "user:dave", "hi dave").await;
    match next_frame(&mut dave).await {
        ServerFrame::Msg(m) => assert_eq!(m.id, "dm"),
        other => panic!("expected carol's dm, got {other:?}"),
    }
    assert_eq!(
        history(&mut dave, "group:g", None, None, None).await,
        Err(ErrorCode::Forbidden)
    );
    // Messages to an unknown group are refused.
    let code = rejected(&mut dave, "y", "group:nosuch").await;
    assert!(
        matches!(code, ErrorCode::NotFound | ErrorCode::Forbidden),
        "{code}"
    );
    node.node.shutdown().await;
}

#[tokio::test]
async fn conversations_lists_the_groups_a_user_belongs_to() {
    let node = start_node().await;
    let mut alice = RawWs::login(&node, "alice").await;
    let mut bob = RawTcp::login(&node, "bob").await;
    group_view(
        "1",
        create(&mut alice, "1", Some("both"), "Both", &["bob"]).await,
    );
    group_view(
        "2",
        create(&mut alice, "2", Some("solo"), "Solo", &[]).await,
    );
    group_view(
        "3",
        create(&mut bob, "3", Some("added"), "Added", &[]).await,
    );
    group_view("4", add(&mut bob, "4", "added", &["alice"]).await);

    // Listed from creation on, before any message.
    let convs = conversations(&mut bob).await;
    let mut got: Vec<(&str, u64)> = convs
        .iter()
        .map(|i| (i.conv.as_str(), i.last_seq))
        .collect();
    got.sort_unstable();
    assert_eq!(got, vec![("group:added", 0), ("group:both", 0)]);

    let (_, seq) = send_acked(&mut alice, "m", "group:both", "x").await;
    send_acked(&mut alice, "d", "user:bob", "y").await;
    let mut got = listed(&mut alice).await;
    got.sort();
    assert_eq!(
        got,
        strings(&["dm:alice:bob", "group:added", "group:both", "group:solo"])
    );
    let both = conversations(&mut bob)
        .await
        .into_iter()
        .find(|i| i.conv == "group:both")
        .expect("listed");
    assert_eq!((both.last_seq, both.read_seq), (seq, 0));
    node.node.shutdown().await;
}

/// A user may be in `limits.max_groups_per_user` groups: a create or an add
/// past it is refused with `invalid` naming the member, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_per_user_are_bounded() {
    let node = common::start_node_with(|c| c.limits.max_groups_per_user = 3).await;
    // Three owners put carol into three groups.
    for i in 0..3 {
        let mut owner = RawTcp::login(&node, &format!("o{i}")).await;
        let f = create(&mut owner, "c", Some(&format!("g{i}")), "g", &["carol"]).await;
        assert!(matches!(f, ServerFrame::Group { .. }), "{f:?}");
    }
    let refused = |f: ServerFrame| match f {
        ServerFrame::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::Invalid);
            message
        }
        other => panic!("expected invalid, got {other:?}"),
    };
    // Nobody can put her in a fourth, and she cannot join one herself.
    let mut bob = RawTcp::login(&node, "bob").await;
    let message = refused(create(&mut bob, "c3", Some("g3"), "g", &["carol", "dave"]).await);
    assert!(
        message.contains("carol") && !message.contains("dave"),
        "{message}"
    );
    let mut carol = RawWs::login(&node, "carol").await;
    let message = refused(create(&mut carol, "own", Some("mine"), "mine", &[]).await);
    assert!(message.contains("carol"), "{message}");
    let f = create(&mut bob, "c5", Some("g5"), "g", &["dave"]).await;
    assert!(matches!(f, ServerFrame::Group { .. }), "{f:?}");
    let message = refused(add(&mut bob, "a", "g5", &["erin", "carol"]).await);
    assert!(
        message.contains("carol") && !message.contains("erin"),
        "{message}"
    );

    // Nothing changed: g5 has bob and dave; carol lists her three groups.
    let info = request(
        &mut bob,
        "i",
        &ClientFrame::GroupInfo {
            reference: "i".into(),
            id: "g5".into(),
        },
    )
    .await;
    assert_eq!(group_view("i", info).3, strings(&["bob", "dave"]));
    let groups: Vec<String> = conversations(&mut carol)
        .await
        .into_iter()
        .map(|i| i.conv)
        .collect();
    assert_eq!(groups, strings(&["group:g0", "group:g1", "group:g2"]));
    // After leaving one, carol may join another.
    let f = request(
        &mut carol,
        "l",
        &ClientFrame::GroupLeave {
            reference: "l".into(),
            id: "g0".into(),
        },
    )
    .await;
    assert!(matches!(f, ServerFrame::Ok { .. }), "{f:?}");
    let f = add(&mut bob, "a2", "g5", &["carol"]).await;
    assert_eq!(group_view("a2", f).3, strings(&["bob", "carol", "dave"]));
}
