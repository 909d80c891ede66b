//! `chorusctl`: the operator's command line, a client of the admin API
//! ([`crate::admin`]) of one node or of every node of a cluster.
//!
//! ```text
//! chorusctl [--admin HOST:PORT] [--token TOKEN] [--json] [--timeout SECS] <command>
//!
//!   status                     one row per member: its status, sessions, entities
//!   members                    the membership as the node sees it
//!   shards                     how many shards each serving member owns
//!   where KEY                  the owner of an entity and the nodes it runs on
//!   drain NODE [--wait]        drain a node: goaway to clients, hand shards off, exit
//!   kick USER                  close a user's sessions
//!   token issue USER [--role ROLE]... [--ttl SECS]
//!   filter reload              reload the word filter's files
//!   filter test TEXT           what the word filter finds in TEXT
//!   tls reload                 reload the node's TLS certificate, key and CA files
//!   live slow ROOM [SECONDS | --reset]
//!                              show or set a live room's slow mode
//!   scaling status|forecast|series
//!                              predictive scaling: recommendation, forecast, load series
//! ```
//!
//! `--admin` (`CHORUS_ADMIN`) names any one node; `https://HOST:PORT` (or `--ca`)
//! speaks HTTPS to every node, checking certificates against `--ca FILE`
//! (`CHORUS_CA`) or the system's roots. The commands about the cluster
//! ask it for `/admin/members`, then talk to each alive member's advertised admin
//! address themselves, so the token must be the same on every node. A member that
//! does not answer is reported (`-` in a table, a note on stderr), not fatal.
//!
//! - [`http`]: the HTTP/1.1 client and [`CtlError`].
//! - `live`: `live slow`, the per-room settings of live rooms.
//! - `scaling`: `scaling status|forecast|series`.
//! - `render`: answers as tables and text; lenient about shapes.
//! - `table`: aligned columns.
//!
//! The binary (`src/bin/chorusctl.rs`) parses [`Cli`], calls [`run`], prints the
//! [`Outcome`], and exits 1 on a [`CtlError`] (2 on a usage error).

pub mod http;
mod live;
mod render;
mod scaling;
mod table;

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use clap::builder::{PossibleValuesParser, RangedU64ValueParser};
use clap::{Args, Parser, Subcommand};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::auth::Role;
use http::encode_segment;
pub use http::{AdminClient, Body, CtlError};
pub use live::{LiveCommand, SlowArgs};
use render::{Member, StatusRow, WhereReport};
pub use scaling::ScalingCommand;

/// `--admin` when neither the flag nor `CHORUS_ADMIN` is given: the default
/// `listen.admin`.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:7402";

/// How often `drain --wait` looks at the membership.
const DRAIN_POLL: Duration = Duration::from_millis(500);

/// The `chorusctl` command.
#[derive(Debug, Parser)]
#[command(
    name = "chorusctl",
    version,
    about = "Operate a Chorus cluster through the nodes' admin API",
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Admin listener of the node to ask (its listen.admin), HOST:PORT.
    #[arg(
        long,
        global = true,
        value_name = "HOST:PORT",
        env = "CHORUS_ADMIN",
        default_value = DEFAULT_ADMIN,
        value_parser = parse_admin_addr,
    )]
    pub admin: String,

    /// The nodes' admin.token. Prefer the environment variable: a flag is
    /// visible to other users in the process list.
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "CHORUS_ADMIN_TOKEN",
        hide_env_values = true,
        value_parser = parse_token,
    )]
    pub token: Option<String>,

    /// CA certificate(s), PEM, that the nodes' HTTPS certificates chain to.
    /// Implies HTTPS. Without it, `https://` uses the system's roots.
    #[arg(long, global = true, value_name = "FILE", env = "CHORUS_CA")]
    pub ca: Option<std::path::PathBuf>,

    /// Print JSON (the node's answer, or the combined answers) instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Seconds each request may take, connection included.
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value_t = 10,
        value_parser = RangedU64ValueParser::<u64>::new().range(1..=3600),
    )]
    pub timeout: u64,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `chorusctl`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Every member with its status, sessions and running entities.
    Status,
    /// The members of the cluster as the node sees them.
    Members,
    /// How many shards each serving member owns (--json: which ones).
    Shards,
    /// The shard and owner of an entity, and the nodes it runs on.
    Where {
        /// The entity: user:ID, conv:dm:A:B, conv:group:ID or live:ID.
        key: String,
    },
    /// Drain a node: it sends goaway to its clients, hands its shards off and exits.
    Drain(DrainArgs),
    /// Close every session of a user.
    Kick {
        /// The user id.
        user: String,
    },
    /// Client tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The word filter.
    #[command(subcommand)]
    Filter(FilterCommand),
    /// Live rooms' settings.
    #[command(subcommand)]
    Live(LiveCommand),
    /// Predictive scaling: the recommended node count, the forecast, the load series.
    #[command(subcommand)]
    Scaling(ScalingCommand),
    /// The node's TLS certificates.
    #[command(subcommand)]
    Tls(TlsCommand),
}

