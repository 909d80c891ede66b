//! The two encodings of protocol v1 and the TCP framing — the only module that
//! touches bincode or serde_json.
//!
//! - Binary: `bincode::config::standard()` of the frame enums (variant index, then
//!   fields; integers as bincode varints). On TCP each frame is preceded by its length
//!   as a 4-byte big-endian `u32`.
//! - JSON: one object per frame, `"type"` naming it.
//!
//! Decoding never panics and never allocates more than the input can justify: the
//! length prefix is checked against the frame limit before any buffer is sized, and
//! bincode runs with an allocation budget proportional to the frame's own length, so
//! a hostile length inside a small frame cannot reserve memory the frame does not
//! contain.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Serialize, de::DeserializeOwned};

use crate::frame::{ClientFrame, ServerFrame};
use crate::limits::MAX_FRAME_CEILING;

/// Bytes of the TCP length prefix.
pub const LENGTH_PREFIX: usize = 4;

/// How a connection encodes its frames; the server answers in the encoding of `hello`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// JSON text (WebSocket text messages).
    Json,
    /// bincode (TCP, WebSocket binary messages).
    Binary,
}

/// Why bytes could not become a frame. Each maps to `error` `bad_frame` or
/// `too_large` (docs/protocol.md §8).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame is longer than the limit; nothing of that size was allocated.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Announced or actual length.
        len: u64,
        /// The limit in force.
        max: u32,
    },
    /// The bytes end before the frame does.
    #[error("frame is truncated")]
    Truncated,
    /// Bytes remain after a complete binary frame.
    #[error("{0} unexpected bytes after the frame")]
    TrailingBytes(usize),
    /// A JSON frame whose `type` is not a known frame.
    #[error("unknown frame type {0:?}")]
    UnknownType(String),
    /// A binary frame whose variant index is not a known frame.
    #[error("unknown frame variant {0}")]
    UnknownVariant(u32),
    /// Anything else that does not decode (bad JSON, wrong field types, bad UTF-8...).
    #[error("malformed frame: {0}")]
    Malformed(String),
}

impl DecodeError {
    /// The protocol error code this decode failure is reported with.
    pub fn code(&self) -> crate::frame::ErrorCode {
        match self {
            Self::TooLarge { .. } => crate::frame::ErrorCode::TooLarge,
            _ => crate::frame::ErrorCode::BadFrame,
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ClientFrame {}
    impl Sealed for super::ServerFrame {}
}

/// A frame type of protocol v1: [`ClientFrame`] or [`ServerFrame`].
pub trait Frame: Sized + sealed::Sealed {
    /// The JSON `type` of every variant, indexed by the variant's binary index.
    const TYPES: &'static [&'static str];

    /// Encodes in the binary encoding (no length prefix).
    fn to_binary(&self) -> Vec<u8>;
    /// Encodes as one JSON object.
    fn to_json(&self) -> String;
    /// Decodes a binary frame that must fill `bytes` exactly (at most
    /// [`MAX_FRAME_CEILING`] bytes; [`Frame::decode`] applies the configured limit).
    fn from_binary(bytes: &[u8]) -> Result<Self, DecodeError>;
    /// Decodes one JSON object.
    fn from_json(text: &str) -> Result<Self, DecodeError>;

    /// Encodes in `encoding` (JSON as UTF-8 bytes).
    fn encode(&self, encoding: Encoding) -> Bytes {
        match encoding {
            Encoding::Json => Bytes::from(self.to_json().into_bytes()),
            Encoding::Binary => Bytes::from(self.to_binary()),
        }
    }

    /// Decodes from `encoding`, first checking `bytes.len()` against `max_frame`.
    fn decode(bytes: &[u8], encoding: Encoding, max_frame: u32) -> Result<Self, DecodeError> {
        check_len(bytes.len() as u64, max_frame)?;
        match encoding {
            Encoding::Binary => Self::from_binary(bytes),
            Encoding::Json => {
                let text = std::str::from_utf8(bytes)
                    .map_err(|e| DecodeError::Malformed(format!("not UTF-8: {e}")))?;
                Self::from_json(text)
            }
        }
    }

    /// Encodes for TCP: the 4-byte big-endian length, then the binary frame.
    fn to_tcp(&self) -> Bytes {
        let body = self.to_binary();
        let mut out = BytesMut::with_capacity(LENGTH_PREFIX + body.len());
        // Frames are far below u32::MAX: the encoder only sees frames we built.
        out.put_u32(u32::try_from(body.len()).unwrap_or(u32::MAX));
        out.put_slice(&body);
        out.freeze()
    }
}

fn check_len(len: u64, max_frame: u32) -> Result<(), DecodeError> {
    if len > u64::from(max_frame) {
        return Err(DecodeError::TooLarge {
            len,
            max: max_frame,
        });
    }
    Ok(())
}

fn binary_encode<T: bincode::Encode>(value: &T) -> Vec<u8> {
    // Encoding into a Vec cannot fail for these types (no limit applies to encoding
    // frames we built ourselves); an empty result would be rejected by any decoder.
    bincode::encode_to_vec(value, bincode::config::standard()).unwrap_or_default()
}

/// Bytes of allocation bincode may claim per byte of frame. The widest ratio of any
/// frame field is 24: an empty string inside a list is one byte on the wire and a
/// 24-byte `String` in memory (a `Message` in a list: 112 bytes for at least 6).
const ALLOC_PER_BYTE: usize = 32;

fn decode_with_budget<T: bincode::Decode<()>, const BUDGET: usize>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    bincode::decode_from_slice(bytes, bincode::config::standard().with_limit::<BUDGET>())
}

