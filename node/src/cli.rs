//! Command line of the node binary (docs/operations.md, "Running a node"):
//!
//! ```text
//! chorus serve [--config FILE] [--data-dir DIR] [--tcp ADDR] [--ws ADDR] [--admin ADDR] [--node-id ID]
//! ```
//!
//! plus `--gossip`, `--cluster` and `--seed` for running several nodes from one
//! configuration file, and `--log-format`, `--log-level`. Every flag overrides the
//! configuration file; the file and the flags together are validated by
//! `chorus_config` ([`ServeArgs::config`]), so a bad value is reported once, with
//! the key it sets.

use std::net::SocketAddr;
use std::path::PathBuf;

use chorus_config::{Config, ConfigError, LogFormat, Overrides};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};

/// The `chorus` command.
#[derive(Debug, Parser)]
#[command(
    name = "chorus",
    version,
    about = "Chorus instant-messaging node: chats, groups and live rooms over TCP and WebSocket",
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `chorus`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node until interrupted (SIGINT or SIGTERM).
    Serve(ServeArgs),
}

/// Flags of `chorus serve`. Each one that is given replaces the configuration
/// file's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Without one, the defaults: a single development
    /// node on loopback addresses.
    #[arg(long, value_name = "FILE", env = "CHORUS_CONFIG")]
    pub config: Option<PathBuf>,

    /// Data directory of the embedded store [storage.path].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Client TCP listener, e.g. 127.0.0.1:7400 [listen.tcp].
    #[arg(long, value_name = "ADDR")]
    pub tcp: Option<SocketAddr>,

    /// Client WebSocket listener, e.g. 127.0.0.1:7401 [listen.ws].
    #[arg(long, value_name = "ADDR")]
    pub ws: Option<SocketAddr>,

    /// Admin HTTP listener (/healthz, /metrics, /admin/), e.g. 127.0.0.1:7402
    /// [listen.admin].
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,

    /// This node's id in the cluster [cluster.node_id].
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,

    /// Membership gossip listener (UDP) [listen.gossip].
    #[arg(long, value_name = "ADDR")]
    pub gossip: Option<SocketAddr>,

    /// Actor transport listener between nodes [listen.cluster].
    #[arg(long, value_name = "ADDR")]
    pub cluster: Option<SocketAddr>,

    /// Gossip address of a node to join through; repeat for several. Replaces the
    /// file's whole list [cluster.seeds].
    #[arg(long = "seed", value_name = "HOST:PORT")]
    pub seeds: Vec<String>,

    /// Log output format [log.format].
    #[arg(
        long,
        value_name = "FORMAT",
        value_parser = PossibleValuesParser::new(["text", "json"]).map(|s| parse_log_format(&s)),
    )]
    pub log_format: Option<LogFormat>,

    /// Log filter, e.g. info or info,chorus_actors=debug [log.level].
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
}

