//! The admin listener (docs/operations.md, "Running a node"): health, metrics and the operator API.
//!
//! | route | access | answer |
//! |---|---|---|
//! | `GET /healthz` | open | `200 ok` once the node accepts clients; `503 not ready` before, `503 draining` once a drain started, and `503` naming the problem while the store is unhealthy ([`StoreHealth`](crate::health::StoreHealth)) |
//! | `GET /metrics` | open | Prometheus text, `process_*` gauges sampled at each scrape |
//! | `GET /admin/openapi.json` | bearer | the OpenAPI 3.1 document of this API ([`chorus_admin_api::openapi`]) |
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
//! | `GET /admin/scaling/status` | bearer | [`AdminBackend::scaling_status`] |
//! | `GET /admin/scaling/forecast` | bearer | [`AdminBackend::scaling_forecast`] |
//! | `GET /admin/scaling/series` | bearer | [`AdminBackend::scaling_series`] |
//!
//! Everything under `/admin/` needs `Authorization: Bearer <admin token>` (`401`
//! otherwise). With no admin token configured the whole `/admin/` tree answers
//! `404`, as if it did not exist. A failure answers its HTTP status with
//! `{"error": <kind>, "message": <text>}` ([`AdminError`]); `chorusctl` prints the
//! message.
//!
//! The routes, and the type of every body and answer, are the contract of
//! `chorus-admin-api`: [`router`] serves exactly [`Endpoint::ALL`] (a route
//! without a handler does not compile), and `GET /admin/openapi.json` describes
//! the same list with the schemas of the same types, which `chorusctl` reads.
//!
//! The operator actions themselves live behind [`AdminBackend`], which the node
//! implements over its actors. The router checks what it can without the node
//! (ids, role names, JSON bodies: `400`) before calling it. Adding an endpoint
//! is: its route and types in `chorus-admin-api`, a method on the trait and the
//! node's implementation, a handler here, a row in the table above.

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
use axum::routing::{MethodFilter, MethodRouter, on};
use chorus_admin_api::cluster::{
    DrainResponse, MembersResponse, ShardsResponse, StatusResponse, WhereResponse,
};
use chorus_admin_api::filter::{FilterReloadResponse, FilterTestResponse};
use chorus_admin_api::live::{SlowModeRequest, SlowModeResponse};
use chorus_admin_api::scaling::{ScalingForecast, ScalingSeries, ScalingStatus};
use chorus_admin_api::tls::TlsReloadResponse;
use chorus_admin_api::users::{KickResponse, TokenResponse};
use chorus_admin_api::{Access, Endpoint, ErrorBody, Method};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::Role;
use crate::health::StoreHealth;
use crate::telemetry;

pub use chorus_admin_api::users::TokenRequest;

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

/// What an [`AdminBackend`] operation returns: the typed answer of its route
/// (`chorus_admin_api`), produced asynchronously (most answers need a round trip
/// to some actor).
pub type AdminFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, AdminError>> + Send + 'a>>;

