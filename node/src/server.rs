//! One running node: the store, the entities, the gateways and the admin API,
//! started from a [`Config`] and stopped cleanly.
//!
//! ```text
//! Node
//! ├── store (embedded: fjall, group commit)
//! ├── ShardRegion ── EntitySupervisor ── User / Conversation
//! ├── tls (with [tls]: certificates, reloaded on SIGHUP or POST /admin/tls/reload)
//! ├── gateway::admission (connection caps of both client listeners)
//! ├── gateway::tcp ── connection tasks (Session)    tcp:// or tls://
//! ├── gateway::ws  ── connection tasks (Session)    ws:// or wss://
//! ├── cluster (with seeds or `cluster.enabled`: gossip, transport, placement)
//! └── admin (HTTP or HTTPS: /healthz, /metrics, /admin/*)
//! ```
//!
//! Shutdown (SIGTERM in the binary): stop accepting, close every connection,
//! leave the cluster, flush the store, then return. A drain (`POST /admin/drain`)
//! hands the node's shards off and sends `goaway` first, then asks the binary to
//! exit ([`Node::exit_requested`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chorus_actors::moderation::{Moderation, Policy};
use chorus_actors::user::UserMsg;
use chorus_actors::{CloseReason, Settings, ShardRegion};
use chorus_config::{Config, StorageBackend};
use chorus_store::MessageStore;
use chorus_store::embedded::{EmbeddedOptions, EmbeddedStore};
use chorus_store::scylla::{Consistency as ScyllaConsistency, ScyllaOptions, ScyllaStore};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use chorus_admin_api::cluster::{
    DrainResponse, EntityCounts, Listen, MemberInfo, MembersResponse, ShardsResponse,
    StatusResponse, WhereResponse,
};
use chorus_admin_api::filter::{FilterHit, FilterReloadResponse, FilterTestResponse};
use chorus_admin_api::live::SlowModeResponse;
use chorus_admin_api::scaling::{ScalingForecast, ScalingSeries, ScalingStatus};
use chorus_admin_api::tls::TlsReloadResponse;
use chorus_admin_api::users::{KickResponse, TokenResponse};

use crate::admin::{AdminBackend, AdminError, AdminFuture, AdminState, Readiness};
use crate::auth::Authenticator;
use crate::cluster::runtime::ClusterRuntime;
use crate::drain::{ClientSchemes, Drain};
use crate::gateway::admission::Admission;
use crate::gateway::{self, GatewayContext};
use crate::health::{StoreHealth, Tolerance};
use crate::tls::{NodeTls, TlsError, TlsReport};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("storage: {0}")]
    Store(String),
    /// The actor system could not start.
    #[error("actors: {0}")]
    Actors(String),
    /// The cluster layer could not start.
    #[error("cluster: {0}")]
    Cluster(String),
    /// The `[tls]` files could not be loaded.
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
}

/// The addresses a started node actually listens on (ports resolved).
#[derive(Debug, Clone, Copy)]
pub struct BoundAddrs {
    /// TCP clients.
    pub tcp: SocketAddr,
    /// WebSocket clients.
    pub ws: SocketAddr,
    /// Admin HTTP.
    pub admin: SocketAddr,
}

/// A running node.
pub struct Node {
    addrs: BoundAddrs,
    region: ShardRegion,
    store: Arc<dyn MessageStore>,
    cluster: Option<Arc<ClusterRuntime>>,
    drain: Arc<Drain>,
    tls: Option<NodeTls>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("addrs", &self.addrs)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Starts a node: opens the store, binds every listener, and serves.
    /// `/healthz` turns 200 once this returns.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        config
            .validate()
            .map_err(|e| StartError::Config(e.to_string()))?;
        let listen = config
            .listen
            .addrs()
            .map_err(|e| StartError::Config(e.to_string()))?;
        let auth = Authenticator::from_config(&config.auth)
            .map_err(|e| StartError::Config(e.to_string()))?;
        let tls = NodeTls::from_config(&config.tls)?;
        let for_listener = |on: bool| tls.clone().filter(|_| on);

