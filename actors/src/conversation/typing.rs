//! `typing` (protocol 1.1): a member's "started / stopped typing", forwarded to
//! the conversation's other members and nothing else — never stored, never in
//! `history`, never replayed.
//!
//! Only a member may send one (`error` `forbidden` otherwise, without `ref`:
//! the frame has none). At most one per user per conversation is forwarded per
//! [`TYPING_INTERVAL_MS`]; the rest are dropped without an answer, counted in
//! `chorus_typing_dropped_total`. The limit lives here, in the one entity of
//! the conversation, so it holds for a user with several sessions on several
//! nodes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chorus_wire::limits::TYPING_INTERVAL_MS;
use chorus_wire::{ErrorCode, ServerFrame, TypingState};

use super::ConversationState;
use crate::outbound::OutFrame;
use crate::remote::SessionRef;

const INTERVAL: Duration = Duration::from_millis(TYPING_INTERVAL_MS);

/// When each member's last `typing` was forwarded. Only members get an entry
/// (access is checked first), so it is bounded by the conversation's size; it is
/// swept of entries older than the interval whenever it doubles.
#[derive(Debug, Default)]
pub(super) struct Recent {
    last: HashMap<String, Instant>,
    sweep_at: usize,
}

impl Recent {
    /// Whether a `typing` of `user` at `now` is forwarded (and, if so, notes it).
    fn admit(&mut self, user: &str, now: Instant) -> bool {
        if let Some(at) = self.last.get_mut(user) {
            if now.duration_since(*at) < INTERVAL {
                return false;
            }
            *at = now;
            return true;
        }
        if self.last.len() >= self.sweep_at {
            self.last.retain(|_, at| now.duration_since(*at) < INTERVAL);
            self.sweep_at = (self.last.len() * 2).max(16);
        }
        self.last.insert(user.to_string(), now);
        true
    }
}

/// Tells a session that its `typing` was refused.
pub(super) fn refuse(reply: &SessionRef, code: ErrorCode, message: &str) {
    reply.send(ServerFrame::Error {
        reference: None,
        code,
        message: message.to_string(),
    });
}

impl ConversationState {
    pub(super) async fn on_typing(&mut self, user: String, state: TypingState, reply: SessionRef) {
        if let Err((code, message)) = self.check_access(&user).await {
            refuse(&reply, code, &message);
            return;
        }
        if !self.typing.admit(&user, Instant::now()) {
            metrics::counter!("chorus_typing_dropped_total").increment(1);
            return;
        }
        metrics::counter!("chorus_typing_forwarded_total").increment(1);
        let others: Vec<String> = self.members().into_iter().filter(|m| *m != user).collect();
        let frame = OutFrame::new(ServerFrame::Typing {
            conv: self.key.clone(),
            user,
            state,
        });
        for member in &others {
            self.region.push_ephemeral(member, &frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_user_per_interval() {
        let mut recent = Recent::default();
        let t0 = Instant::now();
        assert!(recent.admit("a", t0));
        assert!(!recent.admit("a", t0 + Duration::from_millis(999)));
        assert!(
            recent.admit("b", t0 + Duration::from_millis(10)),
            "per user"
        );
        assert!(recent.admit("a", t0 + INTERVAL));
        assert!(!recent.admit("a", t0 + INTERVAL + Duration::from_millis(500)));
    }

    #[test]
    fn old_entries_are_swept() {
        let mut recent = Recent::default();
        let t0 = Instant::now();
        for i in 0..1000 {
            assert!(recent.admit(&format!("u{i}"), t0));
        }
        // Past the interval: the next sweep (when the map has doubled since
        // the last one) keeps only the recent entries.
        let later = t0 + INTERVAL * 2;
        for i in 0..30 {
            assert!(recent.admit(&format!("v{i}"), later));
        }
        assert!(recent.last.len() < 100, "swept: {}", recent.last.len());
    }
}
