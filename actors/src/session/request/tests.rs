#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use chorus_wire::limits::{MAX_PRESENCE_SUBS, MAX_REF};
use chorus_wire::{
    ClientFrame, ConvId, ConversationsPage, ErrorCode, ServerFrame, Trailing, TypingState,
};

use super::{Cost, Limits, Refusal, Request, Weight};
use crate::budget::AnswerKey;
use crate::settings::Settings;

fn limits() -> Limits {
    Limits {
        max_group_members: 3,
        ..Limits::of(&Settings::default())
    }
}

fn parse(frame: ClientFrame) -> Result<(Request, Cost), Refusal> {
    Request::parse(frame, &limits())
}

fn history(conv: &str, limit: Option<u32>) -> ClientFrame {
    ClientFrame::History {
        reference: "h".into(),
        conv: conv.into(),
        after: None,
        before: None,
        limit,
    }
}

fn by_ref(reference: &str, weight: Weight) -> Cost {
    Cost {
        weight,
        key: Some(AnswerKey::Ref(reference.into())),
    }
}

/// The code and message of a refusal's `error` or `reject`, and its cost.
fn refused(result: Result<(Request, Cost), Refusal>) -> (ErrorCode, String, Option<Cost>) {
    let Err(Refusal { answer, cost }) = result else {
        panic!("expected a refusal, got {result:?}");
    };
    match answer.map(|a| *a) {
        Some(
            ServerFrame::Error { code, message, .. } | ServerFrame::Reject { code, message, .. },
        ) => (code, message, cost),
        other => panic!("expected an error or a reject, got {other:?}"),
    }
}

#[test]
fn unmatchable_answers_are_refused_at_once() {
    let hello = ClientFrame::Hello {
        protocol: 1,
        token: "t".into(),
        device: None,
    };
    assert_eq!(
        refused(parse(hello)),
        (ErrorCode::Invalid, "already authenticated".into(), None)
    );

    let long = "r".repeat(MAX_REF + 1);
    let frame = ClientFrame::GroupInfo {
        reference: long,
        id: "g".into(),
    };
    let Err(Refusal {
        answer: Some(answer),
        cost: None,
    }) = parse(frame)
    else {
        panic!("a long ref is refused at once");
    };
    let ServerFrame::Error { reference, .. } = *answer else {
        panic!("an error");
    };
    assert_eq!(reference.map(|r| r.len()), Some(MAX_REF));

    let send = ClientFrame::Send {
        id: "bad id!".into(),
        to: "user:bob".into(),
        body: "hi".into(),
    };
    let (code, _, cost) = refused(parse(send));
    assert_eq!((code, cost), (ErrorCode::Invalid, None));
}

#[test]
fn content_refusals_wait_for_the_budget_like_their_request() {
    let send = |to: &str, body: String| ClientFrame::Send {
        id: "m1".into(),
        to: to.into(),
        body,
    };
    let by_id = Some(Cost {
        weight: Weight::One,
        key: Some(AnswerKey::Id("m1".into())),
    });
    let (code, _, cost) = refused(parse(send("nobody", "hi".into())));
    assert_eq!((code, cost), (ErrorCode::Invalid, by_id.clone()));
    let huge = "x".repeat(limits().max_body + 1);
    let (code, _, cost) = refused(parse(send("user:bob", huge)));
    assert_eq!((code, cost), (ErrorCode::TooLarge, by_id));

    let (code, message, cost) = refused(parse(history("live:r", None)));
    assert_eq!(code, ErrorCode::Invalid);
    assert_eq!(message, "live rooms have no history");
    assert_eq!(cost, Some(by_ref("h", Weight::Large)));
    let (_, message, _) = refused(parse(history("dm:a:b", Some(0))));
    assert_eq!(message, "limit must be at least 1");
}

#[test]
fn history_pages_get_their_limits() {
    let limit_of = |limit| match parse(history("group:g", limit)) {
        Ok((Request::History { query, conv, .. }, cost)) => {
            assert_eq!(conv, ConvId::Group("g".into()));
            assert_eq!(cost, by_ref("h", Weight::Large));
            query.limit
        }
        other => panic!("expected a history request, got {other:?}"),
    };
    let l = limits();
    assert_eq!(limit_of(None), l.history_default);
    assert_eq!(limit_of(Some(7)), 7);
    assert_eq!(limit_of(Some(u32::MAX)), l.history_max);
}

#[test]
fn conversation_lists_are_paged_only_when_asked() {
    let list = |page| ClientFrame::Conversations {
        reference: "c".into(),
        page,
    };
    let Ok((Request::Conversations { query, paged, .. }, _)) = parse(list(Trailing::ABSENT)) else {
        panic!("a v1 list is valid");
    };
    assert!(!paged);
    assert_eq!(query.limit, limits().list_max as usize);

    let page = |after: Option<&str>, limit| {
        Trailing::some(ConversationsPage {
            after: after.map(str::to_string),
            limit,
        })
    };
    let Ok((Request::Conversations { query, paged, .. }, _)) =
        parse(list(page(Some("dm:a:b"), Some(2))))
    else {
        panic!("a page is valid");
    };
    assert!(paged);
    assert_eq!((query.after.as_deref(), query.limit), (Some("dm:a:b"), 2));

    let (_, message, _) = refused(parse(list(page(None, Some(0)))));
    assert_eq!(message, "limit must be at least 1");
    let (code, _, cost) = refused(parse(list(page(Some("nonsense"), None))));
    assert_eq!(
        (code, cost),
        (ErrorCode::Invalid, Some(by_ref("c", Weight::Large)))
    );
}

