//! The header of every inter-node frame: which node sent it.
//!
//! ```text
//! 0      2         3          4              4+n
//! ┌──────┬─────────┬──────────┬──────────────┬──────────────────────┐
//! │ "CF" │ version │ n = len  │ sender id    │ payload (the rest)   │
//! │      │   = 1   │ (1..=64) │ n bytes      │ opaque to the layer  │
//! └──────┴─────────┴──────────┴──────────────┴──────────────────────┘
//! ```
//!
//! ractor delivers a serialized message to the `Endpoint` without saying which
//! session it came from, so the sender names itself. Sessions are authenticated by
//! the cookie: a peer that holds it is trusted to name itself truthfully. Decoding
//! checks every byte it relies on and never panics.

/// First two bytes of every frame.
const MAGIC: [u8; 2] = *b"CF";
/// The only header version so far.
const VERSION: u8 = 1;
/// Longest node id (`cluster.node_id` rule).
pub(crate) const MAX_NODE_ID_LEN: usize = 64;
/// Fixed part of the header.
const FIXED: usize = 4;

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// Fewer bytes than the header announces.
    #[error("frame shorter than its header")]
    Short,
    /// Not a Chorus frame.
    #[error("bad magic")]
    BadMagic,
    /// A header version this node does not speak.
    #[error("unsupported frame version {0}")]
    Version(u8),
    /// The sender id is empty, too long or has characters outside `[A-Za-z0-9_.-]`.
    #[error("bad sender id")]
    BadSender,
}

/// Whether `id` obeys the `cluster.node_id` rule: 1–64 bytes of `[A-Za-z0-9_.-]`.
pub(crate) fn is_valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_NODE_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Header + payload. `from` must be a valid node id (the transport checks it once
/// at start).
pub(crate) fn encode(from: &str, payload: &[u8]) -> Vec<u8> {
    debug_assert!(is_valid_node_id(from));
    let mut frame = Vec::with_capacity(FIXED + from.len() + payload.len());
    frame.extend_from_slice(&MAGIC);
    frame.push(VERSION);
    // A valid node id is at most 64 bytes.
    frame.push(u8::try_from(from.len()).unwrap_or(u8::MAX));
    frame.extend_from_slice(from.as_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Splits a frame into its sender and payload (the payload reuses the buffer).
pub(crate) fn decode(mut frame: Vec<u8>) -> Result<(String, Vec<u8>), FrameError> {
    let Some(fixed) = frame.get(..FIXED) else {
        return Err(FrameError::Short);
    };
    if fixed[..2] != MAGIC {
        return Err(FrameError::BadMagic);
    }
    if fixed[2] != VERSION {
        return Err(FrameError::Version(fixed[2]));
    }
    let header = FIXED + usize::from(fixed[3]);
    let from = frame.get(FIXED..header).ok_or(FrameError::Short)?;
    let from = std::str::from_utf8(from)
        .ok()
        .filter(|id| is_valid_node_id(id))
        .ok_or(FrameError::BadSender)?
        .to_string();
    frame.drain(..header);
    Ok((from, frame))
}
