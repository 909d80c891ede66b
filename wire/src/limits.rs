//! Protocol limits (docs/protocol.md §2). Every one is configurable; these are the defaults.

/// Largest frame accepted, in bytes (the TCP payload or one WebSocket message).
pub const DEFAULT_MAX_FRAME: u32 = 65_536;
/// Largest `body` accepted, in bytes of UTF-8.
pub const DEFAULT_MAX_BODY: u32 = 4_096;
/// Largest id (client message id, user, group, room), in bytes.
pub const MAX_ID_LEN: usize = 64;
/// Longest `ref` a request may carry, in bytes; it is echoed in the answer.
pub const MAX_REF: usize = 128;
/// Longest group name, in bytes of UTF-8.
pub const MAX_GROUP_NAME: usize = 256;
/// Most users one session may watch the presence of, in total (protocol 1.1).
pub const MAX_PRESENCE_SUBS: usize = 500;
/// Least time between two `typing` of one user in one conversation that are
/// both forwarded, in milliseconds (protocol 1.1).
pub const TYPING_INTERVAL_MS: u64 = 1_000;
/// How long a session may be gone before its user shows `offline`, in
/// milliseconds: a reconnect within it shows no change (protocol 1.1).
pub const PRESENCE_FLAP_MS: u64 = 2_000;
/// Hard ceiling on any configured frame limit: the decoder's allocation guard.
pub const MAX_FRAME_CEILING: u32 = 16 * 1024 * 1024;

/// The limits one node enforces, announced to clients in `welcome.limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame in bytes.
    pub max_frame: u32,
    /// Largest message body in bytes.
    pub max_body: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame: DEFAULT_MAX_FRAME,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}
