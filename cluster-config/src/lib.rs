//! Configuration of a Chorus node: the TOML schema, its defaults, and validation
//! whose every error names the dotted key it is about.
//!
//! A node builds its [`Config`] in three steps, and [`Config::resolve`] does all three:
//! 1. [`Config::load`] (or [`Config::default`] when no file is given): parse the file.
//!    Every section and key is optional; unknown keys are rejected by name.
//! 2. [`Config::apply`]: command-line [`Overrides`] replace values of the file.
//! 3. [`Config::validate`]: check every rule and report all problems at once.
//!
//! Modules, one per section of the file:
//! - `cluster`: `[cluster]` node id, seeds, cookie, shard count.
//! - `listen`: `[listen]` listener addresses.
//! - `auth`: `[auth]` dev or JWT tokens.
//! - `storage`: `[storage]` embedded or scylla backend.
//! - `moderation`: `[moderation]` word lists and mode.
//! - `heartbeat`: `[heartbeat]` interval bounds and the idle-timeout rule.
//! - `live`: `[live]` danmaku batching and rate limits.
//! - `limits`: `[limits]` frame, body, queue and page sizes, groups per user.
//! - `entities`: `[entities]` caps on running entities, the access cache.
//! - `connections`: `[connections]` admission caps: in all, per address, per user.
//! - `tls`: `[tls]` certificate, key, cluster CA, and which listeners use them.
//! - `admin`: `[admin]` the operator API token, timeouts and connection cap.
//! - `log`: `[log]` format and level.
//! - `scaling`: `[scaling]` load sampling, forecasts, the actuator.
//!
//! And beside them: `overrides` (command-line values), `error` ([`ConfigError`],
//! [`Problem`]), `secret` ([`Secret`], redacted in `Debug`), `rules` (value rules
//! shared by sections). `docs/configuration.md` describes every key for operators.

mod admin;
mod auth;
mod cluster;
mod connections;
mod entities;
mod error;
mod heartbeat;
mod limits;
mod listen;
mod live;
mod log;
mod moderation;
mod overrides;
mod rules;
mod scaling;
mod secret;
mod storage;
mod tls;

#[cfg(test)]
mod tests;

use std::path::Path;

use serde::Deserialize;

pub use admin::{AdminConfig, DEFAULT_MAX_TOKEN_TTL_S};
pub use auth::{AuthConfig, AuthMode, MIN_SECRET_LEN};
pub use cluster::{ClusterConfig, DEV_COOKIE, MIN_COOKIE_LEN};
pub use connections::{ConnectionsConfig, IpBlock, canonical as canonical_ip};
pub use entities::EntitiesConfig;
pub use error::{ConfigError, Problem};
pub use heartbeat::{HeartbeatConfig, IDLE_GRACE_S, MIN_HEARTBEAT_S};
pub use limits::{
    FRAME_OVERHEAD, GROUP_MEMBER_BYTES, GROUP_NAME_BYTES, JSON_ESCAPE_FACTOR, LimitsConfig,
    MAX_FRAME_CEILING, MIN_FRAME,
};
pub use listen::{ListenAddrs, ListenConfig};
pub use live::{LiveConfig, MAX_SLOW_MODE_S};
pub use log::{LogConfig, LogFormat};
pub use moderation::{ModerationConfig, ModerationMode};
pub use overrides::Overrides;
pub use scaling::{MAX_HISTORY_SAMPLES, SCALING_METRICS, ScalingConfig};
pub use secret::Secret;
pub use storage::{Consistency, StorageBackend, StorageConfig};
pub use tls::TlsConfig;

use error::Problems;
use rules::{host_name_error, host_port_error, is_loopback, is_loopback_host, parse_listen};

