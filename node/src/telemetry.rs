//! Logs and metrics of a node.
//!
//! - [`init_logging`]: `tracing` events to stderr, as text or one JSON object a line.
//! - [`install_metrics`]: the process-wide Prometheus recorder, once per process,
//!   with every metric the node exports described up front ([`metric`] holds their
//!   names, so call sites cannot misspell them).
//! - [`sample_process_memory`]: the `process_*` gauges, read from `/proc` at scrape
//!   time by the admin listener's `/metrics`.
//!
//! Both installers tolerate being called again, because tests start several nodes
//! in one process and every node runs the same start-up path.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use chorus_config::LogFormat;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Names of the metrics the node exports, and their labels.
pub mod metric {
    /// Gauge: open client connections; label `transport` (`tcp`, `ws`).
    pub const CONNECTIONS: &str = "chorus_connections";
    /// Counter: client connections accepted; label `transport`.
    pub const CONNECTIONS_TOTAL: &str = "chorus_connections_total";
    /// Counter: frames decoded from clients; label `transport`.
    pub const FRAMES_IN_TOTAL: &str = "chorus_frames_in_total";
    /// Counter: frames written to clients; label `transport`.
    pub const FRAMES_OUT_TOTAL: &str = "chorus_frames_out_total";
    /// Counter: messages durably stored and acked.
    pub const MESSAGES_ACKED_TOTAL: &str = "chorus_messages_acked_total";
    /// Counter: `send`/`danmaku` answered with `reject`; label `code`.
    pub const SEND_REJECTED_TOTAL: &str = "chorus_send_rejected_total";
    /// Counter: actor restarts by their supervisor; label `kind` (`user`,
    /// `conversation`, `live_room`, ...).
    pub const ACTOR_RESTARTS_TOTAL: &str = "chorus_actor_restarts_total";
    /// Counter: `hello` tokens refused (bad, expired, wrong algorithm, ...).
    pub const AUTH_FAILURES_TOTAL: &str = "chorus_auth_failures_total";
    /// Counter: frames refused as undecodable or too large; label `reason`.
    pub const BAD_FRAMES_TOTAL: &str = "chorus_bad_frames_total";
    /// Counter: connections closed because their outbound queue overflowed.
    pub const SLOW_CONSUMER_DISCONNECTS_TOTAL: &str = "chorus_slow_consumer_disconnects_total";
    /// Counter: connections closed for silence past their idle timeout.
    pub const IDLE_DISCONNECTS_TOTAL: &str = "chorus_idle_disconnects_total";
    /// Histogram: seconds from a `send` being decoded to its `ack` being queued.
    pub const ACK_LATENCY_SECONDS: &str = "chorus_ack_latency_seconds";
    /// Gauge: resident set size of the process, in bytes.
    pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
    /// Gauge: open file descriptors of the process.
    pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
    /// Gauge: process start time, in seconds since the Unix epoch.
    pub const PROCESS_START_TIME_SECONDS: &str = "process_start_time_seconds";

    /// Label naming the client transport: `tcp` or `ws`.
    pub const LABEL_TRANSPORT: &str = "transport";
    /// Label naming a protocol error code (`rate_limited`, `filtered`, ...).
    pub const LABEL_CODE: &str = "code";
    /// Label naming an entity kind.
    pub const LABEL_KIND: &str = "kind";
    /// Label naming why a frame was refused (`bad_frame`, `too_large`, ...).
    pub const LABEL_REASON: &str = "reason";
}

/// Histogram buckets of [`metric::ACK_LATENCY_SECONDS`]: an fsync-bound ack takes
/// from well under a millisecond (group commit on fast disks) to seconds (a
/// struggling Cassandra quorum).
const ACK_LATENCY_BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The embedded store's group-commit time (recorded by the store crate), in the
/// same buckets as acks: a commit is most of an ack.
const STORE_COMMIT_SECONDS: &str = "chorus_store_commit_seconds";
/// How long a request waited for the embedded store's writer thread.
const STORE_QUEUE_SECONDS: &str = "chorus_store_queue_seconds";

/// How often histogram samples are folded into their buckets when nobody scrapes,
/// so that memory stays bounded.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The log filter given to [`init_logging`] does not parse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid log level {filter:?}: {reason}")]
pub struct LogFilterError {
    /// The filter as given.
    pub filter: String,
    /// The parser's complaint.
    pub reason: String,
}

