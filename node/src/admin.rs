//! The admin listener (docs/operations.md, "Running a node"): health, metrics and the operator API.
//!
//! | route | access | answer |
//! |---|---|---|
//! | `GET /healthz` | open | `200 ok` once the node accepts clients; `503 not ready` before, `503 draining` once a drain started, and `503` naming the problem while the store is unhealthy ([`StoreHealth`](crate::health::StoreHealth)) |
//! | `GET /metrics` | open | Prometheus text, `process_*` gauges sampled at each scrape |
//! | `GET /admin/status` | bearer | [`AdminBackend::status`] |
//! | `GET /admin/members` | bearer | [`AdminBackend::members`] |
//! | `GET /admin/shards` | bearer | [`AdminBackend::shards`] |
//! | `GET /admin/where/{key}` | bearer | [`AdminBackend::where_is`] |
//! | `POST /admin/drain` | bearer | [`AdminBackend::drain`] |
//! | `POST /admin/kick/{user}` | bearer | [`AdminBackend::kick`] |
//! | `POST /admin/token` | bearer | [`AdminBackend::issue_token`], body [`TokenRequest`] |
//! | `POST /admin/filter/reload` | bearer | [`AdminBackend::filter_reload`] |
//! | `POST /admin/tls/reload` | bearer | [`AdminBackend::tls_reload`] |
//! | `POST /admin/filter/test` | bearer | [`AdminBackend::filter_test`], body the text |
//! | `GET /admin/live/slow/{room}` | bearer | [`AdminBackend::live_slow_mode`] |
//! | `POST /admin/live/slow` | bearer | [`AdminBackend::set_live_slow_mode`], body [`SlowModeRequest`] |
//! | `GET /admin/scaling/status` | bearer | [`AdminBackend::scaling`] (`Status`) |
//! | `GET /admin/scaling/forecast` | bearer | [`AdminBackend::scaling`] (`Forecast`) |
//! | `GET /admin/scaling/series` | bearer | [`AdminBackend::scaling`] (`Series`) |
//!
//! Everything under `/admin/` needs `Authorization: Bearer <admin token>` (`401`
//! otherwise). With no admin token configured the whole `/admin/` tree answers
//! `404`, as if it did not exist. A failure answers its HTTP status with
//! `{"error": <kind>, "message": <text>}` ([`AdminError`]); `chorusctl` prints the
//! message.
//!
//! The operator actions themselves live behind [`AdminBackend`], which the node
//! implements over its actors. The router checks what it can without the node
//! (ids, role names, JSON bodies: `400`) before calling it. Adding an endpoint
//! is: a method with a default body on the trait (answering `501` until the node
//! implements it), a handler here, a row in the table above.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Role;
use crate::health::StoreHealth;
use crate::telemetry;

pub mod listener;
#[cfg(test)]
mod tests;

/// Whether the node accepts clients: `/healthz` answers `200` while it does,
/// `503` with the reason (`not ready`, `draining`) otherwise.
///
/// Cloning shares the state. The node sets it ready once its client listeners
/// are bound, and to draining when a drain starts, so that load balancers stop
/// sending new clients.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicU8>);

const NOT_READY: u8 = 0;
const READY: u8 = 1;
const DRAINING: u8 = 2;

impl Readiness {
    /// A flag that starts not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets or clears readiness.
    pub fn set_ready(&self, ready: bool) {
        self.0
            .store(if ready { READY } else { NOT_READY }, Ordering::Release);
    }

    /// The node drains: not ready, for good.
    pub fn set_draining(&self) {
        self.0.store(DRAINING, Ordering::Release);
    }

    /// Whether the node accepts clients.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire) == READY
    }

    /// Why the node does not accept clients; `None` while it does.
    pub fn why_not(&self) -> Option<&'static str> {
        match self.0.load(Ordering::Acquire) {
            READY => None,
            DRAINING => Some("draining"),
            _ => Some("not ready"),
        }
    }
}

/// What an [`AdminBackend`] operation returns: a JSON document for the operator,
/// produced asynchronously (most answers need a round trip to some actor).
pub type AdminFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, AdminError>> + Send + 'a>>;

/// Which view of predictive scaling `/admin/scaling/*` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalingView {
    /// The recommendation and what it is based on.
    Status,
    /// The last forecast, step by step.
    Forecast,
    /// The cluster's load series.
    Series,
}

