//! Every frame of both directions survives the binary encoding, the JSON encoding
//! and TCP framing unchanged, and the binary layout is exactly the one
//! `docs/protocol.md` spells out (variant index, then fields in order).

mod samples;

use std::collections::BTreeSet;

use chorus_wire::codec::{Frame, LENGTH_PREFIX, TcpDecoder};
use chorus_wire::limits::DEFAULT_MAX_FRAME;
use chorus_wire::*;
use samples::{Rng, client_frames, server_frames};
use serde_json::{Value, json};

/// Frame types, required members and optional members, as docs/protocol.md §5 lists them.
const CLIENT_SCHEMA: &[(&str, &[&str], &[&str])] = &[
    ("hello", &["protocol", "token"], &["device"]),
    ("ping", &[], &["interval_s"]),
    ("send", &["id", "to", "body"], &[]),
    ("history", &["ref", "conv"], &["after", "before", "limit"]),
    ("conversations", &["ref"], &[]),
    ("read", &["conv", "seq"], &[]),
    ("group_create", &["ref", "name", "members"], &["id"]),
    ("group_add", &["ref", "id", "members"], &[]),
    ("group_remove", &["ref", "id", "members"], &[]),
    ("group_leave", &["ref", "id"], &[]),
    ("group_info", &["ref", "id"], &[]),
    ("live_join", &["ref", "room"], &[]),
    ("live_leave", &["ref", "room"], &[]),
    ("danmaku", &["id", "room", "body"], &[]),
    ("presence_sub", &["ref", "users"], &[]),
    ("presence_unsub", &["ref", "users"], &[]),
    ("typing", &["conv", "state"], &[]),
];

const SERVER_SCHEMA: &[(&str, &[&str], &[&str])] = &[
    (
        "welcome",
        &["protocol", "user", "session", "node", "heartbeat", "limits"],
        &[],
    ),
    ("pong", &[], &[]),
    ("ack", &["id", "conv", "seq", "ts_ms"], &[]),
    ("reject", &["id", "code", "message"], &["retry_after_ms"]),
    ("msg", &["conv", "seq", "id", "from", "body", "ts_ms"], &[]),
    ("receipt", &["conv", "user", "seq"], &[]),
    ("history_page", &["ref", "conv", "messages", "more"], &[]),
    ("conversation_list", &["ref", "items"], &[]),
    ("group", &["ref", "id", "name", "owner", "members"], &[]),
    ("ok", &["ref"], &[]),
    ("live_joined", &["ref", "room", "viewers", "recent"], &[]),
    ("live_batch", &["room", "items", "viewers", "dropped"], &[]),
    ("error", &["code", "message"], &["ref"]),
    ("goaway", &["reason", "reconnect_after_ms", "nodes"], &[]),
    ("presence", &["user", "status"], &["last_seen_ms"]),
    ("typing", &["conv", "user", "state"], &[]),
];

/// Members of the objects nested in frames (`welcome.heartbeat`, list items...).
const NESTED_SCHEMA: &[(&str, &[&str])] = &[
    ("heartbeat", &["min_s", "max_s", "idle_timeout_s"]),
    ("limits", &["max_frame", "max_body"]),
    ("messages", &["conv", "seq", "id", "from", "body", "ts_ms"]),
    ("items/conversation_list", &["conv", "last_seq", "read_seq"]),
    (
        "items/live_batch",
        &["seq", "id", "from", "body", "ts_ms", "prio"],
    ),
    ("recent", &["seq", "id", "from", "body", "ts_ms", "prio"]),
];

fn json_of<F: Frame>(frame: &F) -> serde_json::Map<String, Value> {
    match serde_json::from_str(&frame.to_json()) {
        Ok(Value::Object(map)) => map,
        other => panic!("a frame must encode to a JSON object, got {other:?}"),
    }
}

fn type_of(map: &serde_json::Map<String, Value>) -> String {
    map.get("type")
        .and_then(Value::as_str)
        .expect("every JSON frame has a string type")
        .into()
}

