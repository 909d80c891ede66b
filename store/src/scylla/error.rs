//! Driver errors as [`StoreError`]s, and the checked conversions between Chorus's
//! unsigned numbers and CQL's signed `bigint`.
//!
//! The split that matters to callers: [`StoreError::Unavailable`] for what may
//! succeed if retried later (timeouts, too few replicas, lost connections, an
//! overloaded coordinator), [`StoreError::Backend`] for what will not (a statement
//! the server rejects), [`StoreError::Corrupt`] for rows that do not decode.

use scylla::errors::{
    DbError, ExecutionError, NextRowError, PagerExecutionError, PrepareError, RequestAttemptError,
    RequestError,
};
use scylla::response::query_result::QueryResult;

use crate::{StoreError, StoreResult};

/// Whether a server-side error is about load or availability, not the request.
fn db_error_is_transient(e: &DbError) -> bool {
    matches!(
        e,
        DbError::Unavailable { .. }
            | DbError::Overloaded
            | DbError::IsBootstrapping
            | DbError::ReadTimeout { .. }
            | DbError::WriteTimeout { .. }
            | DbError::ReadFailure { .. }
            | DbError::WriteFailure { .. }
            | DbError::RateLimitReached { .. }
    )
}

/// Whether one attempt failed for reasons that may pass.
fn attempt_is_transient(e: &RequestAttemptError) -> bool {
    match e {
        RequestAttemptError::DbError(db, _) => db_error_is_transient(db),
        RequestAttemptError::BrokenConnectionError(_)
        | RequestAttemptError::UnableToAllocStreamId => true,
        _ => false,
    }
}

/// Whether a failed request may succeed if retried later.
pub(super) fn is_transient(e: &ExecutionError) -> bool {
    match e {
        ExecutionError::RequestTimeout(_)
        | ExecutionError::EmptyPlan
        | ExecutionError::ConnectionPoolError(_) => true,
        ExecutionError::LastAttemptError(attempt) => attempt_is_transient(attempt),
        ExecutionError::PrepareError(prepare) => match prepare {
            PrepareError::ConnectionPoolError(_) => true,
            PrepareError::AllAttemptsFailed { first_attempt } => {
                attempt_is_transient(first_attempt)
            }
            _ => false,
        },
        _ => false,
    }
}

/// A failed request, with what the store was doing.
pub(super) fn query_error(what: &str, e: ExecutionError) -> StoreError {
    if is_transient(&e) {
        StoreError::Unavailable(format!("{what}: {e}"))
    } else {
        StoreError::Backend(format!("{what}: {e}"))
    }
}

/// A paged request that failed to start.
pub(super) fn pager_error(what: &str, e: PagerExecutionError) -> StoreError {
    match e {
        PagerExecutionError::NextPageError(page) => next_row_error(what, page.into()),
        other => StoreError::Backend(format!("{what}: {other}")),
    }
}

/// A paged request that failed on a later page or row.
pub(super) fn next_row_error(what: &str, e: NextRowError) -> StoreError {
    let transient = match &e {
        NextRowError::NextPageError(scylla::errors::NextPageError::RequestFailure(request)) => {
            match request {
                RequestError::EmptyPlan
                | RequestError::ConnectionPoolError(_)
                | RequestError::RequestTimeout(_) => true,
                RequestError::LastAttemptError(attempt) => attempt_is_transient(attempt),
                _ => false,
            }
        }
        NextRowError::RowDeserializationError(_) => {
            return StoreError::Corrupt(format!("{what}: {e}"));
        }
        _ => false,
    };
    if transient {
        StoreError::Unavailable(format!("{what}: {e}"))
    } else {
        StoreError::Backend(format!("{what}: {e}"))
    }
}

/// Rows whose columns are not of the types the statement was written for: the
/// schema differs from the one this store creates.
pub(super) fn type_error(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{what}: unexpected column types: {e}"))
}

/// The first row of a result (`None` when there is none), decoded as `R`.
pub(super) fn first_row<R>(what: &str, result: QueryResult) -> StoreResult<Option<R>>
where
    R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
{
    let rows = result
        .into_rows_result()
        .map_err(|e| StoreError::Backend(format!("{what}: expected rows: {e}")))?;
    rows.maybe_first_row::<R>()
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A seq, timestamp or position as a CQL `bigint`. Values past `i64::MAX` are
/// refused rather than wrapped into negative numbers that would sort first.
pub(super) fn to_cql(value: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(value)
        .map_err(|_| StoreError::Backend(format!("{what} {value} is beyond what the store holds")))
}

/// A `bigint` read back; a negative one was never written by this store.
pub(super) fn from_cql(value: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative {what}: {value}")))
}

/// Rejects ids the protocol forbids from reaching the store: the wire layer
/// already validates them, this guards against a caller that skipped it. CQL
/// text is UTF-8 and bound, so only the empty id and NUL are worth refusing.
pub(super) fn check_id(what: &str, id: &str) -> StoreResult<()> {
    if id.is_empty() {
        return Err(StoreError::Backend(format!("{what} is empty")));
    }
    if id.contains('\0') {
        return Err(StoreError::Backend(format!("{what} contains a NUL byte")));
    }
    Ok(())
}
