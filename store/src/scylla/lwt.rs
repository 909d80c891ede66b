//! The answer to a lightweight transaction (`... IF ...`).
//!
//! The server answers with a `[applied]` column and, when the condition failed,
//! the current values of the row it compared against. Which columns come back
//! depends on the statement and the server (Cassandra and ScyllaDB differ on a
//! missing row), so they are looked up by name, never by position.

use scylla::response::query_result::QueryResult;
use scylla::value::{CqlValue, Row};

use crate::{StoreError, StoreResult};

/// The outcome of a compare-and-set.
#[derive(Debug)]
pub(super) struct LwtOutcome {
    /// Whether the condition held and the write was made.
    pub(super) applied: bool,
    /// Column names and values of the row as it stood, when the write was not made.
    columns: Vec<(String, Option<CqlValue>)>,
}

impl LwtOutcome {
    /// Reads the single row of an LWT answer.
    pub(super) fn parse(what: &str, result: QueryResult) -> StoreResult<Self> {
        let rows = result
            .into_rows_result()
            .map_err(|e| StoreError::Backend(format!("{what}: no LWT answer: {e}")))?;
        let names: Vec<String> = rows
            .column_specs()
            .iter()
            .map(|spec| spec.name().to_string())
            .collect();
        let row = rows
            .single_row::<Row>()
            .map_err(|e| StoreError::Corrupt(format!("{what}: LWT answer: {e}")))?;
        let columns: Vec<(String, Option<CqlValue>)> = names.into_iter().zip(row.columns).collect();
        let applied = columns
            .iter()
            .find(|(name, _)| name == "[applied]")
            .and_then(|(_, value)| value.as_ref())
            .and_then(CqlValue::as_boolean)
            .ok_or_else(|| {
                StoreError::Corrupt(format!("{what}: LWT answer without an [applied] flag"))
            })?;
        Ok(Self { applied, columns })
    }

    fn value(&self, name: &str) -> Option<&CqlValue> {
        self.columns
            .iter()
            .find(|(column, _)| column == name)
            .and_then(|(_, value)| value.as_ref())
    }

    /// Whether the answer has column `name` (its value may still be null).
    pub(super) fn has(&self, name: &str) -> bool {
        self.columns.iter().any(|(column, _)| column == name)
    }

    /// A `bigint` column of the current row; `None` when absent or null.
    pub(super) fn bigint(&self, name: &str) -> Option<i64> {
        self.value(name).and_then(CqlValue::as_bigint)
    }

    /// A `text` column of the current row; `None` when absent or null.
    pub(super) fn text(&self, name: &str) -> Option<&str> {
        self.value(name)
            .and_then(CqlValue::as_text)
            .map(String::as_str)
    }

    /// A `list<text>` column of the current row; `None` when absent, null, or not
    /// a list of text.
    pub(super) fn text_list(&self, name: &str) -> Option<Vec<String>> {
        self.value(name)?
            .as_list()?
            .iter()
            .map(|v| v.as_text().cloned())
            .collect()
    }
}
