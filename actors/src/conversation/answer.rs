//! The answer a `send` is owed, and the rule that it is always given.
//!
//! Every `send` gets exactly one `ack` or `reject` (docs/protocol.md §7.2,
//! §7.3). An [`Answer`] is that duty, carried with the message from the session
//! to the conversation, into the pending batch, into the store write and back.
//! Whoever holds it either answers ([`Answer::ack`], [`Answer::reject`]) or
//! hands it on ([`Answer::forwarded`], when another node now owes it). Dropped
//! while still owed — a mailbox dropped with a failed entity, a state dropped
//! with its pending batch, a retry waiting on a write that never finished — it
//! rejects with `internal`, so the client retries now instead of waiting for an
//! ack that never comes; the retry finds its seq in the idempotency window if the
//! message was in fact stored.

use chorus_wire::ErrorCode;

use crate::outbound::SharedFrame;
use crate::remote::SessionRef;

/// What an answer dropped while owed tells the client.
const LOST: &str = "conversation restarted; retry";

/// The `ack` or `reject` a `send` is owed (see the module docs).
#[derive(Debug)]
pub struct Answer {
    session: SessionRef,
    /// The client's message id.
    id: String,
    owed: bool,
}

impl Answer {
    /// The answer `session` is owed for its message `id`.
    pub fn new(session: SessionRef, id: String) -> Self {
        Self {
            session,
            id,
            owed: true,
        }
    }

    /// The session that gets the answer.
    pub fn session(&self) -> &SessionRef {
        &self.session
    }

    /// The client's message id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Answers with `ack` (a frame shared by every session owed the same ack).
    pub(crate) fn ack(mut self, frame: &SharedFrame) {
        self.owed = false;
        self.session.push(frame.clone());
    }

    /// Answers with `reject`.
    pub(crate) fn reject(mut self, code: ErrorCode, message: &str) {
        self.owed = false;
        self.session.reject(&self.id, code, message, None);
    }

    /// Another node owes the answer now: the message went to it.
    pub(crate) fn forwarded(mut self) {
        self.owed = false;
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if self.owed {
            self.session
                .reject(&self.id, ErrorCode::Internal, LOST, None);
        }
    }
}
