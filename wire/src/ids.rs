//! Ids and conversation addresses (docs/protocol.md §2, §6).
//!
//! An id (client message id, user, group, room) is 1–64 bytes of `[A-Za-z0-9_.-]`.
//! Conversations are `dm:<a>:<b>` with `a ≤ b` in byte order, `group:<gid>` and
//! `live:<room>`; send targets are `user:<uid>` and `group:<gid>`.

use std::fmt;

use crate::limits::MAX_ID_LEN;

/// Why an id or address is not acceptable. Reported as `invalid`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty id.
    #[error("{what} is empty")]
    Empty {
        /// Which id.
        what: &'static str,
    },
    /// Longer than 64 bytes.
    #[error("{what} is longer than {MAX_ID_LEN} bytes")]
    TooLong {
        /// Which id.
        what: &'static str,
    },
    /// A character outside `[A-Za-z0-9_.-]`.
    #[error("{what} has a character outside [A-Za-z0-9_.-]")]
    BadChar {
        /// Which id.
        what: &'static str,
    },
    /// Not of the form `kind:...`.
    #[error("{0:?} is not a valid address")]
    BadAddress(String),
}

/// Checks one id against the protocol's rule.
pub fn validate_id(what: &'static str, id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty { what });
    }
    if id.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { what });
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(IdError::BadChar { what });
    }
    Ok(())
}

/// Where a `send` goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// `user:<uid>`: the direct conversation with that user.
    User(String),
    /// `group:<gid>`.
    Group(String),
}

impl Target {
    /// Parses `user:<uid>` or `group:<gid>`.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if let Some(uid) = s.strip_prefix("user:") {
            validate_id("user id", uid)?;
            Ok(Self::User(uid.to_string()))
        } else if let Some(gid) = s.strip_prefix("group:") {
            validate_id("group id", gid)?;
            Ok(Self::Group(gid.to_string()))
        } else {
            Err(IdError::BadAddress(truncate(s)))
        }
    }

    /// The conversation a message from `sender` to this target belongs to.
    pub fn conv_for(&self, sender: &str) -> ConvId {
        match self {
            Self::User(uid) => ConvId::dm(sender, uid),
            Self::Group(gid) => ConvId::Group(gid.clone()),
        }
    }
}

/// A conversation (or live room) address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConvId {
    /// `dm:<a>:<b>`, `a ≤ b`.
    Dm(String, String),
    /// `group:<gid>`.
    Group(String),
    /// `live:<room>`.
    Live(String),
}

impl ConvId {
    /// The direct conversation of two users, in canonical order.
    pub fn dm(x: &str, y: &str) -> Self {
        if x.as_bytes() <= y.as_bytes() {
            Self::Dm(x.to_string(), y.to_string())
        } else {
            Self::Dm(y.to_string(), x.to_string())
        }
    }

    /// Parses a conversation id; a `dm:` must already be in canonical order.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if let Some(rest) = s.strip_prefix("dm:") {
            let (a, b) = rest
                .split_once(':')
                .ok_or_else(|| IdError::BadAddress(truncate(s)))?;
            validate_id("user id", a)?;
            validate_id("user id", b)?;
            if a.as_bytes() > b.as_bytes() {
                return Err(IdError::BadAddress(truncate(s)));
            }
            Ok(Self::Dm(a.to_string(), b.to_string()))
        } else if let Some(gid) = s.strip_prefix("group:") {
            validate_id("group id", gid)?;
            Ok(Self::Group(gid.to_string()))
        } else if let Some(room) = s.strip_prefix("live:") {
            validate_id("room id", room)?;
            Ok(Self::Live(room.to_string()))
        } else {
            Err(IdError::BadAddress(truncate(s)))
        }
    }

    /// Whether `user` may read and write this conversation without a membership
    /// lookup: true for the two users of a dm; groups need their member list.
    pub fn is_dm_party(&self, user: &str) -> bool {
        matches!(self, Self::Dm(a, b) if a == user || b == user)
    }

    /// The other party of a dm (the user itself for a dm with oneself).
    pub fn dm_peer<'a>(&'a self, user: &str) -> Option<&'a str> {
        match self {
            Self::Dm(a, b) if a == user => Some(b),
            Self::Dm(a, b) if b == user => Some(a),
            _ => None,
        }
    }
}

impl fmt::Display for ConvId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dm(a, b) => write!(f, "dm:{a}:{b}"),
            Self::Group(g) => write!(f, "group:{g}"),
            Self::Live(r) => write!(f, "live:{r}"),
        }
    }
}

/// Keeps error messages short when echoing hostile input.
fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}
