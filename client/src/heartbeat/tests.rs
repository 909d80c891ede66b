use std::sync::Arc;

use parking_lot::Mutex;

use super::*;

const INFO: HeartbeatInfo = HeartbeatInfo {
    min_s: 5,
    max_s: 300,
    idle_timeout_s: 605,
};

/// The node defaults: the announced interval within [30 s, 10 min].
const NODE: HeartbeatInfo = HeartbeatInfo {
    min_s: 30,
    max_s: 600,
    idle_timeout_s: 905,
};

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn fixed(ms: u64) -> Box<dyn HeartbeatPolicy> {
    Box::new(Fixed(Duration::from_millis(ms)))
}

#[test]
fn pings_at_once_then_every_interval() {
    let t0 = Instant::now();
    let mut hb = Heartbeat::new(fixed(30_000), t0);
    hb.start(t0, &INFO);
    assert_eq!(hb.tick(t0), Tick::Ping { interval_s: 30 });
    assert_eq!(hb.tick(t0), Tick::Wait);
    assert_eq!(hb.wake_at(), t0 + secs(30));
    hb.on_activity(t0 + secs(29));
    assert_eq!(hb.tick(t0 + secs(30)), Tick::Ping { interval_s: 30 });
    assert_eq!(hb.wake_at(), t0 + secs(60));
}

#[test]
fn silence_for_two_intervals_is_death() {
    let t0 = Instant::now();
    let mut hb = Heartbeat::new(fixed(1_000), t0);
    hb.start(t0, &INFO);
    let _ = hb.tick(t0);
    let _ = hb.tick(t0 + Duration::from_millis(1_000));
    assert_eq!(hb.wake_at(), t0 + Duration::from_millis(2_000));
    assert_eq!(hb.tick(t0 + Duration::from_millis(1_999)), Tick::Wait);
    assert_eq!(hb.tick(t0 + Duration::from_millis(2_000)), Tick::Dead);
}

#[test]
fn any_frame_keeps_the_connection_alive() {
    let t0 = Instant::now();
    let mut hb = Heartbeat::new(fixed(1_000), t0);
    hb.start(t0, &INFO);
    hb.on_activity(t0 + Duration::from_millis(1_500));
    assert_ne!(hb.tick(t0 + Duration::from_millis(3_000)), Tick::Dead);
    assert_eq!(hb.tick(t0 + Duration::from_millis(3_500)), Tick::Dead);
}

#[test]
fn announced_interval_rounds_up_to_whole_seconds() {
    let t0 = Instant::now();
    assert_eq!(Heartbeat::new(fixed(200), t0).interval_s(), 1);
    assert_eq!(Heartbeat::new(fixed(1_500), t0).interval_s(), 2);
    assert_eq!(Heartbeat::new(fixed(45_000), t0).interval_s(), 45);
}

#[test]
fn the_nodes_bounds_clamp_the_announcement_and_cap_the_interval() {
    let t0 = Instant::now();
    let mut hb = Heartbeat::new(fixed(200), t0);
    hb.start(t0, &INFO);
    assert_eq!(hb.interval_s(), 5, "announced as min_s, pinged more often");
    assert_eq!(hb.tick(t0), Tick::Ping { interval_s: 5 });
    assert_eq!(hb.wake_at(), t0 + Duration::from_millis(200));

    let mut hb = Heartbeat::new(fixed(900_000), t0);
    hb.start(t0, &INFO);
    assert_eq!(hb.tick(t0), Tick::Ping { interval_s: 300 });
    assert_eq!(
        hb.wake_at(),
        t0 + secs(300),
        "never less often than max_s, or the node would close the connection"
    );
}

/// A policy that records its callbacks.
struct Recording(Arc<Mutex<Vec<String>>>);

impl Recording {
    fn log(&self, what: String) {
        self.0.lock().push(what);
    }
}

