//! Golden vectors (`tests/golden/vectors.json`, also printed in `docs/protocol.md`):
//! each decodes from its JSON text, its binary hex and its TCP hex to the same frame,
//! and encodes back to them byte for byte. Other-language clients can run the same
//! file against their own codecs.

use chorus_wire::codec::{Frame, TcpDecoder};
use chorus_wire::limits::DEFAULT_MAX_FRAME;
use chorus_wire::{ClientFrame, DecodeError, ServerFrame};
use serde::Deserialize;

const VECTORS: &str = include_str!("golden/vectors.json");

#[derive(Deserialize)]
struct File {
    protocol: u32,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    direction: String,
    json: String,
    binary: String,
    #[serde(default)]
    tcp: Option<String>,
}

fn vectors() -> Vec<Vector> {
    let file: File = serde_json::from_str(VECTORS).expect("vectors.json is valid");
    assert_eq!(file.protocol, chorus_wire::PROTOCOL_VERSION);
    file.vectors
}

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).expect("vectors hold lowercase hex")
}

fn check<F: Frame + PartialEq + std::fmt::Debug>(v: &Vector) {
    let binary = unhex(&v.binary);
    let from_json = F::from_json(&v.json).unwrap_or_else(|e| panic!("{}: json: {e}", v.name));
    let from_binary = F::from_binary(&binary).unwrap_or_else(|e| panic!("{}: binary: {e}", v.name));
    assert_eq!(
        from_json, from_binary,
        "{}: both encodings hold the same frame",
        v.name
    );
    assert_eq!(
        from_json.to_json(),
        v.json,
        "{}: JSON re-encodes byte for byte",
        v.name
    );
    assert_eq!(
        hex::encode(from_json.to_binary()),
        v.binary,
        "{}: binary re-encodes",
        v.name
    );
    if let Some(tcp) = &v.tcp {
        assert_eq!(
            hex::encode(from_json.to_tcp()),
            *tcp,
            "{}: TCP form re-encodes",
            v.name
        );
        let mut decoder = TcpDecoder::new(DEFAULT_MAX_FRAME);
        decoder.buffer().extend_from_slice(&unhex(tcp));
        assert_eq!(
            decoder.next_frame::<F>(),
            Ok(Some(from_json)),
            "{}: TCP decodes",
            v.name
        );
        assert_eq!(decoder.pending(), 0);
    }
}

#[test]
fn every_vector_decodes_and_re_encodes_byte_for_byte() {
    for v in vectors() {
        match v.direction.as_str() {
            "client_to_server" => check::<ClientFrame>(&v),
            "server_to_client" => check::<ServerFrame>(&v),
            other => panic!("{}: unknown direction {other}", v.name),
        }
    }
}

#[test]
fn the_vectors_span_both_directions_and_the_documented_cases() {
    let all = vectors();
    let names: Vec<&str> = all.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "hello",
            "send",
            "history",
            "ack",
            "reject",
            "msg",
            "history_page",
            "conversation_list",
            "group",
            "live_batch",
            "error_with_ref",
            "error_without_ref",
            "pong",
            "presence_sub",
            "presence_unsub",
            "typing_start",
            "presence_online",
            "presence_offline",
            "typing_stop",
        ]
    );
    assert!(all.iter().filter(|v| v.tcp.is_some()).count() >= 1);
    let reject = all.iter().find(|v| v.name == "reject").expect("listed");
    assert!(reject.json.contains("\"retry_after_ms\":1500"));
    let batch = all.iter().find(|v| v.name == "live_batch").expect("listed");
    assert!(batch.json.contains("\"prio\":\"paid\""));
}

/// Two vectors assembled by hand from bincode 2's standard rules, as
/// `docs/protocol.md` states them, independently of any encoder.
#[test]
fn vectors_agree_with_the_rules_worked_by_hand() {
    let all = vectors();
    let hex_of = |name: &str| {
        all.iter()
            .find(|v| v.name == name)
            .expect("listed")
            .binary
            .clone()
    };

    let mut history = vec![
        0x03, // variant 3: history
        0x02, b'h', b'1', // ref: length 2, then UTF-8
        0x0c, // conv: length 12
    ];
    history.extend_from_slice(b"dm:alice:bob");
    history.extend_from_slice(&[
        0x01, 0xfb, 0x2c, 0x01, // after: Some, then 251 = "u16 LE follows", 0x012c = 300
        0x00, // before: None
        0x01, 0x32, // limit: Some(50), one byte since 50 < 251
    ]);
    assert_eq!(hex::encode(&history), hex_of("history"));

    let mut ack = vec![
        0x02, // variant 2: ack
        0x03, b'm', b'-', b'1', // id
        0x0c, // conv: length 12
    ];
    ack.extend_from_slice(b"dm:alice:bob");
    ack.push(0x01); // seq: 1
    ack.push(0xfd); // ts_ms: 253 = "u64 LE follows" (the value is over u32::MAX)
    ack.extend_from_slice(&1_767_225_600_001u64.to_le_bytes());
    assert_eq!(hex::encode(&ack), hex_of("ack"));

    // The TCP form of hello: 13 bytes of frame, so the prefix is 00 00 00 0d.
    let mut hello = vec![0, 0, 0, 13, 0x00, 0x01, 0x05];
    hello.extend_from_slice(b"alice");
    hello.extend_from_slice(&[0x01, 0x03]);
    hello.extend_from_slice(b"web");
    let tcp = all
        .iter()
        .find(|v| v.name == "hello")
        .and_then(|v| v.tcp.clone());
    assert_eq!(Some(hex::encode(&hello)), tcp);
}

fn protocol_doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    std::fs::read_to_string(path).expect("docs/protocol.md exists")
}

#[test]
fn the_protocol_doc_prints_every_vector() {
    let doc = protocol_doc();
    for v in vectors() {
        assert!(
            doc.contains(&v.json),
            "docs/protocol.md lacks the JSON of {}",
            v.name
        );
        assert!(
            doc.contains(&v.binary),
            "docs/protocol.md lacks the binary of {}",
            v.name
        );
        if let Some(tcp) = &v.tcp {
            assert!(
                doc.contains(tcp.as_str()),
                "docs/protocol.md lacks the TCP form of {}",
                v.name
            );
        }
    }
}

#[test]
fn the_example_session_in_the_protocol_doc_is_made_of_valid_frames() {
    let doc = protocol_doc();
    let (mut client, mut server) = (0, 0);
    for line in doc.lines() {
        if let Some(text) = line.strip_prefix("> ").filter(|t| t.starts_with('{')) {
            let frame = ClientFrame::from_json(text);
            if text.contains("\"shout\"") {
                // The session's deliberate undecodable frame.
                assert_eq!(frame, Err(DecodeError::UnknownType("shout".into())));
            } else {
                assert!(frame.is_ok(), "{text}: {frame:?}");
            }
            client += 1;
        } else if let Some(text) = line.strip_prefix("< ").filter(|t| t.starts_with('{')) {
            let frame = ServerFrame::from_json(text);
            assert!(frame.is_ok(), "{text}: {frame:?}");
            server += 1;
        }
    }
    assert!(
        client >= 10 && server >= 10,
        "the session has {client} + {server} frames"
    );
}
