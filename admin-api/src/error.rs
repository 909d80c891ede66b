//! The body of every failed admin request.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A failure: the HTTP status says which class, `error` names it for programs,
/// `message` explains it for people (`chorusctl` prints it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// `bad_request` (400), `unauthorized` (401), `not_found` (404),
    /// `unavailable` (503) or `internal` (500).
    pub error: String,
    /// What went wrong, in a sentence.
    pub message: String,
}
