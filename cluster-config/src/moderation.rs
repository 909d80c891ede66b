//! `[moderation]`: the sensitive-word filter (docs/protocol.md §7.10).

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::Problems;

/// What happens to a message that contains a listed word.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModerationMode {
    /// Each match is replaced by `*` characters and the message goes through.
    #[default]
    Mask,
    /// The send gets `reject` `filtered`; nothing is stored.
    Reject,
}

impl ModerationMode {
    /// The value as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            ModerationMode::Mask => "mask",
            ModerationMode::Reject => "reject",
        }
    }
}

/// `[moderation]`: word lists and what to do on a match.
///
/// The files are read by the node when it starts and on reload, not by
/// [`Config::validate`](crate::Config::validate).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModerationConfig {
    /// UTF-8 file with one filtered word per line. Unset: nothing is filtered.
    pub words: Option<PathBuf>,
    /// `mask` or `reject`. Default `mask`.
    pub mode: ModerationMode,
    /// UTF-8 file with one word per line that must never be filtered even though a
    /// listed word matches inside it. Unset: no exceptions.
    pub allow: Option<PathBuf>,
}

impl ModerationConfig {
    pub(crate) fn check(&self, problems: &mut Problems) {
        for (key, path) in [
            ("moderation.words", &self.words),
            ("moderation.allow", &self.allow),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                problems.push(
                    key,
                    "must not be empty: leave the key out to go without a file",
                );
            }
        }
    }
}
