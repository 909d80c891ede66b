//! Sample frames shared by the integration tests: every variant of both directions,
//! with optional fields present and absent, empty and full lists, unicode text and
//! integers on each varint boundary.

// Each test crate includes this module and uses a different part of it.
#![allow(dead_code)]

use chorus_wire::*;

/// Integers on both sides of each bincode varint boundary.
pub(crate) const EDGE_U64: [u64; 10] = [
    0,
    1,
    250,
    251,
    65_535,
    65_536,
    u32::MAX as u64,
    u32::MAX as u64 + 1,
    1_767_225_600_000,
    u64::MAX,
];

/// Bodies that stress both encodings: empty, JSON escapes, multi-byte UTF-8, a full body.
pub(crate) fn bodies() -> Vec<String> {
    vec![
        String::new(),
        "hi".into(),
        "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7}".into(),
        "héllo wörld 你好 🎉 مرحبا".into(),
        "\u{2028}\u{2029}\u{feff}".into(),
        "é".repeat(2_048),
    ]
}

fn msg(conv: &str, seq: u64, body: &str) -> Message {
    Message {
        conv: conv.into(),
        seq,
        id: format!("m-{seq}"),
        from: "alice".into(),
        body: body.into(),
        ts_ms: 1_767_225_600_000u64.wrapping_add(seq),
    }
}

fn item(seq: u64, prio: Prio, body: &str) -> LiveItem {
    LiveItem {
        seq,
        id: format!("d-{seq}"),
        from: "carol".into(),
        body: body.into(),
        ts_ms: 1_767_225_600_000u64.wrapping_add(seq),
        prio,
    }
}

/// Every error code, in declaration order.
pub(crate) const CODES: [ErrorCode; 11] = [
    ErrorCode::BadFrame,
    ErrorCode::UnsupportedVersion,
    ErrorCode::Unauthenticated,
    ErrorCode::Forbidden,
    ErrorCode::NotFound,
    ErrorCode::TooLarge,
    ErrorCode::Invalid,
    ErrorCode::RateLimited,
    ErrorCode::Filtered,
    ErrorCode::Overloaded,
    ErrorCode::Internal,
];

/// Every priority, in declaration order.
pub(crate) const PRIOS: [Prio; 4] = [Prio::Normal, Prio::Vip, Prio::Paid, Prio::System];

/// At least one sample of every client frame.
pub(crate) fn client_frames() -> Vec<ClientFrame> {
    use ClientFrame::*;
    let mut out = vec![
        Hello {
            protocol: 1,
            token: "alice".into(),
            device: Some("web".into()),
        },
        Hello {
            protocol: 1,
            token: "eyJhbGciOiJIUzI1NiJ9.e30.sig".into(),
            device: None,
        },
        Hello {
            protocol: 2,
            token: String::new(),
            device: Some("手机".into()),
        },
        Ping {
            interval_s: Some(30),
        },
        Ping { interval_s: None },
        Ping {
            interval_s: Some(u32::MAX),
        },
        History {
            reference: "h1".into(),
            conv: "dm:alice:bob".into(),
            after: None,
            before: None,
            limit: None,
        },
        History {
            reference: "h2".into(),
            conv: "group:team".into(),
            after: Some(0),
            before: Some(u64::MAX),
            limit: Some(200),
        },
        History {
            reference: String::new(),
            conv: "dm:alice:bob".into(),
            after: Some(300),
            before: None,
            limit: Some(50),
        },
        Conversations {
            reference: "c1".into(),
            page: Trailing::ABSENT,
        },
        Conversations {
            reference: "ref ünïcode ✓".into(),
            page: Trailing::ABSENT,
        },
        GroupCreate {
            reference: "g1".into(),
            id: None,
            name: "Team".into(),
            members: vec![],
        },
        GroupCreate {
            reference: "g2".into(),
            id: Some("team".into()),
            name: "Équipe 🚀".into(),
            members: vec!["bob".into(), "carol".into()],
        },
        GroupAdd {
            reference: "g3".into(),
            id: "team".into(),
            members: vec!["dave".into()],
        },
        GroupAdd {
            reference: "g4".into(),
            id: "team".into(),
            members: vec![],
        },
        GroupRemove {
            reference: "g5".into(),
            id: "team".into(),
            members: vec!["bob".into(), "dave".into()],
        },
        GroupRemove {
            reference: "g6".into(),
            id: "team".into(),
            members: vec![],
        },
        GroupLeave {
            reference: "g7".into(),
            id: "team".into(),
        },
        GroupInfo {
            reference: "g8".into(),
            id: "team".into(),
        },
        LiveJoin {
            reference: "l1".into(),
            room: "r1".into(),
        },
        LiveLeave {
            reference: "l2".into(),
            room: "r1".into(),
        },
    ];
    for (i, body) in bodies().into_iter().enumerate() {
        out.push(Send {
            id: format!("m-{i}"),
            to: "user:bob".into(),
            body: body.clone(),
        });
        out.push(Send {
            id: format!("g-{i}"),
            to: "group:team".into(),
            body: body.clone(),
        });
        out.push(Danmaku {
            id: format!("d-{i}"),
            room: "r1".into(),
            body,
        });
    }
    for seq in EDGE_U64 {
        out.push(Read {
            conv: "dm:alice:bob".into(),
            seq,
        });
    }
    out.extend([
        PresenceSub {
            reference: "p1".into(),
            users: vec!["bob".into(), "carol".into()],
        },
        PresenceSub {
            reference: "p2".into(),
            users: vec![],
        },
        PresenceUnsub {
            reference: "p3".into(),
            users: vec!["bob".into()],
        },
        Typing {
            conv: "group:team".into(),
            state: TypingState::Start,
        },
        Typing {
            conv: "dm:alice:bob".into(),
            state: TypingState::Stop,
        },
    ]);
    out
}