/// The node's side of the operator API.
///
/// Every method but [`status`](AdminBackend::status) has a default body that
/// answers `501 Not Implemented`, so that endpoints can be added to the router
/// before the node implements them.
pub trait AdminBackend: Send + Sync + 'static {
    /// `GET /admin/status`: a summary of the node (id, members, connection counts,
    /// ...). The shape is the node's to choose; `chorusctl status` prints it.
    fn status(&self) -> AdminFuture<'_>;

    /// `GET /admin/scaling/{status,forecast,series}`: predictive scaling
    /// (`crate::scaling`): the recommended node count, the last forecast, the
    /// cluster's load series.
    fn scaling(&self, view: ScalingView) -> AdminFuture<'_> {
        let _ = view;
        unsupported("scaling")
    }

    /// `POST /admin/kick/{user}`: closes every session of `user` (a valid id) on
    /// every node, and says how many were closed.
    fn kick(&self, user: String) -> AdminFuture<'_> {
        let _ = user;
        unsupported("kick")
    }

    /// `GET /admin/members`: the cluster as this node's membership sees it, this
    /// node included (on a node without a cluster, only itself):
    ///
    /// ```json
    /// {"node": "n1", "members": [{"node_id": "n1", "generation": 1732000000000,
    ///   "status": "serving", "alive": true, "connected": true, "self": true,
    ///   "tcp": "127.0.0.1:7400", "ws": "127.0.0.1:7401", "admin": "127.0.0.1:7402",
    ///   "cluster": "127.0.0.1:7404", "load": 12}]}
    /// ```
    ///
    /// `status` is `joining`, `serving` or `draining`; `connected` says whether a
    /// transport session to it is up.
    fn members(&self) -> AdminFuture<'_> {
        unsupported("members")
    }

    /// `GET /admin/shards`: the placement this node computes, which shards each
    /// serving member owns:
    ///
    /// ```json
    /// {"node": "n1", "shards": 1024, "serving": ["n1", "n2"], "owners": {"n1": [0, 5], "n2": [1, 2]}}
    /// ```
    fn shards(&self) -> AdminFuture<'_> {
        unsupported("shards")
    }

    /// `GET /admin/where/{key}`: where an entity lives. `key` is the path segment,
    /// percent-decoded and otherwise unchecked (`user:alice`, `conv:dm:alice:bob`,
    /// `conv:group:g1`, `live:r1`): the node parses it and answers `400` when it
    /// names no entity.
    ///
    /// ```json
    /// {"node": "n1", "key": "user:alice", "kind": "user", "entity": "alice",
    ///  "shard": 17, "owner": "n2", "running_here": false}
    /// ```
    fn where_is(&self, key: String) -> AdminFuture<'_> {
        let _ = key;
        unsupported("where")
    }

    /// `POST /admin/drain`: starts draining this node and answers at once with
    /// `{"node": "n1", "status": "draining"}`. The node then hands its shards off
    /// (it stops being a serving member), sends `goaway` to its clients and exits
    /// by itself. Draining a node that is draining already is not an error.
    fn drain(&self) -> AdminFuture<'_> {
        unsupported("drain")
    }

    /// `POST /admin/token`: a client JWT for `user` (a valid id) with `roles` (known
    /// role names, as [`Role::as_str`] spells them), valid `ttl_s` seconds (at least
    /// 1; `None` when the request names none), signed with this node's
    /// `auth.secret`:
    ///
    /// ```json
    /// {"token": "eyJ...", "user": "alice", "roles": ["vip"], "expires_in_s": 3600}
    /// ```
    ///
    /// The node refuses (`400`) a `ttl_s` above `admin.max_token_ttl_s`, and gives
    /// a request without one [`TokenRequest::DEFAULT_TTL_S`] or that cap, whichever
    /// is shorter.
    fn issue_token(&self, user: String, roles: Vec<String>, ttl_s: Option<u64>) -> AdminFuture<'_> {
        let _ = (user, roles, ttl_s);
        unsupported("token issue")
    }

    /// `POST /admin/filter/reload`: rebuilds the word filter from its files off the
    /// hot path and swaps it in; a bad file keeps the old filter and says why.
    fn filter_reload(&self) -> AdminFuture<'_> {
        unsupported("filter reload")
    }

    /// `POST /admin/tls/reload`: reads `[tls]`'s certificate, key and CA files
    /// again and puts them in force for new handshakes; a file that fails keeps
    /// the certificates in use and answers `400` with the reason.
    ///
    /// ```json
    /// {"node": "n1", "chain": 2, "ca_certs": 1, "generation": 3}
    /// ```
    fn tls_reload(&self) -> AdminFuture<'_> {
        unsupported("tls reload")
    }

    /// `POST /admin/filter/test` with the text as the body: what the filter finds
    /// and what mask mode would deliver.
    fn filter_test(&self, text: String) -> AdminFuture<'_> {
        let _ = text;
        unsupported("filter test")
    }

    /// `GET /admin/live/slow/{room}`: the slow mode of live room `room` (a valid
    /// id, without `live:`) as stored, on any node:
    ///
    /// ```json
    /// {"room": "r1", "slow_mode_s": 30, "override_s": 30, "default_s": 0}
    /// ```
    ///
    /// `slow_mode_s` is what the room applies (0: off); `override_s` the
    /// operator's setting (`null`: none, the room follows `default_s`, the
    /// node's `[live] slow_mode_s`).
    fn live_slow_mode(&self, room: String) -> AdminFuture<'_> {
        let _ = room;
        unsupported("live slow")
    }

    /// `POST /admin/live/slow`: sets the slow mode of live room `room` to `seconds`
    /// (0: off; `None`: back to the node's default), stored before the room is
    /// told so that it survives the room moving and restarts. Answers like
    /// [`live_slow_mode`](AdminBackend::live_slow_mode).
    fn set_live_slow_mode(&self, room: String, seconds: Option<u32>) -> AdminFuture<'_> {
        let _ = (room, seconds);
        unsupported("live slow")
    }
}

