//! Where learned heartbeat records live between connections and restarts: a trait the
//! application implements (a file, a key-value store, platform preferences), and an
//! in-memory default.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::probe::Record;

/// Persistence of one learned [`Record`] per network name.
///
/// Called on the client's connection task: when a network is first used (`load`)
/// and whenever its record changes (`save`, at most once per heartbeat). Keep both
/// quick — write to a cache and flush elsewhere if the medium is slow.
pub trait HeartbeatStore: Send + Sync + 'static {
    /// The record saved for `network`, if any.
    fn load(&self, network: &str) -> Option<Record>;
    /// Replaces the record of `network`.
    fn save(&self, network: &str, record: Record);
}

/// Records kept in memory, for the life of the process. Clones share the records,
/// so a clone kept by the application can read what the client learned.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    records: Arc<Mutex<HashMap<String, Record>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn records(&self) -> parking_lot::MutexGuard<'_, HashMap<String, Record>> {
        // A panic elsewhere while holding the lock leaves whole records behind.
        self.records.lock()
    }
}

impl HeartbeatStore for MemoryStore {
    fn load(&self, network: &str) -> Option<Record> {
        self.records().get(network).copied()
    }

    fn save(&self, network: &str, record: Record) {
        self.records().insert(network.to_string(), record);
    }
}
