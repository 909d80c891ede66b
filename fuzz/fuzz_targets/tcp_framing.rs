//! The TCP length framing (`TcpDecoder`) fed as a socket would feed it: the input
//! arrives in chunks whose sizes the input itself chooses, under a frame limit it
//! chooses too.
//!
//! Beyond "never panics":
//! - the frames (and the first error) do not depend on how the bytes were split;
//! - no payload exceeds the limit, and an error is final for the connection;
//! - the decoder never holds or reserves much more than one limit-sized frame,
//!   whatever length prefix it reads.
#![no_main]

use chorus_wire::ClientFrame;
use chorus_wire::codec::{DecodeError, LENGTH_PREFIX, TcpDecoder};
use libfuzzer_sys::fuzz_target;

/// What a connection saw: the payloads, in order, then how it ended.
#[derive(Debug, PartialEq)]
struct Outcome {
    payloads: Vec<Vec<u8>>,
    error: Option<DecodeError>,
}

/// Feeds `stream` to a decoder limited to `max_frame`, `chunk(i)` bytes at a time.
fn feed(stream: &[u8], max_frame: u32, mut chunk: impl FnMut(usize) -> usize) -> Outcome {
    let mut decoder = TcpDecoder::new(max_frame);
    let mut outcome = Outcome {
        payloads: Vec::new(),
        error: None,
    };
    let mut at = 0;
    let mut step = 0;
    while at < stream.len() {
        let take = chunk(step).clamp(1, stream.len() - at);
        step += 1;
        decoder.buffer().extend_from_slice(&stream[at..at + take]);
        at += take;
        loop {
            match decoder.next_payload() {
                Ok(Some(payload)) => {
                    assert!(
                        payload.len() <= max_frame as usize,
                        "payload over the limit"
                    );
                    // The frames themselves go to the frame decoder, which must
                    // take whatever the framing hands it.
                    let _ =
                        chorus_wire::codec::Frame::from_binary(&payload).map(|_: ClientFrame| ());
                    outcome.payloads.push(payload.to_vec());
                }
                Ok(None) => break,
                Err(error) => {
                    outcome.error = Some(error);
                    return outcome;
                }
            }
        }
        // Bytes held: at most one partial frame (its prefix and part of its body).
        assert!(decoder.pending() < LENGTH_PREFIX + max_frame as usize);
        // Room reserved: what the checked prefix announced, with the allocator's
        // rounding, never what an unchecked prefix asked for.
        let bound = 2 * (LENGTH_PREFIX + max_frame as usize) + 2 * take + 4096;
        assert!(
            decoder.buffer().capacity() <= bound,
            "{} bytes reserved under a limit of {max_frame}",
            decoder.buffer().capacity()
        );
    }
    outcome
}

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the limit (1 byte to 64 KiB), the next eight the
    // chunk sizes; the rest is the stream.
    if data.len() < 10 {
        return;
    }
    let max_frame = u32::from(u16::from_le_bytes([data[0], data[1]])) + 1;
    let sizes = &data[2..10];
    let stream = &data[10..];
    let whole = feed(stream, max_frame, |_| usize::MAX);
    let chunked = feed(stream, max_frame, |i| usize::from(sizes[i % sizes.len()]));
    assert_eq!(whole, chunked, "the split of the bytes changed the frames");
    let bytewise = feed(stream, max_frame, |_| 1);
    assert_eq!(whole, bytewise, "byte-at-a-time reads changed the frames");
});