        let store: Arc<dyn MessageStore> = match config.storage.backend {
            StorageBackend::Embedded => {
                if !config.storage.fsync {
                    tracing::warn!(
                        path = %config.storage.path.display(),
                        "storage.fsync = false: acknowledged messages can be lost if the machine crashes or loses power"
                    );
                }
                let options = EmbeddedOptions {
                    sync: config.storage.fsync,
                    ..EmbeddedOptions::default()
                };
                let path = config.storage.path.clone();
                let opened =
                    tokio::task::spawn_blocking(move || EmbeddedStore::open_with(path, options))
                        .await
                        .map_err(|e| StartError::Store(e.to_string()))?;
                Arc::new(opened.map_err(|e| StartError::Store(e.to_string()))?)
            }
            StorageBackend::Scylla => {
                let options = ScyllaOptions {
                    contact_points: config.storage.contact_points.clone(),
                    keyspace: config.storage.keyspace.clone(),
                    replication_factor: config.storage.replication_factor,
                    consistency: match config.storage.consistency {
                        chorus_config::Consistency::One => ScyllaConsistency::One,
                        chorus_config::Consistency::LocalQuorum => ScyllaConsistency::LocalQuorum,
                        chorus_config::Consistency::Quorum => ScyllaConsistency::Quorum,
                    },
                    request_timeout: config.storage.request_timeout(),
                };
                let store = ScyllaStore::connect(options)
                    .await
                    .map_err(|e| StartError::Store(e.to_string()))?;
                Arc::new(store)
            }
        };

        let moderation = Arc::new(load_moderation(&config.moderation).await?);
        let settings = Settings {
            node_id: config.cluster.node_id.clone(),
            shards: config.cluster.shards,
            max_frame: config.limits.max_frame,
            max_body: config.limits.max_body as usize,
            history_max: config.limits.history_max,
            max_group_members: config.limits.max_group_members as usize,
            list_max: config.limits.list_max,
            max_inflight: config.limits.max_inflight as usize,
            store_reads: config.limits.store_reads as usize,
            outbound_bytes: usize::try_from(config.limits.outbound_bytes).unwrap_or(usize::MAX),
            live: chorus_actors::live::LiveSettings {
                window: config.live.window(),
                max_batch: config.live.max_batch as usize,
                budget_per_s: config.live.budget_per_s,
                recent: config.live.recent as usize,
                rate_per_user: config.live.rate_per_user,
                rate_window: config.live.rate_window(),
                viewer_queue: config.live.viewer_queue as usize,
                max_lag: std::time::Duration::from_millis(config.live.max_lag_ms),
                slow_mode: config.live.slow_mode(),
            },
            moderation: match config.moderation.mode {
                chorus_config::ModerationMode::Mask => Policy::Mask,
                chorus_config::ModerationMode::Reject => Policy::Reject,
            },
            max_groups_per_user: config.limits.max_groups_per_user as usize,
            max_users: config.entities.max_users as usize,
            max_conversations: config.entities.max_conversations as usize,
            max_live_rooms: config.entities.max_live_rooms as usize,
            group_cache_members: config.entities.group_cache_members as usize,
            ..Settings::default()
        };
        let region = ShardRegion::start_with(store.clone(), settings, moderation)
            .await
            .map_err(|e| StartError::Actors(e.to_string()))?;

