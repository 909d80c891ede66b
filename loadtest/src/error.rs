//! [`LoadError`]: why a scenario could not run (as opposed to a run whose checks
//! failed, which is a report with `passed: false`).

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The options cannot work (e.g. an odd number of users for 1:1 pairs).
    #[error("invalid options: {0}")]
    Config(String),
    /// A target is not a loopback address: this tool only loads this machine.
    #[error("refusing a non-loopback target: {0}")]
    NotLoopback(String),
    /// The scenario's setup failed (clients could not connect, a group could not be
    /// created, the relay could not bind).
    #[error("setup failed: {0}")]
    Setup(String),
    /// Writing the report or the plot failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Drawing the plot failed.
    #[error("plot: {0}")]
    Plot(String),
}