/// `chorusctl tls`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum TlsCommand {
    /// Read the node's [tls] certificate, key and CA files again; a bad file keeps
    /// the certificates in use and says why.
    Reload,
}

/// `chorusctl drain`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct DrainArgs {
    /// The node id (cluster.node_id) of the node to drain.
    pub node: String,
    /// Wait until the node has left the cluster.
    #[arg(long)]
    pub wait: bool,
    /// Seconds --wait waits before giving up (the drain goes on).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60,
        value_parser = RangedU64ValueParser::<u64>::new().range(1..),
    )]
    pub wait_timeout: u64,
}

/// `chorusctl token`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum TokenCommand {
    /// Issue a client JWT signed with the node's auth.secret; prints the token.
    Issue {
        /// The user id the token is for.
        user: String,
        /// A role to grant; repeat for several.
        #[arg(
            long = "role",
            value_name = "ROLE",
            value_parser = PossibleValuesParser::new(Role::ALL.map(Role::as_str)),
        )]
        roles: Vec<String>,
        /// Seconds the token is valid (the node's default: one day).
        #[arg(
            long,
            value_name = "SECS",
            value_parser = RangedU64ValueParser::<u64>::new().range(1..),
        )]
        ttl: Option<u64>,
    },
}

/// `chorusctl filter`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum FilterCommand {
    /// Rebuild the word filter from its files; a bad file keeps the old filter.
    Reload,
    /// Show what the word filter finds in TEXT and what mask mode would deliver.
    Test {
        /// The text to check.
        text: String,
    },
}

/// `HOST:PORT` or `https://HOST:PORT`, tolerating a pasted `http://` and
/// trailing `/`.
fn parse_admin_addr(value: &str) -> Result<String, String> {
    let addr = value.trim();
    let (https, addr) = match addr.strip_prefix("https://") {
        Some(rest) => (true, rest),
        None => (false, addr.strip_prefix("http://").unwrap_or(addr)),
    };
    let addr = addr.trim_end_matches('/');
    let scheme = if https { "https://" } else { "" };
    let port = addr
        .rsplit_once(':')
        .filter(|(host, _)| !host.is_empty())
        .map(|(_, port)| port)
        .ok_or_else(|| format!("{value:?} is not HOST:PORT (e.g. 127.0.0.1:7402)"))?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(format!("{scheme}{addr}")),
        _ => Err(format!(
            "{value:?}: {port:?} is not a port number (1-65535)"
        )),
    }
}

/// The admin token travels in a header: printable ASCII without spaces, as
/// `[admin] token` itself must be.
fn parse_token(value: &str) -> Result<String, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the admin token is printable ASCII without spaces".into());
    }
    Ok(value.to_string())
}

/// What a successful command prints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// For stdout: the table, text or JSON.
    pub stdout: String,
    /// For stderr, one line each: members that did not answer and the like.
    pub notes: Vec<String>,
}

impl Outcome {
    fn text(stdout: String) -> Self {
        Self {
            stdout,
            notes: Vec::new(),
        }
    }

    fn json(value: &Value) -> Self {
        let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
        text.push('\n');
        Self::text(text)
    }
}

/// Runs one command.
pub async fn run(cli: &Cli) -> Result<Outcome, CtlError> {
    let (https, admin) = match cli.admin.strip_prefix("https://") {
        Some(addr) => (true, addr.to_string()),
        None => (false, cli.admin.clone()),
    };
    let mut client = AdminClient::new(cli.token.clone(), Duration::from_secs(cli.timeout));
    if https || cli.ca.is_some() {
        client = client.with_tls(tls_connector(cli.ca.as_deref())?);
    }
    let ctl = Ctl {
        client,
        admin,
        json: cli.json,
    };
    match &cli.command {
        Command::Status => ctl.status().await,
        Command::Members => ctl.members().await,
        Command::Shards => ctl.shards().await,
        Command::Where { key } => ctl.where_is(key).await,
        Command::Drain(args) => ctl.drain(args).await,
        Command::Kick { user } => ctl.kick(user).await,
        Command::Token(TokenCommand::Issue { user, roles, ttl }) => {
            ctl.issue_token(user, roles, *ttl).await
        }
        Command::Filter(FilterCommand::Reload) => ctl.filter_reload().await,
        Command::Filter(FilterCommand::Test { text }) => ctl.filter_test(text).await,
        Command::Live(command) => ctl.live(command).await,
        Command::Scaling(command) => ctl.scaling(*command).await,
        Command::Tls(TlsCommand::Reload) => ctl.tls_reload().await,
    }
}