        let bind = |what: &'static str, addr: SocketAddr| async move {
            listen_on(addr).map_err(|source| StartError::Bind { what, addr, source })
        };
        let tcp = bind("listen.tcp", listen.tcp).await?;
        let ws = bind("listen.ws", listen.ws).await?;
        let admin = bind("listen.admin", listen.admin).await?;
        let local = |l: &TcpListener, fallback: SocketAddr| l.local_addr().unwrap_or(fallback);
        let addrs = BoundAddrs {
            tcp: local(&tcp, listen.tcp),
            ws: local(&ws, listen.ws),
            admin: local(&admin, listen.admin),
        };

        let cluster = if config.cluster.is_clustered() {
            let bound = chorus_config::ListenAddrs {
                tcp: addrs.tcp,
                ws: addrs.ws,
                admin: addrs.admin,
                gossip: listen.gossip,
                cluster: listen.cluster,
            };
            let runtime = ClusterRuntime::start(
                &config,
                &bound,
                region.clone(),
                for_listener(config.tls.on_cluster()),
            )
            .await
            .map_err(StartError::Cluster)?;
            Some(Arc::new(runtime))
        } else {
            None
        };

        let shutdown = CancellationToken::new();
        let readiness = Readiness::new();
        let drain = Arc::new(Drain::new(
            region.clone(),
            cluster.clone(),
            ClientSchemes::new(
                config.tls.on_tcp(),
                config.tls.on_ws(),
                config.listen.ws_path.clone(),
            ),
            readiness.clone(),
        ));
        let connections = &config.connections;
        let admission = Arc::new(Admission::new(
            connection_cap(connections.max_total),
            connections.max_per_ip,
            connections.exempt_blocks(),
            connections.max_sessions_per_user,
        ));
        let ctx = Arc::new(GatewayContext::new(
            region.clone(),
            auth,
            config.limits.max_frame,
            config.limits.max_body,
            config.limits.hello_timeout(),
            config.heartbeat,
            config.limits.outbound_queue as usize,
            shutdown.clone(),
            admission,
            drain.clone(),
        ));

        let metrics = crate::telemetry::install_metrics();
        let scaling = crate::scaling::Scaling::start(
            &config.scaling,
            config.cluster.node_id.clone(),
            store.clone(),
            region.clone(),
            cluster.clone(),
            metrics.clone(),
            shutdown.clone(),
        );
        let backend = Arc::new(NodeAdmin {
            region: region.clone(),
            addrs,
            moderation: config.moderation.clone(),
            cluster: cluster.clone(),
            drain: drain.clone(),
            auth: config.auth.clone(),
            scaling,
            max_token_ttl_s: config.admin.max_token_ttl_s,
            tls: tls.clone(),
        });
        let store_health = StoreHealth::new();
        let admin_state = AdminState::new(
            readiness.clone(),
            metrics,
            config.admin.token.as_ref().map(|t| t.expose()),
            backend,
        )
        .with_store_health(store_health.clone());

        let mut tasks = JoinSet::new();
        let tolerance = match config.storage.backend {
            StorageBackend::Embedded => Tolerance::None,
            StorageBackend::Scylla => Tolerance::For(config.storage.request_timeout()),
        };
        tasks.spawn(store_health.watch(
            store.clone(),
            tolerance,
            config.storage.request_timeout(),
            shutdown.clone(),
        ));
        tasks.spawn(gateway::tcp::run(
            tcp,
            ctx.clone(),
            for_listener(config.tls.on_tcp()),
        ));
        tasks.spawn(gateway::ws::run(
            ws,
            ctx.clone(),
            config.listen.ws_path.clone(),
            for_listener(config.tls.on_ws()),
        ));
        let admin_shutdown = shutdown.clone();
        let admin_listen = crate::admin::listener::AdminListen::from_config(
            &config.admin,
            for_listener(config.tls.on_admin()),
        );
        tasks.spawn(async move {
            if let Err(e) =
                crate::admin::serve_admin_with(admin, admin_state, admin_listen, async move {
                    admin_shutdown.cancelled().await
                })
                .await
            {
                tracing::error!(error = %e, "admin listener failed");
            }
        });
        readiness.set_ready(true);
        tracing::info!(node = %config.cluster.node_id, tcp = %addrs.tcp, ws = %addrs.ws, admin = %addrs.admin, "node serving");
        Ok(Self {
            addrs,
            region,
            store,
            cluster,
            drain,
            tls,
            shutdown,
            tasks,
        })
    }

    /// Reads the `[tls]` files again for new handshakes (SIGHUP does this); on
    /// failure the certificates in use stay. `Ok(None)` without `[tls]`.
    pub fn reload_tls(&self) -> Result<Option<TlsReport>, TlsError> {
        self.tls.as_ref().map(NodeTls::reload).transpose()
    }

    /// Completes when the node asks to be stopped: a drain finished. The binary
    /// then calls [`Node::shutdown`].
    pub async fn exit_requested(&self) {
        self.drain.finished().await;
    }

    /// Where the node listens.
    pub fn addrs(&self) -> BoundAddrs {
        self.addrs
    }

    /// The node's entities (for tests and operators).
    pub fn region(&self) -> &ShardRegion {
        &self.region
    }

    /// Stops accepting, closes every connection, flushes the store.
    pub async fn shutdown(mut self) {
        tracing::info!("shutting down: closing listeners and connections");
        self.shutdown.cancel();
        for session in self.region.sessions().all() {
            session.close(CloseReason::Shutdown);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.tasks.join_next().await.is_some() {
            if tokio::time::Instant::now() > deadline {
                break;
            }
        }
        // Connections finish their last writes; give them a moment, bounded.
        let wait_start = tokio::time::Instant::now();
        while self.region.sessions().count() > 0 && wait_start.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(cluster) = &self.cluster {
            cluster.shutdown().await;
        }
        if let Err(e) = self.store.flush().await {
            tracing::error!(error = %e, "final store flush failed");
        }
        tracing::info!("node stopped");
    }
}

