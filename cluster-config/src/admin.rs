//! `[admin]`: the operator API.

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
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token: None,
            max_token_ttl_s: DEFAULT_MAX_TOKEN_TTL_S,
        }
    }
}

impl AdminConfig {
    /// Whether the `/admin/` endpoints are served.
    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }

    pub(crate) fn check(&self, problems: &mut Problems) {
        if self.max_token_ttl_s == 0 {
            problems.push("admin.max_token_ttl_s", "must be at least 1 second");
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
