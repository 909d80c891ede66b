//! The idempotency window in memory: the recent acks of a conversation, so a
//! retry is answered without a store read. The store remembers every key for
//! the whole window (`DEDUP_WINDOW_MS`); this remembers the last
//! [`RECENT_ACKS`] of them.

use std::collections::{HashMap, VecDeque};

/// Client message ids remembered in memory per conversation.
const RECENT_ACKS: usize = 4096;

/// A message's key: its sender and the client's id.
pub(super) type SendKey = (String, String);

/// `(sender, client id) → (seq, ts_ms)` of recent acked messages, oldest
/// forgotten first.
#[derive(Debug, Default)]
pub(super) struct RecentAcks {
    acks: HashMap<SendKey, (u64, u64)>,
    order: VecDeque<SendKey>,
}

impl RecentAcks {
    /// The seq and time a message was acked with, if remembered.
    pub(super) fn get(&self, key: &SendKey) -> Option<(u64, u64)> {
        self.acks.get(key).copied()
    }

    /// Remembers an ack, forgetting the oldest past the bound.
    pub(super) fn remember(&mut self, key: SendKey, seq: u64, ts_ms: u64) {
        if self.acks.insert(key.clone(), (seq, ts_ms)).is_none() {
            self.order.push_back(key);
            while self.order.len() > RECENT_ACKS {
                if let Some(old) = self.order.pop_front() {
                    self.acks.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{RECENT_ACKS, RecentAcks};

    #[test]
    fn the_oldest_acks_are_forgotten_past_the_bound() {
        let mut recent = RecentAcks::default();
        let key = |i: usize| ("alice".to_string(), format!("m{i}"));
        for i in 0..=RECENT_ACKS {
            recent.remember(key(i), i as u64 + 1, 7);
        }
        assert_eq!(recent.get(&key(0)), None);
        assert_eq!(recent.get(&key(1)), Some((2, 7)));
        assert_eq!(
            recent.get(&key(RECENT_ACKS)),
            Some((RECENT_ACKS as u64 + 1, 7))
        );
        // Remembering a key again neither moves nor duplicates it.
        recent.remember(key(1), 99, 8);
        assert_eq!(recent.get(&key(1)), Some((99, 8)));
        assert_eq!(recent.order.len(), RECENT_ACKS);
    }
}
