//! Bytes and text that are not frames: each fails with the documented
//! [`DecodeError`], and nothing a peer sends can make the decoder panic or
//! allocate more than the frame justifies.

mod samples;

use chorus_wire::codec::{Frame, LENGTH_PREFIX, TcpDecoder, frame_len};
use chorus_wire::limits::{DEFAULT_MAX_FRAME, MAX_FRAME_CEILING};
use chorus_wire::*;
use samples::{Rng, client_frames, server_frames};

// ---------------------------------------------------------------- binary

fn every_prefix_is_truncated<F: Frame + std::fmt::Debug>(frames: &[F]) {
    for frame in frames {
        let bytes = frame.to_binary();
        for len in 0..bytes.len() {
            assert_eq!(
                F::from_binary(&bytes[..len]).err(),
                Some(DecodeError::Truncated),
                "prefix of {len} of {} bytes of {frame:?}",
                bytes.len()
            );
        }
    }
}

#[test]
fn every_prefix_of_a_binary_frame_is_truncated() {
    every_prefix_is_truncated(&client_frames());
    every_prefix_is_truncated(&server_frames());
}

/// Whether the frame ends in a field added after v1 (`chorus_wire::Trailing`):
/// bytes after its v1 layout are that field, not trailing garbage.
fn ends_in_trailing_field(frame: &impl std::fmt::Debug) -> bool {
    let text = format!("{frame:?}");
    text.starts_with("Conversations {") || text.starts_with("ConversationList {")
}

fn trailing_bytes_are_refused<F: Frame + PartialEq + std::fmt::Debug>(frames: &[F]) {
    for frame in frames {
        for extra in [&[0u8][..], &[1, 2, 3], &frame.to_binary()] {
            let mut bytes = frame.to_binary();
            bytes.extend_from_slice(extra);
            let decoded = F::from_binary(&bytes);
            if ends_in_trailing_field(frame) {
                // `00` is the field's explicit absence; anything else must be a
                // well-formed field, which these bytes are not.
                if extra == [0] {
                    assert_eq!(decoded.as_ref(), Ok(frame), "{frame:?}");
                } else {
                    assert!(decoded.is_err(), "{frame:?} + {extra:?}");
                }
                continue;
            }
            assert_eq!(
                decoded.err(),
                Some(DecodeError::TrailingBytes(extra.len())),
                "{frame:?}"
            );
        }
    }
}

#[test]
fn bytes_after_a_binary_frame_are_refused() {
    trailing_bytes_are_refused(&client_frames());
    trailing_bytes_are_refused(&server_frames());
}

