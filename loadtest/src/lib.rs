//! chorus-loadtest: load scenarios against a running Chorus node, measured with HDR
//! histograms and reported as JSON (and an SVG latency plot).
//!
//! Every scenario is a library function the `chorus-loadtest` binary wraps in a thin
//! CLI, so tests run the same code against a node started in-process:
//!
//! - [`chat`]: users in 1:1 pairs (and optionally groups) send at a target total rate,
//!   open-loop; send→ack and send→delivery latency from each message's *intended*
//!   send time, and an exactly-once, in-order delivery check.
//! - [`connect`]: ramps idle connections at a rate and holds them; connect latency and
//!   the node's resident memory per connection.
//! - [`storm`]: every connection of a fleet with traffic history drops at once;
//!   time until all have reconnected and caught up, and nothing acked lost.
//! - [`live`]: thousands of viewers watch live rooms while senders send danmaku at
//!   a rate and in bursts; send→visible latency, item deliveries per second, the
//!   per-viewer accepted = delivered + Σ dropped check, and the node's memory.
//! - [`scaling_sim`]: no node: replays load traces through the HPA-like and the
//!   EMD-ARIMA scaling policies of `chorus-scaling` and compares them.
//! - [`ramp`]: connections and a message rate following a schedule over time,
//!   spread over one or more nodes (the load a predictive scaler should see
//!   coming).
//! - [`entities`]: one connection's requests for many conversations (of others,
//!   or its own); the node's running entities and memory before and after.
//!
//! Building blocks:
//!
//! - [`target`]: where the node listens and which transport to use (loopback only).
//! - `schedule`: the open-loop schedule of intended send times.
//! - `fleet`: SDK clients with one event task each, the per-user [`ledger`] inbox.
//! - [`ledger`]: message ids and bodies that carry their key and intended time, and
//!   the delivery check (missing, duplicates, out of order).
//! - `traffic`: the open-loop sender shared by `chat` and `storm`.
//! - [`latency`]: HDR histograms in µs, percentile summaries, per-second timelines.
//! - [`plot`]: the SVG latency plot.
//! - `raw`: a lean protocol connection (hello/welcome, then raw frames) from a
//!   chosen source address, for `connect` and the viewers of `live`.
//! - [`token`]: `hello` tokens — user ids, or HS256 JWTs with roles.
//! - [`memory`]: the node's resident memory sampled over a run.
//! - `relay`: a loopback TCP relay that can cut every connection at once, for `storm`.
//! - `node_http`: HTTP/1.1 (hyper) to the node's admin listener (metrics, kick).
//! - `progress`: a line on stderr every second.
//! - [`limits`]: the open-file limit.

pub mod chat;
pub mod connect;
pub mod entities;
mod error;
mod fleet;
pub mod latency;
pub mod ledger;
pub mod limits;
pub mod live;
pub mod memory;
mod node_http;
pub mod plot;
pub mod probe;
mod progress;
pub mod ramp;
mod raw;
mod relay;
pub mod scaling_sim;
mod schedule;
pub mod storm;
pub mod target;
pub mod token;
mod traffic;

pub use error::LoadError;
pub use plot::Plot;
pub use target::Target;