/// The node's side of the operator API: one method per route of
/// [`Endpoint`] that the node answers (`/healthz`, `/metrics` and
/// `/admin/openapi.json` are the listener's own). Each answers the type its
/// route names; the router checks what it can without the node (ids, bodies)
/// first. There are no default bodies: a backend answers every route.
pub trait AdminBackend: Send + Sync + 'static {
    /// `GET /admin/status`: a summary of the node.
    fn status(&self) -> AdminFuture<'_, StatusResponse>;

    /// `GET /admin/scaling/status`: predictive scaling (`crate::scaling`): the
    /// recommended node count and what it rests on.
    fn scaling_status(&self) -> AdminFuture<'_, ScalingStatus>;

    /// `GET /admin/scaling/forecast`: the last forecast, step by step.
    fn scaling_forecast(&self) -> AdminFuture<'_, ScalingForecast>;

    /// `GET /admin/scaling/series`: the cluster's load series.
    fn scaling_series(&self) -> AdminFuture<'_, ScalingSeries>;

    /// `POST /admin/kick/{user}`: closes every session of `user` (a valid id) on
    /// every node, and says how many this node closed.
    fn kick(&self, user: String) -> AdminFuture<'_, KickResponse>;

    /// `GET /admin/members`: the cluster as this node's membership sees it, this
    /// node included (on a node without a cluster, only itself).
    fn members(&self) -> AdminFuture<'_, MembersResponse>;

    /// `GET /admin/shards`: the placement this node computes, which shards each
    /// serving member owns.
    fn shards(&self) -> AdminFuture<'_, ShardsResponse>;

    /// `GET /admin/where/{key}`: where an entity lives. `key` is the path segment,
    /// percent-decoded and otherwise unchecked (`user:alice`, `conv:dm:alice:bob`,
    /// `conv:group:g1`, `live:r1`): the node parses it and answers `400` when it
    /// names no entity.
    fn where_is(&self, key: String) -> AdminFuture<'_, WhereResponse>;

    /// `POST /admin/drain`: starts draining this node and answers at once. The
    /// node then hands its shards off (it stops being a serving member), sends
    /// `goaway` to its clients and exits by itself. Draining a node that is
    /// draining already is not an error.
    fn drain(&self) -> AdminFuture<'_, DrainResponse>;

    /// `POST /admin/token`: a client JWT for `user` (a valid id) with `roles` (known
    /// role names, as [`Role::as_str`] spells them, each once), valid `ttl_s`
    /// seconds (at least 1; `None` when the request names none), signed with this
    /// node's `auth.secret`.
    ///
    /// The node refuses (`400`) a `ttl_s` above `admin.max_token_ttl_s`, and gives
    /// a request without one [`TokenRequest::DEFAULT_TTL_S`] or that cap, whichever
    /// is shorter.
    fn issue_token(
        &self,
        user: String,
        roles: Vec<String>,
        ttl_s: Option<u64>,
    ) -> AdminFuture<'_, TokenResponse>;

    /// `POST /admin/filter/reload`: rebuilds the word filter from its files off the
    /// hot path and swaps it in; a bad file keeps the old filter and says why.
    fn filter_reload(&self) -> AdminFuture<'_, FilterReloadResponse>;

    /// `POST /admin/tls/reload`: reads `[tls]`'s certificate, key and CA files
    /// again and puts them in force for new handshakes; a file that fails keeps
    /// the certificates in use and answers `400` with the reason.
    fn tls_reload(&self) -> AdminFuture<'_, TlsReloadResponse>;

    /// `POST /admin/filter/test` with the text as the body: what the filter finds
    /// and what mask mode would deliver.
    fn filter_test(&self, text: String) -> AdminFuture<'_, FilterTestResponse>;

    /// `GET /admin/live/slow/{room}`: the slow mode of live room `room` (a valid
    /// id, without `live:`) as stored, on any node.
    fn live_slow_mode(&self, room: String) -> AdminFuture<'_, SlowModeResponse>;

    /// `POST /admin/live/slow`: sets the slow mode of live room `room` to `seconds`
    /// (0: off; `None`: back to the node's default), stored before the room is
    /// told so that it survives the room moving and restarts. Answers like
    /// [`live_slow_mode`](AdminBackend::live_slow_mode).
    fn set_live_slow_mode(
        &self,
        room: String,
        seconds: Option<u32>,
    ) -> AdminFuture<'_, SlowModeResponse>;
}

/// Why an admin request failed; each variant is an HTTP status, and the body is
/// an [`ErrorBody`]: `{"error": <kind>, "message": <text>}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// `400`: the request names something malformed (e.g. an invalid user id).
    #[error("{0}")]
    BadRequest(String),
    /// `404`: the thing named does not exist.
    #[error("{0}")]
    NotFound(String),
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
            AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            AdminError::BadRequest(_) => "bad_request",
            AdminError::NotFound(_) => "not_found",
            AdminError::Unavailable(_) => "unavailable",
            AdminError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.kind().to_string(),
            message: self.to_string(),
        };
        (self.status(), axum::Json(body)).into_response()
    }
}

/// Parses and checks a `POST /admin/token` body: every problem is a `400` that
/// says what was wrong, so an operator's typo never reaches the node's signing
/// key. Repeated roles are kept once, in their first position.
pub fn parse_token_request(body: &[u8]) -> Result<TokenRequest, AdminError> {
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

/// The largest slow mode `POST /admin/live/slow` sets: one day.
pub const MAX_SLOW_MODE_S: u32 = chorus_config::MAX_SLOW_MODE_S;

/// Parses and checks a `POST /admin/live/slow` body into the room and its new
/// setting (`None`: back to the default); every problem is a `400` saying what
/// was wrong.
pub fn parse_slow_mode_request(body: &[u8]) -> Result<(String, Option<u32>), AdminError> {
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
                .filter(|n| *n <= MAX_SLOW_MODE_S)
                .ok_or_else(|| {
                    AdminError::BadRequest(format!(
                        "seconds is {n}; slow mode is at most {MAX_SLOW_MODE_S} s (a day), 0 turns it off"
                    ))
                })?,
        ),
    };
    Ok((request.room, seconds))
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

