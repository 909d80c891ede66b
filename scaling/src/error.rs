//! [`ScalingError`]: what the numerical parts refuse, and why.

/// An input the scaling code cannot work with. Each variant says which step
/// refused it; none of them is a bug of the caller's data source alone, so the
/// node logs them and keeps its last recommendation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScalingError {
    /// Spline knots that do not define a spline.
    #[error("spline: {0}")]
    Spline(&'static str),
    /// A series too short or not finite for the step that needs it.
    #[error("series: {0}")]
    Series(String),
    /// An ARIMA order the fit does not support, or a fit that did not converge
    /// to a finite likelihood.
    #[error("arima: {0}")]
    Arima(String),
    /// A policy or recommender setting that makes no sense (zero capacity, ...).
    #[error("settings: {0}")]
    Settings(String),
}