/// The whole configuration of one node. Each field is one `[section]` of the file.
///
/// `Default` is the configuration of an empty file: one development node on
/// loopback addresses with the embedded store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[cluster]`: node id and membership.
    pub cluster: ClusterConfig,
    /// `[listen]`: listener addresses.
    pub listen: ListenConfig,
    /// `[auth]`: client authentication.
    pub auth: AuthConfig,
    /// `[storage]`: the message store.
    pub storage: StorageConfig,
    /// `[moderation]`: the word filter.
    pub moderation: ModerationConfig,
    /// `[heartbeat]`: bounds of the heartbeat interval.
    pub heartbeat: HeartbeatConfig,
    /// `[live]`: live rooms.
    pub live: LiveConfig,
    /// `[limits]`: per-connection limits.
    pub limits: LimitsConfig,
    /// `[entities]`: caps on running entities.
    pub entities: EntitiesConfig,
    /// `[connections]`: how many client connections are admitted.
    pub connections: ConnectionsConfig,
    /// `[tls]`: certificates and the listeners that speak TLS.
    pub tls: TlsConfig,
    /// `[admin]`: the operator API.
    pub admin: AdminConfig,
    /// `[log]`: log output.
    pub log: LogConfig,
    /// `[scaling]`: load samples, forecasts, the recommended node count.
    pub scaling: ScalingConfig,
}

impl Config {
    /// Parses TOML text. Does not validate: see [`Config::validate`].
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        parse(text, None)
    }

    /// Reads and parses the file at `path`. Does not validate, so that overrides can
    /// still be applied: see [`Config::resolve`].
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        parse(&text, Some(path))
    }

    /// What `chorus serve` does: loads `path` (defaults when `None`), applies
    /// `overrides`, and validates the result.
    pub fn resolve(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        config.apply(overrides);
        config.validate()?;
        Ok(config)
    }

    /// Checks every rule and returns all problems found, each naming its key:
    /// first each section's own rules, then the rules that span sections.
    ///
    /// Pure: it reads no files and resolves no names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Problems::default();
        self.cluster.check(&mut problems);
        self.listen.check(&mut problems);
        self.auth.check(&mut problems);
        self.storage.check(&mut problems);
        self.moderation.check(&mut problems);
        self.heartbeat.check(&mut problems);
        self.live.check(&mut problems);
        self.limits.check(&mut problems);
        self.entities.check(&mut problems);
        self.connections.check(&mut problems);
        self.tls.check(&mut problems);
        self.admin.check(&mut problems);
        self.log.check(&mut problems);
        self.scaling.check(&mut problems);
        self.check_across_sections(&mut problems);
        problems.into_result()
    }

    /// The idle timeout, in seconds, of a connection whose client announced
    /// `interval_s` (docs/protocol.md §7.11). See [`HeartbeatConfig::idle_timeout_s`].
    pub fn idle_timeout_s(&self, interval_s: u32) -> u32 {
        self.heartbeat.idle_timeout_s(interval_s)
    }

    /// `welcome.heartbeat.idle_timeout_s`: the idle timeout before any announcement.
    pub fn welcome_idle_timeout_s(&self) -> u32 {
        self.heartbeat.welcome_idle_timeout_s()
    }

    fn check_across_sections(&self, problems: &mut Problems) {
        // docs/security.md, "Client tokens": an unsigned token is only acceptable when nobody else can connect.
        if self.auth.mode == AuthMode::Dev {
            let exposed: Vec<String> = [
                ("listen.tcp", &self.listen.tcp),
                ("listen.ws", &self.listen.ws),
            ]
            .into_iter()
            .filter_map(|(key, value)| {
                let addr = parse_listen(value).ok()?;
                (!is_loopback(&addr)).then(|| format!("{key} = \"{addr}\""))
            })
            .collect();
            if !exposed.is_empty() {
                problems.push(
                    "auth.mode",
                    format!(
                        "\"dev\" (the token is the user id, unchecked) is only allowed while listen.tcp and \
                         listen.ws are loopback addresses, but {}; use auth.mode = \"jwt\" with auth.secret, \
                         or bind the client listeners to 127.0.0.1",
                        exposed.join(" and ")
                    ),
                );
            }
        }

        if self.tls.on_cluster() && self.cluster.is_clustered() && self.tls.ca.is_none() {
            problems.push(
                "tls.ca",
                "is required while the cluster transport runs over TLS (tls.cluster = true): \
                 the CA whose certificates the other nodes must present; or set tls.cluster = false",
            );
        }

        let multi_node =
            self.storage.backend == StorageBackend::Scylla || self.cluster.is_clustered();
        if self.storage.backend == StorageBackend::Embedded && !self.cluster.seeds.is_empty() {
            problems.push(
                "cluster.seeds",
                "must be empty when storage.backend = \"embedded\": the embedded store serves a single \
                 node, and a multi-node cluster needs the shared scylla backend",
            );
        }
        if self.storage.backend == StorageBackend::Embedded && self.cluster.enabled {
            problems.push(
                "cluster.enabled",
                "must be false when storage.backend = \"embedded\": the embedded store serves a \
                 single node, and a multi-node cluster needs the shared scylla backend",
            );
        }

        self.check_cookie(problems);

        if multi_node && self.cluster.advertise_host.is_none() {
            for (key, value) in [
                ("listen.gossip", &self.listen.gossip),
                ("listen.cluster", &self.listen.cluster),
            ] {
                if let Ok(addr) = parse_listen(value)
                    && addr.ip().is_unspecified()
                {
                    problems.push(
                        "cluster.advertise_host",
                        format!(
                            "is required when {key} is \"{addr}\" in a cluster: other nodes cannot \
                             reach an unspecified address"
                        ),
                    );
                }
            }
        }
    }
}

