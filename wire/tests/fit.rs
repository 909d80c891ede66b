//! Every server frame fits the frame limit as encoded, in both encodings: list
//! frames are cut or split, and one item of the worst kind always fits on its own
//! within [`min_frame_for_body`].

use chorus_wire::codec::Frame;
use chorus_wire::fit::{self, Keep, min_frame_for_body, min_frame_for_group};
use chorus_wire::limits::{
    DEFAULT_MAX_BODY, DEFAULT_MAX_FRAME, MAX_GROUP_NAME, MAX_ID_LEN, MAX_REF,
};
use chorus_wire::{ConversationItem, ErrorCode, LiveItem, Message, Prio, ServerFrame, Trailing};

/// The text JSON writes longest: control characters, `\u0001` for each byte.
fn worst_text(bytes: usize) -> String {
    "\u{1}".repeat(bytes)
}

fn worst_id(c: char) -> String {
    c.to_string().repeat(MAX_ID_LEN)
}

/// The longest conversation id: a dm of two longest user ids.
fn worst_conv() -> String {
    format!("dm:{}:{}", worst_id('a'), worst_id('b'))
}

fn worst_message(max_body: usize) -> Message {
    Message {
        conv: worst_conv(),
        seq: u64::MAX,
        id: worst_id('i'),
        from: worst_id('f'),
        body: worst_text(max_body),
        ts_ms: u64::MAX,
    }
}

fn worst_live_item(max_body: usize) -> LiveItem {
    LiveItem {
        seq: u64::MAX,
        id: worst_id('i'),
        from: worst_id('f'),
        body: worst_text(max_body),
        ts_ms: u64::MAX,
        prio: Prio::System,
    }
}

/// Both encodings of `frame` are at most `limit` bytes, checked on the real
/// encoder output (not on the measuring code under test).
fn assert_fits(frame: &ServerFrame, limit: u32) {
    let json = frame.to_json().len();
    let binary = frame.to_binary().len();
    assert!(
        json <= limit as usize && binary <= limit as usize,
        "{} is {json} bytes as JSON and {binary} as binary, over {limit}",
        frame.type_name()
    );
    let measured = fit::encoded_len(frame);
    assert_eq!((measured.json, measured.binary), (json, binary));
}

const BODIES: [u32; 6] = [1, 100, 1_000, DEFAULT_MAX_BODY, 65_536, 1 << 20];

#[test]
fn one_worst_case_item_of_every_kind_fits_min_frame_for_body() {
    for max_body in BODIES {
        let limit = min_frame_for_body(max_body);
        let body = max_body as usize;
        let reference = worst_text(MAX_REF);
        let frames = [
            ServerFrame::Msg(worst_message(body)),
            ServerFrame::HistoryPage {
                reference: reference.clone(),
                conv: worst_conv(),
                messages: vec![worst_message(body)],
                more: true,
            },
            ServerFrame::LiveBatch {
                room: worst_id('r'),
                items: vec![worst_live_item(body)],
                viewers: u64::MAX,
                dropped: u64::MAX,
            },
            ServerFrame::LiveJoined {
                reference: reference.clone(),
                room: worst_id('r'),
                viewers: u64::MAX,
                recent: vec![worst_live_item(body)],
            },
            ServerFrame::ConversationList {
                reference: reference.clone(),
                items: vec![ConversationItem {
                    conv: worst_conv(),
                    last_seq: u64::MAX,
                    read_seq: u64::MAX,
                }],
                more: Trailing::some(true),
            },
            fit::bounded(ServerFrame::Error {
                reference: Some(reference.clone()),
                code: ErrorCode::UnsupportedVersion,
                message: worst_text(100_000),
            }),
            fit::bounded(ServerFrame::Reject {
                // Echoed ids are cut to 128 characters.
                id: worst_text(128),
                code: ErrorCode::RateLimited,
                message: worst_text(100_000),
                retry_after_ms: Some(u64::MAX),
            }),
        ];
        for frame in &frames {
            assert_fits(frame, limit);
        }
    }
}

#[test]
fn the_defaults_leave_room_for_the_worst_message() {
    assert!(min_frame_for_body(DEFAULT_MAX_BODY) <= DEFAULT_MAX_FRAME);
}

#[test]
fn a_group_of_the_largest_size_fits_min_frame_for_group() {
    for members in [0u32, 1, 10, 500, 2_000] {
        let frame = ServerFrame::Group {
            reference: worst_text(MAX_REF),
            id: worst_id('g'),
            name: worst_text(MAX_GROUP_NAME),
            owner: worst_id('o'),
            members: (0..members).map(|_| worst_id('m')).collect(),
        };
        assert_fits(&frame, min_frame_for_group(members));
    }
}

#[test]
fn error_messages_are_cut_at_a_character_boundary() {
    let long = "é".repeat(1_000);
    let ServerFrame::Error { message, .. } = fit::bounded(ServerFrame::Error {
        reference: None,
        code: ErrorCode::Internal,
        message: long,
    }) else {
        panic!("not an error");
    };
    assert!(message.len() <= fit::MAX_ERROR_MESSAGE);
    assert!(message.len() >= fit::MAX_ERROR_MESSAGE - 1);
    assert!(message.chars().all(|c| c == 'é'));
}

fn messages(n: u64, body: &str) -> Vec<Message> {
    (1..=n)
        .map(|seq| Message {
            conv: "dm:alice:bob".into(),
            seq,
            id: format!("m{seq}"),
            from: "alice".into(),
            body: body.into(),
            ts_ms: 1_767_225_600_000 + seq,
        })
        .collect()
}

