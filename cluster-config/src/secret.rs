//! A string that must not end up in logs.

use std::fmt;

use serde::Deserialize;

/// A secret from the configuration (`auth.secret`, `admin.token`, `cluster.cookie`).
///
/// Its `Debug` output is redacted, so a configuration can be logged with `{:?}`
/// without leaking credentials. It has no `Display`: reading the value takes an
/// explicit [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the code that signs, verifies or compares with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes, for validation messages that must not show the value.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}