/// The answer of an operation the node does not implement yet.
fn unsupported(operation: &'static str) -> AdminFuture<'static> {
    Box::pin(std::future::ready(Err(AdminError::Unsupported(operation))))
}

/// Why an admin request failed; each variant is an HTTP status, and the body is
/// `{"error": <kind>, "message": <text>}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// `400`: the request names something malformed (e.g. an invalid user id).
    #[error("{0}")]
    BadRequest(String),
    /// `404`: the thing named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// `501`: the node does not implement this operation.
    #[error("{0} is not implemented by this node")]
    Unsupported(&'static str),
    /// `503`: the node cannot answer now (starting, draining, cluster unreachable).
    #[error("{0}")]
    Unavailable(String),
    /// `500`: the operation failed.
    #[error("{0}")]
    Internal(String),
}

impl AdminError {
    fn status(&self) -> StatusCode {
        match self {
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
            AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            AdminError::BadRequest(_) => "bad_request",
            AdminError::NotFound(_) => "not_found",
            AdminError::Unsupported(_) => "unsupported",
            AdminError::Unavailable(_) => "unavailable",
            AdminError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.kind(), "message": self.to_string() });
        (self.status(), axum::Json(body)).into_response()
    }
}

/// The body of `POST /admin/token`: `{"user": "alice", "roles": ["vip"], "ttl_s": 3600}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The user the token is for (the JWT's `sub`).
    pub user: String,
    /// Role names; absent means none.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Seconds the token is valid; absent means [`TokenRequest::DEFAULT_TTL_S`],
    /// or the node's cap if that is shorter.
    #[serde(default)]
    pub ttl_s: Option<u64>,
}

impl TokenRequest {
    /// The validity of a token whose request names none: one day.
    pub const DEFAULT_TTL_S: u64 = 86_400;

    /// Parses and checks a request body: every problem is a `400` that says what
    /// was wrong, so an operator's typo never reaches the node's signing key.
    /// Repeated roles are kept once, in their first position.
    pub fn parse(body: &[u8]) -> Result<TokenRequest, AdminError> {
        let mut request: TokenRequest = serde_json::from_slice(body).map_err(|e| {
            AdminError::BadRequest(format!(
                "the body must be JSON like {{\"user\": \"alice\", \"roles\": [\"vip\"], \"ttl_s\": 3600}}: {e}"
            ))
        })?;
        valid_id("user id", &request.user)?;
        if let Some(unknown) = request.roles.iter().find(|r| Role::from_name(r).is_none()) {
            let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            return Err(AdminError::BadRequest(format!(
                "unknown role {unknown:?}; the roles are {}",
                known.join(", ")
            )));
        }
        let mut seen = Vec::with_capacity(request.roles.len());
        request.roles.retain(|r| {
            let first = !seen.contains(r);
            if first {
                seen.push(r.clone());
            }
            first
        });
        if request.ttl_s == Some(0) {
            return Err(AdminError::BadRequest(
                "ttl_s must be at least 1 second".into(),
            ));
        }
        Ok(request)
    }
}

/// The body of `POST /admin/live/slow`: `{"room": "r1", "seconds": 30}`.
/// `seconds` is required: 0 turns slow mode off in the room, `null` removes the
/// room's own setting so that `[live] slow_mode_s` applies again.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowModeRequest {
    /// The live room id, without `live:`.
    pub room: String,
    /// Absent: refused. `Some(None)`: `null`. Wider than the stored type so that
    /// a too-large number is refused with the bound, not a type error.
    #[serde(default, deserialize_with = "present")]
    seconds: Option<Option<u64>>,
}

