//! The JSON decoder of client frames (WebSocket text messages), and of server
//! frames, which the SDK decodes from a server it may not trust.
//!
//! Beyond "never panics": a frame that decodes re-encodes to JSON that decodes to
//! the same frame, and to a binary frame that does too.
#![no_main]

use chorus_wire::codec::Frame;
use chorus_wire::limits::DEFAULT_MAX_FRAME;
use chorus_wire::{ClientFrame, Encoding, ServerFrame};
use libfuzzer_sys::fuzz_target;

fn check<F: Frame + PartialEq + std::fmt::Debug>(data: &[u8]) {
    // What the node runs on a text message: the limit, UTF-8, then JSON.
    let limited = F::decode(data, Encoding::Json, DEFAULT_MAX_FRAME);
    let Ok(text) = std::str::from_utf8(data) else {
        assert!(limited.is_err(), "bytes that are not UTF-8 never decode");
        return;
    };
    let decoded = F::from_json(text);
    if data.len() <= DEFAULT_MAX_FRAME as usize {
        assert_eq!(
            decoded, limited,
            "decode with a limit agrees with from_json"
        );
    }
    let Ok(frame) = decoded else { return };
    let json = frame.to_json();
    assert_eq!(
        F::from_json(&json).as_ref(),
        Ok(&frame),
        "JSON round trip of {json}"
    );
    let binary = frame.to_binary();
    assert_eq!(
        F::from_binary(&binary).as_ref(),
        Ok(&frame),
        "binary form of {json}"
    );
}

fuzz_target!(|data: &[u8]| {
    check::<ClientFrame>(data);
    check::<ServerFrame>(data);
});
