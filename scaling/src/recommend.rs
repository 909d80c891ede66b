//! From a load (measured or forecast) to a number of nodes, and the hysteresis
//! that keeps that number from flapping.
//!
//! A node serves `per_node` units of load at 100 %; the cluster is sized so
//! that each node runs at `target` utilisation, which leaves headroom for what
//! a forecast misses. [`Recommender`] applies the rule Kubernetes' HPA uses for
//! stability, the same for both policies so that they are compared fairly:
//! more nodes are recommended at once, fewer only once every need seen during
//! the last `down_after_s` seconds was lower, and then the highest of them.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::error::ScalingError;

/// How much load a node takes, and how full it should run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// Load one node serves at 100 % (in the series' unit: connections,
    /// messages per second, ...).
    pub per_node: f64,
    /// Utilisation to size for, in (0, 1].
    pub target: f64,
    /// Never fewer nodes than this.
    pub min_nodes: u32,
    /// Never more nodes than this.
    pub max_nodes: u32,
}

impl Capacity {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ScalingError> {
        if !(self.per_node.is_finite() && self.per_node > 0.0) {
            return Err(ScalingError::Settings(
                "per-node capacity must be positive".into(),
            ));
        }
        if !(self.target > 0.0 && self.target <= 1.0) {
            return Err(ScalingError::Settings(
                "target utilisation must be in (0, 1]".into(),
            ));
        }
        if self.min_nodes == 0 || self.min_nodes > self.max_nodes {
            return Err(ScalingError::Settings(
                "need 1 <= min_nodes <= max_nodes".into(),
            ));
        }
        Ok(())
    }

    /// Nodes needed for `load` at the target utilisation, within the bounds. A
    /// non-finite load (a broken forecast) asks for the most nodes allowed.
    pub fn nodes_for(&self, load: f64) -> u32 {
        if !load.is_finite() {
            return self.max_nodes;
        }
        let raw = (load.max(0.0) / (self.per_node * self.target)).ceil();
        // `raw` is finite and non-negative; beyond u32 it is clamped anyway.
        let nodes = if raw >= f64::from(self.max_nodes) {
            self.max_nodes
        } else {
            raw as u32
        };
        nodes.clamp(self.min_nodes, self.max_nodes)
    }
}

/// The scale-down stabilisation: up at once, down to the highest need of the
/// last `down_after_s` seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommender {
    /// Length of the window, seconds.
    pub down_after_s: f64,
    /// Needs seen within the window: (time in seconds, nodes).
    window: VecDeque<(f64, u32)>,
    /// The current recommendation.
    current: Option<u32>,
}

/// Needs kept at most, whatever the window: a bound on memory if the caller
/// updates far more often than expected.
const MAX_WINDOW: usize = 100_000;

impl Recommender {
    /// A recommender with no history.
    pub fn new(down_after_s: f64) -> Self {
        Self {
            down_after_s,
            window: VecDeque::new(),
            current: None,
        }
    }

    /// The recommendation after a new need at `now_s` (non-decreasing times).
    pub fn update(&mut self, now_s: f64, need: u32) -> u32 {
        while self
            .window
            .front()
            .is_some_and(|&(t, _)| t < now_s - self.down_after_s)
            || self.window.len() >= MAX_WINDOW
        {
            self.window.pop_front();
        }
        self.window.push_back((now_s, need));
        let held = self.window.iter().map(|&(_, n)| n).max().unwrap_or(need);
        let next = match self.current {
            Some(cur) if need >= cur => need,
            Some(cur) => held.min(cur),
            None => need,
        };
        self.current = Some(next);
        next
    }

    /// The current recommendation, if any need was seen.
    pub fn current(&self) -> Option<u32> {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capacity() -> Capacity {
        Capacity {
            per_node: 100.0,
            target: 0.5,
            min_nodes: 1,
            max_nodes: 20,
        }
    }

    #[test]
    fn sizes_for_the_target_utilisation() {
        let c = capacity();
        assert!(c.validate().is_ok());
        assert_eq!(c.nodes_for(0.0), 1);
        assert_eq!(c.nodes_for(50.0), 1);
        assert_eq!(c.nodes_for(51.0), 2);
        assert_eq!(c.nodes_for(1e12), 20);
        assert_eq!(c.nodes_for(f64::NAN), 20);
        assert_eq!(c.nodes_for(-5.0), 1);
        for bad in [
            Capacity { per_node: 0.0, ..c },
            Capacity { target: 1.5, ..c },
            Capacity { min_nodes: 0, ..c },
            Capacity { min_nodes: 30, ..c },
        ] {
            assert!(bad.validate().is_err());
        }
    }

    #[test]
    fn scales_up_at_once_and_down_only_after_the_window() {
        let mut r = Recommender::new(300.0);
        assert_eq!(r.update(0.0, 3), 3);
        assert_eq!(r.update(15.0, 6), 6);
        // Lower needs within five minutes of the 6 keep it.
        assert_eq!(r.update(30.0, 2), 6);
        assert_eq!(r.update(300.0, 2), 6);
        // Once the 6 is older than the window, down to the highest left (2).
        assert_eq!(r.update(316.0, 2), 2);
        // Flapping needs within the window do not flap the recommendation.
        assert_eq!(r.update(330.0, 4), 4);
        assert_eq!(r.update(345.0, 3), 4);
        assert_eq!(r.update(360.0, 4), 4);
        assert_eq!(r.current(), Some(4));
    }
}
