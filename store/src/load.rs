//! The load history: each cluster member's load samples, kept for a bounded
//! time so that a restarted node, or one that joins later, forecasts from the
//! cluster's past at once instead of waiting a whole forecast window.
//!
//! The store does not interpret a sample: a [`LoadRecord`] is a time and
//! opaque bytes (the node writes its JSON `LoadSample`, the same text it
//! gossips), so the sample's fields can grow without a schema change here.
//!
//! Every size is bounded, because the members' ids and samples travel through
//! gossip before a node writes them, and a database row or a read must never
//! grow without limit:
//!
//! | bound | value | past it |
//! |---|---|---|
//! | bytes per sample | [`MAX_SAMPLE_BYTES`] | the append is refused |
//! | samples per append | [`MAX_SAMPLES_PER_APPEND`] | the append is refused |
//! | bytes per member id | [`MAX_MEMBER_ID_BYTES`] | the append is refused |
//! | members kept | [`MAX_MEMBERS`] | an append of a new member is refused (embedded); reads list at most this many |
//! | samples per read | [`MAX_SAMPLES_PER_READ`] | the read returns that many; page on |
//! | retention | `keep_ms` of each append, at most [`MAX_KEEP_MS`] | the sample expires |
//!
//! Each refusal is counted in `chorus_store_load_refused_total{reason}`.

use crate::{StoreError, StoreResult};

/// Longest sample the store keeps (the node's own samples are about 150 bytes).
pub const MAX_SAMPLE_BYTES: usize = 1024;

/// Most samples one append may carry: a node writes a minute's worth at a time,
/// and a backlog after an outage is written in pieces of this size.
pub const MAX_SAMPLES_PER_APPEND: usize = 1000;

/// Longest member (node) id.
pub const MAX_MEMBER_ID_BYTES: usize = 128;

/// Most members whose samples the store keeps.
pub const MAX_MEMBERS: usize = 256;

/// Most samples one read returns.
pub const MAX_SAMPLES_PER_READ: usize = 10_000;

/// The longest retention an append may ask for: 30 days, so that a mistaken
/// `keep_ms` cannot make a member's history unbounded in practice.
pub const MAX_KEEP_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// One load sample of a member, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadRecord {
    /// End of the sampled interval, milliseconds since the Unix epoch; unique
    /// per member (a second write at the same time replaces the first).
    pub at_ms: u64,
    /// The sample, opaque to the store; at most [`MAX_SAMPLE_BYTES`].
    pub data: Vec<u8>,
}

impl LoadRecord {
    /// When the sample expires if kept `keep_ms`.
    pub(crate) fn expires_ms(&self, keep_ms: u64) -> u64 {
        self.at_ms.saturating_add(keep_ms.min(MAX_KEEP_MS))
    }
}

/// Why an append was refused, as the `reason` label of the refusal counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The member id is empty, too long, or holds a NUL byte.
    MemberId,
    /// Too many samples in one append.
    Batch,
    /// A sample is too long.
    SampleBytes,
    /// The member would be one past [`MAX_MEMBERS`].
    Members,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::MemberId => "member_id",
            Refusal::Batch => "batch",
            Refusal::SampleBytes => "sample_bytes",
            Refusal::Members => "members",
        }
    }

    /// Counts the refusal and says why, as the error the caller gets.
    pub(crate) fn refuse(self, detail: String) -> StoreError {
        metrics::counter!("chorus_store_load_refused_total", "reason" => self.label()).increment(1);
        StoreError::Refused(detail)
    }
}

/// Checks an append against the bounds every backend keeps.
pub(crate) fn check_append(member: &str, samples: &[LoadRecord]) -> StoreResult<()> {
    check_member(member).map_err(|detail| Refusal::MemberId.refuse(detail))?;
    if samples.len() > MAX_SAMPLES_PER_APPEND {
        return Err(Refusal::Batch.refuse(format!(
            "{} load samples in one append; at most {MAX_SAMPLES_PER_APPEND}",
            samples.len()
        )));
    }
    if let Some(big) = samples.iter().find(|s| s.data.len() > MAX_SAMPLE_BYTES) {
        return Err(Refusal::SampleBytes.refuse(format!(
            "a load sample of {} bytes; at most {MAX_SAMPLE_BYTES}",
            big.data.len()
        )));
    }
    Ok(())
}

/// Checks a member id of a read: reads of an id no append accepts find nothing,
/// but one that would break a key layout is an error.
pub(crate) fn check_member(member: &str) -> Result<(), String> {
    if member.is_empty() || member.len() > MAX_MEMBER_ID_BYTES || member.contains('\0') {
        return Err(format!(
            "member id of {} bytes; 1 to {MAX_MEMBER_ID_BYTES}, without NUL",
            member.len()
        ));
    }
    Ok(())
}

/// A read's limit, capped.
pub(crate) fn read_limit(limit: usize) -> usize {
    limit.min(MAX_SAMPLES_PER_READ)
}
