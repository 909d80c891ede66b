//! The contract between a Chorus node's admin listener and its tools
//! (`chorusctl`, `chorus-loadtest`): every route, every request and answer as a
//! Rust type, and the OpenAPI document generated from them.
//!
//! The node serves what [`Endpoint::route`] lists and nothing else; it answers
//! each route with the type named there, and serves [`openapi::document`] at
//! `GET /admin/openapi.json`. `chorusctl` reads the same types back, strictly:
//! a field it does not know is ignored (a newer node may add some), a required
//! field that is missing or of another type is an error naming it.
//!
//! - [`routes`]: [`Endpoint`], the one list of routes, with method, path,
//!   access, body and answer of each.
//! - [`openapi`]: the OpenAPI 3.1 document, built from [`routes`].
//! - [`cluster`]: the node and its cluster: status, members, shards, where, drain.
//! - [`users`]: kicking a user, issuing client tokens.
//! - [`filter`]: the word filter: reload, test.
//! - [`tls`]: reloading the certificates.
//! - [`live`]: live rooms' slow mode.
//! - [`scaling`]: predictive scaling: status, forecast, series.
//! - [`error`]: the body of every failure.
//! - `client` (feature `client`): one HTTP/1.1 exchange with hyper, the body
//!   read under a bound.
//!
//! Adding an endpoint: a variant of [`Endpoint`] and its [`Route`], its types
//! in the module of its family, a handler in the node's router (which will not
//! compile without one), and a row in docs/operations.md.

#[cfg(feature = "client")]
pub mod client;
pub mod cluster;
pub mod error;
pub mod filter;
pub mod live;
pub mod openapi;
pub mod routes;
pub mod scaling;
pub mod tls;
pub mod users;

#[cfg(test)]
mod tests;

pub use error::ErrorBody;
pub use routes::{Access, Answer, Endpoint, Method, Route};