fn key_set(map: &serde_json::Map<String, Value>) -> BTreeSet<&str> {
    map.keys()
        .map(String::as_str)
        .filter(|k| *k != "type")
        .collect()
}

fn check_types<F: Frame + std::fmt::Debug>(
    frames: &[F],
    type_name: impl Fn(&F) -> &'static str,
    schema: &[(&str, &[&str], &[&str])],
) {
    let listed: Vec<&str> = schema.iter().map(|(t, _, _)| *t).collect();
    assert_eq!(
        F::TYPES,
        listed.as_slice(),
        "TYPES must list the protocol's frames in order"
    );
    let mut seen = BTreeSet::new();
    for frame in frames {
        let map = json_of(frame);
        let ty = type_of(&map);
        assert_eq!(ty, type_name(frame), "{frame:?}");
        let index = F::TYPES.iter().position(|t| *t == ty).expect("known type");
        assert_eq!(
            frame.to_binary()[0] as usize,
            index,
            "the binary variant index of {ty} must be its position in TYPES"
        );
        seen.insert(ty);
    }
    let all: BTreeSet<String> = F::TYPES.iter().map(|t| t.to_string()).collect();
    assert_eq!(seen, all, "the samples must cover every frame type");
}

#[test]
fn samples_cover_every_variant_with_its_protocol_type_and_index() {
    check_types(&client_frames(), ClientFrame::type_name, CLIENT_SCHEMA);
    check_types(&server_frames(), ServerFrame::type_name, SERVER_SCHEMA);
}

#[test]
fn binary_round_trip() {
    for frame in client_frames() {
        assert_eq!(
            ClientFrame::from_binary(&frame.to_binary()),
            Ok(frame.clone())
        );
    }
    for frame in server_frames() {
        assert_eq!(
            ServerFrame::from_binary(&frame.to_binary()),
            Ok(frame.clone())
        );
    }
}

#[test]
fn json_round_trip() {
    for frame in client_frames() {
        assert_eq!(ClientFrame::from_json(&frame.to_json()), Ok(frame.clone()));
    }
    for frame in server_frames() {
        assert_eq!(ServerFrame::from_json(&frame.to_json()), Ok(frame.clone()));
    }
}

fn encode_decode_both<F: Frame + PartialEq + std::fmt::Debug>(frames: &[F]) {
    for frame in frames {
        for encoding in [Encoding::Binary, Encoding::Json] {
            let bytes = frame.encode(encoding);
            assert!(bytes.len() <= DEFAULT_MAX_FRAME as usize);
            assert_eq!(
                F::decode(&bytes, encoding, DEFAULT_MAX_FRAME).as_ref(),
                Ok(frame)
            );
        }
    }
}

#[test]
fn encode_and_decode_in_either_encoding() {
    encode_decode_both(&client_frames());
    encode_decode_both(&server_frames());
}

fn tcp_stream<F: Frame>(frames: &[F]) -> Vec<u8> {
    let mut stream = Vec::new();
    for frame in frames {
        let tcp = frame.to_tcp();
        let body = frame.to_binary();
        assert_eq!(tcp[..LENGTH_PREFIX], (body.len() as u32).to_be_bytes());
        assert_eq!(tcp[LENGTH_PREFIX..], body[..]);
        stream.extend_from_slice(&tcp);
    }
    stream
}

/// Feeds `stream` in chunks whose sizes `chunk` picks and collects the frames.
fn feed<F: Frame + std::fmt::Debug>(stream: &[u8], mut chunk: impl FnMut() -> usize) -> Vec<F> {
    let mut decoder = TcpDecoder::new(DEFAULT_MAX_FRAME);
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = chunk().clamp(1, rest.len());
        decoder.buffer().extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(frame) = decoder.next_frame::<F>().expect("a valid stream") {
            out.push(frame);
        }
    }
    assert_eq!(decoder.pending(), 0, "nothing may be left over");
    out
}