/// Deserializes a field that is present (`null` included) as `Some`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

impl SlowModeRequest {
    /// The largest `seconds`: one day.
    pub const MAX_SECONDS: u32 = chorus_config::MAX_SLOW_MODE_S;

    /// Parses and checks a request body into the room and its new setting
    /// (`None`: back to the default); every problem is a `400` saying what was
    /// wrong.
    pub fn parse(body: &[u8]) -> Result<(String, Option<u32>), AdminError> {
        let request: SlowModeRequest = serde_json::from_slice(body).map_err(|e| {
            AdminError::BadRequest(format!(
                "the body must be JSON like {{\"room\": \"r1\", \"seconds\": 30}}: {e}"
            ))
        })?;
        valid_id("room id", &request.room)?;
        let seconds = match request.seconds {
            None => {
                return Err(AdminError::BadRequest(
                    "\"seconds\" is required: 0 turns slow mode off, null follows [live] slow_mode_s"
                        .into(),
                ));
            }
            Some(None) => None,
            Some(Some(n)) => Some(
                u32::try_from(n)
                    .ok()
                    .filter(|n| *n <= Self::MAX_SECONDS)
                    .ok_or_else(|| {
                        AdminError::BadRequest(format!(
                            "seconds is {n}; slow mode is at most {} s (a day), 0 turns it off",
                            Self::MAX_SECONDS
                        ))
                    })?,
            ),
        };
        Ok((request.room, seconds))
    }
}

/// Everything the admin listener serves from. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    readiness: Readiness,
    /// The store's health; healthy unless the node watches it.
    store_health: StoreHealth,
    metrics: PrometheusHandle,
    /// `None`: `/admin/` is disabled and answers 404.
    admin_token: Option<Arc<str>>,
    backend: Arc<dyn AdminBackend>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("ready", &self.readiness.is_ready())
            .field("admin_api", &self.admin_token.is_some())
            .finish_non_exhaustive()
    }
}

impl AdminState {
    /// State for a node's admin listener.
    ///
    /// `metrics` is normally [`telemetry::install_metrics`]'s handle. `admin_token`
    /// is `[admin] token`; `None` (or empty) disables `/admin/`.
    pub fn new(
        readiness: Readiness,
        metrics: PrometheusHandle,
        admin_token: Option<&str>,
        backend: Arc<dyn AdminBackend>,
    ) -> Self {
        Self {
            readiness,
            store_health: StoreHealth::new(),
            metrics,
            admin_token: admin_token.filter(|t| !t.is_empty()).map(Arc::from),
            backend,
        }
    }

    /// Reports `health` on `/healthz`.
    pub fn with_store_health(mut self, health: StoreHealth) -> Self {
        self.store_health = health;
        self
    }
}

/// The admin HTTP routes, for [`serve_admin`] or for nesting in another router.
pub fn router(state: AdminState) -> Router {
    let admin = Router::new()
        .route("/status", get(admin_status))
        .route("/members", get(admin_members))
        .route("/shards", get(admin_shards))
        .route("/where/{key}", get(admin_where))
        .route("/drain", post(admin_drain))
        .route("/kick/{user}", post(admin_kick))
        .route("/token", post(admin_token))
        .route("/filter/reload", post(admin_filter_reload))
        .route("/filter/test", post(admin_filter_test))
        .route("/tls/reload", post(admin_tls_reload))
        .route("/live/slow", post(admin_set_live_slow))
        .route("/live/slow/{room}", get(admin_live_slow))
        .route(
            "/scaling/status",
            get(|s| admin_scaling(s, ScalingView::Status)),
        )
        .route(
            "/scaling/forecast",
            get(|s| admin_scaling(s, ScalingView::Forecast)),
        )
        .route(
            "/scaling/series",
            get(|s| admin_scaling(s, ScalingView::Series)),
        )
        .fallback(admin_not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_admin_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .nest("/admin", admin)
        .with_state(state)
}

/// Serves the admin API on `listener` until `shutdown` completes, then lets
/// in-flight requests finish; plain HTTP with the default timeouts and cap.
pub async fn serve_admin(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_admin_with(listener, state, listener::AdminListen::default(), shutdown).await
}

async fn admin_scaling(
    State(state): State<AdminState>,
    view: ScalingView,
) -> Result<axum::Json<Value>, AdminError> {
    state.backend.scaling(view).await.map(axum::Json)
}

/// [`serve_admin`] with TLS, timeouts and a connection cap of the node's choosing
/// (`[admin]`, `[tls]`); see [`listener`].
pub async fn serve_admin_with(
    listener: tokio::net::TcpListener,
    state: AdminState,
    listen: listener::AdminListen,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, https = listen.tls.is_some(), "admin listener serving");
    }
    listener::serve(listener, router(state), listen, shutdown).await
}