/// At least one sample of every server frame.
pub(crate) fn server_frames() -> Vec<ServerFrame> {
    use ServerFrame::*;
    let mut out = vec![
        Welcome {
            protocol: 1,
            user: "alice".into(),
            session: "s-7f3a".into(),
            node: "n1".into(),
            heartbeat: HeartbeatInfo {
                min_s: 10,
                max_s: 300,
                idle_timeout_s: 605,
            },
            limits: LimitsInfo {
                max_frame: 65_536,
                max_body: 4_096,
            },
        },
        Pong,
        Msg(msg("dm:alice:bob", 1, "héllo 👋")),
        Msg(msg("group:team", u64::MAX, "")),
        Receipt {
            conv: "dm:alice:bob".into(),
            user: "bob".into(),
            seq: 42,
        },
        HistoryPage {
            reference: "h1".into(),
            conv: "dm:alice:bob".into(),
            messages: vec![],
            more: false,
        },
        HistoryPage {
            reference: "h2".into(),
            conv: "group:team".into(),
            messages: (1..=3).map(|s| msg("group:team", s, "σ 🙂")).collect(),
            more: true,
        },
        ConversationList {
            reference: "c1".into(),
            items: vec![],
            more: Trailing::ABSENT,
        },
        ConversationList {
            reference: "c2".into(),
            items: vec![
                ConversationItem {
                    conv: "dm:alice:bob".into(),
                    last_seq: 2,
                    read_seq: 1,
                },
                ConversationItem {
                    conv: "group:team".into(),
                    last_seq: 0,
                    read_seq: 0,
                },
                ConversationItem {
                    conv: "group:big".into(),
                    last_seq: u64::MAX,
                    read_seq: 65_536,
                },
            ],
            more: Trailing::ABSENT,
        },
        Group {
            reference: "g1".into(),
            id: "team".into(),
            name: "Team".into(),
            owner: "alice".into(),
            members: vec!["alice".into(), "bob".into()],
        },
        Group {
            reference: String::new(),
            id: "solo".into(),
            name: String::new(),
            owner: "alice".into(),
            members: vec![],
        },
        Ok {
            reference: "g7".into(),
        },
        LiveJoined {
            reference: "l1".into(),
            room: "r1".into(),
            viewers: 0,
            recent: vec![],
        },
        LiveJoined {
            reference: "l2".into(),
            room: "r1".into(),
            viewers: 1_000_000,
            recent: PRIOS
                .iter()
                .enumerate()
                .map(|(i, p)| item(i as u64 + 1, *p, "666"))
                .collect(),
        },
        LiveBatch {
            room: "r1".into(),
            items: vec![],
            viewers: 1,
            dropped: 17,
        },
        LiveBatch {
            room: "r1".into(),
            items: PRIOS
                .iter()
                .enumerate()
                .map(|(i, p)| item(i as u64 + 10, *p, "弹幕"))
                .collect(),
            viewers: 250_000,
            dropped: 0,
        },
        Goaway {
            reason: "drain".into(),
            reconnect_after_ms: 5_000,
            nodes: vec![],
        },
        Goaway {
            reason: "rolling restart".into(),
            reconnect_after_ms: 0,
            nodes: vec!["10.0.0.2:7400".into(), "10.0.0.3:7400".into()],
        },
        Presence {
            user: "bob".into(),
            status: PresenceStatus::Online,
            last_seen_ms: None,
        },
        Presence {
            user: "carol".into(),
            status: PresenceStatus::Offline,
            last_seen_ms: Some(1_700_000_000_000),
        },
        Presence {
            user: "dave".into(),
            status: PresenceStatus::Offline,
            last_seen_ms: None,
        },
        Typing {
            conv: "group:team".into(),
            user: "alice".into(),
            state: TypingState::Start,
        },
        Typing {
            conv: "dm:alice:bob".into(),
            user: "bob".into(),
            state: TypingState::Stop,
        },
    ];
    for seq in EDGE_U64 {
        out.push(Ack {
            id: "m-1".into(),
            conv: "dm:alice:bob".into(),
            seq,
            ts_ms: seq,
        });
    }
    for (i, code) in CODES.into_iter().enumerate() {
        let retry = (i % 2 == 0).then_some(EDGE_U64[i % EDGE_U64.len()]);
        out.push(Reject {
            id: format!("m-{i}"),
            code,
            message: format!("{code} ✗"),
            retry_after_ms: retry,
        });
        out.push(Error {
            reference: (i % 2 == 1).then(|| format!("r-{i}")),
            code,
            message: code.to_string(),
        });
    }
    for body in bodies() {
        out.push(Msg(msg("dm:alice:bob", 7, &body)));
    }
    out
}

/// A small deterministic PRNG (SplitMix64), so every run tests the same inputs.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub(crate) fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}