/// Sends `tracing` events to stderr in `format` (`[log] format`: text lines,
/// coloured when stderr is a terminal, or one JSON object per event), filtered by
/// `level` (`[log] level`: e.g. `info` or `info,chorus_actors=debug`, the
/// `RUST_LOG` syntax).
///
/// If a global subscriber is already set (a second node in the same process, a
/// test harness), that one is kept and this call only checks the filter.
pub fn init_logging(format: LogFormat, level: &str) -> Result<(), LogFilterError> {
    // The storage engine narrates its housekeeping at info level; keep it to
    // warnings unless the filter names it.
    let mut directives = level.to_string();
    for quiet in ["fjall", "lsm_tree"] {
        if !level.contains(quiet) {
            directives.push_str(&format!(",{quiet}=warn"));
        }
    }
    let filter = EnvFilter::builder()
        .parse(&directives)
        .map_err(|e| LogFilterError {
            filter: level.to_string(),
            reason: e.to_string(),
        })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if installed.is_err() {
        tracing::debug!("a tracing subscriber is already installed; keeping it");
    }
    Ok(())
}

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (first call) and returns a handle
/// that renders it. Later calls return the same handle.
///
/// If some other recorder was installed first, the node's metrics go there: the
/// returned handle then renders an empty, private recorder and a warning is logged.
pub fn install_metrics() -> PrometheusHandle {
    METRICS.get_or_init(install_recorder).clone()
}

fn install_recorder() -> PrometheusHandle {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(metric::ACK_LATENCY_SECONDS.to_string()),
            &ACK_LATENCY_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(STORE_COMMIT_SECONDS.to_string()),
                &ACK_LATENCY_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(STORE_QUEUE_SECONDS.to_string()),
                &ACK_LATENCY_BUCKETS,
            )
        })
        .expect("the latency bucket list is a non-empty constant");
    let handle = match builder.install_recorder() {
        Ok(handle) => handle,
        Err(e) => {
            tracing::warn!(error = %e, "Prometheus recorder not installed; /metrics will be empty");
            PrometheusBuilder::new().build_recorder().handle()
        }
    };
    describe_metrics();
    // Descriptions become visible to `render` at the next upkeep.
    handle.run_upkeep();
    spawn_upkeep(handle.clone());
    handle
}

fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no metrics upkeep thread; histograms drain only when scraped");
    }
}

/// Describes every metric, and registers the unlabelled counters at 0 so that a
/// first scrape already shows them.
fn describe_metrics() {
    use metric::*;

    describe_gauge!(
        CONNECTIONS,
        Unit::Count,
        "Open client connections, by transport."
    );
    describe_counter!(
        CONNECTIONS_TOTAL,
        Unit::Count,
        "Client connections accepted, by transport."
    );
    describe_counter!(FRAMES_IN_TOTAL, Unit::Count, "Frames decoded from clients.");
    describe_counter!(FRAMES_OUT_TOTAL, Unit::Count, "Frames written to clients.");
    describe_counter!(
        MESSAGES_ACKED_TOTAL,
        Unit::Count,
        "Messages durably stored and acknowledged."
    );
    describe_counter!(
        SEND_REJECTED_TOTAL,
        Unit::Count,
        "Sends and danmaku answered with reject, by error code."
    );
    describe_counter!(
        ACTOR_RESTARTS_TOTAL,
        Unit::Count,
        "Actors restarted by their supervisor, by entity kind."
    );
    describe_counter!(
        BAD_FRAMES_TOTAL,
        Unit::Count,
        "Client frames refused as undecodable or too large, by reason."
    );
    describe_counter!(
        AUTH_FAILURES_TOTAL,
        Unit::Count,
        "Connections refused at hello for a bad token."
    );
    describe_counter!(
        SLOW_CONSUMER_DISCONNECTS_TOTAL,
        Unit::Count,
        "Connections closed because their outbound queue overflowed."
    );
    describe_counter!(
        IDLE_DISCONNECTS_TOTAL,
        Unit::Count,
        "Connections closed after staying silent past their idle timeout."
    );
    describe_histogram!(
        ACK_LATENCY_SECONDS,
        Unit::Seconds,
        "Time from a send accepted by its conversation (seq given) to its ack being queued."
    );
    describe_gauge!(
        PROCESS_RESIDENT_MEMORY_BYTES,
        Unit::Bytes,
        "Resident memory size in bytes."
    );
    describe_gauge!(
        PROCESS_OPEN_FDS,
        Unit::Count,
        "Number of open file descriptors."
    );
    describe_gauge!(
        PROCESS_START_TIME_SECONDS,
        Unit::Seconds,
        "Start time of the process since the Unix epoch, in seconds."
    );

    for name in [
        MESSAGES_ACKED_TOTAL,
        AUTH_FAILURES_TOTAL,
        SLOW_CONSUMER_DISCONNECTS_TOTAL,
        IDLE_DISCONNECTS_TOTAL,
    ] {
        metrics::counter!(name).increment(0);
    }
}