/// The HTTPS client configuration: roots from `ca`, or the system's.
fn tls_connector(ca: Option<&std::path::Path>) -> Result<tokio_rustls::TlsConnector, CtlError> {
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let roots = match ca {
        Some(path) => {
            crate::tls::root_store("--ca", path).map_err(|e| CtlError::Failed(e.to_string()))?
        }
        None => {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(CtlError::Failed(
                    "no system root certificates were found; pass --ca with the nodes' CA".into(),
                ));
            }
            roots
        }
    };
    let config = ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| CtlError::Failed(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}

/// One command's context.
struct Ctl {
    client: AdminClient,
    /// `--admin`: the node asked first, and how this node reaches it (its
    /// advertised address may differ, e.g. behind a port forward).
    admin: String,
    json: bool,
}

/// The cluster as the node at `--admin` sees it.
struct View {
    /// The id of the node that answered.
    node: String,
    /// Sorted by node id. When the node does not implement `/admin/members`, the
    /// node alone, described from its `/admin/status`.
    members: Vec<Member>,
}

impl Ctl {
    async fn view(&self) -> Result<View, CtlError> {
        match self.client.get(&self.admin, "/admin/members").await {
            Ok(answer) => {
                let members = render::members_of(&answer).map_err(|why| self.bad(why))?;
                let node = answer
                    .get("node")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| {
                        members
                            .iter()
                            .find(|m| m.is_self)
                            .map(|m| m.node_id.clone())
                    })
                    .unwrap_or_else(|| self.admin.clone());
                Ok(View { node, members })
            }
            // A node that predates membership (or runs without it) is a cluster of
            // one: describe it from its own status.
            Err(e) if e.is_unsupported() => {
                let status = self.client.get(&self.admin, "/admin/status").await?;
                let member = self.member_from_status(&status);
                Ok(View {
                    node: member.node_id.clone(),
                    members: vec![member],
                })
            }
            Err(e) => Err(e),
        }
    }

    fn member_from_status(&self, status: &Value) -> Member {
        let listen = |key: &str| {
            status
                .get("listen")
                .and_then(|l| l.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let node_id = status
            .get("node")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.admin)
            .to_string();
        Member {
            node_id,
            generation: None,
            status: status
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            alive: true,
            connected: None,
            is_self: true,
            tcp: listen("tcp"),
            ws: listen("ws"),
            admin: self.admin.clone(),
            cluster: String::new(),
            load: None,
            raw: json!({ "node_id": status.get("node"), "self": true, "alive": true }),
        }
    }

    /// How to reach `member`'s admin API: `--admin` for the node that answered,
    /// else its advertised address (`None` if it has none).
    fn admin_of<'a>(&'a self, member: &'a Member) -> Option<&'a str> {
        if member.is_self {
            Some(&self.admin)
        } else {
            Some(member.admin.as_str()).filter(|a| !a.is_empty())
        }
    }

    fn bad(&self, why: impl Into<String>) -> CtlError {
        CtlError::BadResponse {
            addr: self.admin.clone(),
            why: why.into(),
        }
    }

    async fn status(&self) -> Result<Outcome, CtlError> {
        let view = self.view().await?;
        let rows: Vec<StatusRow> = join_all(view.members.iter().map(|member| async move {
            let status = match (member.alive, self.admin_of(member)) {
                (false, _) => Err("not alive".to_string()),
                (true, None) => Err("advertises no admin address".to_string()),
                (true, Some(addr)) => self
                    .client
                    .get(addr, "/admin/status")
                    .await
                    .map_err(|e| e.to_string()),
            };
            StatusRow {
                member: member.clone(),
                status,
            }
        }))
        .await;
        let notes = rows
            .iter()
            .filter(|r| r.member.alive)
            .filter_map(|r| {
                r.status
                    .as_ref()
                    .err()
                    .map(|e| format!("{}: {e}", r.member.node_id))
            })
            .collect();
        let mut outcome = if self.json {
            let nodes: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({
                        "node_id": r.member.node_id,
                        "member": r.member.raw,
                        "status": r.status.as_ref().ok(),
                        "error": r.status.as_ref().err(),
                    })
                })
                .collect();
            Outcome::json(&json!({ "node": view.node, "nodes": nodes }))
        } else {
            Outcome::text(render::status_table(&rows))
        };
        outcome.notes = notes;
        Ok(outcome)
    }

    async fn members(&self) -> Result<Outcome, CtlError> {
        let answer = self.client.get(&self.admin, "/admin/members").await?;
        if self.json {
            return Ok(Outcome::json(&answer));
        }
        let members = render::members_of(&answer).map_err(|why| self.bad(why))?;
        let node = render::cell(answer.get("node"));
        Ok(Outcome::text(format!(
            "members as {node} sees them\n{}",
            render::members_table(&members)
        )))
    }

    async fn shards(&self) -> Result<Outcome, CtlError> {
        let answer = self.client.get(&self.admin, "/admin/shards").await?;
        if self.json {
            return Ok(Outcome::json(&answer));
        }
        render::shards_table(&answer)
            .map(Outcome::text)
            .map_err(|why| self.bad(why))
    }

    async fn where_is(&self, key: &str) -> Result<Outcome, CtlError> {
        let path = format!("/admin/where/{}", encode_segment(key));
        let answer = self.client.get(&self.admin, &path).await?;
        let view = self.view().await?;
        let asks = view.members.iter().filter(|m| m.alive).map(|member| {
            let path = &path;
            let answer = &answer;
            async move {
                let running = if member.is_self {
                    Ok(answer.get("running_here").and_then(Value::as_bool))
                } else if let Some(addr) = self.admin_of(member) {
                    self.client
                        .get(addr, path)
                        .await
                        .map(|a| a.get("running_here").and_then(Value::as_bool))
                        .map_err(|e| e.to_string())
                } else {
                    Err("advertises no admin address".to_string())
                };
                (member.node_id.clone(), running)
            }
        });
        let mut report = WhereReport {
            answer: answer.clone(),
            running_on: Vec::new(),
            unreachable: Vec::new(),
        };
        let mut notes = Vec::new();
        for (node, running) in join_all(asks).await {
            match running {
                Ok(Some(true)) => report.running_on.push(node),
                Ok(Some(false)) => {}
                Ok(None) => {
                    notes.push(format!("{node}: its answer has no \"running_here\""));
                    report.unreachable.push(node);
                }
                Err(e) => {
                    notes.push(format!("{node}: {e}"));
                    report.unreachable.push(node);
                }
            }
        }
        let mut outcome = if self.json {
            Outcome::json(&report.to_json())
        } else {
            Outcome::text(report.to_text())
        };
        outcome.notes = notes;
        Ok(outcome)
    }

    async fn drain(&self, args: &DrainArgs) -> Result<Outcome, CtlError> {
        let view = self.view().await?;
        let Some(target) = view.members.iter().find(|m| m.node_id == args.node) else {
            let names: Vec<&str> = view.members.iter().map(|m| m.node_id.as_str()).collect();
            return Err(CtlError::Failed(format!(
                "{} is not a member of the cluster {} sees (members: {})",
                args.node,
                view.node,
                names.join(", ")
            )));
        };
        if !target.alive {
            return Err(CtlError::Failed(format!(
                "{} is not alive: there is nothing to drain",
                target.node_id
            )));
        }
        let addr = self.admin_of(target).ok_or_else(|| {
            CtlError::Failed(format!(
                "{} advertises no admin address to send the drain to",
                target.node_id
            ))
        })?;
        let answer = self.client.post(addr, "/admin/drain", None).await?;
        if !args.wait {
            return Ok(if self.json {
                Outcome::json(&answer)
            } else {
                Outcome::text(format!(
                    "{}: {} (it sends goaway to its clients, hands its shards off, then exits)\n",
                    target.node_id,
                    render::cell(answer.get("status"))
                ))
            });
        }

        eprintln!(
            "{}: {}; waiting up to {} s for it to leave",
            target.node_id,
            render::cell(answer.get("status")),
            args.wait_timeout
        );
        let started = Instant::now();
        let deadline = started + Duration::from_secs(args.wait_timeout);
        // Observers: the other alive members, the node asked first.
        let observers: Vec<&Member> = {
            let mut others: Vec<&Member> = view
                .members
                .iter()
                .filter(|m| m.alive && m.node_id != target.node_id)
                .collect();
            others.sort_by_key(|m| !m.is_self);
            others
        };
        loop {
            let last = match self.drain_progress(&observers, target, addr).await {
                DrainProgress::Gone => break,
                DrainProgress::Present(status) => status,
            };
            if Instant::now() >= deadline {
                return Err(CtlError::Failed(format!(
                    "{} is still a live member ({last}) after {} s; the drain goes on, see its log",
                    target.node_id, args.wait_timeout
                )));
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
        let secs = started.elapsed().as_secs_f64();
        Ok(if self.json {
            Outcome::json(&json!({
                "node": target.node_id,
                "status": "left",
                "waited_s": (secs * 10.0).round() / 10.0,
            }))
        } else {
            Outcome::text(format!(
                "{}: drained, left the cluster after {secs:.1} s\n",
                target.node_id
            ))
        })
    }

    /// Whether `target` has left: asks the observers' membership in turn, and
    /// the target's own admin listener if none of them answers.
    async fn drain_progress(
        &self,
        observers: &[&Member],
        target: &Member,
        target_addr: &str,
    ) -> DrainProgress {
        for observer in observers {
            let Some(addr) = self.admin_of(observer) else {
                continue;
            };
            if let Ok(answer) = self.client.get(addr, "/admin/members").await
                && let Ok(members) = render::members_of(&answer)
            {
                return drain_progress(&members, &target.node_id, target.generation);
            }
        }
        if self.client.answers(target_addr).await {
            DrainProgress::Present("still answering on its admin address".into())
        } else {
            DrainProgress::Gone
        }
    }

    async fn kick(&self, user: &str) -> Result<Outcome, CtlError> {
        let path = format!("/admin/kick/{}", encode_segment(user));
        let answer = self.client.post(&self.admin, &path, None).await?;
        Ok(if self.json {
            Outcome::json(&answer)
        } else {
            Outcome::text(render::kick_text(user, &answer))
        })
    }

    async fn issue_token(
        &self,
        user: &str,
        roles: &[String],
        ttl: Option<u64>,
    ) -> Result<Outcome, CtlError> {
        let mut request = json!({ "user": user, "roles": roles });
        if let Some(ttl) = ttl {
            request["ttl_s"] = ttl.into();
        }
        let answer = self
            .client
            .post(&self.admin, "/admin/token", Some(Body::json(&request)))
            .await?;
        if self.json {
            return Ok(Outcome::json(&answer));
        }
        let (token, note) = render::token_text(&answer).map_err(|why| self.bad(why))?;
        Ok(Outcome {
            stdout: token,
            notes: vec![note],
        })
    }

    async fn filter_reload(&self) -> Result<Outcome, CtlError> {
        let answer = self
            .client
            .post(&self.admin, "/admin/filter/reload", None)
            .await?;
        Ok(if self.json {
            Outcome::json(&answer)
        } else {
            Outcome::text(render::filter_reload_text(&answer))
        })
    }

    async fn tls_reload(&self) -> Result<Outcome, CtlError> {
        let answer = self
            .client
            .post(&self.admin, "/admin/tls/reload", None)
            .await?;
        Ok(if self.json {
            Outcome::json(&answer)
        } else {
            Outcome::text(render::tls_reload_text(&answer))
        })
    }

    async fn filter_test(&self, text: &str) -> Result<Outcome, CtlError> {
        let answer = self
            .client
            .post(&self.admin, "/admin/filter/test", Some(Body::text(text)))
            .await?;
        Ok(if self.json {
            Outcome::json(&answer)
        } else {
            Outcome::text(render::filter_test_text(&answer))
        })
    }
}

/// Where a drained node is, as one membership answer shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DrainProgress {
    /// Not listed, listed as dead, or replaced by a new incarnation: it left.
    Gone,
    /// Still a live member, with this status.
    Present(String),
}

/// Reads `members` for the node `node` of incarnation `generation` (if known).
fn drain_progress(members: &[Member], node: &str, generation: Option<u64>) -> DrainProgress {
    let Some(member) = members.iter().find(|m| m.node_id == node) else {
        return DrainProgress::Gone;
    };
    let restarted = matches!(
        (generation, member.generation),
        (Some(before), Some(now)) if before != now
    );
    if !member.alive || restarted {
        DrainProgress::Gone
    } else {
        DrainProgress::Present(render::or_none(&member.status))
    }
}