/// Decodes with an allocation budget of `ALLOC_PER_BYTE` × the frame's length, rounded
/// up to a power of four (at least 256 bytes of frame): bincode sizes a string or a
/// list from the length it reads, before it reads the contents, and the budget stops
/// a length the frame cannot contain from being allocated.
fn decode_budgeted<T: bincode::Decode<()>>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    macro_rules! by_size {
        ($($shift:literal),*) => {
            $(
                if bytes.len() <= 1 << $shift {
                    return decode_with_budget::<T, { (1 << $shift) * ALLOC_PER_BYTE }>(bytes);
                }
            )*
        };
    }
    by_size!(8, 10, 12, 14, 16, 18, 20, 22);
    decode_with_budget::<T, { MAX_FRAME_CEILING as usize * ALLOC_PER_BYTE }>(bytes)
}

/// `frame_type` is the enum's name as bincode reports it, to tell an unknown frame
/// variant from a bad tag further in (an `Option`, an error code, a `prio`).
fn binary_decode<T: bincode::Decode<()>>(bytes: &[u8], frame_type: &str) -> Result<T, DecodeError> {
    check_len(bytes.len() as u64, MAX_FRAME_CEILING)?;
    match decode_budgeted::<T>(bytes) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok((_, used)) => Err(DecodeError::TrailingBytes(bytes.len() - used)),
        // Over the budget means a length inside the frame that the frame's bytes
        // cannot hold: the frame ends before its contents do.
        Err(
            bincode::error::DecodeError::UnexpectedEnd { .. }
            | bincode::error::DecodeError::LimitExceeded,
        ) => Err(DecodeError::Truncated),
        Err(bincode::error::DecodeError::UnexpectedVariant {
            found, type_name, ..
        }) if type_name == frame_type => Err(DecodeError::UnknownVariant(found)),
        Err(e) => Err(DecodeError::Malformed(e.to_string())),
    }
}

fn json_encode<T: Serialize>(value: &T) -> String {
    // Serialising plain structs of strings and integers to a String cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// Only the `type` member of a JSON frame, to classify a frame that failed to decode.
#[derive(serde::Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    ty: String,
}

/// Longest `type` echoed back in [`DecodeError::UnknownType`].
const MAX_ECHOED_TYPE: usize = 64;

fn json_decode<T: DeserializeOwned>(text: &str, types: &[&str]) -> Result<T, DecodeError> {
    // serde would also accept an internally tagged enum written as an array
    // (`["send", ...]`); the protocol's frame is one object.
    if text.trim_start().chars().next().is_some_and(|c| c != '{') {
        return Err(DecodeError::Malformed(
            "a JSON frame must be an object".into(),
        ));
    }
    serde_json::from_str(text).map_err(|e| {
        if e.is_eof() {
            return DecodeError::Truncated;
        }
        // Only a failed decode pays for this second parse: it tells an unknown
        // `type` from a bad value further in (an unknown `code` or `prio`, say).
        if let Ok(TypeOnly { ty }) = serde_json::from_str::<TypeOnly>(text)
            && !types.contains(&ty.as_str())
        {
            return DecodeError::UnknownType(ty.chars().take(MAX_ECHOED_TYPE).collect());
        }
        DecodeError::Malformed(e.to_string())
    })
}

