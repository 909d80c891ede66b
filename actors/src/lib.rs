//! Chorus behaviour: what happens to a frame between decoding and the socket, with
//! no sockets of its own.
//!
//! ```text
//! gateway (node) ── Session ──► ShardRegion ──► Conversation ──► store (persist, then ack)
//!                      ▲                            │
//!                      └──── SessionHandle ◄── User ◄┘ (fan-out of msg / receipt)
//! ```
//!
//! - [`outbound`]: [`OutFrame`](outbound::OutFrame) (encoded once, shared) and
//!   [`SessionHandle`](outbound::SessionHandle), a session's bounded queue.
//! - [`budget`]: a session's one in-flight budget for every request, held by each
//!   request until its answer is written.
//! - [`sessions`]: the node-local directory of connected sessions per user.
//! - [`region`]: [`ShardRegion`](region::ShardRegion), which finds or spawns entities,
//!   and the supervisor that counts and restarts failed ones.
//! - [`conversation`]: the Conversation entity: access, seqs, dedup, group commit,
//!   fan-out, groups.
//! - [`user`]: the User entity: a user's online sessions.
//! - [`live`]: the LiveRoom entity and the per-node RoomFanout of danmaku.
//! - [`ratelimit`]: per-user token buckets.
//! - [`session`]: the protocol logic of one authenticated connection.
//! - [`settings`]: the knobs these take from the node's configuration.

pub mod budget;
pub mod conversation;
pub mod live;
pub mod moderation;
pub mod outbound;
pub mod placement;
pub mod ratelimit;
pub mod region;
pub mod remote;
mod routing;
pub mod session;
pub mod sessions;
pub mod settings;
mod shards;
pub mod user;

pub use outbound::{CloseReason, OutFrame, SessionHandle, SharedFrame};
pub use region::ShardRegion;
pub use session::{Identity, Roles, Session};
pub use settings::Settings;

/// Milliseconds since the Unix epoch, the protocol's `ts_ms`.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Sends `make()` to `actor` every `every` until the actor is gone: the idle
/// checks of entities. The task stops when the returned [`Ticker`] is dropped
/// with the actor's state, however the actor ends.
pub(crate) fn spawn_ticker<M: ractor::Message>(
    actor: ractor::ActorRef<M>,
    every: std::time::Duration,
    make: fn() -> M,
) -> Ticker {
    Ticker(tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.tick().await;
        loop {
            interval.tick().await;
            if actor.send_message(make()).is_err() {
                break;
            }
        }
    }))
}

/// A periodic task owned by an actor's state; aborted when dropped.
#[derive(Debug)]
pub(crate) struct Ticker(tokio::task::JoinHandle<()>);

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.abort();
    }
}
