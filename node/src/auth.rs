//! Client authentication: the `hello.token` becomes an [`Identity`] (docs/security.md, "Client tokens").
//!
//! Two modes, chosen by `[auth] mode`:
//!
//! - `dev`: the token is the user id itself, checked against the id rule. It carries
//!   no roles. It is acceptable only while every client listener is bound to a
//!   loopback address; configuration validation enforces that.
//! - `jwt`: a JWT signed HS256 with `[auth] secret`.
//!
//! What a JWT must satisfy, in the order it is checked:
//!
//! 1. Three base64url segments whose header names `alg` `HS256`. Any other algorithm
//!    (`none`, `HS384`, `HS512`, `RS256`, ...) is refused before any signature work,
//!    so a token cannot choose how it is verified (algorithm confusion). A header
//!    with a `crit` member is refused too: RFC 7515 §4.1.11 says a recipient must
//!    reject a JWS whose critical extensions it does not understand, and this node
//!    understands none (a malformed `crit`, such as an empty list, is refused with
//!    its own message).
//! 2. A valid HS256 signature under the secret.
//! 3. `exp` present, an integer, and not in the past by more than [`EXP_LEEWAY_S`]
//!    seconds: a little tolerance for clock skew between the issuer and the node.
//!    `nbf`, if present, is honoured with the same leeway.
//! 4. No `aud` claim: this node names no audience, so a token addressed to some
//!    audience is meant for another service and is refused.
//! 5. `sub` present and a valid id (docs/protocol.md §2).
//! 6. `roles`, if present, a list of strings. Known names (`mod`, `vip`, `paid`,
//!    `system`, `admin`) become [`Roles`]; unknown names are **ignored**, because an
//!    identity provider shared with other services may carry roles of its own, and
//!    ignoring a name can never grant anything.
//!
//! Every failure is an [`AuthError`], reported to the client as `unauthenticated`
//! with the error's message. Messages never echo token content beyond a short,
//! sanitised algorithm name.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chorus_config::MIN_SECRET_LEN;
use chorus_wire::ErrorCode;
pub use chorus_wire::identity::{Identity, Role, Roles, UnknownRole};
use chorus_wire::ids::{IdError, validate_id};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// Seconds a token stays acceptable after its `exp` (and before its `nbf`), to
/// absorb clock skew between the token issuer and the node.
pub const EXP_LEEWAY_S: u64 = 5;

/// How tokens are checked (`[auth] mode`, `secret`).
#[derive(Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// The token is the user id. Loopback listeners only.
    Dev,
    /// HS256 JWTs.
    Jwt {
        /// The shared HS256 secret, used as raw UTF-8 bytes.
        secret: String,
    },
}

/// Never prints the secret.
impl fmt::Debug for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMode::Dev => f.write_str("Dev"),
            AuthMode::Jwt { .. } => f.write_str("Jwt { secret: <redacted> }"),
        }
    }
}

/// Why the authentication settings cannot be used; the node refuses to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthSetupError {
    /// `jwt` mode without a secret, or with an empty one, would accept tokens
    /// anyone can sign.
    #[error("auth.secret is missing or empty; auth.mode = \"jwt\" needs a secret")]
    EmptySecret,
    /// A secret shorter than [`MIN_SECRET_LEN`] bytes can be found by brute force
    /// from one token.
    #[error("auth.secret is {0} bytes long; it must be at least {MIN_SECRET_LEN} bytes")]
    ShortSecret(usize),
}

/// Why a token was refused. Every variant is reported as `unauthenticated`
/// ([`AuthError::code`]) with the variant's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token is the empty string.
    #[error("token is empty")]
    Empty,
    /// `dev` mode: the token is not a valid user id.
    #[error("token is not a valid user id: {0}")]
    BadUserId(IdError),
    /// Not three base64url segments with a JSON header and payload.
    #[error("token is not a well-formed JWT")]
    Malformed,
    /// The header names an algorithm other than HS256.
    #[error("token algorithm {0} is not accepted (only HS256)")]
    Algorithm(String),
    /// The header's `crit` names extensions that must be understood; this node
    /// understands none. Carries the names, sanitised for an error message.
    #[error("token header marks {0} as critical; this node supports no critical header extensions")]
    CriticalHeader(String),
    /// The header has a `crit` that is not a non-empty list of names (RFC 7515
    /// §4.1.11).
    #[error("token header `crit` must be a non-empty list of header names")]
    BadCritical,
    /// The signature does not match the secret.
    #[error("bad signature")]
    BadSignature,
    /// `exp` is in the past (beyond [`EXP_LEEWAY_S`]).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond [`EXP_LEEWAY_S`]).
    #[error("token not valid yet")]
    NotYetValid,
    /// A required claim (`exp` or `sub`) is absent.
    #[error("token has no `{0}` claim")]
    MissingClaim(&'static str),
    /// A claim is present but unacceptable.
    #[error("token claim `{claim}` is invalid: {reason}")]
    InvalidClaim {
        /// The claim's name.
        claim: &'static str,
        /// Why.
        reason: String,
    },
    /// The claims are JSON of the wrong shape (e.g. `sub` not a string, `roles` not
    /// a list of strings).
    #[error(
        "token claims have the wrong types (sub: string, exp: integer, roles: list of strings)"
    )]
    BadClaims,
}

