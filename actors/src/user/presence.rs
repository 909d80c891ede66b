//! A User's presence (protocol 1.1): what its watchers were last told, and
//! when it changes.
//!
//! The User entity holds every session of its user, on every node, so it is
//! where "online" is decided: online while at least one session is attached.
//! Going online is shown at once. Going offline waits for the flap window
//! ([`PRESENCE_FLAP_MS`]) after the last session left, so a client that
//! reconnects within it shows no change; the `offline` is sent when the window
//! closes, with `last_seen_ms` the time the last session left.
//!
//! A session of a dead node stops counting when its link is down
//! (`SessionRef::is_closed`): while a User has watchers and sessions on other
//! nodes it looks again every [`POLL`], so a killed node's users go offline
//! within the failure-detection time plus the flap window.
//!
//! The last-seen time is kept in the store (`MessageStore::set_last_seen`,
//! written when `offline` is shown, and by a session that closes the last
//! session of a user whose entity does not run), and read once by an entity
//! that must tell a watcher `offline` before it learnt the time itself.
//!
//! Watchers are sessions (of any node) that sent `presence_sub`. They pin the
//! entity: a watched User is never idle and does not leave under pressure, or
//! its watchers would stop hearing of it. Their number per user is bounded by
//! [`MAX_WATCHERS`]; metrics `chorus_presence_watchers` (gauge, all Users of
//! this node), `chorus_presence_changes_total{status}`,
//! `chorus_presence_watchers_refused_total`.

use std::time::{Duration, Instant};

use chorus_wire::limits::PRESENCE_FLAP_MS;
use chorus_wire::{ErrorCode, PresenceStatus, ServerFrame};

use crate::outbound::{OutFrame, SessionId};
use crate::remote::SessionRef;

/// The flap window.
pub(crate) const FLAP: Duration = Duration::from_millis(PRESENCE_FLAP_MS);

/// How often a watched User with sessions on other nodes looks for dead ones.
pub(crate) const POLL: Duration = Duration::from_secs(1);

/// Most sessions watching one user; a watch past it is told `error`.
pub(crate) const MAX_WATCHERS: usize = 65_536;

/// What a User's watchers know, and what is about to change.
#[derive(Debug)]
pub(super) struct Presence {
    watchers: Vec<SessionRef>,
    shown: PresenceStatus,
    /// When the user's last session closed (ms since the epoch).
    last_seen_ms: Option<u64>,
    /// Whether `last_seen_ms` is known: read from the store, or set here.
    last_seen_known: bool,
    /// The last session left at this instant: `offline` is shown once the
    /// flap window has passed without another attaching.
    leaving: Option<(Instant, u64)>,
}

/// How a watcher comes to a User.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Watch {
    /// `presence_sub`: told the presence at once.
    New,
    /// Its node sent the watch again after the placement changed: told only
    /// if this entity did not have it (it is new here, and the watcher may
    /// have missed a change).
    Renewed,
    /// Taken back from this node's directory by a User that restarted: it
    /// hears the next change.
    Restored,
}

/// What the User does next for its presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Nothing to look at again.
    Idle,
    /// Look again after this long.
    CheckIn(Duration),
}

impl Presence {
    /// The presence of a User starting with (`online`) or without sessions.
    pub(super) fn new(online: bool, last_seen_ms: Option<u64>) -> Self {
        Self {
            watchers: Vec::new(),
            shown: if online {
                PresenceStatus::Online
            } else {
                PresenceStatus::Offline
            },
            last_seen_known: last_seen_ms.is_some(),
            last_seen_ms,
            leaving: None,
        }
    }

    /// Whether the stored last-seen time is wanted before telling a watcher:
    /// the user shows offline, and this entity has not learnt it yet.
    pub(super) fn needs_last_seen(&self) -> bool {
        self.shown == PresenceStatus::Offline && !self.last_seen_known
    }

    /// The last-seen time read from the store.
    pub(super) fn stored_last_seen(&mut self, at_ms: Option<u64>) {
        self.last_seen_known = true;
        self.last_seen_ms = self.last_seen_ms.max(at_ms);
    }