fn parse_log_format(name: &str) -> LogFormat {
    match name {
        "json" => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

impl ServeArgs {
    /// The flags that set configuration values, for [`Config::apply`].
    ///
    /// `--log-format` has no counterpart in [`Overrides`]; [`ServeArgs::config`]
    /// applies it.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            data_dir: self.data_dir.clone(),
            tcp: self.tcp,
            ws: self.ws,
            admin: self.admin,
            gossip: self.gossip,
            cluster: self.cluster,
            node_id: self.node_id.clone(),
            seeds: (!self.seeds.is_empty()).then(|| self.seeds.clone()),
            log_level: self.log_level.clone(),
        }
    }

    /// The node's configuration: the file (or the defaults), the flags over it,
    /// validated. The error lists every problem with its key.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut config = Config::resolve(self.config.as_deref(), &self.overrides())?;
        if let Some(format) = self.log_format {
            config.log.format = format;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

    use clap::CommandFactory;

    use super::*;

    fn serve(args: &[&str]) -> ServeArgs {
        let cli = Cli::try_parse_from(["chorus", "serve"].iter().chain(args)).unwrap();
        let Command::Serve(serve) = cli.command;
        serve
    }

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn protocol_flags_parse() {
        let args = serve(&[
            "--config",
            "node.toml",
            "--data-dir",
            "data",
            "--tcp",
            "0.0.0.0:7400",
            "--ws",
            "[::1]:7401",
            "--admin",
            "127.0.0.1:0",
            "--node-id",
            "n-2",
        ]);
        assert_eq!(args.config, Some(PathBuf::from("node.toml")));
        let overrides = args.overrides();
        assert_eq!(
            overrides,
            Overrides {
                data_dir: Some(PathBuf::from("data")),
                tcp: Some("0.0.0.0:7400".parse().unwrap()),
                ws: Some("[::1]:7401".parse().unwrap()),
                admin: Some("127.0.0.1:0".parse().unwrap()),
                node_id: Some("n-2".into()),
                ..Overrides::default()
            }
        );
    }

    #[test]
    fn no_flags_no_overrides() {
        let args = serve(&[]);
        assert_eq!(args.overrides(), Overrides::default());
        assert!(args.overrides().keys().is_empty());
    }

    #[test]
    fn cluster_and_log_flags_parse() {
        let args = serve(&[
            "--seed",
            "10.0.0.1:7403",
            "--seed",
            "node-b.internal:7403",
            "--gossip",
            "127.0.0.1:7503",
            "--cluster",
            "127.0.0.1:7504",
            "--log-format",
            "json",
            "--log-level",
            "debug",
        ]);
        assert_eq!(args.log_format, Some(LogFormat::Json));
        let overrides = args.overrides();
        assert_eq!(
            overrides.seeds,
            Some(vec![
                "10.0.0.1:7403".to_string(),
                "node-b.internal:7403".to_string()
            ])
        );
        assert_eq!(overrides.gossip, Some("127.0.0.1:7503".parse().unwrap()));
        assert_eq!(overrides.cluster, Some("127.0.0.1:7504".parse().unwrap()));
        assert_eq!(overrides.log_level.as_deref(), Some("debug"));
    }

    #[test]
    fn bad_values_are_refused_against_their_flag() {
        for args in [
            &["serve", "--tcp", "localhost"][..],
            &["serve", "--admin", "1.2.3.4"],
            &["serve", "--log-format", "xml"],
            &["serve", "--bogus"],
            &[],
        ] {
            let err = Cli::try_parse_from(std::iter::once("chorus").chain(args.iter().copied()))
                .unwrap_err();
            if let Some(flag) = args.get(1) {
                assert!(err.to_string().contains(flag), "{args:?}: {err}");
            }
        }
    }

    #[test]
    fn flags_override_the_defaults() {
        let args = serve(&[
            "--admin",
            "127.0.0.1:0",
            "--node-id",
            "n7",
            "--log-format",
            "json",
        ]);
        let config = args.config().unwrap();
        assert_eq!(config.listen.admin, "127.0.0.1:0");
        assert_eq!(config.cluster.node_id, "n7");
        assert_eq!(config.log.format, LogFormat::Json);
    }

    #[test]
    fn invalid_overrides_are_reported_by_key() {
        let err = serve(&["--node-id", "bad id"]).config().unwrap_err();
        assert!(err.to_string().contains("cluster.node_id"), "{err}");
    }

    #[test]
    fn help_lists_every_protocol_flag() {
        let help = Cli::command()
            .find_subcommand_mut("serve")
            .unwrap()
            .render_long_help()
            .to_string();
        for flag in [
            "--config <FILE>",
            "--data-dir <DIR>",
            "--tcp <ADDR>",
            "--ws <ADDR>",
            "--admin <ADDR>",
            "--node-id <ID>",
        ] {
            assert!(help.contains(flag), "{flag} missing from:\n{help}");
        }
    }
}
