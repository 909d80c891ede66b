//! The decoder of inter-node envelopes: what a peer's bytes become once the
//! transport hands them over. A peer is not trusted any more than a client.
//!
//! Beyond "never panics": an envelope that decodes re-encodes to bytes that
//! decode to the same envelope.
#![no_main]

use chorus_wire::codec::{decode_envelope, encode_envelope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = decode_envelope(data) else {
        return;
    };
    let bytes = encode_envelope(&envelope);
    assert_eq!(
        decode_envelope(&bytes).as_ref(),
        Ok(&envelope),
        "round trip"
    );
});