macro_rules! impl_frame {
    ($ty:ty) => {
        impl Frame for $ty {
            const TYPES: &'static [&'static str] = &<$ty>::TYPES;

            fn to_binary(&self) -> Vec<u8> {
                binary_encode(self)
            }
            fn to_json(&self) -> String {
                json_encode(self)
            }
            fn from_binary(bytes: &[u8]) -> Result<Self, DecodeError> {
                binary_decode(bytes, stringify!($ty))
            }
            fn from_json(text: &str) -> Result<Self, DecodeError> {
                json_decode(text, <Self as Frame>::TYPES)
            }
        }
    };
}
impl_frame!(ClientFrame);
impl_frame!(ServerFrame);

/// Encodes an inter-node envelope (bincode, like the binary frames).
pub fn encode_envelope(envelope: &crate::cluster::Envelope) -> Vec<u8> {
    binary_encode(envelope)
}

/// Decodes an inter-node envelope that must fill `bytes` exactly, with the same
/// allocation budget as client frames: a peer's bytes are not trusted either.
pub fn decode_envelope(bytes: &[u8]) -> Result<crate::cluster::Envelope, DecodeError> {
    binary_decode(bytes, "Envelope")
}

/// Reads a TCP length prefix and checks it against `max_frame` before anything
/// is allocated for the frame.
pub fn frame_len(prefix: [u8; LENGTH_PREFIX], max_frame: u32) -> Result<usize, DecodeError> {
    let len = u32::from_be_bytes(prefix);
    check_len(u64::from(len), max_frame)?;
    Ok(len as usize)
}

/// The TCP decoder's buffer at rest, in bytes.
pub const DECODER_BUFFER: usize = 1024;

/// Incremental TCP decoder: feed it bytes as they arrive, take frames out.
///
/// Holds at most one partial frame; a prefix over the limit is an error at once,
/// before its body is read or reserved.
#[derive(Debug)]
pub struct TcpDecoder {
    buf: BytesMut,
    max_frame: u32,
}

impl TcpDecoder {
    /// A decoder enforcing `max_frame`.
    pub fn new(max_frame: u32) -> Self {
        Self {
            // Held by every idle connection; a longer frame reserves its length
            // once its prefix is read.
            buf: BytesMut::with_capacity(DECODER_BUFFER),
            max_frame,
        }
    }

    /// Gives back what a long frame made the buffer reserve, once nothing is
    /// pending: an idle connection then holds [`DECODER_BUFFER`] bytes again.
    pub fn shrink(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 4 * DECODER_BUFFER {
            self.buf = BytesMut::with_capacity(DECODER_BUFFER);
        }
    }

    /// The buffer's capacity now.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The buffer to read socket bytes into.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes held that do not yet form a whole frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame's payload, if one has arrived.
    pub fn next_payload(&mut self) -> Result<Option<Bytes>, DecodeError> {
        if self.buf.len() < LENGTH_PREFIX {
            return Ok(None);
        }
        let mut prefix = [0u8; LENGTH_PREFIX];
        prefix.copy_from_slice(&self.buf[..LENGTH_PREFIX]);
        let len = frame_len(prefix, self.max_frame)?;
        if self.buf.len() < LENGTH_PREFIX + len {
            // Reserve only what the limit-checked prefix announced.
            self.buf.reserve(LENGTH_PREFIX + len - self.buf.len());
            return Ok(None);
        }
        let mut frame = self.buf.split_to(LENGTH_PREFIX + len);
        let _ = frame.split_to(LENGTH_PREFIX);
        Ok(Some(frame.freeze()))
    }

    /// The next whole frame, decoded.
    pub fn next_frame<F: Frame>(&mut self) -> Result<Option<F>, DecodeError> {
        match self.next_payload()? {
            Some(payload) => F::from_binary(&payload).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests;
