//! `[auth]`: how clients prove who they are (docs/security.md, "Client tokens").

use serde::Deserialize;

use crate::error::Problems;
use crate::secret::Secret;

/// Shortest accepted `auth.secret`, in bytes: the key of HS256 is as strong as
/// it is long, and anyone holding one token can try keys offline. 32 bytes is
/// the output size of SHA-256 (RFC 7518 §3.2 asks for at least that much).
pub const MIN_SECRET_LEN: usize = 32;

/// How the token of a client's `hello` is checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// The token is the user id itself, unsigned. For development on one machine:
    /// only allowed while the client listeners are bound to loopback addresses.
    #[default]
    Dev,
    /// The token is a JWT signed HS256 with `auth.secret`.
    Jwt,
}

impl AuthMode {
    /// The value as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Dev => "dev",
            AuthMode::Jwt => "jwt",
        }
    }
}

/// `[auth]`: client authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `dev` or `jwt`. Default `dev`.
    pub mode: AuthMode,
    /// The HS256 key for `jwt`: required then, at least [`MIN_SECRET_LEN`] bytes.
    /// Ignored in `dev` mode.
    pub secret: Option<Secret>,
}

impl AuthConfig {
    pub(crate) fn check(&self, problems: &mut Problems) {
        if self.mode != AuthMode::Jwt {
            return;
        }
        match &self.secret {
            None => problems.push("auth.secret", "is required when auth.mode = \"jwt\""),
            Some(secret) if secret.len() < MIN_SECRET_LEN => problems.push(
                "auth.secret",
                format!(
                    "is {} bytes long; it must be at least {MIN_SECRET_LEN} bytes",
                    secret.len()
                ),
            ),
            Some(_) => {}
        }
    }
}