fn seqs(frame: &ServerFrame) -> (Vec<u64>, bool) {
    match frame {
        ServerFrame::HistoryPage { messages, more, .. } => {
            (messages.iter().map(|m| m.seq).collect(), *more)
        }
        other => panic!("not a page: {other:?}"),
    }
}

#[test]
fn a_page_that_fits_is_left_whole() {
    for keep in [Keep::First, Keep::Last] {
        for more in [false, true] {
            let page = fit::history_page(
                "h".into(),
                "dm:alice:bob".into(),
                messages(200, "hello"),
                more,
                keep,
                DEFAULT_MAX_FRAME,
            );
            assert_eq!(seqs(&page), ((1..=200).collect(), more));
        }
    }
}

#[test]
fn a_long_page_keeps_the_end_it_starts_at_and_says_more() {
    // 200 messages of 4 KiB are ~830 KB; a JSON body of control characters is 6×.
    for body in ["x".repeat(4_096), worst_text(4_096)] {
        let forward = fit::history_page(
            "h".into(),
            "dm:alice:bob".into(),
            messages(200, &body),
            false,
            Keep::First,
            DEFAULT_MAX_FRAME,
        );
        assert_fits(&forward, DEFAULT_MAX_FRAME);
        let (kept, more) = seqs(&forward);
        assert!(more);
        assert!(!kept.is_empty() && kept.len() < 200);
        assert_eq!(kept, (1..=kept.len() as u64).collect::<Vec<_>>());

        let backward = fit::history_page(
            "h".into(),
            "dm:alice:bob".into(),
            messages(200, &body),
            false,
            Keep::Last,
            DEFAULT_MAX_FRAME,
        );
        assert_fits(&backward, DEFAULT_MAX_FRAME);
        let (kept, more) = seqs(&backward);
        assert!(more);
        let first = 201 - kept.len() as u64;
        assert_eq!(kept, (first..=200).collect::<Vec<_>>());
    }
}

#[test]
fn a_page_is_as_full_as_the_limit_allows() {
    let body = "y".repeat(1_000);
    let page = fit::history_page(
        "h".into(),
        "dm:alice:bob".into(),
        messages(200, &body),
        false,
        Keep::First,
        DEFAULT_MAX_FRAME,
    );
    let (kept, _) = seqs(&page);
    let one_more = fit::encoded_len(&page).json + 1_100;
    assert!(
        one_more > DEFAULT_MAX_FRAME as usize,
        "room was left for another message"
    );
    assert!(kept.len() > 50);
}

#[test]
fn a_long_conversation_list_keeps_its_first_items() {
    let items: Vec<ConversationItem> = (0..3_200)
        .map(|i| ConversationItem {
            conv: format!("group:g{i:05}"),
            last_seq: u64::MAX,
            read_seq: i,
        })
        .collect();
    for more in [
        Trailing::ABSENT,
        Trailing::some(false),
        Trailing::some(true),
    ] {
        let list = fit::conversation_list("c".into(), items.clone(), more, DEFAULT_MAX_FRAME);
        assert_fits(&list, DEFAULT_MAX_FRAME);
        let ServerFrame::ConversationList {
            items: kept,
            more: said,
            ..
        } = list
        else {
            panic!("not a list");
        };
        assert!(!kept.is_empty() && kept.len() < items.len());
        assert_eq!(kept[..], items[..kept.len()]);
        // A v1 request gets no `more`; a paged one learns that items were left out.
        assert_eq!(said, more.0.map(|_| true).into());
    }
}

#[test]
fn a_long_live_batch_is_split_with_dropped_on_the_first_frame() {
    let items: Vec<LiveItem> = (1..=50)
        .map(|seq| LiveItem {
            seq,
            id: format!("d{seq}"),
            from: "viewer".into(),
            body: worst_text(4_096),
            ts_ms: seq,
            prio: Prio::Normal,
        })
        .collect();
    let (frames, lost) = fit::live_batches("room", items.clone(), 7, 3, DEFAULT_MAX_FRAME);
    assert_eq!(lost, 0);
    assert!(frames.len() > 1);
    let mut seen = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        assert_fits(frame, DEFAULT_MAX_FRAME);
        let ServerFrame::LiveBatch {
            room,
            items,
            viewers,
            dropped,
        } = frame
        else {
            panic!("not a batch");
        };
        assert_eq!((room.as_str(), *viewers), ("room", 7));
        assert_eq!(*dropped, if i == 0 { 3 } else { 0 });
        seen.extend(items.iter().map(|i| i.seq));
    }
    assert_eq!(seen, (1..=50).collect::<Vec<_>>());

    // An empty batch (only `dropped` to report) is one frame.
    let (frames, _) = fit::live_batches("room", Vec::new(), 7, 3, DEFAULT_MAX_FRAME);
    assert_eq!(frames.len(), 1);
}

#[test]
fn live_joined_keeps_the_newest_recent_items() {
    let recent: Vec<LiveItem> = (1..=20)
        .map(|seq| LiveItem {
            seq,
            id: format!("d{seq}"),
            from: "viewer".into(),
            body: worst_text(4_096),
            ts_ms: seq,
            prio: Prio::Paid,
        })
        .collect();
    let frame = fit::live_joined("j".into(), "room".into(), 1, recent, DEFAULT_MAX_FRAME);
    assert_fits(&frame, DEFAULT_MAX_FRAME);
    let ServerFrame::LiveJoined { recent, .. } = frame else {
        panic!("not live_joined");
    };
    assert!(!recent.is_empty() && recent.len() < 20);
    assert_eq!(recent.last().map(|i| i.seq), Some(20));
}
