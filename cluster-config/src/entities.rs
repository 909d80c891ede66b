//! `[entities]`: how many entities of each kind a node keeps running, and the
//! cache behind access checks.
//!
//! A node runs an actor per active user, conversation and live room. Past a
//! kind's cap, the least recently used of that kind passivate (and restart
//! from the store when next needed), so clients cannot grow a node's memory by
//! touching ever more entities. The defaults suit a node with 24 GiB of memory:
//! about 3.5 GiB for entities at the sizes measured in `docs/benchmarks.md`.

use serde::Deserialize;

use crate::error::Problems;

/// `[entities]`: caps on running entities per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EntitiesConfig {
    /// User entities running at most (users with traffic; an idle connection
    /// costs none). Default 200,000.
    pub max_users: u32,
    /// Conversation entities running at most. Default 100,000.
    pub max_conversations: u32,
    /// LiveRoom entities running at most. Default 10,000.
    pub max_live_rooms: u32,
    /// Group member ids the access cache holds at most (one per member, plus
    /// one per group). Default 1,000,000.
    pub group_cache_members: u32,
}

impl Default for EntitiesConfig {
    fn default() -> Self {
        Self {
            max_users: 200_000,
            max_conversations: 100_000,
            max_live_rooms: 10_000,
            group_cache_members: 1_000_000,
        }
    }
}

impl EntitiesConfig {
    pub(crate) fn check(&self, problems: &mut Problems) {
        let at_least_one = [
            ("entities.max_users", self.max_users),
            ("entities.max_conversations", self.max_conversations),
            ("entities.max_live_rooms", self.max_live_rooms),
            ("entities.group_cache_members", self.group_cache_members),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                problems.push(key, "must be at least 1");
            }
        }
    }
}