impl Config {
    /// `cluster.cookie` keys gossip and authenticates the actor transport: the
    /// development default, or any cookie shorter than [`MIN_COOKIE_LEN`], is only
    /// acceptable while no other machine can reach either (every gossip and
    /// cluster address loopback).
    fn check_cookie(&self, problems: &mut Problems) {
        let cookie = &self.cluster.cookie;
        if cookie.expose().is_empty() {
            return; // Reported by [cluster] itself.
        }
        let is_default = cookie.expose() == DEV_COOKIE;
        if !is_default && cookie.len() >= MIN_COOKIE_LEN {
            return;
        }
        let exposed = self.exposed_cluster_addresses();
        if exposed.is_empty() {
            return;
        }
        let exposed = exposed.join(" and ");
        if is_default {
            problems.push(
                "cluster.cookie",
                format!(
                    "is the development default, which must not be used while {exposed} can be \
                     reached from other machines; set a random secret of at least \
                     {MIN_COOKIE_LEN} bytes shared by the cluster's nodes"
                ),
            );
        } else {
            problems.push(
                "cluster.cookie",
                format!(
                    "is {} bytes long; it must be at least {MIN_COOKIE_LEN} bytes while {exposed} \
                     can be reached from other machines (a shorter cookie is only allowed when \
                     every gossip and cluster address is loopback)",
                    cookie.len()
                ),
            );
        }
    }

    /// The gossip and cluster addresses (listeners, advertised host, seeds) that are
    /// not loopback, as `key = "value"`. A host name other than `localhost` counts
    /// as reachable: what it resolves to is not known here.
    fn exposed_cluster_addresses(&self) -> Vec<String> {
        let mut exposed = Vec::new();
        for (key, value) in [
            ("listen.gossip", &self.listen.gossip),
            ("listen.cluster", &self.listen.cluster),
        ] {
            if let Ok(addr) = parse_listen(value)
                && !is_loopback(&addr)
            {
                exposed.push(format!("{key} = \"{addr}\""));
            }
        }
        // Values that are wrong in themselves are reported by [cluster] alone.
        if let Some(host) = &self.cluster.advertise_host
            && host_name_error(host).is_none()
            && !is_loopback_host(host)
        {
            exposed.push(format!("cluster.advertise_host = \"{host}\""));
        }
        for (i, seed) in self.cluster.seeds.iter().enumerate() {
            if host_port_error(seed).is_some() {
                continue;
            }
            let host = seed.parse::<std::net::SocketAddr>().map_or_else(
                |_| {
                    seed.rsplit_once(':')
                        .map_or(seed.as_str(), |(host, _)| host)
                        .to_string()
                },
                |addr| addr.ip().to_string(),
            );
            if !is_loopback_host(&host) {
                exposed.push(format!("cluster.seeds[{i}] = \"{seed}\""));
            }
        }
        exposed
    }
}

fn parse(text: &str, path: Option<&Path>) -> Result<Config, ConfigError> {
    toml::from_str(text).map_err(|err| {
        let mut message = err.to_string();
        if message.contains("unknown field `node`") {
            message.push_str(
                "\nhint: there is no [node] section; the node id is `node_id` in [cluster]",
            );
        }
        ConfigError::Parse {
            path: path.map(Path::to_path_buf),
            message,
        }
    })
}
