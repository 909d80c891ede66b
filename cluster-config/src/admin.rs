//! `[admin]`: the operator API.

use serde::Deserialize;

use crate::error::Problems;
use crate::secret::Secret;

/// `[admin]`: access to the admin listener's `/admin/` endpoints.
///
/// `/healthz` and `/metrics` are served whatever this says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token `chorusctl` must present. Unset: the `/admin/` endpoints are
    /// disabled.
    pub token: Option<Secret>,
}

impl AdminConfig {
    /// Whether the `/admin/` endpoints are served.
    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }

    pub(crate) fn check(&self, problems: &mut Problems) {
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
