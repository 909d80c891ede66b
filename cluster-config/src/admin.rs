//! `[admin]`: the operator API.

use std::time::Duration;

use serde::Deserialize;

use crate::error::Problems;
use crate::secret::Secret;

/// The default `admin.max_token_ttl_s`: one day.
pub const DEFAULT_MAX_TOKEN_TTL_S: u64 = 86_400;

/// `[admin]`: access to the admin listener's `/admin/` endpoints.
///
/// `/healthz` and `/metrics` are served whatever this says.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token `chorusctl` must present. Unset: the `/admin/` endpoints are
    /// disabled.
    pub token: Option<Secret>,
    /// Longest validity, in seconds, of a client token issued by `POST
    /// /admin/token`: a longer `ttl_s` is refused, and a request without one gets
    /// the shorter of one day and this. A leaked token cannot be revoked, so its
    /// life is what bounds the damage. Default [`DEFAULT_MAX_TOKEN_TTL_S`].
    pub max_token_ttl_s: u64,
    /// Time a connection has, from accept (TLS handshake included) and again
    /// after each answer, to send a whole request header; then it is closed.
    /// Milliseconds. Default 5000.
    pub header_timeout_ms: u64,
    /// A connection on which no byte moves either way for this long is closed
    /// (a request body or an answer stalled mid-way). Milliseconds. Default 30000.
    pub idle_timeout_ms: u64,
    /// Admin connections open at once; more are closed at accept. Default 64.
    pub max_connections: u32,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token: None,
            max_token_ttl_s: DEFAULT_MAX_TOKEN_TTL_S,
            header_timeout_ms: 5_000,
            idle_timeout_ms: 30_000,
            max_connections: 64,
        }
    }
}

impl AdminConfig {
    /// `header_timeout_ms` as a [`Duration`].
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    /// `idle_timeout_ms` as a [`Duration`].
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// Whether the `/admin/` endpoints are served.
    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }

    pub(crate) fn check(&self, problems: &mut Problems) {
        if self.max_token_ttl_s == 0 {
            problems.push("admin.max_token_ttl_s", "must be at least 1 second");
        }
        for (key, value) in [
            ("admin.header_timeout_ms", self.header_timeout_ms),
            ("admin.idle_timeout_ms", self.idle_timeout_ms),
            ("admin.max_connections", u64::from(self.max_connections)),
        ] {
            if value == 0 {
                problems.push(key, "must be at least 1");
            }
        }
        let Some(token) = &self.token else { return };
        if token.expose().is_empty() {
            problems.push(
                "admin.token",
                "must not be empty: leave the key out to disable the /admin/ endpoints",
            );
        } else if !token.expose().bytes().all(|b| b.is_ascii_graphic()) {
            // It travels in an HTTP header: `Authorization: Bearer <token>`.
            problems.push("admin.token", "must be printable ASCII without spaces");
        }
    }
}