/// The admin HTTP routes, for [`serve_admin`] or for nesting in another router:
/// exactly those of [`Endpoint::ALL`], each on the handler its endpoint names.
pub fn router(state: AdminState) -> Router {
    let mut open = Router::new();
    let mut admin = Router::new();
    for endpoint in Endpoint::ALL {
        let route = endpoint.route();
        let method = match route.method {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
        };
        let handler: MethodRouter<AdminState> = match endpoint {
            Endpoint::Healthz => on(method, healthz),
            Endpoint::Metrics => on(method, metrics),
            Endpoint::OpenApi => on(method, openapi),
            Endpoint::Status => on(method, admin_status),
            Endpoint::Members => on(method, admin_members),
            Endpoint::Shards => on(method, admin_shards),
            Endpoint::Where => on(method, admin_where),
            Endpoint::Drain => on(method, admin_drain),
            Endpoint::Kick => on(method, admin_kick),
            Endpoint::Token => on(method, admin_token),
            Endpoint::FilterReload => on(method, admin_filter_reload),
            Endpoint::FilterTest => on(method, admin_filter_test),
            Endpoint::TlsReload => on(method, admin_tls_reload),
            Endpoint::LiveSlow => on(method, admin_live_slow),
            Endpoint::SetLiveSlow => on(method, admin_set_live_slow),
            Endpoint::ScalingStatus => on(method, admin_scaling_status),
            Endpoint::ScalingForecast => on(method, admin_scaling_forecast),
            Endpoint::ScalingSeries => on(method, admin_scaling_series),
        };
        match (route.access, route.path.strip_prefix("/admin")) {
            (Access::Bearer, Some(path)) => admin = admin.route(path, handler),
            _ => open = open.route(route.path, handler),
        }
    }
    let admin = admin
        .fallback(admin_not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_admin_token,
        ));
    open.nest("/admin", admin).with_state(state)
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
            axum::Json(ErrorBody {
                error: "unauthorized".into(),
                message: "admin bearer token required".into(),
            }),
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

/// A handler's answer: its route's type as JSON, or an [`ErrorBody`].
type Answer<T> = Result<axum::Json<T>, AdminError>;

/// The OpenAPI document, made once: it depends on nothing but the contract.
async fn openapi() -> Result<Response, AdminError> {
    static DOCUMENT: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    let document = DOCUMENT.get_or_init(|| {
        chorus_admin_api::openapi::document()
            .to_json()
            .map_err(|e| format!("the OpenAPI document does not serialize: {e}"))
    });
    let body = document.clone().map_err(AdminError::Internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

async fn admin_status(State(state): State<AdminState>) -> Answer<StatusResponse> {
    state.backend.status().await.map(axum::Json)
}

async fn admin_members(State(state): State<AdminState>) -> Answer<MembersResponse> {
    state.backend.members().await.map(axum::Json)
}

async fn admin_shards(State(state): State<AdminState>) -> Answer<ShardsResponse> {
    state.backend.shards().await.map(axum::Json)
}

async fn admin_scaling_status(State(state): State<AdminState>) -> Answer<ScalingStatus> {
    state.backend.scaling_status().await.map(axum::Json)
}

async fn admin_scaling_forecast(State(state): State<AdminState>) -> Answer<ScalingForecast> {
    state.backend.scaling_forecast().await.map(axum::Json)
}

async fn admin_scaling_series(State(state): State<AdminState>) -> Answer<ScalingSeries> {
    state.backend.scaling_series().await.map(axum::Json)
}

/// `Path` has percent-decoded the segment, so `user%3Aalice` arrives as `user:alice`.
async fn admin_where(
    State(state): State<AdminState>,
    Path(key): Path<String>,
) -> Answer<WhereResponse> {
    state.backend.where_is(key).await.map(axum::Json)
}

async fn admin_drain(State(state): State<AdminState>) -> Answer<DrainResponse> {
    state.backend.drain().await.map(axum::Json)
}

/// Reads the body itself rather than with `axum::Json`, whose rejections are
/// plain text: a malformed request gets the same `{"error", "message"}` answer as
/// every other failure.
async fn admin_token(
    State(state): State<AdminState>,
    body: axum::body::Bytes,
) -> Answer<TokenResponse> {
    let request = parse_token_request(&body)?;
    state
        .backend
        .issue_token(request.user, request.roles, request.ttl_s)
        .await
        .map(axum::Json)
}

async fn admin_kick(
    State(state): State<AdminState>,
    Path(user): Path<String>,
) -> Answer<KickResponse> {
    valid_id("user id", &user)?;
    state.backend.kick(user).await.map(axum::Json)
}

async fn admin_filter_reload(State(state): State<AdminState>) -> Answer<FilterReloadResponse> {
    state.backend.filter_reload().await.map(axum::Json)
}

async fn admin_tls_reload(State(state): State<AdminState>) -> Answer<TlsReloadResponse> {
    state.backend.tls_reload().await.map(axum::Json)
}

async fn admin_filter_test(
    State(state): State<AdminState>,
    body: String,
) -> Answer<FilterTestResponse> {
    state.backend.filter_test(body).await.map(axum::Json)
}

async fn admin_live_slow(
    State(state): State<AdminState>,
    Path(room): Path<String>,
) -> Answer<SlowModeResponse> {
    valid_id("room id", &room)?;
    state.backend.live_slow_mode(room).await.map(axum::Json)
}

/// Reads the body itself, as [`admin_token`] does.
async fn admin_set_live_slow(
    State(state): State<AdminState>,
    body: axum::body::Bytes,
) -> Answer<SlowModeResponse> {
    let (room, seconds) = parse_slow_mode_request(&body)?;
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