impl AuthError {
    /// The protocol error code: always `unauthenticated`.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::Unauthenticated
    }
}

/// Checks `hello` tokens. Cheap to share behind an `Arc`; holds no per-user state.
pub struct Authenticator {
    mode: Checker,
}

enum Checker {
    Dev,
    Jwt {
        key: DecodingKey,
        validation: Box<Validation>,
    },
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            Checker::Dev => "dev",
            Checker::Jwt { .. } => "jwt",
        };
        f.debug_struct("Authenticator")
            .field("mode", &mode)
            .finish()
    }
}

impl Authenticator {
    /// The authenticator `[auth]` describes. Run after configuration validation,
    /// which also enforces the secret's minimum length and loopback-only `dev`.
    pub fn from_config(config: &chorus_config::AuthConfig) -> Result<Self, AuthSetupError> {
        let mode = match config.mode {
            chorus_config::AuthMode::Dev => AuthMode::Dev,
            chorus_config::AuthMode::Jwt => AuthMode::Jwt {
                secret: config
                    .secret
                    .as_ref()
                    .map(|s| s.expose().to_string())
                    .ok_or(AuthSetupError::EmptySecret)?,
            },
        };
        Self::new(&mode)
    }

    /// An authenticator for `mode`.
    pub fn new(mode: &AuthMode) -> Result<Self, AuthSetupError> {
        let mode = match mode {
            AuthMode::Dev => Checker::Dev,
            AuthMode::Jwt { secret } => {
                if secret.is_empty() {
                    return Err(AuthSetupError::EmptySecret);
                }
                if secret.len() < MIN_SECRET_LEN {
                    return Err(AuthSetupError::ShortSecret(secret.len()));
                }
                let mut validation = Validation::new(Algorithm::HS256);
                validation.leeway = EXP_LEEWAY_S;
                validation.validate_exp = true;
                validation.validate_nbf = true;
                // `sub` is checked below, with a clearer message than the library's.
                validation.required_spec_claims = ["exp".to_string()].into_iter().collect();
                Checker::Jwt {
                    key: DecodingKey::from_secret(secret.as_bytes()),
                    validation: Box::new(validation),
                }
            }
        };
        Ok(Self { mode })
    }

    /// A `dev`-mode authenticator (tests, local runs).
    pub fn dev() -> Self {
        Self { mode: Checker::Dev }
    }

    /// Whether tokens are bare user ids.
    pub fn is_dev(&self) -> bool {
        matches!(self.mode, Checker::Dev)
    }

    /// Checks a `hello.token` and says who it is.
    pub fn authenticate(&self, token: &str) -> Result<Identity, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Empty);
        }
        match &self.mode {
            Checker::Dev => {
                validate_id("user id", token).map_err(AuthError::BadUserId)?;
                Ok(Identity {
                    user: token.to_string(),
                    roles: Roles::NONE,
                })
            }
            Checker::Jwt { key, validation } => authenticate_jwt(token, key, validation),
        }
    }
}

/// The claims this node reads. Everything optional, so absence is reported by
/// name rather than as a deserialisation error.
#[derive(Deserialize)]
struct TokenClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    roles: Option<Vec<String>>,
}