#[test]
fn group_requests_check_ids_names_and_member_counts() {
    let create = |id: Option<&str>, name: &str, members: &[&str]| ClientFrame::GroupCreate {
        reference: "g".into(),
        id: id.map(str::to_string),
        name: name.into(),
        members: members.iter().map(|m| m.to_string()).collect(),
    };
    let Ok((Request::Group { conv, .. }, _)) = parse(create(None, "team", &["a"])) else {
        panic!("a create without an id is valid");
    };
    let ConvId::Group(id) = conv else {
        panic!("a group id")
    };
    assert!(id.starts_with('g') && id.len() == 17, "{id}");

    let long_name = "n".repeat(chorus_wire::limits::MAX_GROUP_NAME + 1);
    let (_, message, _) = refused(parse(create(Some("g1"), &long_name, &[])));
    assert_eq!(message, "group name is too long");
    let (_, message, _) = refused(parse(create(Some("g1"), "t", &["a", "b", "c", "d"])));
    assert_eq!(message, "too many members");
    let (code, _, _) = refused(parse(create(Some("g1"), "t", &["a", "no way"])));
    assert_eq!(code, ErrorCode::Invalid);
    let leave = ClientFrame::GroupLeave {
        reference: "l".into(),
        id: "bad id".into(),
    };
    let (code, _, cost) = refused(parse(leave));
    assert_eq!(
        (code, cost),
        (ErrorCode::Invalid, Some(by_ref("l", Weight::One)))
    );
}

#[test]
fn reads_of_impossible_conversations_are_dropped_without_an_answer() {
    let read = |conv: &str| ClientFrame::Read {
        conv: conv.into(),
        seq: 3,
    };
    let no_answer = Some(Cost {
        weight: Weight::One,
        key: None,
    });
    for conv in ["live:r", "nonsense"] {
        let Err(Refusal { answer, cost }) = parse(read(conv)) else {
            panic!("{conv} is refused");
        };
        assert!(answer.is_none(), "{conv}");
        assert_eq!(cost, no_answer);
    }
    assert!(matches!(
        parse(read("dm:a:b")),
        Ok((Request::Read { seq: 3, .. }, _))
    ));
}

#[test]
fn live_frames_check_room_ids_but_leaving_any_room_is_fine() {
    let join = ClientFrame::LiveJoin {
        reference: "j".into(),
        room: "bad room".into(),
    };
    let (code, _, cost) = refused(parse(join));
    assert_eq!(
        (code, cost),
        (ErrorCode::Invalid, Some(by_ref("j", Weight::Large)))
    );
    let leave = ClientFrame::LiveLeave {
        reference: "l".into(),
        room: "bad room".into(),
    };
    assert!(matches!(parse(leave), Ok((Request::LiveLeave { .. }, _))));
    let danmaku = ClientFrame::Danmaku {
        id: "d1".into(),
        room: "bad room".into(),
        body: "hi".into(),
    };
    let Err(Refusal {
        answer: Some(answer),
        ..
    }) = parse(danmaku)
    else {
        panic!("a danmaku to a bad room is rejected");
    };
    let ServerFrame::Reject { id, code, .. } = *answer else {
        panic!("a reject");
    };
    assert_eq!((id.as_str(), code), ("d1", ErrorCode::Invalid));
}

#[test]
fn presence_requests_name_valid_distinct_users_within_the_limit() {
    let sub = |users: Vec<String>| ClientFrame::PresenceSub {
        reference: "p".into(),
        users,
    };
    let Ok((Request::PresenceSub { reference, users }, cost)) =
        parse(sub(vec!["b".into(), "a".into(), "b".into()]))
    else {
        panic!("a good presence_sub parses");
    };
    assert_eq!(
        (reference.as_str(), users),
        ("p", vec!["a".into(), "b".into()])
    );
    assert_eq!(cost, by_ref("p", Weight::One));

    let (code, message, cost) = refused(parse(sub(vec!["a".into(), "bad user".into()])));
    assert_eq!(
        (code, cost),
        (ErrorCode::Invalid, Some(by_ref("p", Weight::One)))
    );
    assert!(message.contains("user"), "{message}");

    let many = (0..=MAX_PRESENCE_SUBS).map(|i| format!("u{i}")).collect();
    let (code, message, _) = refused(parse(sub(many)));
    assert_eq!(code, ErrorCode::Invalid);
    assert!(message.contains("500"), "{message}");

    let unsub = ClientFrame::PresenceUnsub {
        reference: "q".into(),
        users: vec![String::new()],
    };
    assert_eq!(refused(parse(unsub)).0, ErrorCode::Invalid);
}

#[test]
fn typing_needs_a_dm_or_group_and_has_no_answer() {
    let typing = |conv: &str| ClientFrame::Typing {
        conv: conv.into(),
        state: TypingState::Start,
    };
    let Ok((Request::Typing { conv, state }, cost)) = parse(typing("group:g1")) else {
        panic!("typing in a group parses");
    };
    assert_eq!(
        (conv, state),
        (ConvId::Group("g1".into()), TypingState::Start)
    );
    assert_eq!(
        cost,
        Cost {
            weight: Weight::One,
            key: None
        }
    );
    for bad in ["live:r", "dm:a", "nonsense"] {
        let Err(Refusal {
            answer: Some(answer),
            cost: Some(_),
        }) = parse(typing(bad))
        else {
            panic!("typing in {bad} is refused after its share");
        };
        let ServerFrame::Error {
            reference, code, ..
        } = *answer
        else {
            panic!("an error");
        };
        assert_eq!((reference, code), (None, ErrorCode::Invalid), "{bad}");
    }
}
