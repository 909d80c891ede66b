//! `[storage]`: where messages are kept.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::Problems;
use crate::rules::{host_port_error, keyspace_error};

/// Which `MessageStore` backend the node uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageBackend {
    /// fjall in `storage.path`: one node only.
    #[default]
    Embedded,
    /// A ScyllaDB or Apache Cassandra cluster shared by every node.
    Scylla,
}

impl StorageBackend {
    /// The value as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageBackend::Embedded => "embedded",
            StorageBackend::Scylla => "scylla",
        }
    }
}

/// The CQL consistency level of reads and writes on the `scylla` backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// One replica answers.
    One,
    /// A majority of the replicas in the local data centre answer.
    #[default]
    LocalQuorum,
    /// A majority of all replicas answer.
    Quorum,
}

impl Consistency {
    /// The value as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::One => "one",
            Consistency::LocalQuorum => "local_quorum",
            Consistency::Quorum => "quorum",
        }
    }
}

/// `[storage]`: the message store.
///
/// `path` and `fsync` concern `embedded`; the other keys concern `scylla`. Keys of the
/// backend not in use are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `embedded` or `scylla`. Default `embedded`.
    pub backend: StorageBackend,
    /// Data directory of `embedded`, relative to the working directory unless
    /// absolute. Default `data`. Only one node may use a directory at a time.
    pub path: PathBuf,
    /// Whether `embedded` fsyncs each batch before it is acked. Default `true`.
    /// Turning it off gives up the durable-ack guarantee on power loss or kill.
    pub fsync: bool,
    /// `"host:port"` of the database nodes the driver first connects to; required
    /// (non-empty) for `scylla`.
    pub contact_points: Vec<String>,
    /// Keyspace of the `scylla` backend, created if missing. Default `chorus`.
    pub keyspace: String,
    /// Replication factor used when the keyspace is created. Default 1.
    pub replication_factor: u32,
    /// Consistency level of reads and writes. Default `local_quorum`.
    pub consistency: Consistency,
    /// Timeout of one database request, in milliseconds. Default 5000.
    pub request_timeout_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: StorageBackend::Embedded,
            path: PathBuf::from("data"),
            fsync: true,
            contact_points: Vec::new(),
            keyspace: "chorus".into(),
            replication_factor: 1,
            consistency: Consistency::LocalQuorum,
            request_timeout_ms: 5_000,
        }
    }
}

impl StorageConfig {
    /// `request_timeout_ms` as a [`Duration`].
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub(crate) fn check(&self, problems: &mut Problems) {
        match self.backend {
            StorageBackend::Embedded => {
                if self.path.as_os_str().is_empty() {
                    problems.push(
                        "storage.path",
                        "must not be empty when storage.backend = \"embedded\"",
                    );
                }
            }
            StorageBackend::Scylla => {
                if self.contact_points.is_empty() {
                    problems.push(
                        "storage.contact_points",
                        "must not be empty when storage.backend = \"scylla\"",
                    );
                }
            }
        }
        // Checked whatever the backend: a typo is a typo, and switching backends
        // later should not reveal it.
        for (i, point) in self.contact_points.iter().enumerate() {
            if let Some(why) = host_port_error(point) {
                problems.push(format!("storage.contact_points[{i}]"), why);
            }
        }
        if let Some(why) = keyspace_error(&self.keyspace) {
            problems.push("storage.keyspace", why);
        }
        if self.replication_factor == 0 {
            problems.push("storage.replication_factor", "must be at least 1");
        }
        if self.request_timeout_ms == 0 {
            problems.push("storage.request_timeout_ms", "must be at least 1");
        }
    }
}
