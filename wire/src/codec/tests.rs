//! Unit tests of the codec's private parts; the full round-trip and hostile-input
//! suites are in `wire/tests/`.
use super::*;

#[test]
fn oversized_prefix_is_refused_before_allocation() {
    let mut d = TcpDecoder::new(65_536);
    d.buffer()
        .extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    assert_eq!(
        d.next_payload(),
        Err(DecodeError::TooLarge {
            len: u64::from(u32::MAX),
            max: 65_536
        })
    );
    assert!(d.buffer().capacity() < 1 << 20);
}

/// `send` whose `id` announces `len` bytes, followed by only three.
fn send_announcing(len: u32) -> Vec<u8> {
    let mut bytes = vec![2, 252];
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(b"abc");
    bytes
}

#[test]
fn a_length_the_frame_cannot_hold_is_refused_before_bincode_allocates_it() {
    // bincode claims a string's length against the budget before it allocates the
    // string: over the budget, it stops at the claim.
    let frame = send_announcing(1 << 20);
    assert!(matches!(
        decode_budgeted::<ClientFrame>(&frame),
        Err(bincode::error::DecodeError::LimitExceeded)
    ));
    assert_eq!(
        binary_decode::<ClientFrame>(&frame, "ClientFrame"),
        Err(DecodeError::Truncated)
    );
    // Within the smallest budget (256 bytes of frame × 32), bincode allocates and
    // then finds the bytes missing: bounded by the budget, not by the frame limit.
    assert!(matches!(
        decode_budgeted::<ClientFrame>(&send_announcing(8_000)),
        Err(bincode::error::DecodeError::UnexpectedEnd { .. })
    ));
    assert!(matches!(
        decode_budgeted::<ClientFrame>(&send_announcing(8_300)),
        Err(bincode::error::DecodeError::LimitExceeded)
    ));
}

#[test]
fn the_budget_grows_with_the_frame() {
    // A frame just over 256 bytes gets the next bucket (1 KiB × 32 = 32 KiB).
    let mut frame = send_announcing(30_000);
    frame.resize(300, b'x');
    assert!(matches!(
        decode_budgeted::<ClientFrame>(&frame),
        Err(bincode::error::DecodeError::UnexpectedEnd { .. })
    ));
    let mut frame = send_announcing(40_000);
    frame.resize(300, b'x');
    assert!(matches!(
        decode_budgeted::<ClientFrame>(&frame),
        Err(bincode::error::DecodeError::LimitExceeded)
    ));
}

#[test]
fn only_the_frame_enum_reports_an_unknown_variant() {
    assert_eq!(
        binary_decode::<ClientFrame>(&[17], "ClientFrame"),
        Err(DecodeError::UnknownVariant(17))
    );
    // An Option tag of 2 is a bad frame, not an unknown one.
    assert!(matches!(
        binary_decode::<ClientFrame>(&[1, 2], "ClientFrame"),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn trait_and_inherent_type_lists_agree() {
    assert_eq!(<ClientFrame as Frame>::TYPES, &ClientFrame::TYPES[..]);
    assert_eq!(<ServerFrame as Frame>::TYPES, &ServerFrame::TYPES[..]);
}

#[test]
fn json_frames_must_be_objects() {
    assert!(matches!(
        json_decode::<ClientFrame>(r#"  ["ping", null]"#, ClientFrame::TYPES.as_slice()),
        Err(DecodeError::Malformed(_))
    ));
    assert_eq!(
        json_decode::<ClientFrame>(r#"  {"type":"ping"}"#, ClientFrame::TYPES.as_slice()),
        Ok(ClientFrame::Ping { interval_s: None })
    );
}
