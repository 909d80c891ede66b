//! `[limits]`: sizes and timeouts of client connections (PROTOCOL.md §1), and
//! how many groups one user may join.

use std::time::Duration;

use serde::Deserialize;

use crate::error::Problems;

/// Largest accepted `limits.max_frame`: 16 MiB, the decoder's allocation guard.
pub const MAX_FRAME_CEILING: u32 = 16 * 1024 * 1024;

/// Smallest accepted `limits.max_frame`: room for a `hello` with a JWT.
pub const MIN_FRAME: u32 = 1024;

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
    /// Largest page a `history` request gets. Default 200.
    pub history_max: u32,
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
            history_max: 200,
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
        let at_least_one = [
            ("limits.hello_timeout_ms", self.hello_timeout_ms),
            ("limits.outbound_queue", u64::from(self.outbound_queue)),
            ("limits.history_max", u64::from(self.history_max)),
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
