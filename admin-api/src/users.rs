//! Users and their tokens: `/admin/kick/{user}`, `/admin/token`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /admin/kick/{user}`: the user's sessions were closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KickResponse {
    /// The user kicked.
    pub user: String,
    /// Sessions the answering node closed itself (the user's entity closes those
    /// on other nodes).
    pub closed: u64,
}

/// The body of `POST /admin/token`: `{"user": "alice", "roles": ["vip"], "ttl_s": 3600}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The user the token is for (the JWT's `sub`), a valid id.
    pub user: String,
    /// Role names (`vip`, `mod`, `paid`, `system`, ...); absent means none.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Seconds the token is valid, at least 1; absent means
    /// [`TokenRequest::DEFAULT_TTL_S`], or the node's `admin.max_token_ttl_s` if
    /// that is shorter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_s: Option<u64>,
}

impl TokenRequest {
    /// The validity of a token whose request names none: one day.
    pub const DEFAULT_TTL_S: u64 = 86_400;
}

/// `POST /admin/token`: a client JWT signed with the node's `auth.secret`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The token, for the client's `hello`.
    pub token: String,
    /// The user it is for.
    pub user: String,
    /// The roles it grants, each once.
    pub roles: Vec<String>,
    /// Seconds until it expires.
    pub expires_in_s: u64,
}
