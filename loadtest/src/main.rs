//! `chorus-loadtest`: the command line over the scenarios of the `chorus_loadtest`
//! library. Parses flags, runs one scenario, writes the JSON report (stdout or
//! `--report`) and the SVG plot (`--svg`), and exits 1 when the run's checks failed
//! (2 when it could not run at all).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chorus_client::Transport;
use chorus_loadtest::chat::{self, ChatConfig};
use chorus_loadtest::connect::{self, ConnectConfig};
use chorus_loadtest::entities::{self, EntitiesConfig};
use chorus_loadtest::live::{self, Burst, LiveConfig, RoleShares};
use chorus_loadtest::ramp::{self, RampConfig, Schedule, Stage};
use chorus_loadtest::storm::{self, DropMode, StormConfig};
use chorus_loadtest::target::resolve_loopback;
use chorus_loadtest::token::Tokens;
use chorus_loadtest::{LoadError, Plot, Target};
use chorus_loadtest::{probe, scaling_sim};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

/// Load scenarios against a Chorus node on this machine.
#[derive(Debug, Parser)]
#[command(name = "chorus-loadtest", version)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

/// Flags every scenario takes.
#[derive(Debug, Args)]
struct Common {
    /// The node's TCP client listener.
    #[arg(long, global = true, default_value = "127.0.0.1:7400")]
    tcp: String,
    /// The node's WebSocket listener (path /ws).
    #[arg(long, global = true, default_value = "127.0.0.1:7401")]
    ws: String,
    /// The node's admin listener (/metrics, /admin/kick); "none" to skip it.
    #[arg(long, global = true, default_value = "127.0.0.1:7402")]
    admin: String,
    /// Transport and encoding of every connection.
    #[arg(long, global = true, value_enum, default_value_t = TransportArg::Tcp)]
    transport: TransportArg,
    /// Speak TLS (tls:// or wss://) and trust the node certificates this PEM CA
    /// file signs. `chat` and `connect` only.
    #[arg(long, global = true, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Write the JSON report here instead of stdout.
    #[arg(long, global = true)]
    report: Option<PathBuf>,
    /// Write an SVG latency plot here.
    #[arg(long, global = true)]
    svg: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long, global = true)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TransportArg {
    /// Length-prefixed binary frames over TCP.
    Tcp,
    /// WebSocket, JSON text frames.
    WsJson,
    /// WebSocket, binary frames.
    WsBinary,
}