/// Connections the kernel queues before `accept`: a reconnect storm of thousands
/// of clients must not meet the default backlog of 128 and its SYN retries.
const LISTEN_BACKLOG: u32 = 4096;

/// File descriptors kept for everything but client connections: the store's
/// files, peers, the admin listener, the process itself.
const RESERVED_FDS: u64 = 1024;

/// `connections.max_total`, lowered to what the open-file limit allows once it is
/// raised to its hard limit: a node out of descriptors fails its store and its
/// peers, not only the connection that was one too many.
fn connection_cap(configured: u32) -> usize {
    let configured = u64::from(configured);
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit; connections.max_total applies as set");
            return usize::try_from(configured).unwrap_or(usize::MAX);
        }
    };
    let room = limit.saturating_sub(RESERVED_FDS).max(1);
    if room < configured {
        tracing::warn!(
            configured,
            open_file_limit = limit,
            cap = room,
            "connections.max_total is above what the open-file limit allows; lowered"
        );
    }
    usize::try_from(configured.min(room)).unwrap_or(usize::MAX)
}

fn listen_on(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The admin API's view of this node.
struct NodeAdmin {
    region: ShardRegion,
    addrs: BoundAddrs,
    moderation: chorus_config::ModerationConfig,
    cluster: Option<Arc<ClusterRuntime>>,
    drain: Arc<Drain>,
    auth: chorus_config::AuthConfig,
    /// Predictive scaling: `/admin/scaling/*`.
    scaling: Arc<crate::scaling::Scaling>,
    /// `admin.max_token_ttl_s`: the longest token `POST /admin/token` issues.
    max_token_ttl_s: u64,
    tls: Option<NodeTls>,
}

impl NodeAdmin {
    /// Where this node's listeners are bound.
    fn listen(&self) -> Listen {
        Listen {
            tcp: self.addrs.tcp.to_string(),
            ws: self.addrs.ws.to_string(),
            admin: self.addrs.admin.to_string(),
        }
    }
}

/// An operator's entity key (`user:alice`, `conv:dm:a:b`, `conv:group:g`,
/// `live:r`, or a bare `dm:..`/`group:..`): its kind, the entity's id, and the key
/// placement hashes.
fn entity_key(key: &str) -> Result<(&'static str, String, String), AdminError> {
    let bad = |why: String| AdminError::BadRequest(format!("{key:?}: {why}"));
    if let Some(user) = key.strip_prefix("user:") {
        chorus_wire::ids::validate_id("user id", user).map_err(|e| bad(e.to_string()))?;
        return Ok(("user", user.to_string(), format!("user:{user}")));
    }
    let conv = key.strip_prefix("conv:").unwrap_or(key);
    match chorus_wire::ConvId::parse(conv) {
        Ok(c @ chorus_wire::ConvId::Live(_)) => {
            let id = c.to_string();
            Ok(("live_room", id.clone(), id))
        }
        Ok(c) => {
            let id = c.to_string();
            Ok(("conversation", id.clone(), id))
        }
        Err(e) => Err(bad(format!(
            "{e}; expected user:ID, conv:dm:A:B, conv:group:G or live:R"
        ))),
    }
}

/// The answer of the slow-mode endpoints: what room `room` applies, from its
/// stored `override_s` and the node's `default_s`.
fn slow_mode_answer(room: &str, override_s: Option<u32>, default_s: u64) -> SlowModeResponse {
    SlowModeResponse {
        room: room.to_string(),
        slow_mode_s: override_s.map_or(default_s, u64::from),
        override_s,
        default_s,
    }
}

/// A store failure as an admin answer: `503` when it may pass, `500` otherwise.
fn store_failure(what: &str, e: chorus_store::StoreError) -> AdminError {
    match e {
        chorus_store::StoreError::Unavailable(_) => AdminError::Unavailable(format!("{what}: {e}")),
        other => AdminError::Internal(format!("{what}: {other}")),
    }
}

/// The word filter of `[moderation]`: none without a word list; a list that does
/// not load stops the node from starting, with the reason.
async fn load_moderation(
    config: &chorus_config::ModerationConfig,
) -> Result<Moderation, StartError> {
    let Some(words) = config.words.clone() else {
        return Ok(Moderation::disabled());
    };
    let allow = config.allow.clone();
    tokio::task::spawn_blocking(move || Moderation::from_files(&words, allow.as_deref()))
        .await
        .map_err(|e| StartError::Config(e.to_string()))?
        .map_err(|e| StartError::Config(format!("moderation: {e}")))
}

impl AdminBackend for NodeAdmin {
    fn scaling_status(&self) -> AdminFuture<'_, ScalingStatus> {
        Box::pin(std::future::ready(Ok(self.scaling.status())))
    }

    fn scaling_forecast(&self) -> AdminFuture<'_, ScalingForecast> {
        Box::pin(std::future::ready(Ok(self.scaling.forecast())))
    }

    fn scaling_series(&self) -> AdminFuture<'_, ScalingSeries> {
        Box::pin(std::future::ready(Ok(self.scaling.series_json())))
    }

    fn status(&self) -> AdminFuture<'_, StatusResponse> {
        let (users, conversations, live_rooms) = self.region.entity_counts();
        let body = StatusResponse {
            node: self.region.settings().node_id.clone(),
            status: self.drain.status().to_string(),
            listen: self.listen(),
            sessions: self.region.sessions().count() as u64,
            entities: EntityCounts {
                user: users as u64,
                conversation: conversations as u64,
                live_room: live_rooms as u64,
            },
        };
        Box::pin(std::future::ready(Ok(body)))
    }

    fn filter_reload(&self) -> AdminFuture<'_, FilterReloadResponse> {
        let moderation = self.region.moderation().clone();
        let words = self.moderation.words.clone();
        let allow = self.moderation.allow.clone();
        Box::pin(async move {
            let Some(words) = words else {
                return Err(AdminError::BadRequest(
                    "no [moderation] words file is configured".into(),
                ));
            };
            let report = tokio::task::spawn_blocking(move || {
                moderation.reload_from_files(&words, allow.as_deref())
            })
            .await
            .map_err(|e| AdminError::Internal(e.to_string()))?
            .map_err(|e| AdminError::BadRequest(format!("the filter was not replaced: {e}")))?;
            Ok(FilterReloadResponse {
                version: report.version,
                words: report.words as u64,
                allowed: report.allowed as u64,
                memory_bytes: report.memory_bytes as u64,
                build_ms: report.build_time.as_millis() as u64,
            })
        })
    }

    fn tls_reload(&self) -> AdminFuture<'_, TlsReloadResponse> {
        let node = self.region.settings().node_id.clone();
        let tls = self.tls.clone();
        Box::pin(async move {
            let Some(tls) = tls else {
                return Err(AdminError::BadRequest(
                    "no [tls] certificate is configured".into(),
                ));
            };
            let report = tokio::task::spawn_blocking(move || tls.reload())
                .await
                .map_err(|e| AdminError::Internal(e.to_string()))?
                .map_err(|e| {
                    AdminError::BadRequest(format!(
                        "the certificates in use stay; the new ones did not load: {e}"
                    ))
                })?;
            Ok(TlsReloadResponse {
                node,
                chain: report.chain as u64,
                ca_certs: report.ca_certs as u64,
                generation: report.generation,
            })
        })
    }

    fn filter_test(&self, text: String) -> AdminFuture<'_, FilterTestResponse> {
        let moderation = self.region.moderation();
        let verdict = moderation.check(&text);
        let hits = verdict
            .hits
            .iter()
            .map(|h| FilterHit {
                word: h.word.to_string(),
                start: h.range.start as u64,
                end: h.range.end as u64,
                text: text.get(h.range.clone()).map(str::to_string),
            })
            .collect();
        let body = FilterTestResponse {
            version: verdict.version,
            hits,
            masked: moderation.mask(&text).unwrap_or_else(|| text.clone()),
            normalised: chorus_actors::moderation::normalise(&text).to_string(),
        };
        Box::pin(std::future::ready(Ok(body)))
    }

    fn kick(&self, user: String) -> AdminFuture<'_, KickResponse> {
        let result = match chorus_wire::ids::validate_id("user", &user) {
            Err(e) => Err(AdminError::BadRequest(e.to_string())),
            Ok(()) => {
                // This node's sessions now; the User entity, wherever it runs,
                // closes those on other nodes.
                let sessions = self.region.sessions().of(&user);
                for s in &sessions {
                    s.close(CloseReason::Kicked);
                }
                self.region.tell_user(&user, UserMsg::Kick);
                Ok(KickResponse {
                    closed: sessions.len() as u64,
                    user,
                })
            }
        };
        Box::pin(std::future::ready(result))
    }

    fn members(&self) -> AdminFuture<'_, MembersResponse> {
        Box::pin(async move {
            let node = self.region.settings().node_id.clone();
            let members = match &self.cluster {
                Some(cluster) => cluster
                    .members()
                    .await
                    .into_iter()
                    .map(|v| {
                        let m = v.member;
                        MemberInfo {
                            node_id: m.node_id,
                            generation: m.generation,
                            status: m.status.as_str().to_string(),
                            alive: m.alive,
                            connected: v.connected,
                            this: v.this,
                            tcp: m.tcp,
                            ws: m.ws,
                            admin: m.admin,
                            cluster: Some(m.cluster_addr),
                            load: m.load,
                        }
                    })
                    .collect(),
                None => {
                    let listen = self.listen();
                    vec![MemberInfo {
                        node_id: node.clone(),
                        generation: self.region.link().generation(),
                        status: self.drain.status().to_string(),
                        alive: true,
                        connected: true,
                        this: true,
                        tcp: listen.tcp,
                        ws: listen.ws,
                        admin: listen.admin,
                        cluster: None,
                        load: self.region.sessions().count() as u64,
                    }]
                }
            };
            Ok(MembersResponse { node, members })
        })
    }

    fn shards(&self) -> AdminFuture<'_, ShardsResponse> {
        let placement = self.region.placement();
        let table = placement.table();
        let mut owners: std::collections::BTreeMap<String, Vec<u32>> = table
            .members()
            .iter()
            .map(|m| (m.to_string(), Vec::new()))
            .collect();
        for shard in 0..placement.shards() {
            if let Some(owner) = table.owner_of_shard(shard) {
                owners.entry(owner.to_string()).or_default().push(shard);
            }
        }
        let body = ShardsResponse {
            node: self.region.settings().node_id.clone(),
            shards: placement.shards(),
            serving: table.members().iter().map(|m| m.to_string()).collect(),
            owners,
        };
        Box::pin(std::future::ready(Ok(body)))
    }

    fn where_is(&self, key: String) -> AdminFuture<'_, WhereResponse> {
        let result = entity_key(&key).map(|(kind, entity, placement_key)| {
            let placement = self.region.placement();
            let owner = placement
                .owner(&placement_key)
                .map_or_else(|| self.region.settings().node_id.clone(), |o| o.to_string());
            WhereResponse {
                node: self.region.settings().node_id.clone(),
                key: key.clone(),
                kind: kind.to_string(),
                entity,
                shard: placement.shard_of(&placement_key),
                owner,
                running_here: self.region.is_running(&placement_key),
            }
        });
        Box::pin(std::future::ready(result))
    }

    fn drain(&self) -> AdminFuture<'_, DrainResponse> {
        Box::pin(async move {
            let started = self.drain.start().await;
            Ok(DrainResponse {
                node: self.region.settings().node_id.clone(),
                status: self.drain.status().to_string(),
                started,
            })
        })
    }

    fn live_slow_mode(&self, room: String) -> AdminFuture<'_, SlowModeResponse> {
        Box::pin(async move {
            let stored = self
                .region
                .store()
                .room_settings(&room)
                .await
                .map_err(|e| store_failure("reading the room's settings", e))?;
            let default_s = self.region.settings().live.slow_mode.as_secs();
            Ok(slow_mode_answer(&room, stored.slow_mode_s, default_s))
        })
    }

    fn set_live_slow_mode(
        &self,
        room: String,
        seconds: Option<u32>,
    ) -> AdminFuture<'_, SlowModeResponse> {
        Box::pin(async move {
            let stored = chorus_actors::live::set_slow_mode(&self.region, &room, seconds)
                .await
                .map_err(|e| store_failure("storing the room's settings", e))?;
            tracing::info!(room = %room, slow_mode_s = ?seconds, "operator set a live room's slow mode");
            let default_s = self.region.settings().live.slow_mode.as_secs();
            Ok(slow_mode_answer(&room, stored.slow_mode_s, default_s))
        })
    }

    fn issue_token(
        &self,
        user: String,
        roles: Vec<String>,
        ttl_s: Option<u64>,
    ) -> AdminFuture<'_, TokenResponse> {
        let cap = self.max_token_ttl_s;
        let result = (|| {
            let secret = match (&self.auth.mode, &self.auth.secret) {
                (chorus_config::AuthMode::Jwt, Some(secret)) => secret.expose().to_string(),
                _ => {
                    return Err(AdminError::BadRequest(
                        "tokens are issued only with auth.mode = \"jwt\" (in dev mode the token is the user id)"
                            .into(),
                    ));
                }
            };
            let ttl_s = match ttl_s {
                None => crate::admin::TokenRequest::DEFAULT_TTL_S.min(cap),
                Some(ttl_s) if ttl_s > cap => {
                    return Err(AdminError::BadRequest(format!(
                        "ttl_s = {ttl_s} is longer than this node issues tokens for \
                         (admin.max_token_ttl_s = {cap})"
                    )));
                }
                Some(ttl_s) => ttl_s,
            };
            let set = crate::auth::Roles::from_claim(roles.iter().map(String::as_str));
            let token = crate::auth::issue_token(&secret, &user, set, Duration::from_secs(ttl_s))
                .map_err(|e| AdminError::BadRequest(e.to_string()))?;
            Ok(TokenResponse {
                token,
                user,
                roles: set.iter().map(|r| r.as_str().to_string()).collect(),
                expires_in_s: ttl_s,
            })
        })();
        Box::pin(std::future::ready(result))
    }
}