async fn healthz(State(state): State<AdminState>) -> (StatusCode, String) {
    if let Some(why) = state.readiness.why_not() {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"));
    }
    match state.store_health.problem() {
        None => (StatusCode::OK, "ok\n".into()),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unhealthy: {why}\n"),
        ),
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    telemetry::sample_process_memory();
    state.metrics.run_upkeep();
    let body = state.metrics.render();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Guards `/admin/`: 404 when disabled, 401 without the right bearer token.
async fn require_admin_token(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &state.admin_token else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token);
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => {
            next.run(request).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
            axum::Json(
                json!({ "error": "unauthorized", "message": "admin bearer token required" }),
            ),
        )
            .into_response(),
    }
}

/// The credentials of an `Authorization: Bearer <token>` value; the scheme name
/// is case-insensitive (RFC 9110 §11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Compares without an early exit, so response timing does not reveal how much of
/// a guessed token was right. (The length is not secret.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn admin_status(State(state): State<AdminState>) -> Result<axum::Json<Value>, AdminError> {
    state.backend.status().await.map(axum::Json)
}

async fn admin_members(State(state): State<AdminState>) -> Result<axum::Json<Value>, AdminError> {
    state.backend.members().await.map(axum::Json)
}

async fn admin_shards(State(state): State<AdminState>) -> Result<axum::Json<Value>, AdminError> {
    state.backend.shards().await.map(axum::Json)
}

/// `Path` has percent-decoded the segment, so `user%3Aalice` arrives as `user:alice`.
async fn admin_where(
    State(state): State<AdminState>,
    Path(key): Path<String>,
) -> Result<axum::Json<Value>, AdminError> {
    state.backend.where_is(key).await.map(axum::Json)
}

async fn admin_drain(State(state): State<AdminState>) -> Result<axum::Json<Value>, AdminError> {
    state.backend.drain().await.map(axum::Json)
}

/// Reads the body itself rather than with `axum::Json`, whose rejections are
/// plain text: a malformed request gets the same `{"error", "message"}` answer as
/// every other failure.
async fn admin_token(
    State(state): State<AdminState>,
    body: axum::body::Bytes,
) -> Result<axum::Json<Value>, AdminError> {
    let request = TokenRequest::parse(&body)?;
    state
        .backend
        .issue_token(request.user, request.roles, request.ttl_s)
        .await
        .map(axum::Json)
}

async fn admin_kick(
    State(state): State<AdminState>,
    Path(user): Path<String>,
) -> Result<axum::Json<Value>, AdminError> {
    valid_id("user id", &user)?;
    state.backend.kick(user).await.map(axum::Json)
}

async fn admin_filter_reload(
    State(state): State<AdminState>,
) -> Result<axum::Json<Value>, AdminError> {
    state.backend.filter_reload().await.map(axum::Json)
}

async fn admin_tls_reload(
    State(state): State<AdminState>,
) -> Result<axum::Json<Value>, AdminError> {
    state.backend.tls_reload().await.map(axum::Json)
}

async fn admin_filter_test(
    State(state): State<AdminState>,
    body: String,
) -> Result<axum::Json<Value>, AdminError> {
    state.backend.filter_test(body).await.map(axum::Json)
}

async fn admin_live_slow(
    State(state): State<AdminState>,
    Path(room): Path<String>,
) -> Result<axum::Json<Value>, AdminError> {
    valid_id("room id", &room)?;
    state.backend.live_slow_mode(room).await.map(axum::Json)
}

/// Reads the body itself, as [`admin_token`] does.
async fn admin_set_live_slow(
    State(state): State<AdminState>,
    body: axum::body::Bytes,
) -> Result<axum::Json<Value>, AdminError> {
    let (room, seconds) = SlowModeRequest::parse(&body)?;
    state
        .backend
        .set_live_slow_mode(room, seconds)
        .await
        .map(axum::Json)
}

/// Checks an id from a request; a bad one is the client's error (400).
fn valid_id(kind: &'static str, id: &str) -> Result<(), AdminError> {
    chorus_wire::ids::validate_id(kind, id).map_err(|e| AdminError::BadRequest(e.to_string()))
}

async fn admin_not_found() -> AdminError {
    AdminError::NotFound("no such admin endpoint".to_string())
}