fn authenticate_jwt(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<Identity, AuthError> {
    check_header(token)?;
    let data = jsonwebtoken::decode::<TokenClaims>(token, key, validation)
        .map_err(|e| map_jwt_error(e.kind(), token))?;
    let claims = data.claims;
    let user = claims.sub.ok_or(AuthError::MissingClaim("sub"))?;
    validate_id("user id", &user).map_err(|e| AuthError::InvalidClaim {
        claim: "sub",
        reason: e.to_string(),
    })?;
    let roles = claims
        .roles
        .as_deref()
        .map(|names| Roles::from_claim(names.iter().map(String::as_str)))
        .unwrap_or_default();
    Ok(Identity { user, roles })
}

/// Step 1: reads the header ourselves, so that `none` and other names the JWT
/// library cannot even parse still get a precise refusal, and so that `crit`,
/// which the library parses but does not act on, is refused.
fn check_header(token: &str) -> Result<(), AuthError> {
    let mut segments = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(AuthError::Malformed);
    };
    let header = b64url_decode(header).ok_or(AuthError::Malformed)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|_| AuthError::Malformed)?;
    match header.get("alg") {
        Some(serde_json::Value::String(alg)) if alg == "HS256" => {}
        Some(serde_json::Value::String(other)) => {
            return Err(AuthError::Algorithm(sanitise_alg(other)));
        }
        _ => return Err(AuthError::Malformed),
    }
    // Present at all, even `null`, is refused: a JSON parser that keeps the first
    // of two duplicate members could see a `crit` another keeps.
    if let Some(crit) = header.get("crit") {
        return Err(critical(crit));
    }
    Ok(())
}

/// The refusal of a header whose `crit` is `crit`.
fn critical(crit: &serde_json::Value) -> AuthError {
    let names = match crit {
        serde_json::Value::Array(names) if !names.is_empty() => names,
        _ => return AuthError::BadCritical,
    };
    let mut shown = Vec::new();
    for name in names {
        let serde_json::Value::String(name) = name else {
            return AuthError::BadCritical;
        };
        if shown.len() < 4 {
            shown.push(sanitise_alg(name));
        }
    }
    if names.len() > shown.len() {
        shown.push(format!("and {} more", names.len() - shown.len()));
    }
    AuthError::CriticalHeader(shown.join(", "))
}

/// An algorithm or header name fit for an error message sent back to the client.
fn sanitise_alg(alg: &str) -> String {
    if !alg.is_empty() && alg.len() <= 16 && alg.bytes().all(|b| b.is_ascii_alphanumeric()) {
        alg.to_string()
    } else {
        "(unrecognised)".to_string()
    }
}

fn map_jwt_error(kind: &ErrorKind, token: &str) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        // `exp` is the only claim the library is told to require. It reports one it
        // cannot read as an integer as missing; tell the two apart. (Claims are
        // validated after the signature, so the payload is the issuer's.)
        ErrorKind::MissingRequiredClaim(_) if payload_has_claim(token, "exp") => {
            AuthError::InvalidClaim {
                claim: "exp",
                reason: "not an integer timestamp".to_string(),
            }
        }
        ErrorKind::MissingRequiredClaim(_) => AuthError::MissingClaim("exp"),
        ErrorKind::InvalidClaimFormat(claim) => AuthError::InvalidClaim {
            claim: if claim == "nbf" { "nbf" } else { "exp" },
            reason: "not an integer timestamp".to_string(),
        },
        ErrorKind::InvalidAudience => AuthError::InvalidClaim {
            claim: "aud",
            reason: "this node accepts no audience".to_string(),
        },
        ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => {
            AuthError::Algorithm("(unrecognised)".to_string())
        }
        ErrorKind::Json(_) => AuthError::BadClaims,
        _ => AuthError::Malformed,
    }
}

/// Whether the token's payload has a member `claim`, whatever its value.
fn payload_has_claim(token: &str, claim: &str) -> bool {
    token
        .split('.')
        .nth(1)
        .and_then(b64url_decode)
        .and_then(|payload| {
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&payload).ok()
        })
        .is_some_and(|members| members.get(claim).is_some_and(|v| !v.is_null()))
}

/// Decodes unpadded base64url (RFC 4648 §5), as JWT segments are written.
fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

/// Why a token could not be issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// The user id breaks the id rule; the node would refuse the token.
    #[error("invalid user: {0}")]
    User(#[from] IdError),
    /// An empty secret; the node refuses to run with one.
    #[error("the secret is empty")]
    EmptySecret,
    /// The JWT library failed to sign.
    #[error("signing failed: {0}")]
    Signing(String),
}

#[derive(Serialize)]
struct IssuedClaims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    roles: Vec<&'static str>,
}

/// Issues an HS256 token for `user` with `roles`, valid for `ttl` from now
/// (whole seconds). Used by tests and by `chorusctl token issue`.
pub fn issue_token(
    secret: &str,
    user: &str,
    roles: Roles,
    ttl: Duration,
) -> Result<String, IssueError> {
    validate_id("user id", user)?;
    if secret.is_empty() {
        return Err(IssueError::EmptySecret);
    }
    let iat = unix_now();
    let claims = IssuedClaims {
        sub: user,
        iat,
        exp: iat.saturating_add(ttl.as_secs()),
        roles: roles.iter().map(Role::as_str).collect(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| IssueError::Signing(e.to_string()))
}

/// Seconds since the Unix epoch; 0 if the clock is set before it.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