impl HeartbeatPolicy for Recording {
    fn interval(&self) -> Duration {
        secs(10)
    }
    fn pong_timeout(&self) -> Option<Duration> {
        Some(secs(3))
    }
    fn on_welcome(&mut self, _info: &HeartbeatInfo) {
        self.log("welcome".into());
    }
    fn on_alive(&mut self, quiet: Duration) {
        self.log(format!("alive after {}s", quiet.as_secs()));
    }
    fn on_dead(&mut self, quiet: Duration) {
        self.log(format!("dead after {}s", quiet.as_secs()));
    }
}

fn recording() -> (Heartbeat, Arc<Mutex<Vec<String>>>, Instant) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let t0 = Instant::now();
    let hb = Heartbeat::new(Box::new(Recording(log.clone())), t0);
    (hb, log, t0)
}

fn taken(log: &Mutex<Vec<String>>) -> Vec<String> {
    std::mem::take(&mut *log.lock())
}

#[test]
fn the_policy_hears_how_quiet_the_link_was_before_each_outcome() {
    let (mut hb, log, t0) = recording();
    hb.start(t0, &INFO);
    assert!(matches!(hb.tick(t0), Tick::Ping { .. }));
    hb.on_activity(t0);
    hb.on_pong(Duration::ZERO);
    assert!(matches!(hb.tick(t0 + secs(10)), Tick::Ping { .. }));
    hb.on_activity(t0 + secs(10));
    hb.on_pong(Duration::ZERO);
    hb.on_activity(t0 + secs(14)); // some other frame
    assert!(matches!(hb.tick(t0 + secs(20)), Tick::Ping { .. }));
    // No answer: the pong timeout (3 s) comes before two silent intervals.
    assert_eq!(hb.wake_at(), t0 + secs(23));
    assert_eq!(hb.tick(t0 + secs(23)), Tick::Dead);
    assert_eq!(
        taken(&log),
        [
            "welcome",
            "alive after 0s",
            "alive after 10s",
            "dead after 6s"
        ]
    );
}

#[test]
fn a_connection_broken_while_a_heartbeat_was_out_counts_it_lost() {
    let (mut hb, log, t0) = recording();
    hb.start(t0, &INFO);
    let _ = hb.tick(t0);
    hb.on_pong(Duration::ZERO);
    let _ = hb.tick(t0 + secs(10));
    // The socket is reset (a NAT that answers a stale mapping with RST).
    hb.start(t0 + secs(11), &INFO);
    assert_eq!(
        taken(&log),
        ["welcome", "alive after 0s", "dead after 10s", "welcome"]
    );
}

#[test]
fn an_overdue_tick_is_a_suspended_process_not_a_network_verdict() {
    let (mut hb, log, t0) = recording();
    hb.start(t0, &INFO);
    let _ = hb.tick(t0);
    hb.on_pong(Duration::ZERO);
    let _ = hb.tick(t0 + secs(10));
    // Dead was due at 13 s; the process ran again an hour later.
    assert_eq!(hb.tick(t0 + HOUR), Tick::Dead);
    assert_eq!(taken(&log), ["welcome", "alive after 0s"]);
}

/// Mars's defaults, scaled to a node with default bounds, in a shared store.
fn adaptive(network: &str) -> (Heartbeat, NetworkSwitch, MemoryStore) {
    let store = MemoryStore::new();
    let mut cfg = AdaptiveHeartbeat::new(network);
    cfg.store = Arc::new(store.clone());
    let (policy, switch) = adaptive::Adaptive::new(&cfg);
    (
        Heartbeat::new(Box::new(policy), Instant::now()),
        switch,
        store,
    )
}

/// A client behind a NAT that forgets a mapping idle for longer than `timeout`,
/// talking to a node that answers every ping after `rtt` — all on the paused clock.
struct NatSim {
    hb: Heartbeat,
    timeout: Duration,
    rtt: Duration,
    /// The last packet through the current mapping, either way.
    last_packet: Instant,
    /// False once the NAT has forgotten the mapping: packets vanish.
    mapped: bool,
    /// Connections given up.
    losses: u32,
}

