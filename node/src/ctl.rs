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
//! Every answer is read as its type of `chorus-admin-api`, the contract the
//! node serves (and describes at `/admin/openapi.json`): a field this version
//! does not know is ignored, a missing or mistyped one is an error that names
//! it.
//!
//! This file parses the command line and dispatches; each command lives in its
//! own file:
//!
//! - `status`, `members`, `shards`, `locate` (`where`), `drain`, `kick`,
//!   `token`, `filter`, `tls`, `live` (`live slow`), `scaling`.
//! - `view`: the context every command shares, and the cluster as the node
//!   asked sees it.
//! - [`http`]: the client (hyper, TCP or TLS) and [`CtlError`].
//! - `render`, `table`: cells and aligned columns.
//!
//! The binary (`src/bin/chorusctl.rs`) parses [`Cli`], calls [`run`], prints the
//! [`Outcome`], and exits 1 on a [`CtlError`] (2 on a usage error).

mod drain;
mod filter;
pub mod http;
mod kick;
mod live;
mod locate;
mod members;
mod render;
mod scaling;
mod shards;
mod status;
mod table;
mod tls;
mod token;
mod view;

#[cfg(test)]
mod tests;

use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::{Parser, Subcommand};

pub use drain::DrainArgs;
pub use filter::FilterCommand;
pub use http::{AdminClient, Body, CtlError};
pub use live::{LiveCommand, SlowArgs};
pub use scaling::ScalingCommand;
pub use tls::TlsCommand;
pub use token::TokenCommand;
use view::Ctl;

/// `--admin` when neither the flag nor `CHORUS_ADMIN` is given: the default
/// `listen.admin`.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:7402";

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
}

/// Runs one command.
pub async fn run(cli: &Cli) -> Result<Outcome, CtlError> {
    let (https, admin) = match cli.admin.strip_prefix("https://") {
        Some(addr) => (true, addr.to_string()),
        None => (false, cli.admin.clone()),
    };
    let mut client = AdminClient::new(cli.token.clone(), Duration::from_secs(cli.timeout));
    if https || cli.ca.is_some() {
        client = client.with_tls(http::tls_connector(cli.ca.as_deref())?);
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
        Command::Token(command) => ctl.token(command).await,
        Command::Filter(command) => ctl.filter(command).await,
        Command::Live(command) => ctl.live(command).await,
        Command::Scaling(command) => ctl.scaling(*command).await,
        Command::Tls(command) => ctl.tls(command).await,
    }
}
