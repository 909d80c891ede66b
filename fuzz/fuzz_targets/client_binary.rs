//! The binary decoder of client frames (TCP payloads, WebSocket binary messages),
//! and of server frames, which the SDK decodes from a server it may not trust.
//!
//! Beyond "never panics": a frame that decodes re-encodes to bytes that decode to
//! the same frame, in the binary encoding and in JSON, so the two encodings can
//! never disagree about what a client sent.
#![no_main]

use chorus_wire::codec::Frame;
use chorus_wire::limits::DEFAULT_MAX_FRAME;
use chorus_wire::{ClientFrame, Encoding, ServerFrame};
use libfuzzer_sys::fuzz_target;

fn check<F: Frame + PartialEq + std::fmt::Debug>(data: &[u8]) {
    let decoded = F::from_binary(data);
    // What the node runs: the configured limit first, then the same decoder.
    let limited = F::decode(data, Encoding::Binary, DEFAULT_MAX_FRAME);
    if data.len() <= DEFAULT_MAX_FRAME as usize {
        assert_eq!(
            decoded, limited,
            "decode with a limit agrees with from_binary"
        );
    }
    let Ok(frame) = decoded else { return };
    let binary = frame.to_binary();
    assert_eq!(
        F::from_binary(&binary).as_ref(),
        Ok(&frame),
        "binary round trip"
    );
    let json = frame.to_json();
    assert_eq!(
        F::from_json(&json).as_ref(),
        Ok(&frame),
        "JSON round trip of {json}"
    );
}

fuzz_target!(|data: &[u8]| {
    check::<ClientFrame>(data);
    check::<ServerFrame>(data);
});
