//! The node-local directory of connected sessions, by user.
//!
//! It is the truth a User entity rebuilds itself from when it (re)starts, and the
//! list an operator's kick or a drain walks.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::outbound::{SessionHandle, SessionId};

/// Sessions connected to this node, by user id.
#[derive(Debug, Default)]
pub struct LocalSessions {
    by_user: Mutex<HashMap<String, Vec<SessionHandle>>>,
}

impl LocalSessions {
    /// Records a session.
    pub fn register(&self, handle: &SessionHandle) {
        let mut map = self.by_user.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(handle.user().to_string())
            .or_default()
            .push(handle.clone());
        metrics::gauge!("chorus_sessions").increment(1.0);
    }

    /// Forgets a session.
    pub fn unregister(&self, user: &str, id: SessionId) {
        let mut map = self.by_user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = map.get_mut(user) {
            let before = list.len();
            list.retain(|h| h.id() != id);
            if list.len() < before {
                metrics::gauge!("chorus_sessions").decrement(1.0);
            }
            if list.is_empty() {
                map.remove(user);
            }
        }
    }

    /// A user's sessions on this node.
    pub fn of(&self, user: &str) -> Vec<SessionHandle> {
        let map = self.by_user.lock().unwrap_or_else(|e| e.into_inner());
        map.get(user).cloned().unwrap_or_default()
    }

    /// Every session on this node.
    pub fn all(&self) -> Vec<SessionHandle> {
        let map = self.by_user.lock().unwrap_or_else(|e| e.into_inner());
        map.values().flatten().cloned().collect()
    }

    /// Number of sessions on this node.
    pub fn count(&self) -> usize {
        let map = self.by_user.lock().unwrap_or_else(|e| e.into_inner());
        map.values().map(Vec::len).sum()
    }
}
