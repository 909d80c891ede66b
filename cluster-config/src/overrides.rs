//! Command-line values that take precedence over the file.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::Config;

/// Values from `chorus serve` flags; each `Some` replaces the file's value.
///
/// The flag parsing itself lives in the node. Addresses arrive typed, so a bad
/// `--tcp` is reported by the flag parser against the flag; the node id is checked
/// by [`Config::validate`] like any other value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--data-dir DIR`: `storage.path`.
    pub data_dir: Option<PathBuf>,
    /// `--tcp ADDR`: `listen.tcp`.
    pub tcp: Option<SocketAddr>,
    /// `--ws ADDR`: `listen.ws`.
    pub ws: Option<SocketAddr>,
    /// `--admin ADDR`: `listen.admin`.
    pub admin: Option<SocketAddr>,
    /// `listen.gossip`.
    pub gossip: Option<SocketAddr>,
    /// `listen.cluster`.
    pub cluster: Option<SocketAddr>,
    /// `--node-id ID`: `cluster.node_id`.
    pub node_id: Option<String>,
    /// `cluster.seeds` (the whole list).
    pub seeds: Option<Vec<String>>,
    /// `log.level`.
    pub log_level: Option<String>,
}

impl Overrides {
    /// The dotted keys these overrides set, e.g. to log where a value came from.
    pub fn keys(&self) -> Vec<&'static str> {
        [
            ("storage.path", self.data_dir.is_some()),
            ("listen.tcp", self.tcp.is_some()),
            ("listen.ws", self.ws.is_some()),
            ("listen.admin", self.admin.is_some()),
            ("listen.gossip", self.gossip.is_some()),
            ("listen.cluster", self.cluster.is_some()),
            ("cluster.node_id", self.node_id.is_some()),
            ("cluster.seeds", self.seeds.is_some()),
            ("log.level", self.log_level.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }
}

impl Config {
    /// Replaces the values `overrides` sets. Call [`Config::validate`] afterwards:
    /// an override can make a valid file invalid (e.g. `--tcp 0.0.0.0:7400` with
    /// `auth.mode = "dev"`) or fix an invalid one.
    pub fn apply(&mut self, overrides: &Overrides) {
        let Overrides {
            data_dir,
            tcp,
            ws,
            admin,
            gossip,
            cluster,
            node_id,
            seeds,
            log_level,
        } = overrides;
        if let Some(dir) = data_dir {
            self.storage.path.clone_from(dir);
        }
        let addrs = [
            (tcp, &mut self.listen.tcp),
            (ws, &mut self.listen.ws),
            (admin, &mut self.listen.admin),
            (gossip, &mut self.listen.gossip),
            (cluster, &mut self.listen.cluster),
        ];
        for (value, slot) in addrs {
            if let Some(addr) = value {
                *slot = addr.to_string();
            }
        }
        if let Some(id) = node_id {
            self.cluster.node_id.clone_from(id);
        }
        if let Some(seeds) = seeds {
            self.cluster.seeds.clone_from(seeds);
        }
        if let Some(level) = log_level {
            self.log.level.clone_from(level);
        }
    }
}
