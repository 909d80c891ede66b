//! The additions to v1 frames that v1 peers never see: the paging of
//! `conversations` (`after`, `limit`) and the `more` of its answer.

use chorus_wire::codec::Frame;
use chorus_wire::{
    ClientFrame, ConversationItem, ConversationsPage, DecodeError, ServerFrame, Trailing,
};

fn v1_request() -> ClientFrame {
    ClientFrame::Conversations {
        reference: "c1".into(),
        page: Trailing::ABSENT,
    }
}

fn paged_request(after: Option<&str>, limit: Option<u32>) -> ClientFrame {
    ClientFrame::Conversations {
        reference: "c1".into(),
        page: Trailing::some(ConversationsPage {
            after: after.map(Into::into),
            limit,
        }),
    }
}

fn list(more: Trailing<bool>) -> ServerFrame {
    ServerFrame::ConversationList {
        reference: "c1".into(),
        items: vec![ConversationItem {
            conv: "dm:alice:bob".into(),
            last_seq: 2,
            read_seq: 1,
        }],
        more,
    }
}

#[test]
fn a_v1_request_keeps_its_v1_bytes_in_both_encodings() {
    // v1: the variant index 4, then `ref` ("c1"), and nothing after it.
    assert_eq!(v1_request().to_binary(), vec![4, 2, b'c', b'1']);
    assert_eq!(
        ClientFrame::from_binary(&[4, 2, b'c', b'1']),
        Ok(v1_request())
    );
    assert_eq!(
        v1_request().to_json(),
        r#"{"type":"conversations","ref":"c1"}"#
    );
    assert_eq!(
        ClientFrame::from_json(r#"{"type":"conversations","ref":"c1"}"#),
        Ok(v1_request())
    );
    // Members given as null are absent too.
    assert_eq!(
        ClientFrame::from_json(r#"{"type":"conversations","ref":"c1","after":null,"limit":null}"#),
        Ok(v1_request())
    );
}

#[test]
fn a_paged_request_carries_its_page_after_ref() {
    let frame = paged_request(Some("dm:a:b"), Some(100));
    let mut bytes = vec![4, 2, b'c', b'1', 1, 1, 6];
    bytes.extend_from_slice(b"dm:a:b");
    bytes.extend_from_slice(&[1, 100]);
    assert_eq!(frame.to_binary(), bytes);
    assert_eq!(ClientFrame::from_binary(&bytes), Ok(frame.clone()));
    assert_eq!(ClientFrame::from_json(&frame.to_json()), Ok(frame));
    assert_eq!(
        ClientFrame::from_json(r#"{"type":"conversations","ref":"c1","limit":5}"#),
        Ok(paged_request(None, Some(5)))
    );
    // A page of two absent options means in binary what it means in JSON: a v1
    // request. It is read as one and written as one, so a frame decoded from
    // either encoding re-encodes to bytes that decode to the same frame (the
    // fuzzer found `{"type":"conversations","ref":"\u0000","after":null,"limit":null}`
    // reading differently from the bytes of the frame it came from).
    assert_eq!(
        ClientFrame::from_binary(&[4, 2, b'c', b'1', 1, 0, 0]),
        Ok(v1_request())
    );
    assert_eq!(
        paged_request(None, None).to_binary(),
        vec![4, 2, b'c', b'1']
    );
    let json = paged_request(None, None).to_json();
    assert_eq!(ClientFrame::from_json(&json), Ok(v1_request()));
}

#[test]
fn bad_trailing_bytes_are_refused() {
    // An option tag that is neither 0 nor 1.
    assert!(matches!(
        ClientFrame::from_binary(&[4, 2, b'c', b'1', 7]),
        Err(DecodeError::Malformed(_))
    ));
    // A page cut short.
    assert_eq!(
        ClientFrame::from_binary(&[4, 2, b'c', b'1', 1, 1, 6, b'd']),
        Err(DecodeError::Truncated)
    );
    // Bytes after a complete page.
    assert_eq!(
        ClientFrame::from_binary(&[4, 2, b'c', b'1', 1, 0, 0, 9]),
        Err(DecodeError::TrailingBytes(1))
    );
}

#[test]
fn more_is_only_written_when_present() {
    let v1 = list(Trailing::ABSENT);
    let v1_bytes = v1.to_binary();
    assert!(!v1.to_json().contains("more"));
    assert_eq!(ServerFrame::from_binary(&v1_bytes), Ok(v1.clone()));
    assert_eq!(ServerFrame::from_json(&v1.to_json()), Ok(v1));

    for more in [true, false] {
        let paged = list(Trailing::some(more));
        let bytes = paged.to_binary();
        // The v1 layout, then the option `01` and the bool.
        assert_eq!(bytes[..v1_bytes.len()], v1_bytes[..]);
        assert_eq!(bytes[v1_bytes.len()..], [1, u8::from(more)]);
        assert_eq!(ServerFrame::from_binary(&bytes), Ok(paged.clone()));
        assert!(paged.to_json().contains(&format!(r#""more":{more}"#)));
        assert_eq!(ServerFrame::from_json(&paged.to_json()), Ok(paged));
    }
}

#[test]
fn the_examples_of_the_protocol_doc() {
    let request = ClientFrame::from_json(r#"{"type":"conversations","ref":"c1","limit":100}"#)
        .expect("decodes");
    assert_eq!(hex::encode(request.to_binary()), "0402633101000164");
    let answer = ServerFrame::ConversationList {
        reference: "c1".into(),
        items: vec![],
        more: Trailing::some(false),
    };
    assert_eq!(hex::encode(answer.to_binary()), "07026331000100");
}