/// The requests of the `entities` scenario.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum EntitiesMode {
    /// History and read for conversations of others.
    Foreign,
    /// History of the user's own dms.
    Own,
    /// A send to each of many offline users.
    Deliver,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// 1:1 pairs (and groups) sending at a target total rate, open-loop; latency and
    /// an exactly-once, in-order delivery check.
    Chat {
        /// Users, one connection each (even: users form 1:1 pairs).
        #[arg(long, default_value_t = 100)]
        users: u32,
        /// Members per group; 0 for 1:1 only.
        #[arg(long, default_value_t = 0)]
        group_size: u32,
        /// Share of a grouped user's sends that go to its group.
        #[arg(long, default_value_t = 0.5)]
        group_fraction: f64,
        /// Target total send rate, msgs/s.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Sending time, seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Message body size, bytes.
        #[arg(long, default_value_t = 64)]
        body_size: usize,
        /// A send unanswered for this many seconds fails.
        #[arg(long, default_value_t = 30.0)]
        request_timeout: f64,
        /// Sends awaiting an answer at most.
        #[arg(long, default_value_t = 100_000)]
        max_in_flight: usize,
        /// Seconds to wait for answers, then deliveries, after the last send.
        #[arg(long, default_value_t = 30.0)]
        settle_timeout: f64,
        /// Client listeners of other nodes of the same cluster (repeatable, in the
        /// transport's form): user i connects to the i-th node round-robin, the
        /// node of `--tcp`/`--ws` first, so the users of every pair sit on
        /// different nodes.
        #[arg(long = "spread", value_name = "ADDR")]
        spread: Vec<String>,
    },
    /// Ramp idle connections at a rate and hold them; connect latency and the node's
    /// memory per connection.
    Connect {
        /// Connections to open.
        #[arg(long, default_value_t = 1000)]
        connections: u32,
        /// Connections started per second.
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
        /// Seconds to hold them after the ramp.
        #[arg(long, default_value_t = 10.0)]
        hold: f64,
        /// Loopback source addresses to spread over (127.0.0.2, ...); 0: automatic.
        #[arg(long, default_value_t = 0)]
        source_ips: u32,
        /// A connection slower than this many seconds to its welcome fails.
        #[arg(long, default_value_t = 10.0)]
        connect_timeout: f64,
    },
    /// Connections (and a message rate) that follow a schedule over time, spread
    /// over one or more nodes: e.g. `--stage 45:135` opens 3 connections a
    /// second for 45 s. The load a predictive scaler should see coming.
    Ramp {
        /// `SECONDS:CONNECTIONS[:MSGS_PER_S]`: the load meant at that time
        /// (repeatable, times increasing); linear in between, from zero at 0.
        #[arg(long = "stage", value_name = "S:CONNS[:RATE]", required = true)]
        stages: Vec<String>,
        /// Seconds to hold the last stage's load.
        #[arg(long, default_value_t = 0.0)]
        hold: f64,
        /// Client listeners of other nodes of the same cluster (repeatable, in
        /// the transport's form): connections go round-robin over the node of
        /// `--tcp`/`--ws` and these.
        #[arg(long = "spread", value_name = "ADDR")]
        spread: Vec<String>,
        /// Message body size, bytes.
        #[arg(long, default_value_t = 64)]
        body_size: usize,
        /// A connection slower than this many seconds to its welcome fails.
        #[arg(long, default_value_t = 10.0)]
        connect_timeout: f64,
        /// Prefix of the users' ids.
        #[arg(long, default_value = "ramp")]
        user_prefix: String,
    },
    /// Drop every connection at once and measure the reconnect and resync.
    Storm {
        /// Users, one connection each (even: users form 1:1 pairs).
        #[arg(long, default_value_t = 100)]
        users: u32,
        /// Messages each user sends its peer before the measured traffic.
        #[arg(long, default_value_t = 20)]
        history: u32,
        /// Total send rate during the run, msgs/s.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Traffic time, seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Seconds into the traffic when every connection drops.
        #[arg(long, default_value_t = 3.0)]
        cut_after: f64,
        /// Kick every user through the admin API with this token, instead of
        /// relaying the connections and cutting the relay.
        #[arg(long, env = "CHORUS_ADMIN_TOKEN")]
        admin_token: Option<String>,
        /// Message body size, bytes.
        #[arg(long, default_value_t = 64)]
        body_size: usize,
        /// A send unanswered for this many seconds fails.
        #[arg(long, default_value_t = 30.0)]
        request_timeout: f64,
        /// Seconds to wait for answers, reconnects and deliveries after the traffic.
        #[arg(long, default_value_t = 30.0)]
        settle_timeout: f64,
    },
    /// One connection sends requests for many conversations (of others, or its
    /// own) and reads the node's running entities and memory before and after.
    Entities {
        /// Requests, each for another conversation.
        #[arg(long, default_value_t = 100_000)]
        frames: u32,
        /// `foreign`: history and read for conversations of others; `own`:
        /// history of the user's own dms; `deliver`: a send to each of many
        /// offline users.
        #[arg(long, value_enum, default_value_t = EntitiesMode::Foreign)]
        mode: EntitiesMode,
        /// The node's admin token, for /admin/status.
        #[arg(long, env = "CHORUS_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: String,
        /// Seconds to wait for the answers.
        #[arg(long, default_value_t = 120.0)]
        settle_timeout: f64,
    },
    /// No node needed: time fixed CPU work on every core and report the seconds in
    /// which the machine itself stalled (a floor under any latency tail measured
    /// on it).
    Probe {
        /// Threads working at once; 0: one per core.
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Seconds to probe.
        #[arg(long, default_value_t = 20.0)]
        duration: f64,
    },
    /// No node needed: replay load traces through the HPA-like and the EMD-ARIMA
    /// scaling policies with the same node start-up delay; prints the Markdown
    /// table on stderr and the JSON report, and writes one SVG per trace.
    ScalingSim {
        /// The public traces, as scaling/fixtures/make.py wrote them.
        #[arg(long, default_value = "scaling/fixtures/traces.json")]
        traces: PathBuf,
        /// Directory for the SVG plots (one per trace).
        #[arg(long)]
        svg_dir: Option<PathBuf>,
        /// Short traces and a small ARIMA grid (a smoke run, not the documented numbers).
        #[arg(long)]
        quick: bool,
    },
    /// Viewers watch live rooms while senders send danmaku at a rate and in bursts;
    /// send→visible latency, deliveries per second, and a per-viewer check that
    /// accepted = delivered + Σ dropped with every paid/system item delivered.
    Live {
        /// Viewers, one lean connection each.
        #[arg(long, default_value_t = 1000)]
        viewers: u32,
        /// Rooms; viewer i watches room i mod rooms.
        #[arg(long, default_value_t = 1)]
        rooms: u32,
        /// Senders, one SDK connection each.
        #[arg(long, default_value_t = 20)]
        senders: u32,
        /// Steady danmaku rate over all rooms, items/s.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Steady traffic time, seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Items of a burst, all sent within one second (repeat for more bursts).
        #[arg(long)]
        burst: Vec<u32>,
        /// Seconds into the traffic when the burst of the same position starts.
        #[arg(long)]
        burst_at: Vec<f64>,
        /// The node's [auth] secret (jwt mode): tokens are signed, and can carry roles.
        #[arg(long, env = "CHORUS_JWT_SECRET", hide_env_values = true)]
        jwt_secret: Option<String>,
        /// Share of the senders holding the paid role (needs --jwt-secret).
        #[arg(long, default_value_t = 0.0)]
        paid_share: f64,
        /// Share of the senders holding the system role (needs --jwt-secret).
        #[arg(long, default_value_t = 0.0)]
        system_share: f64,
        /// Share of the senders holding the vip role (needs --jwt-secret).
        #[arg(long, default_value_t = 0.0)]
        vip_share: f64,
        /// Danmaku body size, bytes.
        #[arg(long, default_value_t = 32)]
        body_size: usize,
        /// Viewers connected per second.
        #[arg(long, default_value_t = 2000.0)]
        join_rate: f64,
        /// Loopback source addresses to spread viewers over; 0: automatic.
        #[arg(long, default_value_t = 0)]
        source_ips: u32,
        /// Viewers whose items' latencies are recorded (spread evenly); 0: all.
        #[arg(long, default_value_t = 1000)]
        latency_viewers: u32,
        /// A viewer slower than this many seconds to connect, or to join, fails.
        #[arg(long, default_value_t = 10.0)]
        connect_timeout: f64,
        /// A danmaku unanswered for this many seconds fails.
        #[arg(long, default_value_t = 30.0)]
        request_timeout: f64,
        /// Seconds to wait, after the last send, for answers and then for every
        /// viewer to account for every accepted item.
        #[arg(long, default_value_t = 15.0)]
        settle_timeout: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The SDK reports what it repairs (failed history fetches, lost connections) as
    // `tracing` events: warnings by default, more with RUST_LOG.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chorus-loadtest: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("chorus-loadtest: checks failed (see the report)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("chorus-loadtest: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs the scenario and writes its outputs; `Ok(passed)`.
async fn run(cli: Cli) -> Result<bool, LoadError> {
    let common = &cli.common;
    if let Scenario::Probe { threads, duration } = cli.scenario {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let cfg = probe::ProbeConfig {
            threads,
            duration: seconds(duration, "duration")?,
        };
        let report = tokio::task::spawn_blocking(move || probe::run(&cfg))
            .await
            .map_err(|e| LoadError::Io(std::io::Error::other(e)))?;
        write_report(common, &report)?;
        return Ok(true);
    }
    if let Scenario::ScalingSim {
        traces,
        svg_dir,
        quick,
    } = &cli.scenario
    {
        let cfg = scaling_sim::SimConfig {
            traces: traces.clone(),
            svg_dir: svg_dir.clone(),
            quick: *quick,
        };
        let report = tokio::task::spawn_blocking(move || scaling_sim::run(&cfg))
            .await
            .map_err(|e| LoadError::Io(std::io::Error::other(e)))??;
        eprint!("{}", scaling_sim::markdown(&report));
        write_report(common, &report)?;
        return Ok(true);
    }
    let target = target(common)?;
    let progress = !common.quiet;
    match cli.scenario {
        Scenario::Chat {
            users,
            group_size,
            group_fraction,
            rate,
            duration,
            body_size,
            request_timeout,
            max_in_flight,
            settle_timeout,
            spread,
        } => {
            let spread = spread
                .iter()
                .map(|a| resolve_loopback(a).map(|a| a.to_string()))
                .collect::<Result<Vec<_>, _>>()?;
            let cfg = ChatConfig {
                spread,
                users,
                group_size,
                group_fraction,
                rate,
                duration: seconds(duration, "duration")?,
                body_size,
                request_timeout: seconds(request_timeout, "request-timeout")?,
                max_in_flight,
                settle_timeout: seconds(settle_timeout, "settle-timeout")?,
                progress,
                ..ChatConfig::new(target)
            };
            let report = chat::run(cfg).await?;
            output(common, &report, &report.plot)?;
            Ok(report.passed)
        }
        Scenario::Connect {
            connections,
            rate,
            hold,
            source_ips,
            connect_timeout,
        } => {
            let cfg = ConnectConfig {
                connections,
                rate,
                hold: seconds(hold, "hold")?,
                source_ips,
                connect_timeout: seconds(connect_timeout, "connect-timeout")?,
                progress,
                ..ConnectConfig::new(target)
            };
            let report = connect::run(cfg).await?;
            output(common, &report, &report.plot)?;
            Ok(report.passed)
        }
        Scenario::Ramp {
            stages,
            hold,
            spread,
            body_size,
            connect_timeout,
            user_prefix,
        } => {
            let stages = stages
                .iter()
                .map(|s| Stage::parse(s))
                .collect::<Result<Vec<_>, _>>()?;
            let mut endpoints = vec![target.endpoint()];
            for addr in &spread {
                endpoints.push(resolve_loopback(addr)?);
            }
            let cfg = RampConfig {
                endpoints,
                transport: target.transport,
                tls: target.tls.clone(),
                schedule: Schedule::new(stages)?,
                hold: seconds(hold, "hold")?,
                connect_timeout: seconds(connect_timeout, "connect-timeout")?,
                body_size,
                user_prefix,
                progress,
            };
            let report = ramp::run(cfg).await?;
            write_report(common, &report)?;
            Ok(report.passed)
        }
        Scenario::Entities {
            frames,
            mode,
            admin_token,
            settle_timeout,
        } => {
            let cfg = EntitiesConfig {
                target,
                frames,
                mode: match mode {
                    EntitiesMode::Foreign => entities::Mode::Foreign,
                    EntitiesMode::Own => entities::Mode::Own,
                    EntitiesMode::Deliver => entities::Mode::Deliver,
                },
                admin_token,
                settle_timeout: seconds(settle_timeout, "settle-timeout")?,
            };
            let report = entities::run(cfg).await?;
            write_report(common, &report)?;
            Ok(report.passed)
        }
        Scenario::Storm {
            users,
            history,
            rate,
            duration,
            cut_after,
            admin_token,
            body_size,
            request_timeout,
            settle_timeout,
        } => {
            let cfg = StormConfig {
                users,
                history,
                rate,
                duration: seconds(duration, "duration")?,
                cut_after: seconds(cut_after, "cut-after")?,
                drop: admin_token.map_or(DropMode::Relay, |token| DropMode::Kick { token }),
                body_size,
                request_timeout: seconds(request_timeout, "request-timeout")?,
                settle_timeout: seconds(settle_timeout, "settle-timeout")?,
                progress,
                ..StormConfig::new(target)
            };
            let report = storm::run(cfg).await?;
            output(common, &report, &report.plot)?;
            Ok(report.passed)
        }
        Scenario::Live {
            viewers,
            rooms,
            senders,
            rate,
            duration,
            burst,
            burst_at,
            jwt_secret,
            paid_share,
            system_share,
            vip_share,
            body_size,
            join_rate,
            source_ips,
            latency_viewers,
            connect_timeout,
            request_timeout,
            settle_timeout,
        } => {
            if burst.len() != burst_at.len() {
                return Err(LoadError::Config(
                    "give each --burst its --burst-at, in the same order".into(),
                ));
            }
            let cfg = LiveConfig {
                viewers,
                rooms,
                senders,
                rate,
                duration: seconds(duration, "duration")?,
                bursts: burst
                    .into_iter()
                    .zip(burst_at)
                    .map(|(count, at_s)| Burst { at_s, count })
                    .collect(),
                roles: RoleShares {
                    system: system_share,
                    paid: paid_share,
                    vip: vip_share,
                },
                tokens: Tokens::from_secret(jwt_secret),
                body_size,
                join_rate,
                source_ips,
                latency_viewers,
                connect_timeout: seconds(connect_timeout, "connect-timeout")?,
                request_timeout: seconds(request_timeout, "request-timeout")?,
                settle_timeout: seconds(settle_timeout, "settle-timeout")?,
                progress,
                ..LiveConfig::new(target)
            };
            let report = live::run(cfg).await?;
            output(common, &report, &report.plot)?;
            Ok(report.passed)
        }
        Scenario::Probe { .. } | Scenario::ScalingSim { .. } => Ok(true),
    }
}

fn target(common: &Common) -> Result<Target, LoadError> {
    let admin = match common.admin.as_str() {
        "none" | "" => None,
        addr => Some(resolve_loopback(addr)?),
    };
    let transport = match common.transport {
        TransportArg::Tcp => Transport::Tcp,
        TransportArg::WsJson => Transport::WsJson,
        TransportArg::WsBinary => Transport::WsBinary,
    };
    let mut target = Target::new(
        resolve_loopback(&common.tcp)?,
        resolve_loopback(&common.ws)?,
        admin,
        transport,
    )?;
    if let Some(ca) = &common.tls_ca {
        target.tls = Some(chorus_loadtest::target::TlsTarget::from_ca_file(ca)?);
    }
    Ok(target)
}

fn seconds(value: f64, flag: &str) -> Result<Duration, LoadError> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| LoadError::Config(format!("--{flag} must be a number of seconds ≥ 0")))
}

/// Writes the report (pretty JSON) and, when asked, the plot.
fn output(common: &Common, report: &impl Serialize, plot: &Plot) -> Result<(), LoadError> {
    write_report(common, report)?;
    if let Some(path) = &common.svg {
        plot.write_svg(path)?;
    }
    Ok(())
}

/// Writes the report as pretty JSON to `--report` or stdout.
fn write_report(common: &Common, report: &impl Serialize) -> Result<(), LoadError> {
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| LoadError::Io(std::io::Error::other(e)))?;
    match &common.report {
        Some(path) => std::fs::write(path, json + "\n")?,
        None => println!("{json}"),
    }
    Ok(())
}