fn tcp_round_trip<F: Frame + PartialEq + std::fmt::Debug + Clone>(frames: &[F]) {
    let stream = tcp_stream(frames);
    assert_eq!(feed::<F>(&stream, || stream.len()), frames, "one chunk");
    assert_eq!(feed::<F>(&stream, || 1), frames, "byte by byte");
    let mut rng = Rng::new(7);
    for _ in 0..20 {
        assert_eq!(
            feed::<F>(&stream, || rng.below(300) + 1),
            frames,
            "random chunks"
        );
    }
}

#[test]
fn tcp_framing_round_trip() {
    tcp_round_trip(&client_frames());
    tcp_round_trip(&server_frames());
}

#[test]
fn tcp_frame_appears_exactly_when_its_last_byte_arrives() {
    for frame in server_frames() {
        let tcp = frame.to_tcp();
        let mut decoder = TcpDecoder::new(DEFAULT_MAX_FRAME);
        for (i, byte) in tcp.iter().enumerate() {
            decoder.buffer().extend_from_slice(&[*byte]);
            let got = decoder.next_frame::<ServerFrame>().expect("valid bytes");
            if i + 1 < tcp.len() {
                assert_eq!(got, None, "no frame before byte {} of {}", i + 1, tcp.len());
                assert_eq!(decoder.pending(), i + 1);
            } else {
                assert_eq!(got.as_ref(), Some(&frame));
                assert_eq!(decoder.pending(), 0);
            }
        }
    }
}

/// A JSON frame with every null member removed, and one with unknown members added.
fn variants_of_json(map: &serde_json::Map<String, Value>) -> [String; 3] {
    let mut absent = map.clone();
    absent.retain(|_, v| !v.is_null());
    let mut extra = map.clone();
    extra.insert(
        "zz_future".into(),
        json!({ "nested": [1, "two", null, { "x": 3.5 }] }),
    );
    extra.insert("another".into(), json!(null));
    let mut extra_first = serde_json::Map::new();
    extra_first.insert("aa_first".into(), json!("ignored"));
    extra_first.extend(map.clone());
    [
        Value::Object(absent).to_string(),
        Value::Object(extra).to_string(),
        Value::Object(extra_first).to_string(),
    ]
}

fn json_leniency<F: Frame + PartialEq + std::fmt::Debug>(frames: &[F]) {
    for frame in frames {
        for text in variants_of_json(&json_of(frame)) {
            assert_eq!(F::from_json(&text).as_ref(), Ok(frame), "{text}");
        }
    }
}

#[test]
fn json_ignores_unknown_members_and_accepts_absent_or_null_optionals() {
    json_leniency(&client_frames());
    json_leniency(&server_frames());
    // The type member need not come first.
    assert_eq!(
        ClientFrame::from_json(r#"{"interval_s":null,"type":"ping"}"#),
        Ok(ClientFrame::Ping { interval_s: None })
    );
    assert_eq!(
        ClientFrame::from_json(" \n{ \"type\" : \"ping\" }\n "),
        Ok(ClientFrame::Ping { interval_s: None })
    );
}

fn nested_schema(key: &str, frame_type: &str) -> &'static [&'static str] {
    let qualified = format!("{key}/{frame_type}");
    NESTED_SCHEMA
        .iter()
        .find(|(k, _)| *k == qualified || *k == key)
        .map(|(_, members)| *members)
        .unwrap_or_else(|| panic!("no nested schema for {qualified}"))
}

