//! The one list of admin routes: the node's router is built from it, the
//! OpenAPI document describes it, `chorusctl` takes its paths from it, and the
//! node's tests request every entry.

use std::borrow::Cow;

use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use crate::cluster::{
    DrainResponse, MembersResponse, ShardsResponse, StatusResponse, WhereResponse,
};
use crate::filter::{FilterReloadResponse, FilterTestResponse};
use crate::live::{SlowModeRequest, SlowModeResponse};
use crate::scaling::{ScalingForecast, ScalingSeries, ScalingStatus};
use crate::tls::TlsReloadResponse;
use crate::users::{KickResponse, TokenRequest, TokenResponse};

/// Every route of the admin listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /healthz`: whether the node accepts clients.
    Healthz,
    /// `GET /metrics`: Prometheus text.
    Metrics,
    /// `GET /admin/openapi.json`: this contract as an OpenAPI document.
    OpenApi,
    /// `GET /admin/status`.
    Status,
    /// `GET /admin/members`.
    Members,
    /// `GET /admin/shards`.
    Shards,
    /// `GET /admin/where/{key}`.
    Where,
    /// `POST /admin/drain`.
    Drain,
    /// `POST /admin/kick/{user}`.
    Kick,
    /// `POST /admin/token`.
    Token,
    /// `POST /admin/filter/reload`.
    FilterReload,
    /// `POST /admin/filter/test`.
    FilterTest,
    /// `POST /admin/tls/reload`.
    TlsReload,
    /// `GET /admin/live/slow/{room}`.
    LiveSlow,
    /// `POST /admin/live/slow`.
    SetLiveSlow,
    /// `GET /admin/scaling/status`.
    ScalingStatus,
    /// `GET /admin/scaling/forecast`.
    ScalingForecast,
    /// `GET /admin/scaling/series`.
    ScalingSeries,
}

/// An HTTP method the admin API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Reads; never changes the node.
    Get,
    /// Acts on the node or the cluster.
    Post,
}

impl Method {
    /// As HTTP spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone who reaches the listener (load balancers, Prometheus).
    Open,
    /// `Authorization: Bearer <admin.token>`; without `[admin] token` the route
    /// answers `404`.
    Bearer,
}

/// A JSON schema of the contract, by type: its name in the document's
/// components and how to collect it with the schemas it refers to.
#[derive(Clone, Copy)]
pub struct SchemaOf {
    name: fn() -> Cow<'static, str>,
    collect: fn(&mut Vec<(String, RefOr<Schema>)>),
}

impl std::fmt::Debug for SchemaOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SchemaOf").field(&(self.name)()).finish()
    }
}

impl SchemaOf {
    /// The schema of `T`.
    pub fn of<T: ToSchema>() -> Self {
        fn collect<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
            schemas.push((T::name().into_owned(), T::schema()));
            T::schemas(schemas);
        }
        Self {
            name: T::name,
            collect: collect::<T>,
        }
    }

    /// Its name under `#/components/schemas/`.
    pub fn name(&self) -> Cow<'static, str> {
        (self.name)()
    }

    /// Adds it, and every schema it refers to, to `schemas`.
    pub fn collect(&self, schemas: &mut Vec<(String, RefOr<Schema>)>) {
        (self.collect)(schemas);
    }
}

/// What a route takes or gives on success.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// `application/json` of this schema.
    Json(SchemaOf),
    /// `text/plain` (or Prometheus text).
    Text,
}

impl Answer {
    fn json<T: ToSchema>() -> Self {
        Answer::Json(SchemaOf::of::<T>())
    }
}

/// One route: everything the router, the document and the clients agree on.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// Which one.
    pub endpoint: Endpoint,
    /// Its method.
    pub method: Method,
    /// Its path, with `{name}` for a path parameter (the syntax of both axum and
    /// OpenAPI).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// One line for the document.
    pub summary: &'static str,
    /// The request body, if it takes one.
    pub body: Option<Answer>,
    /// The `200` answer.
    pub answer: Answer,
    /// The failures it may answer besides `401`/`404` of [`Access::Bearer`]:
    /// each with an [`ErrorBody`](crate::ErrorBody), except `503` of `/healthz`
    /// (text).
    pub errors: &'static [u16],
}

impl Endpoint {
    /// Every endpoint, in the order of the document.
    pub const ALL: [Endpoint; 18] = [
        Endpoint::Healthz,
        Endpoint::Metrics,
        Endpoint::OpenApi,
        Endpoint::Status,
        Endpoint::Members,
        Endpoint::Shards,
        Endpoint::Where,
        Endpoint::Drain,
        Endpoint::Kick,
        Endpoint::Token,
        Endpoint::FilterReload,
        Endpoint::FilterTest,
        Endpoint::TlsReload,
        Endpoint::LiveSlow,
        Endpoint::SetLiveSlow,
        Endpoint::ScalingStatus,
        Endpoint::ScalingForecast,
        Endpoint::ScalingSeries,
    ];

