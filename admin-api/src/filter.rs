//! The word filter: `/admin/filter/reload`, `/admin/filter/test`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /admin/filter/reload`: the filter rebuilt from its files and in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FilterReloadResponse {
    /// Version of the filter now in use.
    pub version: u64,
    /// Distinct dictionary words.
    pub words: u64,
    /// Distinct allow-list words.
    pub allowed: u64,
    /// Heap bytes of the compiled automatons.
    pub memory_bytes: u64,
    /// Milliseconds spent reading and compiling the lists.
    pub build_ms: u64,
}

/// `POST /admin/filter/test` (the body is the text): what the filter finds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FilterTestResponse {
    /// Version of the filter that checked the text.
    pub version: u64,
    /// The words found, by position.
    pub hits: Vec<FilterHit>,
    /// What mask mode would deliver.
    pub masked: String,
    /// The text as the filter compares it (case folded, separators removed).
    pub normalised: String,
}

/// One word the filter found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FilterHit {
    /// The dictionary word, as written in the list.
    pub word: String,
    /// Byte offset of the match in the text.
    pub start: u64,
    /// Byte offset just past the match.
    pub end: u64,
    /// The matched text as written; `null` if the range is not on character
    /// boundaries.
    pub text: Option<String>,
}
