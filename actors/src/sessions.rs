//! The node-local directory of connected sessions, by user and by id.
//!
//! It is the truth a User entity rebuilds itself from when it (re)starts, the list
//! an operator's kick or a drain walks, and where frames from other nodes find
//! their session. It also knows which users this node's sessions watch the
//! presence of, so a User that restarts or moves gets its watchers back.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::outbound::{SessionHandle, SessionId};

#[derive(Debug, Default)]
struct Directory {
    by_user: HashMap<String, Vec<SessionHandle>>,
    by_id: HashMap<SessionId, SessionHandle>,
    /// Watched user → this node's sessions watching them.
    watching: HashMap<String, Vec<SessionHandle>>,
}

/// Sessions connected to this node.
#[derive(Debug, Default)]
pub struct LocalSessions {
    dir: Mutex<Directory>,
}

impl LocalSessions {
    fn lock(&self) -> parking_lot::MutexGuard<'_, Directory> {
        // Every critical section is a few inserts/removes: a poisoned lock is usable.
        self.dir.lock()
    }

    /// Records a session.
    pub fn register(&self, handle: &SessionHandle) {
        let mut dir = self.lock();
        dir.by_user
            .entry(handle.user().to_string())
            .or_default()
            .push(handle.clone());
        dir.by_id.insert(handle.id(), handle.clone());
        metrics::gauge!("chorus_sessions").increment(1.0);
    }

    /// Forgets a session.
    pub fn unregister(&self, user: &str, id: SessionId) {
        let mut dir = self.lock();
        if dir.by_id.remove(&id).is_some() {
            metrics::gauge!("chorus_sessions").decrement(1.0);
        }
        if let Some(list) = dir.by_user.get_mut(user) {
            list.retain(|h| h.id() != id);
            if list.is_empty() {
                dir.by_user.remove(user);
            }
        }
    }

    /// A user's sessions on this node.
    pub fn of(&self, user: &str) -> Vec<SessionHandle> {
        self.lock().by_user.get(user).cloned().unwrap_or_default()
    }

    /// The session with this id, if it is connected here.
    pub fn get(&self, id: SessionId) -> Option<SessionHandle> {
        self.lock().by_id.get(&id).cloned()
    }

    /// Every session on this node.
    pub fn all(&self) -> Vec<SessionHandle> {
        self.lock().by_id.values().cloned().collect()
    }

    /// `handle` watches the presence of `user`.
    pub fn watch(&self, user: &str, handle: &SessionHandle) {
        let mut dir = self.lock();
        let list = dir.watching.entry(user.to_string()).or_default();
        if !list.iter().any(|h| h.id() == handle.id()) {
            list.push(handle.clone());
        }
    }

    /// The session `id` no longer watches `user`.
    pub fn unwatch(&self, user: &str, id: SessionId) {
        let mut dir = self.lock();
        if let Some(list) = dir.watching.get_mut(user) {
            list.retain(|h| h.id() != id);
            if list.is_empty() {
                dir.watching.remove(user);
            }
        }
    }

    /// This node's sessions watching `user`.
    pub fn watchers_of(&self, user: &str) -> Vec<SessionHandle> {
        self.lock().watching.get(user).cloned().unwrap_or_default()
    }

    /// Every watched user with this node's sessions watching them.
    pub fn watches(&self) -> Vec<(String, Vec<SessionHandle>)> {
        let dir = self.lock();
        dir.watching
            .iter()
            .map(|(user, list)| (user.clone(), list.clone()))
            .collect()
    }

    /// Number of sessions on this node.
    pub fn count(&self) -> usize {
        self.lock().by_id.len()
    }
}