#[test]
fn unknown_variant_index_is_reported_as_such() {
    // 17 is the first index past both enums; 250 is the largest one-byte varint;
    // 251/252 announce a u16/u32 index.
    let cases: [(&[u8], u32); 5] = [
        (&[17], 17),
        (&[17, 0, 0, 0], 17),
        (&[250], 250),
        (&[251, 0x00, 0x01], 256),
        (&[252, 0xff, 0xff, 0xff, 0xff], u32::MAX),
    ];
    for (bytes, index) in cases {
        assert_eq!(
            ClientFrame::from_binary(bytes),
            Err(DecodeError::UnknownVariant(index))
        );
        assert_eq!(
            ServerFrame::from_binary(bytes),
            Err(DecodeError::UnknownVariant(index))
        );
    }
    // A u64 marker cannot hold a variant index.
    let bytes = [253, 0, 0, 0, 0, 0, 0, 0, 0];
    assert!(matches!(
        ClientFrame::from_binary(&bytes),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn a_bad_tag_inside_a_frame_is_malformed_not_an_unknown_frame() {
    let malformed = |r: Result<ServerFrame, DecodeError>| {
        assert!(matches!(r, Err(DecodeError::Malformed(_))), "{r:?}");
    };
    // ping with an Option tag of 2.
    assert!(matches!(
        ClientFrame::from_binary(&[1, 2]),
        Err(DecodeError::Malformed(_))
    ));
    // reject with error code 11 (there are 11 codes: 0..=10).
    malformed(ServerFrame::from_binary(&[3, 1, b'm', 11, 0, 0]));
    // live_batch with one item of prio 4 (prios are 0..=3).
    malformed(ServerFrame::from_binary(&[
        11, 0, 1, 1, 0, 0, 0, 0, 4, 0, 0,
    ]));
    // history_page with `more` = 2.
    malformed(ServerFrame::from_binary(&[6, 0, 0, 0, 2]));
    // A string that is not UTF-8.
    assert!(matches!(
        ClientFrame::from_binary(&[2, 1, b'm', 1, b'x', 2, 0xc3, 0x28]),
        Err(DecodeError::Malformed(_))
    ));
    // The same bytes, valid: the tags above were the only fault.
    assert!(ServerFrame::from_binary(&[3, 1, b'm', 10, 0, 0]).is_ok());
    assert!(ServerFrame::from_binary(&[11, 0, 1, 1, 0, 0, 0, 0, 3, 0, 0]).is_ok());
    assert!(ServerFrame::from_binary(&[6, 0, 0, 0, 1]).is_ok());
}

#[test]
fn non_minimal_varints_decode_but_encoders_write_minimal_ones() {
    // read { conv: "", seq: 5 } with seq written as 251 + u16 instead of one byte.
    let long = [5, 0, 251, 5, 0];
    let frame = ClientFrame::from_binary(&long).expect("accepted");
    assert_eq!(
        frame,
        ClientFrame::Read {
            conv: String::new(),
            seq: 5
        }
    );
    assert_eq!(frame.to_binary(), [5, 0, 5]);
}

#[test]
fn hostile_lengths_inside_a_small_frame_are_truncated_without_allocating() {
    let mut cases: Vec<Vec<u8>> = Vec::new();
    // send { id: <len>, ... } with a string length far beyond the frame.
    for len_bytes in [
        vec![252, 0xff, 0xff, 0xff, 0xff],
        vec![253, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        vec![253, 0, 0, 0, 0, 0, 0, 0, 0x10],
        vec![252, 0, 0, 0, 1],
    ] {
        let mut send = vec![2];
        send.extend_from_slice(&len_bytes);
        send.extend_from_slice(b"abc");
        cases.push(send);
    }
    // group_add { ref: "", id: "", members: <2^60 entries> }.
    cases.push(vec![7, 0, 0, 253, 0, 0, 0, 0, 0, 0, 0, 0x10, 0]);
    // group_create { .., members: <u32::MAX entries> }.
    cases.push(vec![6, 0, 0, 0, 252, 0xff, 0xff, 0xff, 0xff, 0]);
    for bytes in cases {
        assert_eq!(
            ClientFrame::from_binary(&bytes),
            Err(DecodeError::Truncated),
            "{bytes:?}"
        );
    }
    // history_page { .., messages: <u32::MAX messages> }.
    let page = [6, 0, 0, 252, 0xff, 0xff, 0xff, 0xff, 0];
    assert_eq!(ServerFrame::from_binary(&page), Err(DecodeError::Truncated));
}

#[test]
fn decode_checks_the_frame_limit_first() {
    let big = vec![0u8; DEFAULT_MAX_FRAME as usize + 1];
    for encoding in [Encoding::Binary, Encoding::Json] {
        assert_eq!(
            ClientFrame::decode(&big, encoding, DEFAULT_MAX_FRAME),
            Err(DecodeError::TooLarge {
                len: u64::from(DEFAULT_MAX_FRAME) + 1,
                max: 65_536
            })
        );
    }
    assert_eq!(
        ClientFrame::decode(&[1, 0], Encoding::Binary, 1),
        Err(DecodeError::TooLarge { len: 2, max: 1 })
    );
    assert_eq!(
        ClientFrame::decode(&[1, 0], Encoding::Binary, 2),
        Ok(ClientFrame::Ping { interval_s: None })
    );
    // Past the hard ceiling, even the raw decoder refuses.
    let huge = vec![0u8; MAX_FRAME_CEILING as usize + 1];
    assert!(matches!(
        ClientFrame::from_binary(&huge),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn decode_errors_map_to_protocol_codes() {
    assert_eq!(
        DecodeError::TooLarge { len: 9, max: 8 }.code(),
        ErrorCode::TooLarge
    );
    for e in [
        DecodeError::Truncated,
        DecodeError::TrailingBytes(1),
        DecodeError::UnknownType("x".into()),
        DecodeError::UnknownVariant(99),
        DecodeError::Malformed("x".into()),
    ] {
        assert_eq!(e.code(), ErrorCode::BadFrame, "{e}");
    }
}

// ---------------------------------------------------------------- TCP framing

#[test]
fn tcp_length_prefix_over_the_limit_is_refused_before_the_body_arrives() {
    for (prefix, len) in [
        ([0xff, 0xff, 0xff, 0xff], u64::from(u32::MAX)),
        ([0x80, 0, 0, 0], 1 << 31),
        ([0, 1, 0, 1], u64::from(DEFAULT_MAX_FRAME) + 1),
    ] {
        let err = DecodeError::TooLarge {
            len,
            max: DEFAULT_MAX_FRAME,
        };
        assert_eq!(frame_len(prefix, DEFAULT_MAX_FRAME), Err(err.clone()));
        let mut decoder = TcpDecoder::new(DEFAULT_MAX_FRAME);
        decoder.buffer().extend_from_slice(&prefix);
        let before = decoder.buffer().capacity();
        assert_eq!(decoder.next_payload(), Err(err.clone()));
        assert_eq!(decoder.next_frame::<ClientFrame>(), Err(err));
        assert_eq!(
            decoder.buffer().capacity(),
            before,
            "nothing reserved for the body"
        );
    }
    // Exactly the limit is allowed: the decoder waits for the body.
    assert_eq!(frame_len([0, 1, 0, 0], DEFAULT_MAX_FRAME), Ok(65_536));
    let mut decoder = TcpDecoder::new(DEFAULT_MAX_FRAME);
    decoder.buffer().extend_from_slice(&[0, 1, 0, 0, 1]);
    assert_eq!(decoder.next_payload(), Ok(None));
    assert_eq!(decoder.pending(), 5);
}

#[test]
fn tcp_decoder_waits_for_a_whole_prefix_and_body() {
    let mut decoder = TcpDecoder::new(DEFAULT_MAX_FRAME);
    for byte in [0u8, 0, 0] {
        decoder.buffer().extend_from_slice(&[byte]);
        assert_eq!(decoder.next_payload(), Ok(None));
    }
    decoder.buffer().extend_from_slice(&[2, 1]);
    assert_eq!(decoder.next_payload(), Ok(None));
    decoder.buffer().extend_from_slice(&[0, 0, 0, 0, 1, 1]);
    assert_eq!(
        decoder.next_frame::<ClientFrame>(),
        Ok(Some(ClientFrame::Ping { interval_s: None }))
    );
    // An empty frame is framed correctly but is not a frame.
    assert_eq!(
        decoder.next_frame::<ClientFrame>(),
        Err(DecodeError::Truncated)
    );
    assert_eq!(decoder.pending(), 0);
}

#[test]
fn a_bad_frame_inside_a_good_tcp_envelope_is_reported() {
    let mut decoder = TcpDecoder::new(DEFAULT_MAX_FRAME);
    decoder.buffer().extend_from_slice(&[0, 0, 0, 1, 17]);
    assert_eq!(
        decoder.next_frame::<ClientFrame>(),
        Err(DecodeError::UnknownVariant(17))
    );
    decoder.buffer().extend_from_slice(&[0, 0, 0, 3, 1, 0, 9]);
    assert_eq!(
        decoder.next_frame::<ClientFrame>(),
        Err(DecodeError::TrailingBytes(1))
    );
}

// ---------------------------------------------------------------- JSON

#[test]
fn unknown_json_type_is_reported_as_such() {
    let cases = [
        (r#"{"type":"nope"}"#, "nope"),
        (r#"{"type":"Hello","protocol":1,"token":"t"}"#, "Hello"),
        (r#"{"type":"","x":1}"#, ""),
        (
            r#"{"x":[1,2],"type":"group_delete","ref":"r"}"#,
            "group_delete",
        ),
    ];
    for (text, ty) in cases {
        assert_eq!(
            ClientFrame::from_json(text),
            Err(DecodeError::UnknownType(ty.into()))
        );
        assert_eq!(
            ServerFrame::from_json(text),
            Err(DecodeError::UnknownType(ty.into()))
        );
    }
    // A server frame sent by a client is an unknown type, and the other way round.
    assert_eq!(
        ClientFrame::from_json(r#"{"type":"pong"}"#),
        Err(DecodeError::UnknownType("pong".into()))
    );
    assert_eq!(
        ServerFrame::from_json(r#"{"type":"ping"}"#),
        Err(DecodeError::UnknownType("ping".into()))
    );
    // A hostile type is echoed back shortened.
    let long = format!(r#"{{"type":"{}"}}"#, "x".repeat(10_000));
    match ClientFrame::from_json(&long) {
        Err(DecodeError::UnknownType(t)) => assert!(t.len() <= 64),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unknown_value_inside_a_known_type_is_malformed() {
    let cases = [
        r#"{"type":"reject","id":"m","code":"nope","message":"x"}"#,
        r#"{"type":"error","code":"BadFrame","message":"x"}"#,
        r#"{"type":"live_batch","room":"r","viewers":1,"dropped":0,"items":[{"seq":1,"id":"d","from":"u","body":"b","ts_ms":1,"prio":"gold"}]}"#,
    ];
    for text in cases {
        let r = ServerFrame::from_json(text);
        assert!(matches!(r, Err(DecodeError::Malformed(_))), "{text}: {r:?}");
    }
}

#[test]
fn invalid_json_is_refused() {
    let truncated = [
        "",
        "   ",
        "{",
        r#"{"type":"ping""#,
        r#"{"type":"send","id":"a","#,
    ];
    for text in truncated {
        assert_eq!(
            ClientFrame::from_json(text),
            Err(DecodeError::Truncated),
            "{text:?}"
        );
    }
    let malformed = [
        "not json",
        "null",
        "42",
        r#""ping""#,
        "[]",
        r#"["ping", 30]"#,
        r#"["send","a","user:b","hi"]"#,
        "{}",
        r#"{"type":null}"#,
        r#"{"type":1}"#,
        r#"{"type":["ping"]}"#,
        r#"{"type":"ping"} {"type":"ping"}"#,
        r#"{"type":"ping"},"#,
        r#"{'type':'ping'}"#,
        r#"{"type":"ping",}"#,
        r#"{"type":"ping","type":"ping"}"#,
        r#"{"type":"ping","interval_s":"30"}"#,
        r#"{"type":"ping","interval_s":-1}"#,
        r#"{"type":"ping","interval_s":4294967296}"#,
        r#"{"type":"ping","interval_s":1.5}"#,
        r#"{"type":"read","conv":"dm:a:b","seq":18446744073709551616}"#,
        r#"{"type":"read","conv":"dm:a:b","seq":1e3}"#,
        r#"{"type":"read","conv":7,"seq":1}"#,
        r#"{"type":"group_add","ref":"r","id":"g","members":"bob"}"#,
        r#"{"type":"group_add","ref":"r","id":"g","members":[1]}"#,
        r#"{"type":"send","id":"a","to":"user:b","body":"\ud800"}"#,
    ];
    for text in malformed {
        let r = ClientFrame::from_json(text);
        assert!(matches!(r, Err(DecodeError::Malformed(_))), "{text}: {r:?}");
    }
    // Bytes that are not UTF-8 cannot be a JSON frame.
    let r = ClientFrame::decode(
        b"{\"type\":\"ping\xff\"}",
        Encoding::Json,
        DEFAULT_MAX_FRAME,
    );
    assert!(matches!(r, Err(DecodeError::Malformed(_))), "{r:?}");
}

#[test]
fn json_integers_keep_their_full_range() {
    let text = r#"{"type":"read","conv":"dm:a:b","seq":18446744073709551615}"#;
    assert_eq!(
        ClientFrame::from_json(text),
        Ok(ClientFrame::Read {
            conv: "dm:a:b".into(),
            seq: u64::MAX
        })
    );
}

#[test]
fn deeply_nested_unknown_members_are_refused_without_overflowing_the_stack() {
    let depth = 100_000;
    let text = format!(
        r#"{{"type":"ping","x":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    assert!(ClientFrame::from_json(&text).is_err());
}

// ---------------------------------------------------------------- fuzzing

/// Decodes `bytes` both ways; whatever decodes must re-encode to a frame that
/// decodes to itself.
fn must_not_panic(bytes: &[u8]) {
    if let Ok(frame) = ClientFrame::from_binary(bytes) {
        assert_eq!(
            ClientFrame::from_binary(&frame.to_binary()).as_ref(),
            Ok(&frame)
        );
    }
    if let Ok(frame) = ServerFrame::from_binary(bytes) {
        assert_eq!(
            ServerFrame::from_binary(&frame.to_binary()).as_ref(),
            Ok(&frame)
        );
    }
    for encoding in [Encoding::Json, Encoding::Binary] {
        if let Ok(frame) = ClientFrame::decode(bytes, encoding, DEFAULT_MAX_FRAME) {
            assert_eq!(
                ClientFrame::from_json(&frame.to_json()).as_ref(),
                Ok(&frame)
            );
        }
        if let Ok(frame) = ServerFrame::decode(bytes, encoding, DEFAULT_MAX_FRAME) {
            assert_eq!(
                ServerFrame::from_json(&frame.to_json()).as_ref(),
                Ok(&frame)
            );
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(0xC0FFEE);
    for _ in 0..100_000 {
        let len = rng.below(48);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        // Bias the first byte towards real variant indices so decoding goes deep.
        if let Some(first) = bytes.first_mut()
            && rng.below(4) != 0
        {
            *first %= 14;
        }
        must_not_panic(&bytes);
    }
}

fn mutate(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] = rng.byte();
            }
            1 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            2 => {
                let i = rng.below(bytes.len() + 1);
                bytes.insert(i, [0, 1, 250, 251, 252, 253, 0xff][rng.below(7)]);
            }
            3 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes.remove(i);
            }
            _ => {
                let i = rng.below(bytes.len() + 1);
                bytes.truncate(i);
            }
        }
    }
    bytes
}

#[test]
fn mutated_frames_never_panic() {
    let mut rng = Rng::new(42);
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for f in client_frames() {
        seeds.push(f.to_binary());
        seeds.push(f.to_json().into_bytes());
    }
    for f in server_frames() {
        seeds.push(f.to_binary());
        seeds.push(f.to_json().into_bytes());
    }
    for _ in 0..200 {
        for seed in &seeds {
            if seed.len() > 512 {
                continue;
            }
            must_not_panic(&mutate(&mut rng, seed.clone()));
        }
    }
}

#[test]
fn random_tcp_streams_never_panic() {
    let mut rng = Rng::new(99);
    let good: Vec<u8> = client_frames().iter().flat_map(|f| f.to_tcp()).collect();
    for _ in 0..2_000 {
        let stream = if rng.below(2) == 0 {
            let cut = rng.below(good.len());
            mutate(&mut rng, good[..cut].to_vec())
        } else {
            (0..rng.below(64)).map(|_| rng.byte()).collect()
        };
        let mut decoder = TcpDecoder::new(1_024);
        let mut rest = &stream[..];
        'feed: while !rest.is_empty() {
            let n = (rng.below(16) + 1).min(rest.len());
            decoder.buffer().extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            loop {
                match decoder.next_frame::<ClientFrame>() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    // A connection is closed after its first bad frame.
                    Err(_) => break 'feed,
                }
            }
            assert!(decoder.buffer().capacity() <= LENGTH_PREFIX + 1_024 + 8_192);
        }
    }
}