    fn frame(&self, user: &str) -> ServerFrame {
        ServerFrame::Presence {
            user: user.to_string(),
            status: self.shown,
            last_seen_ms: match self.shown {
                PresenceStatus::Online => None,
                PresenceStatus::Offline => self.last_seen_ms,
            },
        }
    }

    /// Whether any session watches (closed ones dropped first).
    pub(super) fn is_watched(&mut self) -> bool {
        self.prune();
        !self.watchers.is_empty()
    }

    /// Whether any session watches (closed ones included).
    pub(super) fn has_watchers(&self) -> bool {
        !self.watchers.is_empty()
    }

    fn prune(&mut self) {
        let before = self.watchers.len();
        self.watchers.retain(|w| !w.is_closed());
        gauge_down(before - self.watchers.len());
    }

    /// `session` watches; whether it is told the current presence at once
    /// depends on `how`.
    pub(super) fn watch(&mut self, user: &str, session: SessionRef, how: Watch) {
        if let Some(old) = self.watchers.iter_mut().find(|w| w.id() == session.id()) {
            *old = session.clone();
            if how != Watch::New {
                return;
            }
        } else {
            if self.watchers.len() >= MAX_WATCHERS {
                self.prune();
            }
            if self.watchers.len() >= MAX_WATCHERS {
                metrics::counter!("chorus_presence_watchers_refused_total").increment(1);
                session.send(ServerFrame::Error {
                    reference: None,
                    code: ErrorCode::Overloaded,
                    message: format!("too many sessions watch {user}"),
                });
                return;
            }
            metrics::gauge!("chorus_presence_watchers").increment(1.0);
            self.watchers.push(session.clone());
            if how == Watch::Restored {
                return;
            }
        }
        session.send(self.frame(user));
    }

    /// The session with this id stops watching.
    pub(super) fn unwatch(&mut self, id: SessionId) {
        let before = self.watchers.len();
        self.watchers.retain(|w| w.id() != id);
        gauge_down(before - self.watchers.len());
    }

    /// The User's sessions as they are now (`any`: at least one attached), at
    /// `now` / `now_ms`: starts or ends the flap window, or shows `offline`
    /// once it has passed. Returns when to look again, and the `last_seen_ms`
    /// just shown, if `offline` was.
    pub(super) fn sessions_are(
        &mut self,
        user: &str,
        any: bool,
        remote: bool,
        now: Instant,
        now_ms: u64,
    ) -> (Next, Option<u64>) {
        if any {
            self.leaving = None;
            if self.shown == PresenceStatus::Offline {
                self.show(user, PresenceStatus::Online);
            }
            let poll = remote && !self.watchers.is_empty();
            return (
                if poll {
                    Next::CheckIn(POLL)
                } else {
                    Next::Idle
                },
                None,
            );
        }
        if self.shown == PresenceStatus::Offline {
            return (Next::Idle, None);
        }
        let (since, at_ms) = *self.leaving.get_or_insert((now, now_ms));
        let waited = now.saturating_duration_since(since);
        if waited < FLAP {
            return (Next::CheckIn(FLAP - waited), None);
        }
        self.leaving = None;
        self.last_seen_ms = Some(at_ms);
        self.last_seen_known = true;
        self.show(user, PresenceStatus::Offline);
        (Next::Idle, Some(at_ms))
    }

    fn show(&mut self, user: &str, status: PresenceStatus) {
        self.shown = status;
        let label = match status {
            PresenceStatus::Online => "online",
            PresenceStatus::Offline => "offline",
        };
        metrics::counter!("chorus_presence_changes_total", "status" => label).increment(1);
        if self.watchers.is_empty() {
            return;
        }
        let frame = OutFrame::new(self.frame(user));
        let mut dead = false;
        for w in &self.watchers {
            if !w.push(frame.clone()) {
                dead = true;
            }
        }
        if dead {
            self.prune();
        }
    }
}

/// The entity stopped (or failed): its watchers no longer count here.
impl Drop for Presence {
    fn drop(&mut self) {
        gauge_down(self.watchers.len());
    }
}

fn gauge_down(n: usize) {
    if n > 0 {
        metrics::gauge!("chorus_presence_watchers").decrement(n as f64);
    }
}

#[cfg(test)]
mod tests;
