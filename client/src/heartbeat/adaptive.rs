//! The adaptive policy: the learner of `probe` applied to the network the application
//! says it is on, with one [`Record`] per network kept in a [`HeartbeatStore`].
//!
//! What counts as evidence: a heartbeat tells something about interval `I` only if
//! the link was quiet for about `I` before its ping (within half a step below: the
//! pong of the previous heartbeat took a round trip). A link busy with other frames
//! keeps the NAT mapping alive whatever the interval, so its heartbeats are ignored,
//! and so is a lost heartbeat whose ping left after more than `I` of silence (the
//! process was suspended, so `I` was not what was tried).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chorus_wire::HeartbeatInfo;
use tokio::sync::watch;

use super::HeartbeatPolicy;
use super::probe::{AdaptiveParams, Bounds, Record};
use super::store::{HeartbeatStore, MemoryStore};

/// Configuration of the adaptive heartbeat (see
/// [`ClientConfig::adaptive_heartbeat`](crate::ClientConfig::adaptive_heartbeat)).
#[derive(Clone)]
pub struct AdaptiveHeartbeat {
    /// Tuning; see [`AdaptiveParams`] for the defaults.
    pub params: AdaptiveParams,
    /// The network the client starts on, as the application names it (for example
    /// `"wifi:<ssid>"` or `"cell:<carrier>"`); change it with
    /// [`Client::set_network`](crate::Client::set_network).
    pub network: String,
    /// Where the learned records are kept; [`MemoryStore`] by default. Clients that
    /// share a store share its records, so give each client of a device its own
    /// (or let only one of them learn).
    pub store: Arc<dyn HeartbeatStore>,
}

impl AdaptiveHeartbeat {
    /// Default parameters and an in-memory store, starting on `network`.
    pub fn new(network: impl Into<String>) -> Self {
        Self {
            params: AdaptiveParams::default(),
            network: network.into(),
            store: Arc::new(MemoryStore::new()),
        }
    }
}

impl fmt::Debug for AdaptiveHeartbeat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveHeartbeat")
            .field("params", &self.params)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

/// The client handle's side of the network name: [`Adaptive`] picks a change up at
/// its next heartbeat.
#[derive(Debug)]
pub(crate) struct NetworkSwitch(watch::Sender<String>);

impl NetworkSwitch {
    /// The client is now on `network`.
    pub(crate) fn set(&self, network: &str) {
        self.0.send_if_modified(|current| {
            let changed = current != network;
            if changed {
                network.clone_into(current);
            }
            changed
        });
    }
}

/// The adaptive [`HeartbeatPolicy`].
pub(crate) struct Adaptive {
    params: AdaptiveParams,
    store: Arc<dyn HeartbeatStore>,
    /// Names set through [`NetworkSwitch`].
    networks: watch::Receiver<String>,
    /// The network `record` belongs to.
    network: String,
    record: Record,
    /// The parameters under the current node's ceiling.
    bounds: Bounds,
}

impl Adaptive {
    /// The policy for `cfg`, with its record loaded, and the switch that changes its
    /// network.
    pub(crate) fn new(cfg: &AdaptiveHeartbeat) -> (Self, NetworkSwitch) {
        let (tx, networks) = watch::channel(cfg.network.clone());
        let bounds = Bounds::new(&cfg.params, None);
        let mut policy = Self {
            params: cfg.params,
            store: cfg.store.clone(),
            networks,
            network: cfg.network.clone(),
            record: Record::new(&cfg.params),
            bounds,
        };
        policy.record = policy.load(&cfg.network);
        (policy, NetworkSwitch(tx))
    }

    fn load(&self, network: &str) -> Record {
        let mut record = self
            .store
            .load(network)
            .unwrap_or_else(|| Record::new(&self.params));
        record.fit(&self.bounds);
        record
    }

    /// Moves to the network last set, if it changed; true when it did. The old
    /// record is already saved (every change is).
    fn switch_network(&mut self) -> bool {
        if !self.networks.has_changed().unwrap_or(false) {
            return false;
        }
        let network = self.networks.borrow_and_update().clone();
        if network == self.network {
            return false;
        }
        self.record = self.load(&network);
        tracing::info!(
            from = %self.network, to = %network,
            interval_ms = self.record.interval.as_millis(), phase = ?self.record.phase,
            "heartbeat: network changed"
        );
        self.network = network;
        true
    }

    /// Applies `change` to the record and saves it if it changed.
    fn update(&mut self, change: impl FnOnce(&mut Record, &Bounds)) {
        let before = self.record;
        change(&mut self.record, &self.bounds);
        if self.record == before {
            return;
        }
        if self.record.phase != before.phase || self.record.interval != before.interval {
            tracing::info!(
                network = %self.network,
                interval_ms = self.record.interval.as_millis(),
                phase = ?self.record.phase,
                "heartbeat: interval changed"
            );
        }
        self.store.save(&self.network, self.record);
    }

    /// Whether `quiet` of silence before a ping tried the current interval.
    fn tried(&self, quiet: Duration) -> bool {
        quiet + self.bounds.step / 2 >= self.record.interval
    }
}

impl HeartbeatPolicy for Adaptive {
    fn interval(&self) -> Duration {
        self.record.interval
    }

    fn pong_timeout(&self) -> Option<Duration> {
        Some(self.params.pong_timeout)
    }

    fn poll(&mut self) {
        self.switch_network();
    }

    fn on_welcome(&mut self, info: &HeartbeatInfo) {
        self.switch_network();
        let node_max = Duration::from_secs(u64::from(info.max_s.max(1)));
        self.bounds = Bounds::new(&self.params, Some(node_max));
        self.update(Record::fit);
    }

    fn on_alive(&mut self, quiet: Duration) {
        // An outcome measured across a network change belongs to neither network.
        if self.switch_network() || !self.tried(quiet) {
            return;
        }
        self.update(|r, b| r.on_success(quiet, b));
    }

    fn on_dead(&mut self, quiet: Duration) {
        if self.switch_network() || !self.tried(quiet) {
            return;
        }
        if quiet > self.record.interval + self.bounds.step / 2 {
            return;
        }
        self.update(Record::on_failure);
    }
}