    /// Its route.
    pub fn route(self) -> Route {
        use Access::{Bearer, Open};
        use Method::{Get, Post};
        let route = |method, path, access, summary, body, answer, errors| Route {
            endpoint: self,
            method,
            path,
            access,
            summary,
            body,
            answer,
            errors,
        };
        match self {
            Endpoint::Healthz => route(
                Get,
                "/healthz",
                Open,
                "`ok` once the node accepts clients; 503 with the reason (not ready, draining, store unhealthy) otherwise",
                None,
                Answer::Text,
                &[503],
            ),
            Endpoint::Metrics => route(
                Get,
                "/metrics",
                Open,
                "Prometheus text exposition of the node's metrics",
                None,
                Answer::Text,
                &[],
            ),
            Endpoint::OpenApi => route(
                Get,
                "/admin/openapi.json",
                Bearer,
                "This document",
                None,
                Answer::Json(SchemaOf::of::<OpenApiDocument>()),
                &[],
            ),
            Endpoint::Status => route(
                Get,
                "/admin/status",
                Bearer,
                "A summary of the node: status, listeners, sessions, entities",
                None,
                Answer::json::<StatusResponse>(),
                &[],
            ),
            Endpoint::Members => route(
                Get,
                "/admin/members",
                Bearer,
                "The cluster as this node's membership sees it, this node included",
                None,
                Answer::json::<MembersResponse>(),
                &[],
            ),
            Endpoint::Shards => route(
                Get,
                "/admin/shards",
                Bearer,
                "The placement this node computes: which shards each serving member owns",
                None,
                Answer::json::<ShardsResponse>(),
                &[],
            ),
            Endpoint::Where => route(
                Get,
                "/admin/where/{key}",
                Bearer,
                "Where an entity lives: user:ID, conv:dm:A:B, conv:group:G or live:R",
                None,
                Answer::json::<WhereResponse>(),
                &[400],
            ),
            Endpoint::Drain => route(
                Post,
                "/admin/drain",
                Bearer,
                "Starts draining this node: goaway to its clients, shards handed off, exit",
                None,
                Answer::json::<DrainResponse>(),
                &[],
            ),
            Endpoint::Kick => route(
                Post,
                "/admin/kick/{user}",
                Bearer,
                "Closes every session of a user, on every node",
                None,
                Answer::json::<KickResponse>(),
                &[400],
            ),
            Endpoint::Token => route(
                Post,
                "/admin/token",
                Bearer,
                "Issues a client JWT signed with this node's auth.secret",
                Some(Answer::json::<TokenRequest>()),
                Answer::json::<TokenResponse>(),
                &[400],
            ),
            Endpoint::FilterReload => route(
                Post,
                "/admin/filter/reload",
                Bearer,
                "Rebuilds the word filter from its files; a bad file keeps the old filter",
                None,
                Answer::json::<FilterReloadResponse>(),
                &[400, 500],
            ),
            Endpoint::FilterTest => route(
                Post,
                "/admin/filter/test",
                Bearer,
                "What the word filter finds in the body's text, and what mask mode delivers",
                Some(Answer::Text),
                Answer::json::<FilterTestResponse>(),
                &[],
            ),
            Endpoint::TlsReload => route(
                Post,
                "/admin/tls/reload",
                Bearer,
                "Reads the [tls] files again; a file that fails keeps the certificates in use",
                None,
                Answer::json::<TlsReloadResponse>(),
                &[400, 500],
            ),
            Endpoint::LiveSlow => route(
                Get,
                "/admin/live/slow/{room}",
                Bearer,
                "The slow mode of a live room, as stored",
                None,
                Answer::json::<SlowModeResponse>(),
                &[400, 500, 503],
            ),
            Endpoint::SetLiveSlow => route(
                Post,
                "/admin/live/slow",
                Bearer,
                "Sets (or resets) the slow mode of a live room",
                Some(Answer::json::<SlowModeRequest>()),
                Answer::json::<SlowModeResponse>(),
                &[400, 500, 503],
            ),
            Endpoint::ScalingStatus => route(
                Get,
                "/admin/scaling/status",
                Bearer,
                "Predictive scaling: the recommended node count and what it rests on",
                None,
                Answer::json::<ScalingStatus>(),
                &[],
            ),
            Endpoint::ScalingForecast => route(
                Get,
                "/admin/scaling/forecast",
                Bearer,
                "Predictive scaling: the last forecast, step by step",
                None,
                Answer::json::<ScalingForecast>(),
                &[],
            ),
            Endpoint::ScalingSeries => route(
                Get,
                "/admin/scaling/series",
                Bearer,
                "Predictive scaling: the cluster's load series",
                None,
                Answer::json::<ScalingSeries>(),
                &[],
            ),
        }
    }
}

impl Route {
    /// The path with its one parameter replaced by `value`, which the caller
    /// has percent-encoded for a path segment. A path without a parameter is
    /// returned as it is.
    pub fn with_param(&self, value: &str) -> String {
        match (self.path.find('{'), self.path.find('}')) {
            (Some(open), Some(close)) if open < close => {
                format!("{}{value}{}", &self.path[..open], &self.path[close + 1..])
            }
            _ => self.path.to_string(),
        }
    }

    /// The names of its path parameters, in order.
    pub fn params(&self) -> Vec<&'static str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect()
    }
}

/// The answer of `GET /admin/openapi.json`: an OpenAPI 3.1 document.
pub struct OpenApiDocument;

impl utoipa::PartialSchema for OpenApiDocument {
    fn schema() -> RefOr<Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Object)
            .required("openapi")
            .required("paths")
            .property(
                "openapi",
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String),
            )
            .property(
                "paths",
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::Object),
            )
            .description(Some(
                "An OpenAPI 3.1 document (https://spec.openapis.org/oas/v3.1.0)",
            ))
            .into()
    }
}

impl ToSchema for OpenApiDocument {}
