//! The keyspace and its tables, created at connect with `IF NOT EXISTS`, so any
//! number of nodes may start at once against a new or an existing keyspace.
//!
//! ```text
//! messages      ((conv, bucket), seq) → id, sender, body, ts_ms    the timelines
//! conv_buckets  (conv, bucket)                                     non-empty buckets
//! conv_meta     (conv) → last_seq                                  write timestamp = last_seq
//! seq_alloc     (conv) → next                                      LWT only
//! dedup         ((conv, sender, client_id)) → seq, ts_ms, claimed_ms  TTL 24 h
//! user_convs    (user_id, conv)                                    conversation lists
//! read_pos      (user_id, conv) → read_seq                         write timestamp = read_seq
//! chat_groups   (id) → name, owner, members                        created with LWT
//! room_settings (room) → slow_mode_s                               live rooms' operator settings
//! last_seen     (user_id) → at_ms                                  write timestamp = at_ms × 1000
//! load_samples  (member, at_ms) → expires_ms, data                 TTL per row: the load history
//! load_members  (shard, member) → expires_ms                       TTL per row; one partition
//! ```
//!
//! `conv_meta`, `read_pos` and `last_seen` are written only with `USING
//! TIMESTAMP <value>` and never deleted: a write or delete with an ordinary
//! (wall-clock) timestamp would shadow every later raise, so nothing else may
//! write those three tables.
//! `messages` rows are written with `USING TIMESTAMP` from the message's own time
//! (see `append`), so that the tombstone fencing an abandoned claim's row wins
//! over that row whenever it lands.

use std::time::Duration;

use scylla::client::session::Session;
use scylla::statement::Statement;

use super::ScyllaOptions;
use super::error::query_error;
use crate::{DEDUP_WINDOW_MS, StoreError, StoreResult};

/// Schema changes wait for every node to agree on the new schema, which takes
/// longer than an ordinary request.
const DDL_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest keyspace name Cassandra and ScyllaDB accept.
const MAX_KEYSPACE_LEN: usize = 48;

/// The keyspace name is spliced into statement text (CQL has no bind markers for
/// names), so only the characters of an unquoted identifier are let through.
pub(super) fn check_keyspace_name(name: &str) -> StoreResult<()> {
    let valid = !name.is_empty()
        && name.len() <= MAX_KEYSPACE_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with('_');
    if valid {
        Ok(())
    } else {
        Err(StoreError::Backend(format!(
            "keyspace name {name:?} is not 1-{MAX_KEYSPACE_LEN} letters, digits and `_`"
        )))
    }
}

/// The statements that create the schema, in order.
fn ddl(options: &ScyllaOptions) -> Vec<String> {
    let ks = &options.keyspace;
    let rf = options.replication_factor;
    let dedup_ttl_s = DEDUP_WINDOW_MS / 1000;
    vec![
        format!(
            "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = \
             {{'class': 'SimpleStrategy', 'replication_factor': {rf}}}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.messages (\
             conv text, bucket bigint, seq bigint, id text, sender text, body text, ts_ms bigint, \
             PRIMARY KEY ((conv, bucket), seq)) WITH CLUSTERING ORDER BY (seq ASC)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.conv_buckets (\
             conv text, bucket bigint, PRIMARY KEY (conv, bucket)) \
             WITH CLUSTERING ORDER BY (bucket ASC)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.conv_meta (conv text PRIMARY KEY, last_seq bigint)"
        ),
        format!("CREATE TABLE IF NOT EXISTS {ks}.seq_alloc (conv text PRIMARY KEY, next bigint)"),
        // Rows only ever expire, so time-window compaction drops whole expired
        // sstables instead of rewriting them; the table default TTL covers a
        // write that forgot its own.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.dedup (\
             conv text, sender text, client_id text, seq bigint, ts_ms bigint, \
             claimed_ms bigint, PRIMARY KEY ((conv, sender, client_id))) \
             WITH default_time_to_live = {dedup_ttl_s} \
             AND compaction = {{'class': 'TimeWindowCompactionStrategy', \
             'compaction_window_unit': 'HOURS', 'compaction_window_size': 1}}"
        ),
        // A keyspace made before claims carried their time gets the column.
        format!("ALTER TABLE {ks}.dedup ADD IF NOT EXISTS claimed_ms bigint"),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.user_convs (\
             user_id text, conv text, PRIMARY KEY (user_id, conv)) \
             WITH CLUSTERING ORDER BY (conv ASC)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.read_pos (\
             user_id text, conv text, read_seq bigint, PRIMARY KEY (user_id, conv)) \
             WITH CLUSTERING ORDER BY (conv ASC)"
        ),
        // `frozen`: the member list is replaced whole, as one cell, never edited
        // element by element.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.chat_groups (\
             id text PRIMARY KEY, name text, owner text, members frozen<list<text>>)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.room_settings (room text PRIMARY KEY, slow_mode_s bigint)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.last_seen (user_id text PRIMARY KEY, at_ms bigint)"
        ),
        // Samples only ever expire, as dedup entries do: time-window compaction
        // drops whole expired sstables.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.load_samples (\
             member text, at_ms bigint, expires_ms bigint, data blob, \
             PRIMARY KEY (member, at_ms)) WITH CLUSTERING ORDER BY (at_ms ASC) \
             AND compaction = {{'class': 'TimeWindowCompactionStrategy', \
             'compaction_window_unit': 'HOURS', 'compaction_window_size': 6}}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.load_members (\
             shard int, member text, expires_ms bigint, PRIMARY KEY (shard, member)) \
             WITH CLUSTERING ORDER BY (member ASC)"
        ),
    ]
}

/// Creates whatever part of the schema is missing.
pub(super) async fn create(session: &Session, options: &ScyllaOptions) -> StoreResult<()> {
    for text in ddl(options) {
        let mut statement = Statement::new(text);
        statement.set_request_timeout(Some(DDL_TIMEOUT.max(options.request_timeout)));
        session
            .query_unpaged(statement, ())
            .await
            .map_err(|e| query_error("creating the schema", e))?;
    }
    Ok(())
}
