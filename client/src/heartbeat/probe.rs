//! The adaptive heartbeat's learner: a pure state machine over a [`Record`], fed one
//! outcome at a time. No clock, no socket, no store: the caller decides what counts
//! as an outcome and when to persist.
//!
//! ```text
//!                 k successes: interval += step
//!                 ┌──────┐
//!                 ▼      │         failure: interval := last good − margin,
//!   new ──► 1. Probing ──┴───────  or k successes at the ceiling ──────► 2. Stable
//!             ▲      ▲                                                 │   │   ▲
//!             │      └─────── k failures in a row: interval := min ─────┘   │   │
//!             │                                                             │   │ failure:
//!             │ k successes: interval += step      held ≥ reprobe_after:    │   │ back to the
//!             └──────────────────── 3. Reprobing ◄── interval += step ──────┘   │ stable value
//!                                        └──────────────────────────────────────┘
//! ```
//!
//! Decisions (see `docs/heartbeat.md`):
//! - While probing, the *first* failure backs off. Each failure is a connection that
//!   died unnoticed, so waiting for `k` of them costs `k` outages for little extra
//!   certainty; a step that was a blip is found again by the next re-probe.
//! - At a stable interval, one failure is a blip; `k` in a row mean the network is
//!   not the one that was learned, and probing starts over from the minimum.
//! - A failed re-probe returns to the stable interval it left, so repeated
//!   re-probes never drift down by a margin each time.

use std::time::Duration;

/// Tuning of the adaptive heartbeat. The defaults follow WeChat's Mars: start at
/// 4.5 min, step 1 min, keep 20 s below the last interval that survived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveParams {
    /// The first interval tried, and the floor: never ping more often than this
    /// (unless the node's `max_s` is lower still).
    pub min: Duration,
    /// The ceiling; the node's `welcome.heartbeat.max_s` lowers it further.
    pub max: Duration,
    /// How much the interval grows after `k` successes.
    pub step: Duration,
    /// How far below the last surviving interval the stable one is kept, for NAT
    /// timers that vary a little.
    pub margin: Duration,
    /// Successes in a row at an interval before stepping up; failures in a row at
    /// the stable interval before starting over from `min`.
    pub k: u32,
    /// Idle time survived at the stable interval after which one step up is tried
    /// again (the NAT may have become more generous).
    pub reprobe_after: Duration,
    /// How long a heartbeat ping may go unanswered before the connection is given
    /// up (sooner than the two silent intervals a fixed heartbeat waits).
    pub pong_timeout: Duration,
}

impl Default for AdaptiveParams {
    fn default() -> Self {
        Self {
            min: Duration::from_secs(270),
            max: Duration::from_secs(28 * 60),
            step: Duration::from_secs(60),
            margin: Duration::from_secs(20),
            k: 3,
            reprobe_after: Duration::from_secs(6 * 3600),
            pong_timeout: Duration::from_secs(15),
        }
    }
}

impl AdaptiveParams {
    /// Why these parameters cannot work, if they cannot.
    pub(crate) fn problem(&self) -> Option<&'static str> {
        if self.min.is_zero() || self.step.is_zero() || self.pong_timeout.is_zero() {
            return Some("adaptive heartbeat: min, step and pong_timeout must be positive");
        }
        if self.max < self.min {
            return Some("adaptive heartbeat: max must be at least min");
        }
        if self.margin >= self.step {
            return Some("adaptive heartbeat: margin must be smaller than step");
        }
        if self.k == 0 {
            return Some("adaptive heartbeat: k must be at least 1");
        }
        None
    }
}

/// Where the learner is for one network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// 1. Growing from the minimum by one step per `k` successes, until a failure.
    Probing {
        /// The largest interval that survived `k` heartbeats in this probe, if any:
        /// where a failure backs off to (less the margin).
        last_good: Option<Duration>,
    },
    /// 2. Holding the learned interval.
    Stable,
    /// 3. Trying one step above the stable interval, after holding it for
    ///    `reprobe_after`.
    Reprobing {
        /// The stable interval to return to if the step up fails.
        stable: Duration,
    },
}