/// One reading of the process gauges; `None` where the platform has no `/proc`
/// or the file could not be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessSample {
    /// Resident set size, in bytes.
    pub resident_memory_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// Process start, in seconds since the Unix epoch.
    pub start_time_seconds: Option<u64>,
}

/// Reads the process's resident memory, open descriptors and start time from
/// `/proc` and sets the `process_*` gauges. Called before each `/metrics` render;
/// also returned for status pages. On other platforms the gauges stay unset.
pub fn sample_process_memory() -> ProcessSample {
    let sample = ProcessSample {
        resident_memory_bytes: resident_memory_bytes(),
        open_fds: open_fds(),
        start_time_seconds: *START_TIME.get_or_init(start_time_seconds),
    };
    // Gauges are f64; these values stay far below 2^53, so the casts are exact.
    if let Some(rss) = sample.resident_memory_bytes {
        gauge!(metric::PROCESS_RESIDENT_MEMORY_BYTES).set(rss as f64);
    }
    if let Some(fds) = sample.open_fds {
        gauge!(metric::PROCESS_OPEN_FDS).set(fds as f64);
    }
    if let Some(start) = sample.start_time_seconds {
        gauge!(metric::PROCESS_START_TIME_SECONDS).set(start as f64);
    }
    sample
}

static START_TIME: OnceLock<Option<u64>> = OnceLock::new();

/// `VmRSS` of `/proc/self/status` (kB): exact, with no page-size assumption.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

fn open_fds() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    // The directory handle being read is itself one of the entries.
    let count = entries.count().saturating_sub(1);
    u64::try_from(count).ok()
}

/// `btime` of `/proc/stat` plus field 22 (`starttime`, in clock ticks since boot)
/// of `/proc/self/stat`. Linux reports ticks to user space at `USER_HZ`, which is
/// 100 on every architecture it supports.
fn start_time_seconds() -> Option<u64> {
    const USER_HZ: u64 = 100;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let boot: u64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    Some(boot + parse_start_ticks(&stat)? / USER_HZ)
}

/// Field 22 of `/proc/<pid>/stat`. Field 2 (the command name, in parentheses) may
/// contain spaces and parentheses, so fields are counted after its last `)`.
fn parse_start_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // Fields from 3 (`state`) on; `starttime` is field 22.
    after_comm.split_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tchorus\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(1234 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tlots kB\n"), None);
    }

    #[test]
    fn start_ticks_survive_odd_command_names() {
        let rest = (3..=21)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        let stat = format!("4242 (we) ird (name) {rest} 987654 1 2 3");
        assert_eq!(parse_start_ticks(&stat), Some(987_654));
        assert_eq!(parse_start_ticks("garbage"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_sample_reads_proc() {
        let sample = sample_process_memory();
        assert!(sample.resident_memory_bytes.unwrap() > 1024 * 1024);
        assert!(sample.open_fds.unwrap() >= 3);
        let start = sample.start_time_seconds.unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            start <= now + 1 && start + 24 * 3600 > now,
            "start {start}, now {now}"
        );
    }

    #[test]
    fn metrics_install_twice_and_render_process_memory() {
        let first = install_metrics();
        let second = install_metrics();
        sample_process_memory();
        metrics::histogram!(metric::ACK_LATENCY_SECONDS).record(0.003);
        let text = second.render();
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
        assert!(
            text.contains("# HELP process_resident_memory_bytes"),
            "{text}"
        );
        assert!(
            text.contains("chorus_ack_latency_seconds_bucket{le=\"0.005\"}"),
            "{text}"
        );
        assert!(
            first
                .render()
                .contains("# TYPE chorus_messages_acked_total counter"),
            "{text}"
        );
    }

    #[test]
    fn logging_initialises_once_and_checks_its_filter() {
        assert!(init_logging(LogFormat::Text, "info,chorus_node=debug").is_ok());
        assert!(init_logging(LogFormat::Json, "warn").is_ok());
        assert!(init_logging(LogFormat::Json, "info,chorus_node=loudest").is_err());
    }
}