/// Checks member names against the schema and that removing a required member, or
/// giving any member a wrong type, fails to decode.
fn json_schema<F: Frame + PartialEq + std::fmt::Debug>(
    frames: &[F],
    schema: &[(&str, &[&str], &[&str])],
) {
    for frame in frames {
        let map = json_of(frame);
        let ty = type_of(&map);
        let (_, required, optional) = schema
            .iter()
            .find(|(t, _, _)| *t == ty)
            .expect("type in the schema");
        let expected: BTreeSet<&str> = required.iter().chain(optional.iter()).copied().collect();
        assert_eq!(key_set(&map), expected, "members of {ty}");

        for (key, value) in &map {
            if key == "type" {
                continue;
            }
            let mut without = map.clone();
            without.remove(key);
            let decoded = F::from_json(&Value::Object(without).to_string());
            if optional.contains(&key.as_str()) {
                let mut as_null = map.clone();
                as_null.insert(key.clone(), Value::Null);
                let expected = F::from_json(&Value::Object(as_null).to_string());
                assert!(decoded.is_ok(), "{ty} without optional {key}: {decoded:?}");
                assert_eq!(
                    decoded, expected,
                    "absent and null {key} must mean the same"
                );
            } else {
                assert!(
                    matches!(decoded, Err(DecodeError::Malformed(_))),
                    "{ty} without {key}: {decoded:?}"
                );
            }

            let mut wrong = map.clone();
            wrong.insert(key.clone(), json!({ "wrong": "type" }));
            let decoded = F::from_json(&Value::Object(wrong).to_string());
            assert!(
                matches!(decoded, Err(DecodeError::Malformed(_))),
                "{ty}.{key}: {decoded:?}"
            );

            // Objects nested in the frame: exact members, each of them required.
            let nested: Vec<&serde_json::Map<String, Value>> = match value {
                Value::Object(inner) => vec![inner],
                Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
                _ => vec![],
            };
            for (i, inner) in nested.iter().enumerate() {
                let members = nested_schema(key, &ty);
                let expected: BTreeSet<&str> = members.iter().copied().collect();
                assert_eq!(key_set(inner), expected, "members of {ty}.{key}");
                for member in members.iter() {
                    let mut broken = map.clone();
                    let target = match broken.get_mut(key) {
                        Some(Value::Array(items)) => &mut items[i],
                        Some(other) => other,
                        None => unreachable!("the key was just read"),
                    };
                    if let Some(obj) = target.as_object_mut() {
                        obj.remove(*member);
                    }
                    let decoded = F::from_json(&Value::Object(broken).to_string());
                    assert!(
                        matches!(decoded, Err(DecodeError::Malformed(_))),
                        "{ty}.{key}[{i}] without {member}: {decoded:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn json_members_match_the_protocol_and_required_ones_are_required() {
    json_schema(&client_frames(), CLIENT_SCHEMA);
    json_schema(&server_frames(), SERVER_SCHEMA);
}

#[test]
fn json_names_of_codes_and_priorities() {
    let codes: Vec<String> = samples::CODES
        .iter()
        .map(|c| serde_json::to_string(c).expect("a unit enum serialises"))
        .collect();
    assert_eq!(
        codes,
        [
            "\"bad_frame\"",
            "\"unsupported_version\"",
            "\"unauthenticated\"",
            "\"forbidden\"",
            "\"not_found\"",
            "\"too_large\"",
            "\"invalid\"",
            "\"rate_limited\"",
            "\"filtered\"",
            "\"overloaded\"",
            "\"internal\"",
        ]
    );
    for code in samples::CODES {
        assert_eq!(
            format!("\"{code}\""),
            serde_json::to_string(&code).expect("serialises")
        );
    }
    let prios: Vec<String> = samples::PRIOS
        .iter()
        .map(|p| serde_json::to_string(p).expect("a unit enum serialises"))
        .collect();
    assert_eq!(prios, ["\"normal\"", "\"vip\"", "\"paid\"", "\"system\""]);
}

#[test]
fn msg_is_a_message_object_with_type_msg() {
    let message = Message {
        conv: "dm:alice:bob".into(),
        seq: 3,
        id: "m-3".into(),
        from: "bob".into(),
        body: "yo".into(),
        ts_ms: 9,
    };
    let frame = ServerFrame::Msg(message.clone());
    let mut framed = json_of(&frame);
    assert_eq!(framed.remove("type"), Some(json!("msg")));
    let plain = serde_json::to_value(&message).expect("serialises");
    assert_eq!(
        Value::Object(framed),
        plain,
        "msg = a history message plus type"
    );
    // Binary: the variant index, then the message's fields.
    let mut expected = vec![4];
    expected.extend(bincode::encode_to_vec(&message, bincode::config::standard()).expect("ok"));
    assert_eq!(frame.to_binary(), expected);
}

#[test]
fn dense_lists_within_the_frame_limit_decode() {
    // The decoder's allocation budget must never refuse a real frame, even one whose
    // in-memory form is much larger than its wire form (lists of empty items).
    let n = 20_000;
    let group = ServerFrame::Group {
        reference: String::new(),
        id: "g".into(),
        name: String::new(),
        owner: "o".into(),
        members: vec![String::new(); n],
    };
    let page = ServerFrame::HistoryPage {
        reference: String::new(),
        conv: String::new(),
        messages: vec![
            Message {
                conv: String::new(),
                seq: 0,
                id: String::new(),
                from: String::new(),
                body: String::new(),
                ts_ms: 0,
            };
            n / 6
        ],
        more: true,
    };
    let batch = ServerFrame::LiveBatch {
        room: String::new(),
        items: vec![
            LiveItem {
                seq: 0,
                id: String::new(),
                from: String::new(),
                body: String::new(),
                ts_ms: 0,
                prio: Prio::Normal,
            };
            n / 6
        ],
        viewers: 0,
        dropped: 0,
    };
    let list = ServerFrame::ConversationList {
        reference: String::new(),
        items: vec![
            ConversationItem {
                conv: String::new(),
                last_seq: 0,
                read_seq: 0
            };
            n / 3
        ],
        more: Trailing::ABSENT,
    };
    let goaway = ServerFrame::Goaway {
        reason: String::new(),
        reconnect_after_ms: 0,
        nodes: vec![String::new(); n],
    };
    for frame in [group, page, batch, list, goaway] {
        let bytes = frame.to_binary();
        assert!(bytes.len() <= DEFAULT_MAX_FRAME as usize);
        assert_eq!(ServerFrame::from_binary(&bytes).as_ref(), Ok(&frame));
    }
    // The worst ratio of memory to wire bytes (a list of empty strings), on both
    // sides of every size bucket of the budget.
    for bucket in [256usize, 1 << 10, 1 << 12, 1 << 14, 1 << 16] {
        for members in bucket.saturating_sub(12)..bucket + 4 {
            let frame = ServerFrame::Group {
                reference: String::new(),
                id: String::new(),
                name: String::new(),
                owner: String::new(),
                members: vec![String::new(); members],
            };
            let bytes = frame.to_binary();
            if bytes.len() <= DEFAULT_MAX_FRAME as usize {
                assert_eq!(
                    ServerFrame::from_binary(&bytes),
                    Ok(frame),
                    "{} bytes",
                    bytes.len()
                );
            }
        }
    }
    let group_create = ClientFrame::GroupCreate {
        reference: String::new(),
        id: None,
        name: String::new(),
        members: vec![String::new(); n],
    };
    assert_eq!(
        ClientFrame::from_binary(&group_create.to_binary()).as_ref(),
        Ok(&group_create)
    );
}

/// An encoder written from the rules in `docs/protocol.md` alone, independent of
/// bincode: every sample must encode to the same bytes.
#[derive(Default)]
struct Spec(Vec<u8>);

impl Spec {
    fn uint(&mut self, v: u64) -> &mut Self {
        if v < 251 {
            self.0.push(v as u8);
        } else if v <= u64::from(u16::MAX) {
            self.0.push(251);
            self.0.extend_from_slice(&(v as u16).to_le_bytes());
        } else if v <= u64::from(u32::MAX) {
            self.0.push(252);
            self.0.extend_from_slice(&(v as u32).to_le_bytes());
        } else {
            self.0.push(253);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.uint(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn opt_str(&mut self, s: &Option<String>) -> &mut Self {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
        }
        self
    }
    fn opt_uint(&mut self, v: Option<u64>) -> &mut Self {
        match v {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                self.uint(v);
            }
        }
        self
    }
    fn boolean(&mut self, b: bool) -> &mut Self {
        self.0.push(u8::from(b));
        self
    }
    fn strs(&mut self, list: &[String]) -> &mut Self {
        self.uint(list.len() as u64);
        for s in list {
            self.str(s);
        }
        self
    }
    fn message(&mut self, m: &Message) -> &mut Self {
        self.str(&m.conv)
            .uint(m.seq)
            .str(&m.id)
            .str(&m.from)
            .str(&m.body)
            .uint(m.ts_ms)
    }
    fn live_items(&mut self, items: &[LiveItem]) -> &mut Self {
        self.uint(items.len() as u64);
        for i in items {
            let prio = samples::PRIOS
                .iter()
                .position(|p| *p == i.prio)
                .expect("a prio");
            self.uint(i.seq)
                .str(&i.id)
                .str(&i.from)
                .str(&i.body)
                .uint(i.ts_ms);
            self.uint(prio as u64);
        }
        self
    }
    fn typing(&mut self, state: TypingState) -> &mut Self {
        self.uint(match state {
            TypingState::Start => 0,
            TypingState::Stop => 1,
        })
    }
    fn code(&mut self, c: ErrorCode) -> &mut Self {
        let index = samples::CODES.iter().position(|x| *x == c).expect("a code");
        self.uint(index as u64)
    }
}

fn spec_client(frame: &ClientFrame) -> Vec<u8> {
    use ClientFrame::*;
    let mut s = Spec::default();
    match frame {
        Hello {
            protocol,
            token,
            device,
        } => s
            .uint(0)
            .uint(u64::from(*protocol))
            .str(token)
            .opt_str(device),
        Ping { interval_s } => s.uint(1).opt_uint(interval_s.map(u64::from)),
        Send { id, to, body } => s.uint(2).str(id).str(to).str(body),
        History {
            reference,
            conv,
            after,
            before,
            limit,
        } => s
            .uint(3)
            .str(reference)
            .str(conv)
            .opt_uint(*after)
            .opt_uint(*before)
            .opt_uint(limit.map(u64::from)),
        // The samples are v1 frames: the paging addition is tested in `trailing.rs`.
        Conversations { reference, page } => {
            assert!(page.is_absent());
            s.uint(4).str(reference)
        }
        Read { conv, seq } => s.uint(5).str(conv).uint(*seq),
        GroupCreate {
            reference,
            id,
            name,
            members,
        } => s.uint(6).str(reference).opt_str(id).str(name).strs(members),
        GroupAdd {
            reference,
            id,
            members,
        } => s.uint(7).str(reference).str(id).strs(members),
        GroupRemove {
            reference,
            id,
            members,
        } => s.uint(8).str(reference).str(id).strs(members),
        GroupLeave { reference, id } => s.uint(9).str(reference).str(id),
        GroupInfo { reference, id } => s.uint(10).str(reference).str(id),
        LiveJoin { reference, room } => s.uint(11).str(reference).str(room),
        LiveLeave { reference, room } => s.uint(12).str(reference).str(room),
        Danmaku { id, room, body } => s.uint(13).str(id).str(room).str(body),
        PresenceSub { reference, users } => s.uint(14).str(reference).strs(users),
        PresenceUnsub { reference, users } => s.uint(15).str(reference).strs(users),
        Typing { conv, state } => s.uint(16).str(conv).typing(*state),
    };
    s.0
}

fn spec_server(frame: &ServerFrame) -> Vec<u8> {
    use ServerFrame::*;
    let mut s = Spec::default();
    match frame {
        Welcome {
            protocol,
            user,
            session,
            node,
            heartbeat,
            limits,
        } => s
            .uint(0)
            .uint(u64::from(*protocol))
            .str(user)
            .str(session)
            .str(node)
            .uint(u64::from(heartbeat.min_s))
            .uint(u64::from(heartbeat.max_s))
            .uint(u64::from(heartbeat.idle_timeout_s))
            .uint(u64::from(limits.max_frame))
            .uint(u64::from(limits.max_body)),
        Pong => s.uint(1),
        Ack {
            id,
            conv,
            seq,
            ts_ms,
        } => s.uint(2).str(id).str(conv).uint(*seq).uint(*ts_ms),
        Reject {
            id,
            code,
            message,
            retry_after_ms,
        } => s
            .uint(3)
            .str(id)
            .code(*code)
            .str(message)
            .opt_uint(*retry_after_ms),
        Msg(m) => s.uint(4).message(m),
        Receipt { conv, user, seq } => s.uint(5).str(conv).str(user).uint(*seq),
        HistoryPage {
            reference,
            conv,
            messages,
            more,
        } => {
            s.uint(6)
                .str(reference)
                .str(conv)
                .uint(messages.len() as u64);
            for m in messages {
                s.message(m);
            }
            s.boolean(*more)
        }
        ConversationList {
            reference,
            items,
            more,
        } => {
            assert!(more.is_absent());
            s.uint(7).str(reference).uint(items.len() as u64);
            for i in items {
                s.str(&i.conv).uint(i.last_seq).uint(i.read_seq);
            }
            &mut s
        }
        Group {
            reference,
            id,
            name,
            owner,
            members,
        } => s
            .uint(8)
            .str(reference)
            .str(id)
            .str(name)
            .str(owner)
            .strs(members),
        Ok { reference } => s.uint(9).str(reference),
        LiveJoined {
            reference,
            room,
            viewers,
            recent,
        } => s
            .uint(10)
            .str(reference)
            .str(room)
            .uint(*viewers)
            .live_items(recent),
        LiveBatch {
            room,
            items,
            viewers,
            dropped,
        } => s
            .uint(11)
            .str(room)
            .live_items(items)
            .uint(*viewers)
            .uint(*dropped),
        Error {
            reference,
            code,
            message,
        } => s.uint(12).opt_str(reference).code(*code).str(message),
        Goaway {
            reason,
            reconnect_after_ms,
            nodes,
        } => s.uint(13).str(reason).uint(*reconnect_after_ms).strs(nodes),
        Presence {
            user,
            status,
            last_seen_ms,
        } => s
            .uint(14)
            .str(user)
            .uint(match status {
                PresenceStatus::Online => 0,
                PresenceStatus::Offline => 1,
            })
            .opt_uint(*last_seen_ms),
        Typing { conv, user, state } => s.uint(15).str(conv).str(user).typing(*state),
    };
    s.0
}

#[test]
fn binary_layout_follows_the_documented_rules() {
    for frame in client_frames() {
        assert_eq!(frame.to_binary(), spec_client(&frame), "{frame:?}");
    }
    for frame in server_frames() {
        assert_eq!(frame.to_binary(), spec_server(&frame), "{frame:?}");
    }
}

#[test]
fn the_tcp_decoder_gives_back_a_long_frames_buffer() {
    let page = ServerFrame::HistoryPage {
        reference: "h".into(),
        conv: "dm:a:b".into(),
        messages: vec![],
        more: false,
    };
    let long = ServerFrame::Error {
        reference: None,
        code: ErrorCode::Internal,
        message: "y".repeat(200_000),
    };
    let mut decoder = TcpDecoder::new(1 << 20);
    decoder.buffer().extend_from_slice(&long.to_tcp());
    assert_eq!(decoder.next_frame::<ServerFrame>(), Ok(Some(long)));
    // The next socket read reserves room, and takes the long frame's memory back.
    decoder.buffer().reserve(1);
    assert!(decoder.capacity() > 100_000);
    decoder.shrink();
    assert_eq!(decoder.capacity(), chorus_wire::codec::DECODER_BUFFER);
    // A partial frame keeps its buffer.
    let bytes = page.to_tcp();
    decoder.buffer().extend_from_slice(&bytes[..3]);
    decoder.shrink();
    decoder.buffer().extend_from_slice(&bytes[3..]);
    assert_eq!(decoder.next_frame::<ServerFrame>(), Ok(Some(page)));
}