/// What has been learned about one network: everything the learner needs to carry
/// on where it left off, so that an application can persist it across restarts
/// (the fields are public: store them in any format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Where the learner is.
    pub phase: Phase,
    /// The heartbeat interval in use.
    pub interval: Duration,
    /// Heartbeats in a row that survived at `interval`.
    pub successes: u32,
    /// Heartbeats in a row that were lost at `interval`.
    pub failures: u32,
    /// Idle time survived at the stable interval since it was reached or last
    /// re-probed; a re-probe is due at `reprobe_after`.
    pub held: Duration,
}

impl Record {
    /// A network never seen before: probing from `params.min`.
    pub fn new(params: &AdaptiveParams) -> Self {
        Self::probing(params.min, None)
    }

    fn probing(interval: Duration, last_good: Option<Duration>) -> Self {
        Self {
            phase: Phase::Probing { last_good },
            interval,
            successes: 0,
            failures: 0,
            held: Duration::ZERO,
        }
    }

    fn stable(interval: Duration) -> Self {
        Self {
            phase: Phase::Stable,
            ..Self::probing(interval, None)
        }
    }

    /// Whether the learner holds a learned interval (not probing).
    pub fn is_stable(&self) -> bool {
        matches!(self.phase, Phase::Stable)
    }
}

/// The bounds the learner works in: the parameters, with the ceiling lowered to the
/// node's `max_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
    pub(crate) step: Duration,
    pub(crate) margin: Duration,
    pub(crate) k: u32,
    pub(crate) reprobe_after: Duration,
}

impl Bounds {
    /// `params`, under a node ceiling of `node_max` when there is one. The node's
    /// ceiling wins over the client's floor: pinging less often than `max_s` would
    /// get the connection closed for silence.
    pub(crate) fn new(params: &AdaptiveParams, node_max: Option<Duration>) -> Self {
        let max = node_max.map_or(params.max, |m| params.max.min(m));
        Self {
            min: params.min.min(max),
            max,
            step: params.step,
            margin: params.margin,
            k: params.k.max(1),
            reprobe_after: params.reprobe_after,
        }
    }

    fn clamp(&self, d: Duration) -> Duration {
        d.max(self.min).min(self.max)
    }
}

impl Record {
    /// Brings a loaded (or older) record within `b`.
    pub(crate) fn fit(&mut self, b: &Bounds) {
        self.interval = b.clamp(self.interval);
        match &mut self.phase {
            Phase::Probing { last_good } => *last_good = last_good.map(|g| b.clamp(g)),
            Phase::Reprobing { stable } => *stable = b.clamp(*stable),
            Phase::Stable => {}
        }
    }

    /// A heartbeat survived `quiet` of silence at the current interval.
    pub(crate) fn on_success(&mut self, quiet: Duration, b: &Bounds) {
        self.failures = 0;
        match self.phase {
            Phase::Probing { .. } | Phase::Reprobing { .. } => {
                self.successes = self.successes.saturating_add(1);
                if self.successes < b.k {
                    return;
                }
                *self = if self.interval >= b.max {
                    // Nothing left to probe: the NAT keeps at least the ceiling.
                    Self::stable(self.interval)
                } else {
                    Self::probing(b.clamp(self.interval + b.step), Some(self.interval))
                };
            }
            Phase::Stable => {
                self.successes = self.successes.saturating_add(1);
                self.held = self.held.saturating_add(quiet);
                if self.held >= b.reprobe_after && self.interval < b.max {
                    *self = Self {
                        phase: Phase::Reprobing {
                            stable: self.interval,
                        },
                        ..Self::probing(b.clamp(self.interval + b.step), None)
                    };
                }
            }
        }
    }

    /// A heartbeat at the current interval was lost: the connection died while idle.
    pub(crate) fn on_failure(&mut self, b: &Bounds) {
        self.successes = 0;
        self.failures = self.failures.saturating_add(1);
        match self.phase {
            Phase::Probing { last_good } => {
                let backed_off = match last_good {
                    Some(good) => good.saturating_sub(b.margin),
                    // Nothing proven yet (a reset, or a ceiling that moved): one step
                    // and the margin below what failed.
                    None => self.interval.saturating_sub(b.step + b.margin),
                };
                if self.interval > b.min {
                    *self = Self::stable(b.clamp(backed_off));
                }
                // At the floor there is nowhere to go: keep probing there.
            }
            Phase::Stable => {
                if self.failures >= b.k {
                    *self = Self::probing(b.min, None);
                }
            }
            Phase::Reprobing { stable } => *self = Self::stable(stable),
        }
    }
}

#[cfg(test)]
mod tests;
