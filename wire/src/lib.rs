//! Chorus client protocol v1, without I/O.
//!
//! The contract is `docs/protocol.md`, with the byte layouts and golden vectors.
//!
//! - [`frame`]: every client and server frame, shared by both encodings.
//! - [`backoff`]: the one retry rule (doubling, capped, equal jitter) of client and node.
//! - [`codec`]: the only place that knows bincode and serde_json: binary and JSON
//!   encodings, the TCP length prefix, typed decode errors.
//! - [`fit`]: list frames (history pages, conversation lists, live batches) cut or
//!   split to fit the frame limit as encoded.
//! - [`identity`]: the user and roles a token grants.
//! - [`ids`]: id rules, conversation ids (`dm:a:b`, `group:g`, `live:r`) and send targets.
//! - [`limits`]: frame, body and id limits with their defaults.
//! - [`trailing`]: fields appended to v1 frames that v1 peers leave out.

pub mod backoff;
pub mod cluster;
pub mod codec;
pub mod fit;
pub mod frame;
pub mod identity;
pub mod ids;
pub mod limits;
pub mod trailing;

pub use codec::{DecodeError, Encoding};
pub use frame::*;
pub use ids::{ConvId, IdError, Target};
pub use limits::Limits;