impl NatSim {
    fn new(mut hb: Heartbeat, timeout: Duration) -> Self {
        let now = Instant::now();
        hb.start(now, &NODE);
        Self {
            hb,
            timeout,
            rtt: Duration::from_millis(80),
            last_packet: now,
            mapped: true,
            losses: 0,
        }
    }

    /// One packet through the NAT at `now`: false if it vanished.
    fn packet(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.last_packet) > self.timeout {
            self.mapped = false;
        }
        if self.mapped {
            self.last_packet = now;
        }
        self.mapped
    }

    /// Runs the client for `span` of (paused) time.
    async fn run(&mut self, span: Duration) {
        let end = Instant::now() + span;
        loop {
            let wake = self.hb.wake_at();
            if wake > end {
                tokio::time::sleep_until(end).await;
                return;
            }
            tokio::time::sleep_until(wake).await;
            let now = Instant::now();
            match self.hb.tick(now) {
                Tick::Ping { .. } => {
                    if self.packet(now) {
                        tokio::time::sleep(self.rtt).await;
                        let back = Instant::now();
                        if self.packet(back) {
                            self.hb.on_activity(back);
                            self.hb.on_pong(self.rtt);
                        }
                    }
                }
                Tick::Dead => {
                    self.losses += 1;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    // A new connection: a new mapping.
                    let now = Instant::now();
                    self.mapped = true;
                    self.last_packet = now;
                    self.hb.start(now, &NODE);
                }
                Tick::Wait => {}
            }
        }
    }

    /// Runs until `store` holds a stable record for `network`, within `limit`.
    async fn settle(&mut self, store: &MemoryStore, network: &str, limit: Duration) -> Record {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            self.run(MIN).await;
            if let Some(r) = store.load(network).filter(Record::is_stable) {
                return r;
            }
        }
        panic!(
            "no stable interval within {limit:?}: {:?}",
            store.load(network)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn probing_settles_below_the_nat_timeout_and_stops_losing_connections() {
    let (hb, _switch, store) = adaptive("wifi:home");
    let mut sim = NatSim::new(hb, secs(480));
    let record = sim.settle(&store, "wifi:home", 4 * HOUR).await;
    // 270, 330, 390, 450 survive; 510 dies; stable = 450 − 20.
    assert_eq!(record.interval, secs(430));
    assert!(secs(480 - 60 - 20) < record.interval && record.interval < secs(480));
    assert_eq!(sim.losses, 1, "one lost connection to find the limit");
    // Held for hours (short of the re-probe): no connection lost.
    sim.run(5 * HOUR).await;
    assert_eq!(sim.losses, 1);
    assert_eq!(store.load("wifi:home").map(|r| r.interval), Some(secs(430)));
}

#[tokio::test(start_paused = true)]
async fn a_reprobe_costs_one_connection_and_returns_to_the_same_interval() {
    let (hb, _switch, store) = adaptive("wifi:home");
    let mut sim = NatSim::new(hb, secs(480));
    sim.settle(&store, "wifi:home", 4 * HOUR).await;
    sim.run(13 * HOUR).await;
    // Re-probes at 6 h and 12 h of holding: 490 fails each time.
    assert_eq!(sim.losses, 1 + 2);
    let r = store.load("wifi:home").expect("a record");
    assert_eq!((r.phase, r.interval), (Phase::Stable, secs(430)));
}

#[tokio::test(start_paused = true)]
async fn a_stricter_nat_makes_it_start_over_and_settle_lower() {
    let (hb, _switch, store) = adaptive("wifi:home");
    let mut sim = NatSim::new(hb, secs(480));
    sim.settle(&store, "wifi:home", 4 * HOUR).await;
    sim.timeout = secs(375);
    // k = 3 losses at 430 in a row: the network is not the one learned.
    sim.run(30 * MIN).await;
    let r = store.load("wifi:home").expect("a record");
    assert_eq!(r.phase, Phase::Probing { last_good: None });
    assert_eq!(sim.losses, 1 + 3);
    let r = sim.settle(&store, "wifi:home", 4 * HOUR).await;
    assert_eq!(r.interval, secs(310), "330 survived, 390 died");
    let losses = sim.losses;
    sim.run(5 * HOUR).await;
    assert_eq!(sim.losses, losses);
}

#[tokio::test(start_paused = true)]
async fn a_more_generous_nat_is_found_by_reprobing() {
    let (hb, _switch, store) = adaptive("wifi:home");
    let mut sim = NatSim::new(hb, secs(480));
    sim.settle(&store, "wifi:home", 4 * HOUR).await;
    sim.timeout = secs(560);
    sim.run(8 * HOUR).await;
    // 490 and 550 survive; 600 (the node's max_s, not 610) dies; 550 − 20.
    let r = store.load("wifi:home").expect("a record");
    assert_eq!((r.phase, r.interval), (Phase::Stable, secs(530)));
    assert_eq!(sim.losses, 2);
}

#[tokio::test(start_paused = true)]
async fn each_network_keeps_its_own_record() {
    let (hb, switch, store) = adaptive("wifi:home");
    let mut sim = NatSim::new(hb, secs(480));
    sim.settle(&store, "wifi:home", 4 * HOUR).await;

    switch.set("cell:carrier");
    sim.timeout = secs(375);
    let cell = sim.settle(&store, "cell:carrier", 4 * HOUR).await;
    assert_eq!(cell.interval, secs(310));

    // Back home: the learned 430 at once, and nothing lost for it.
    switch.set("wifi:home");
    sim.timeout = secs(480);
    sim.run(20 * MIN).await;
    let losses = sim.losses;
    sim.run(4 * HOUR).await;
    assert_eq!(sim.losses, losses);
    assert_eq!(store.load("wifi:home").map(|r| r.interval), Some(secs(430)));
    assert_eq!(
        store.load("cell:carrier").map(|r| r.interval),
        Some(secs(310))
    );
}

#[tokio::test(start_paused = true)]
async fn a_busy_link_teaches_nothing() {
    let (hb, _switch, store) = adaptive("wifi:home");
    let mut sim = NatSim::new(hb, secs(480));
    for _ in 0..60 {
        sim.run(secs(100)).await;
        let now = Instant::now();
        sim.packet(now);
        sim.hb.on_activity(now); // a message from the node
    }
    assert_eq!(sim.losses, 0);
    assert_eq!(
        store.load("wifi:home"),
        None,
        "no heartbeat tried 270 s of silence"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stored_record_is_used_from_the_first_connection() {
    let store = MemoryStore::new();
    let mut learned = Record::new(&AdaptiveParams::default());
    learned.phase = Phase::Stable;
    learned.interval = secs(430);
    store.save("wifi:home", learned);
    let mut cfg = AdaptiveHeartbeat::new("wifi:home");
    cfg.store = Arc::new(store.clone());
    let (policy, _switch) = adaptive::Adaptive::new(&cfg);
    let mut hb = Heartbeat::new(Box::new(policy), Instant::now());
    let t0 = Instant::now();
    hb.start(t0, &NODE);
    assert_eq!(hb.tick(t0), Tick::Ping { interval_s: 430 });
    assert_eq!(hb.wake_at(), t0 + secs(15), "the pong timeout");
    hb.on_pong(Duration::ZERO);
    assert_eq!(hb.wake_at(), t0 + secs(430));

    // A node with a lower ceiling caps it.
    hb.start(t0, &INFO);
    assert_eq!(hb.tick(t0), Tick::Ping { interval_s: 300 });
}
