//! The Chorus node: everything that touches sockets, wired to the behaviour in
//! `chorus-actors` and the storage in `chorus-store`.
//!
//! - [`server`]: [`Node`](server::Node), start and clean shutdown.
//! - [`gateway`]: TCP and WebSocket listeners and the per-connection task.
//! - [`auth`]: `dev` and `jwt` tokens (docs/security.md, "Client tokens").
//! - [`admin`]: `/healthz`, `/metrics`, `/admin/*`, the routes and types of
//!   `chorus-admin-api` (described at `/admin/openapi.json`).
//! - [`health`]: the store's health behind `/healthz`.
//! - [`cli`]: `chorus serve` flags (docs/operations.md, "Running a node").
//! - [`ctl`]: `chorusctl`, the operator's client of the admin API (the same types).
//! - [`drain`]: leaving the cluster: `goaway`, shards handed off, exit.
//! - [`tls`]: certificates from `[tls]`, reloadable, for every listener.
//! - [`telemetry`]: logging and the Prometheus recorder.
//! - [`scaling`]: load samples, gossip, EMD-ARIMA forecasts, the recommended
//!   node count and the actuator.

pub mod admin;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod ctl;
pub mod drain;
pub mod gateway;
pub mod health;
pub mod scaling;
pub mod server;
pub mod telemetry;
pub mod tls;

pub use server::{BoundAddrs, Node, StartError};
