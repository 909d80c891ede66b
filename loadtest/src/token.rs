//! [`Tokens`]: the `hello` token of each load user (docs/security.md, "Client tokens").
//!
//! A node in `dev` auth mode takes the user id itself as the token, which carries
//! no roles. Scenarios that need roles (`live`: `paid`, `system` and `vip`
//! senders) run against a node in `jwt` mode and sign their own HS256 tokens with
//! the node's `[auth] secret`, as an identity provider would.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::error::LoadError;

/// How long a signed token stays valid: longer than any run, so a client that
/// reconnects late in a run is still accepted.
const TTL: Duration = Duration::from_secs(24 * 3600);

pub use chorus_wire::identity::Role;

/// How tokens are made for the node under load.
#[derive(Clone)]
pub enum Tokens {
    /// The node's `[auth] mode = "dev"`: the token is the user id; no roles.
    Dev,
    /// The node's `[auth] mode = "jwt"`: HS256 tokens signed with its secret.
    Jwt {
        /// The node's `[auth] secret`.
        secret: String,
    },
}

/// Never prints the secret.
impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tokens::Dev => f.write_str("Dev"),
            Tokens::Jwt { .. } => f.write_str("Jwt { secret: <redacted> }"),
        }
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<[&'static str; 1]>,
}

impl Tokens {
    /// `jwt` with `secret` when one is given, else `dev`.
    pub fn from_secret(secret: Option<String>) -> Self {
        match secret {
            Some(secret) if !secret.is_empty() => Tokens::Jwt { secret },
            _ => Tokens::Dev,
        }
    }

    /// Whether tokens can carry roles.
    pub fn carries_roles(&self) -> bool {
        matches!(self, Tokens::Jwt { .. })
    }

    /// The token of `user`, granting `role` if any (`dev` tokens cannot: asking
    /// for a role without a secret is a configuration error).
    pub fn token(&self, user: &str, role: Option<Role>) -> Result<String, LoadError> {
        match self {
            Tokens::Dev if role.is_some() => Err(LoadError::Config(
                "roles need signed tokens: pass the node's --jwt-secret".into(),
            )),
            Tokens::Dev => Ok(user.to_string()),
            Tokens::Jwt { secret } => {
                let iat = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let claims = Claims {
                    sub: user,
                    iat,
                    exp: iat + TTL.as_secs(),
                    roles: role.map(|r| [r.as_str()]),
                };
                jsonwebtoken::encode(
                    &Header::new(Algorithm::HS256),
                    &claims,
                    &EncodingKey::from_secret(secret.as_bytes()),
                )
                .map_err(|e| LoadError::Setup(format!("signing a token: {e}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_tokens_are_user_ids_and_carry_no_roles() {
        let dev = Tokens::from_secret(None);
        assert_eq!(dev.token("alice", None).ok().as_deref(), Some("alice"));
        assert!(matches!(
            dev.token("alice", Some(Role::Paid)),
            Err(LoadError::Config(_))
        ));
        assert!(!dev.carries_roles());
    }

    #[test]
    fn jwt_tokens_are_three_segments_with_the_role_claim() {
        let jwt = Tokens::from_secret(Some("a-secret-of-sixteen-bytes".into()));
        let token = jwt.token("bob", Some(Role::System)).expect("signs");
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(!format!("{jwt:?}").contains("sixteen"));
    }
}
