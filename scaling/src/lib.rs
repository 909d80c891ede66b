//! chorus-scaling: predictive scaling for a Chorus cluster. The cluster's load
//! series is decomposed by Empirical Mode Decomposition, each component is
//! forecast by its own ARIMA model, the forecasts are summed into one with an
//! interval, and the forecast a node start-up ahead becomes a recommended node
//! count. No I/O: the node samples, gossips and stores; this crate computes.
//!
//! - [`series`]: load samples of a node, the cluster's series assembled from them.
//! - [`spline`]: cubic splines (not-a-knot), the envelopes of sifting.
//! - [`emd`]: Huang's EMD: sifting, mirrored ends, stopping rules, residue.
//! - [`arima`]: ARIMA(p, d, q) by exact maximum likelihood, forecasts with
//!   variances, and order selection (d by the KPSS test, p and q by AIC).
//! - [`forecast`]: EMD-ARIMA: the sum of the components' forecasts, with an interval.
//! - [`recommend`]: the node count from a forecast, with hysteresis.
//! - [`sim`]: the trace-driven simulator: a reactive HPA-like policy against
//!   the EMD-ARIMA policy, on seeded synthetic traces and public series.
//! - `error`: [`ScalingError`].

pub mod arima;
pub mod emd;
mod error;
pub mod forecast;
pub mod recommend;
pub mod series;
pub mod sim;
pub mod spline;

pub use error::ScalingError;
