//! `[limits]`: sizes and timeouts of client connections (docs/protocol.md §2), and
//! how many groups one user may join.

use std::time::Duration;

use serde::Deserialize;

use crate::error::Problems;

/// Largest accepted `limits.max_frame`: 16 MiB, the decoder's allocation guard.
pub const MAX_FRAME_CEILING: u32 = 16 * 1024 * 1024;

/// Smallest accepted `limits.max_frame`: room for a `hello` with a JWT.
pub const MIN_FRAME: u32 = 1024;

/// Bytes a frame may need per byte of `body`: JSON writes a control character
/// as `\u00XX`. With [`FRAME_OVERHEAD`], the rule that one message or live item
/// of the largest body fits a frame in either encoding (`chorus_wire::fit`, whose
/// tests prove it over the worst case of every frame; the node's tests check that
/// both crates state the same rule).
pub const JSON_ESCAPE_FACTOR: u32 = 6;

/// Bytes of a one-item frame besides its body: ids, `ref`, numbers, names.
pub const FRAME_OVERHEAD: u32 = 4_096;

/// Bytes of one member in a `group` frame: an id of at most 64 ASCII bytes,
/// quoted, after a comma.
pub const GROUP_MEMBER_BYTES: u32 = 67;

/// Bytes of a group's name at most (256 bytes of text, JSON-escaped).
pub const GROUP_NAME_BYTES: u32 = 256 * JSON_ESCAPE_FACTOR;

/// `[limits]`: per-connection limits, announced in `welcome.limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest frame, in bytes. Default 65536; between 1024 and 16 MiB.
    pub max_frame: u32,
    /// Largest `body`, in bytes of UTF-8. Default 4096; less than `max_frame`.
    pub max_body: u32,
    /// Time a new connection has to send `hello`, in milliseconds. Default 5000.
    pub hello_timeout_ms: u64,
    /// Frames queued for one session before it counts as too slow. Default 1024.
    pub outbound_queue: u32,
    /// Bytes (as encoded) queued for one session before it counts as too slow.
    /// Default 4 MiB; at least twice `max_frame`.
    pub outbound_bytes: u64,
    /// Units of one session's request budget. Default 256: a request holds one
    /// unit, or a sixteenth of the budget when its answer may fill a frame, until
    /// its answer is written; at least 16.
    pub max_inflight: u32,
    /// History pages and conversation-list pages read from the store at once on
    /// this node, for all sessions together. Default 32.
    pub store_reads: u32,
    /// Largest page a `history` request gets. Default 200.
    pub history_max: u32,
    /// Largest group, in members. Default 500; a `group` frame of this many
    /// members must fit `max_frame`.
    pub max_group_members: u32,
    /// Most conversations in one `conversation_list`. Default 500 (fewer when they
    /// do not fit one frame; a client that asks for pages gets `more`).
    pub list_max: u32,
    /// Groups one user may belong to; a `group_create` or `group_add` that
    /// would take a member past it is refused. Default 500.
    pub max_groups_per_user: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_frame: 65_536,
            max_body: 4_096,
            hello_timeout_ms: 5_000,
            outbound_queue: 1_024,
            outbound_bytes: 4 << 20,
            max_inflight: 256,
            store_reads: 32,
            history_max: 200,
            max_group_members: 500,
            list_max: 500,
            max_groups_per_user: 500,
        }
    }
}

impl LimitsConfig {
    /// `hello_timeout_ms` as a [`Duration`].
    pub fn hello_timeout(&self) -> Duration {
        Duration::from_millis(self.hello_timeout_ms)
    }

    pub(crate) fn check(&self, problems: &mut Problems) {
        if self.max_frame > MAX_FRAME_CEILING {
            problems.push(
                "limits.max_frame",
                format!(
                    "is {}; it must be at most {MAX_FRAME_CEILING} (16 MiB)",
                    self.max_frame
                ),
            );
        } else if self.max_frame < MIN_FRAME {
            problems.push(
                "limits.max_frame",
                format!("is {}; it must be at least {MIN_FRAME}", self.max_frame),
            );
        }
        if self.max_body == 0 {
            problems.push("limits.max_body", "must be at least 1");
        } else if self.max_body >= self.max_frame {
            problems.push(
                "limits.max_body",
                format!(
                    "is {}; it must be less than limits.max_frame ({}), which also holds the rest of the frame",
                    self.max_body, self.max_frame
                ),
            );
        }
        // Only once max_frame and max_body are each in range (a problem above).
        if self.max_body > 0 && self.max_body < self.max_frame && self.max_frame >= MIN_FRAME {
            let needed = u64::from(self.max_body) * u64::from(JSON_ESCAPE_FACTOR)
                + u64::from(FRAME_OVERHEAD);
            if u64::from(self.max_frame) < needed {
                problems.push(
                    "limits.max_frame",
                    format!(
                        "is {}; with limits.max_body = {} it must be at least {needed} \
                         (6 × max_body + {FRAME_OVERHEAD}), so that a message of the \
                         largest body fits a frame even as JSON, which writes a control \
                         character in 6 bytes",
                        self.max_frame, self.max_body
                    ),
                );
            }
            let group = u64::from(self.max_group_members) * u64::from(GROUP_MEMBER_BYTES)
                + u64::from(GROUP_NAME_BYTES)
                + u64::from(FRAME_OVERHEAD);
            if u64::from(self.max_frame) < group {
                problems.push(
                    "limits.max_group_members",
                    format!(
                        "is {}; a `group` frame of that many members needs up to {group} \
                         bytes, over limits.max_frame ({}): lower it to at most {} or \
                         raise limits.max_frame",
                        self.max_group_members,
                        self.max_frame,
                        (u64::from(self.max_frame)
                            .saturating_sub(u64::from(GROUP_NAME_BYTES + FRAME_OVERHEAD)))
                            / u64::from(GROUP_MEMBER_BYTES)
                    ),
                );
            }
        }
        if self.outbound_bytes < 2 * u64::from(self.max_frame) {
            problems.push(
                "limits.outbound_bytes",
                format!(
                    "is {}; it must be at least twice limits.max_frame ({})",
                    self.outbound_bytes,
                    2 * u64::from(self.max_frame)
                ),
            );
        }
        if self.max_inflight < 16 {
            problems.push(
                "limits.max_inflight",
                format!(
                    "is {}; it must be at least 16 (a request whose answer may fill a frame takes a sixteenth of it)",
                    self.max_inflight
                ),
            );
        }
        let at_least_one = [
            ("limits.hello_timeout_ms", self.hello_timeout_ms),
            ("limits.outbound_queue", u64::from(self.outbound_queue)),
            ("limits.history_max", u64::from(self.history_max)),
            (
                "limits.max_group_members",
                u64::from(self.max_group_members),
            ),
            ("limits.list_max", u64::from(self.list_max)),
            ("limits.store_reads", u64::from(self.store_reads)),
            (
                "limits.max_groups_per_user",
                u64::from(self.max_groups_per_user),
            ),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                problems.push(key, "must be at least 1");
            }
        }
    }
}
