//! The admin listener (PROTOCOL.md §7): health, metrics and the operator API.
//!
//! | route | access | answer |
//! |---|---|---|
//! | `GET /healthz` | open | `200 ok` once the node accepts clients, `503` before (and while draining, if the node says so) |
//! | `GET /metrics` | open | Prometheus text, `process_*` gauges sampled at each scrape |
//! | `GET /admin/status` | bearer | [`AdminBackend::status`] |
//! | `POST /admin/kick/{user}` | bearer | [`AdminBackend::kick`] |
//!
//! Everything under `/admin/` needs `Authorization: Bearer <admin token>` (`401`
//! otherwise). With no admin token configured the whole `/admin/` tree answers
//! `404`, as if it did not exist.
//!
//! The operator actions themselves live behind [`AdminBackend`], which the node
//! implements over its actors. Adding an endpoint (drain, where, shards, filter
//! reload) is: a method with a default body on the trait (answering `501` until
//! the node implements it), a handler here, a row in the table above.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{Value, json};

use crate::telemetry;

#[cfg(test)]
mod tests;

/// Whether the node accepts clients: `/healthz` answers `200` while set.
///
/// Cloning shares the flag. The node sets it once its client listeners are bound,
/// and may clear it when it starts draining so that load balancers stop sending
/// new clients.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// A flag that starts not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets or clears readiness.
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Whether the node accepts clients.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What an [`AdminBackend`] operation returns: a JSON document for the operator,
/// produced asynchronously (most answers need a round trip to some actor).
pub type AdminFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, AdminError>> + Send + 'a>>;

/// The node's side of the operator API.
///
/// Every method but [`status`](AdminBackend::status) has a default body that
/// answers `501 Not Implemented`, so that endpoints can be added to the router
/// before the node implements them.
pub trait AdminBackend: Send + Sync + 'static {
    /// `GET /admin/status`: a summary of the node (id, members, connection counts,
    /// ...). The shape is the node's to choose; `chorusctl status` prints it.
    fn status(&self) -> AdminFuture<'_>;

    /// `POST /admin/kick/{user}`: closes every session of `user` (a valid id) on
    /// every node, and says how many were closed.
    fn kick(&self, user: String) -> AdminFuture<'_> {
        let _ = user;
        unsupported("kick")
    }

    /// `POST /admin/filter/reload`: rebuilds the word filter from its files off the
    /// hot path and swaps it in; a bad file keeps the old filter and says why.
    fn filter_reload(&self) -> AdminFuture<'_> {
        unsupported("filter reload")
    }

    /// `POST /admin/filter/test` with the text as the body: what the filter finds
    /// and what mask mode would deliver.
    fn filter_test(&self, text: String) -> AdminFuture<'_> {
        let _ = text;
        unsupported("filter test")
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

/// Everything the admin listener serves from. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    readiness: Readiness,
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
            metrics,
            admin_token: admin_token.filter(|t| !t.is_empty()).map(Arc::from),
            backend,
        }
    }
}

/// The admin HTTP routes, for [`serve_admin`] or for nesting in another router.
pub fn router(state: AdminState) -> Router {
    let admin = Router::new()
        .route("/status", get(admin_status))
        .route("/kick/{user}", post(admin_kick))
        .route("/filter/reload", post(admin_filter_reload))
        .route("/filter/test", post(admin_filter_test))
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
/// in-flight requests finish.
pub async fn serve_admin(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin listener serving");
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz(State(state): State<AdminState>) -> (StatusCode, &'static str) {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
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

async fn admin_kick(
    State(state): State<AdminState>,
    Path(user): Path<String>,
) -> Result<axum::Json<Value>, AdminError> {
    chorus_wire::ids::validate_id("user id", &user)
        .map_err(|e| AdminError::BadRequest(e.to_string()))?;
    state.backend.kick(user).await.map(axum::Json)
}

async fn admin_filter_reload(
    State(state): State<AdminState>,
) -> Result<axum::Json<Value>, AdminError> {
    state.backend.filter_reload().await.map(axum::Json)
}

async fn admin_filter_test(
    State(state): State<AdminState>,
    body: String,
) -> Result<axum::Json<Value>, AdminError> {
    state.backend.filter_test(body).await.map(axum::Json)
}

async fn admin_not_found() -> AdminError {
    AdminError::NotFound("no such admin endpoint".to_string())
}
