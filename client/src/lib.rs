//! The Chorus Rust client SDK: one [`Client`] per user session, over TCP or WebSocket,
//! that reconnects, resends and catches up by itself.
//!
//! ```no_run
//! # async fn demo() -> Result<(), chorus_client::ClientError> {
//! use chorus_client::{Client, ClientConfig, Event, Transport};
//!
//! let cfg = ClientConfig::new("127.0.0.1:7400", Transport::Tcp, "alice");
//! let (client, mut events) = Client::connect(cfg).await?;
//! let ack = client.send("user:bob", "hello").await?;
//! println!("stored as seq {} of {}", ack.seq, ack.conv);
//! while let Some(event) = events.next().await {
//!     if let Event::Message(m) = event {
//!         println!("{}: {}", m.from, m.body);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Modules:
//!
//! - [`config`]: [`ClientConfig`] and [`Transport`] — endpoints, timeouts, reconnect,
//!   heartbeat, resume positions.
//! - `client`: the [`Client`] handle and every request with its typed answer
//!   ([`Ack`], [`HistoryPage`], [`Group`], [`LiveJoined`], [`Welcome`]).
//! - `events`: [`Events`], the stream of [`Event`]s — messages (at most once per
//!   conversation and seq, in order, gaps repaired), receipts, live batches,
//!   connection changes, resyncs.
//! - `error`: [`ClientError`].
//! - `connection`: TCP and WebSocket framing, the `hello` handshake, endpoint
//!   rotation and reconnect backoff.
//! - `tls`: [`TlsRoots`] — `tls://` and `wss://` endpoints with a CA file or the
//!   system's roots.
//! - `driver`: the connection task — the session loop, reconnects, resync.
//! - `inflight`: the commands of the handles, and every answer the node owes:
//!   requests by `ref`, sends by id (re-sent after a reconnect), pings.
//! - `resync`: held seq per conversation, de-duplication, gap repair and resync, as a
//!   pure state machine.
//! - [`heartbeat`]: ping scheduling and dead-connection detection behind a policy,
//!   fixed or adaptive ([`AdaptiveHeartbeat`]: learns the NAT's idle timeout, one
//!   [`Record`] per network, kept in a [`HeartbeatStore`]).
//!
//! Frames and encodings come from `chorus-wire`; the wire types that appear in this
//! API are re-exported here.

mod client;
pub mod config;
mod connection;
mod driver;
mod error;
mod events;
pub mod heartbeat;
mod inflight;
mod resync;
mod tls;

pub use chorus_wire::{
    ConversationItem, ErrorCode, HeartbeatInfo, LimitsInfo, LiveItem, Message, PresenceStatus,
    Prio, TypingState,
};
pub use client::{Ack, Client, Group, HistoryPage, LiveJoined};
pub use config::{ClientConfig, Transport};
pub use connection::Welcome;
pub use error::ClientError;
pub use events::{Event, Events};
pub use heartbeat::{
    AdaptiveHeartbeat, AdaptiveParams, HeartbeatStore, MemoryStore, Phase, Record,
};
pub use tls::{Stream, TlsRoots};
