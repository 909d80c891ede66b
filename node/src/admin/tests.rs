#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;
use chorus_admin_api::cluster::DrainResponse;
use serde_json::{Value, json};

const TOKEN: &str = "s3cret-admin-token";

/// A backend that records what it was asked.
#[derive(Default)]
struct FakeNode {
    kicked: Mutex<Vec<String>>,
    asked_where: Mutex<Vec<String>>,
    drained: Mutex<u32>,
    tokens: Mutex<Vec<(String, Vec<String>, u64)>>,
    slow_modes: Mutex<Vec<(String, Option<u32>)>>,
}

/// A value of the contract from its JSON, as the node would send it.
fn typed<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

fn ready<T: Send + 'static>(value: T) -> AdminFuture<'static, T> {
    Box::pin(std::future::ready(Ok(value)))
}

impl AdminBackend for FakeNode {
    fn status(&self) -> AdminFuture<'_, StatusResponse> {
        ready(typed(json!({
            "node": "n1", "status": "serving", "sessions": 3,
            "listen": { "tcp": "127.0.0.1:7400", "ws": "127.0.0.1:7401", "admin": "127.0.0.1:7402" },
            "entities": { "user": 1, "conversation": 0, "live_room": 0 },
        })))
    }

    fn kick(&self, user: String) -> AdminFuture<'_, KickResponse> {
        Box::pin(async move {
            if user == "ghost" {
                return Err(AdminError::NotFound("ghost is not online".into()));
            }
            self.kicked.lock().unwrap().push(user.clone());
            Ok(KickResponse { user, closed: 2 })
        })
    }

    fn members(&self) -> AdminFuture<'_, MembersResponse> {
        ready(typed(members_json()))
    }

    fn shards(&self) -> AdminFuture<'_, ShardsResponse> {
        ready(typed(json!({
            "node": "n1", "shards": 4, "serving": ["n1", "n2"],
            "owners": { "n1": [0, 3], "n2": [1, 2] },
        })))
    }

    fn where_is(&self, key: String) -> AdminFuture<'_, WhereResponse> {
        Box::pin(async move {
            let Some(entity) = key.strip_prefix("user:") else {
                return Err(AdminError::BadRequest(format!("{key:?} names no entity")));
            };
            let body = typed(json!({
                "node": "n1", "key": key, "kind": "user", "entity": entity,
                "shard": 17, "owner": "n2", "running_here": false,
            }));
            self.asked_where.lock().unwrap().push(key);
            Ok(body)
        })
    }

    fn drain(&self) -> AdminFuture<'_, DrainResponse> {
        Box::pin(async {
            *self.drained.lock().unwrap() += 1;
            Ok(DrainResponse {
                node: "n1".into(),
                status: "draining".into(),
                started: true,
            })
        })
    }

    fn issue_token(
        &self,
        user: String,
        roles: Vec<String>,
        ttl_s: Option<u64>,
    ) -> AdminFuture<'_, TokenResponse> {
        let ttl_s = ttl_s.unwrap_or(TokenRequest::DEFAULT_TTL_S);
        Box::pin(async move {
            let body = TokenResponse {
                token: "eyJ.fake".into(),
                user: user.clone(),
                roles: roles.clone(),
                expires_in_s: ttl_s,
            };
            self.tokens.lock().unwrap().push((user, roles, ttl_s));
            Ok(body)
        })
    }

    fn filter_reload(&self) -> AdminFuture<'_, FilterReloadResponse> {
        Box::pin(std::future::ready(Err(AdminError::BadRequest(
            "no [moderation] words file is configured".into(),
        ))))
    }

    fn tls_reload(&self) -> AdminFuture<'_, TlsReloadResponse> {
        Box::pin(std::future::ready(Err(AdminError::BadRequest(
            "no [tls] certificate is configured".into(),
        ))))
    }

    fn filter_test(&self, text: String) -> AdminFuture<'_, FilterTestResponse> {
        ready(FilterTestResponse {
            version: 0,
            hits: Vec::new(),
            masked: text.clone(),
            normalised: text,
        })
    }

    fn live_slow_mode(&self, room: String) -> AdminFuture<'_, SlowModeResponse> {
        ready(typed(
            json!({ "room": room, "slow_mode_s": 0, "override_s": null, "default_s": 0 }),
        ))
    }

    fn set_live_slow_mode(
        &self,
        room: String,
        seconds: Option<u32>,
    ) -> AdminFuture<'_, SlowModeResponse> {
        Box::pin(async move {
            let body = typed(
                json!({ "room": room, "slow_mode_s": seconds.unwrap_or(0), "override_s": seconds, "default_s": 0 }),
            );
            self.slow_modes.lock().unwrap().push((room, seconds));
            Ok(body)
        })
    }

    fn scaling_status(&self) -> AdminFuture<'_, ScalingStatus> {
        ready(typed(json!({
            "node": "n1", "metric": "connections", "sample_s": 10, "samples": 0, "window": 360,
            "horizon_s": 180, "per_node_capacity": 100.0, "target_percent": 70, "members": [],
            "current_load": 0.0, "current_members": 0, "reactive_nodes": 1,
            "recommended_nodes": null, "forecast": null, "note": "warming up",
            "actuator": { "configured": false, "this_node": true, "last_run": null },
        })))
    }

    fn scaling_forecast(&self) -> AdminFuture<'_, ScalingForecast> {
        ready(typed(
            json!({ "node": "n1", "forecast": null, "note": "warming up" }),
        ))
    }

    fn scaling_series(&self) -> AdminFuture<'_, ScalingSeries> {
        ready(typed(
            json!({ "node": "n1", "metric": "connections", "step_s": 10, "points": [] }),
        ))
    }
}

fn members_json() -> Value {
    json!({
        "node": "n1",
        "members": [{
            "node_id": "n1", "generation": 1_732_000_000_000u64, "status": "serving",
            "alive": true, "connected": true, "self": true,
            "tcp": "127.0.0.1:7400", "ws": "127.0.0.1:7401", "admin": "127.0.0.1:7402",
            "cluster": "127.0.0.1:7404", "load": 12,
        }],
    })
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).unwrap();
        }
        tokio::time::timeout(std::time::Duration::from_secs(5), self.task)
            .await
            .expect("admin listener stops after shutdown")
            .unwrap()
            .unwrap();
    }
}

async fn start(
    readiness: Readiness,
    token: Option<&str>,
    backend: Arc<dyn AdminBackend>,
) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AdminState::new(readiness, telemetry::install_metrics(), token, backend);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_admin(listener, state, async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// One HTTP/1.1 request over a fresh connection, read until the server closes it.
async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    request_with_body(addr, method, path, headers, "").await
}

/// [`request`] with a body (sent with its length on a `POST`).
async fn request_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, &[]).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn healthz_turns_ok_once_ready() {
    let readiness = Readiness::new();
    let node = start(readiness.clone(), None, Arc::new(FakeNode::default())).await;

    let before = get(node.addr, "/healthz").await;
    assert_eq!(before.status, 503);

    readiness.set_ready(true);
    let after = get(node.addr, "/healthz").await;
    assert_eq!(after.status, 200);
    assert_eq!(after.body.trim(), "ok");

    readiness.set_ready(false);
    assert_eq!(get(node.addr, "/healthz").await.status, 503);
    node.stop().await;
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_process_memory() {
    let node = start(Readiness::new(), None, Arc::new(FakeNode::default())).await;
    metrics::counter!(telemetry::metric::MESSAGES_ACKED_TOTAL).increment(1);

    let reply = get(node.addr, "/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .head
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        reply.head
    );
    assert!(
        reply
            .body
            .contains("# TYPE process_resident_memory_bytes gauge"),
        "{}",
        reply.body
    );
    let rss = reply
        .body
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .unwrap();
    assert!(rss.parse::<f64>().unwrap() > 0.0, "{rss}");
    assert!(
        reply.body.contains("chorus_messages_acked_total"),
        "{}",
        reply.body
    );
    node.stop().await;
}

#[tokio::test]
async fn admin_requires_the_bearer_token() {
    let node = start(Readiness::new(), Some(TOKEN), Arc::new(FakeNode::default())).await;

    let none = get(node.addr, "/admin/status").await;
    assert_eq!(none.status, 401);
    assert!(
        none.head.contains("www-authenticate: bearer"),
        "{}",
        none.head
    );

    let wrong = request(
        node.addr,
        "GET",
        "/admin/status",
        &[("Authorization", &bearer("guess"))],
    )
    .await;
    assert_eq!(wrong.status, 401);
    let prefix = request(
        node.addr,
        "GET",
        "/admin/status",
        &[("Authorization", &bearer("s3cret"))],
    )
    .await;
    assert_eq!(prefix.status, 401);
    let basic = request(
        node.addr,
        "GET",
        "/admin/status",
        &[("Authorization", &format!("Basic {TOKEN}"))],
    )
    .await;
    assert_eq!(basic.status, 401);

    let good = request(
        node.addr,
        "GET",
        "/admin/status",
        &[("Authorization", &bearer(TOKEN))],
    )
    .await;
    assert_eq!(good.status, 200);
    assert!(
        good.head.contains("content-type: application/json"),
        "{}",
        good.head
    );
    let status: Value = serde_json::from_str(&good.body).unwrap();
    assert_eq!(
        (&status["node"], &status["sessions"]),
        (&json!("n1"), &json!(3))
    );

    let lower = request(
        node.addr,
        "GET",
        "/admin/status",
        &[("Authorization", &format!("bearer {TOKEN}"))],
    )
    .await;
    assert_eq!(lower.status, 200);
    node.stop().await;
}

#[tokio::test]
async fn unknown_admin_paths_are_hidden_behind_auth() {
    let node = start(Readiness::new(), Some(TOKEN), Arc::new(FakeNode::default())).await;
    assert_eq!(get(node.addr, "/admin/nope").await.status, 401);
    let reply = request(
        node.addr,
        "GET",
        "/admin/nope",
        &[("Authorization", &bearer(TOKEN))],
    )
    .await;
    assert_eq!(reply.status, 404);
    assert_eq!(get(node.addr, "/nope").await.status, 404);
    node.stop().await;
}

#[tokio::test]
async fn admin_is_absent_without_a_token() {
    for token in [None, Some("")] {
        let node = start(Readiness::new(), token, Arc::new(FakeNode::default())).await;
        assert_eq!(get(node.addr, "/admin/status").await.status, 404);
        let reply = request(
            node.addr,
            "GET",
            "/admin/status",
            &[("Authorization", "Bearer ")],
        )
        .await;
        assert_eq!(reply.status, 404);
        // The open routes are still served.
        assert_eq!(get(node.addr, "/metrics").await.status, 200);
        node.stop().await;
    }
}

#[tokio::test]
async fn kick_reaches_the_backend() {
    let backend = Arc::new(FakeNode::default());
    let node = start(Readiness::new(), Some(TOKEN), backend.clone()).await;
    let auth = bearer(TOKEN);
    let auth = [("Authorization", auth.as_str())];

    let reply = request(node.addr, "POST", "/admin/kick/alice", &auth).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        serde_json::from_str::<Value>(&reply.body).unwrap(),
        json!({ "user": "alice", "closed": 2 })
    );
    assert_eq!(*backend.kicked.lock().unwrap(), ["alice"]);

    let bad = request(node.addr, "POST", "/admin/kick/al%20ice", &auth).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(
        serde_json::from_str::<Value>(&bad.body).unwrap()["error"],
        "bad_request"
    );

    let ghost = request(node.addr, "POST", "/admin/kick/ghost", &auth).await;
    assert_eq!(ghost.status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&ghost.body).unwrap()["message"],
        "ghost is not online"
    );

    let wrong_method = request(node.addr, "GET", "/admin/kick/alice", &auth).await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(*backend.kicked.lock().unwrap(), ["alice"]);
    node.stop().await;
}

#[tokio::test]
async fn every_route_of_the_contract_is_served() {
    let node = start(Readiness::new(), Some(TOKEN), Arc::new(FakeNode::default())).await;
    let auth = bearer(TOKEN);
    let auth = [("Authorization", auth.as_str())];
    for endpoint in Endpoint::ALL {
        let route = endpoint.route();
        let path = route.with_param("r1");
        let body = match endpoint {
            Endpoint::Token => r#"{"user": "alice"}"#,
            Endpoint::SetLiveSlow => r#"{"room": "r1", "seconds": 5}"#,
            _ => "",
        };
        let reply = request_with_body(node.addr, route.method.as_str(), &path, &auth, body).await;
        assert!(
            ![404, 405, 501].contains(&reply.status),
            "{route:?}: {} {}",
            reply.status,
            reply.body
        );
    }
    // The document served lists the same routes.
    let doc = request(node.addr, "GET", "/admin/openapi.json", &auth).await;
    assert_eq!(doc.status, 200);
    let doc: Value = serde_json::from_str(&doc.body).unwrap();
    for endpoint in Endpoint::ALL {
        let route = endpoint.route();
        let method = route.method.as_str().to_ascii_lowercase();
        assert!(doc["paths"][route.path][&method].is_object(), "{route:?}");
    }
    node.stop().await;
}

fn json_of(reply: &Reply) -> Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body))
}

#[tokio::test]
async fn cluster_routes_need_the_token() {
    let backend = Arc::new(FakeNode::default());
    let node = start(Readiness::new(), Some(TOKEN), backend.clone()).await;
    for (method, path) in [
        ("GET", "/admin/members"),
        ("GET", "/admin/shards"),
        ("GET", "/admin/where/user:alice"),
        ("POST", "/admin/drain"),
        ("POST", "/admin/token"),
    ] {
        let reply = request_with_body(
            node.addr,
            method,
            path,
            &[("Authorization", &bearer("guess"))],
            r#"{"user": "alice"}"#,
        )
        .await;
        assert_eq!(reply.status, 401, "{method} {path}");
    }
    assert_eq!(*backend.drained.lock().unwrap(), 0);
    assert!(backend.tokens.lock().unwrap().is_empty());
    assert!(backend.asked_where.lock().unwrap().is_empty());
    node.stop().await;
}

#[tokio::test]
async fn members_shards_and_drain_pass_the_backend_json_through() {
    let backend = Arc::new(FakeNode::default());
    let node = start(Readiness::new(), Some(TOKEN), backend.clone()).await;
    let auth = bearer(TOKEN);
    let auth = [("Authorization", auth.as_str())];

    let members = request(node.addr, "GET", "/admin/members", &auth).await;
    assert_eq!(members.status, 200, "{}", members.body);
    assert_eq!(json_of(&members), members_json());

    let shards = request(node.addr, "GET", "/admin/shards", &auth).await;
    assert_eq!(shards.status, 200);
    assert_eq!(json_of(&shards)["owners"]["n2"], json!([1, 2]));

    let drain = request(node.addr, "POST", "/admin/drain", &auth).await;
    assert_eq!(drain.status, 200);
    assert_eq!(
        json_of(&drain),
        json!({ "node": "n1", "status": "draining", "started": true })
    );
    assert_eq!(*backend.drained.lock().unwrap(), 1);

    // Draining is an action: a GET (a crawler, a mistyped curl) must not start it.
    let get_drain = request(node.addr, "GET", "/admin/drain", &auth).await;
    assert_eq!(get_drain.status, 405);
    assert_eq!(*backend.drained.lock().unwrap(), 1);
    node.stop().await;
}

#[tokio::test]
async fn where_receives_the_decoded_key() {
    let backend = Arc::new(FakeNode::default());
    let node = start(Readiness::new(), Some(TOKEN), backend.clone()).await;
    let auth = bearer(TOKEN);
    let auth = [("Authorization", auth.as_str())];

    let plain = request(node.addr, "GET", "/admin/where/user:alice", &auth).await;
    assert_eq!(plain.status, 200, "{}", plain.body);
    assert_eq!(
        json_of(&plain),
        json!({
            "node": "n1", "key": "user:alice", "kind": "user", "entity": "alice",
            "shard": 17, "owner": "n2", "running_here": false,
        })
    );
    let encoded = request(node.addr, "GET", "/admin/where/user%3Abob", &auth).await;
    assert_eq!(encoded.status, 200, "{}", encoded.body);
    assert_eq!(json_of(&encoded)["entity"], "bob");
    let conv = request(
        node.addr,
        "GET",
        "/admin/where/conv%3Adm%3Aalice%3Abob",
        &auth,
    )
    .await;
    assert_eq!(conv.status, 400, "{}", conv.body);
    assert_eq!(json_of(&conv)["error"], "bad_request");
    assert_eq!(
        *backend.asked_where.lock().unwrap(),
        ["user:alice", "user:bob"]
    );

    // A key is one segment: there is no route for a slash inside it.
    let nested = request(node.addr, "GET", "/admin/where/user/alice", &auth).await;
    assert_eq!(nested.status, 404);
    node.stop().await;
}

#[tokio::test]
async fn token_requests_are_checked_before_the_backend() {
    let backend = Arc::new(FakeNode::default());
    let node = start(Readiness::new(), Some(TOKEN), backend.clone()).await;
    let auth = bearer(TOKEN);
    let auth = [("Authorization", auth.as_str())];
    let post =
        |body: &'static str| request_with_body(node.addr, "POST", "/admin/token", &auth, body);

    let reply = post(r#"{"user": "alice", "roles": ["vip", "mod", "vip"], "ttl_s": 3600}"#).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        json_of(&reply),
        json!({ "token": "eyJ.fake", "user": "alice", "roles": ["vip", "mod"], "expires_in_s": 3600 })
    );
    let reply = post(r#"{"user": "bob"}"#).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(json_of(&reply)["expires_in_s"], TokenRequest::DEFAULT_TTL_S);

    for (body, says) in [
        ("", "must be JSON"),
        ("{not json", "must be JSON"),
        (r#"{"roles": ["vip"]}"#, "missing field `user`"),
        (r#"{"user": "alice", "ttl": 60}"#, "unknown field `ttl`"),
        (r#"{"user": "alice", "ttl_s": -1}"#, "must be JSON"),
        (r#"{"user": "al ice"}"#, "user id"),
        (r#"{"user": ""}"#, "user id"),
        (
            r#"{"user": "alice", "roles": ["root"]}"#,
            "unknown role \"root\"",
        ),
        (r#"{"user": "alice", "roles": "vip"}"#, "must be JSON"),
        (
            r#"{"user": "alice", "ttl_s": 0}"#,
            "ttl_s must be at least 1",
        ),
    ] {
        let reply = post(body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        let error = json_of(&reply);
        assert_eq!(error["error"], "bad_request", "{body}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    assert_eq!(
        *backend.tokens.lock().unwrap(),
        [
            (
                "alice".to_string(),
                vec!["vip".to_string(), "mod".to_string()],
                3600
            ),
            ("bob".to_string(), vec![], TokenRequest::DEFAULT_TTL_S),
        ]
    );
    node.stop().await;
}

#[tokio::test]
async fn slow_mode_requests_are_checked_before_the_backend() {
    let backend = Arc::new(FakeNode::default());
    let node = start(Readiness::new(), Some(TOKEN), backend.clone()).await;
    let auth = bearer(TOKEN);
    let auth = [("Authorization", auth.as_str())];
    let post =
        |body: &'static str| request_with_body(node.addr, "POST", "/admin/live/slow", &auth, body);

    let reply = post(r#"{"room": "r1", "seconds": 30}"#).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(json_of(&reply)["override_s"], 30);
    for body in [
        r#"{"room": "r1", "seconds": 0}"#,
        r#"{"room": "r.2", "seconds": 86400}"#,
        r#"{"room": "r1", "seconds": null}"#,
    ] {
        let reply = post(body).await;
        assert_eq!(reply.status, 200, "{body}: {}", reply.body);
    }
    for (body, says) in [
        ("", "must be JSON"),
        (r#"{"seconds": 30}"#, "missing field `room`"),
        (r#"{"room": "r1"}"#, "\"seconds\" is required"),
        (r#"{"room": "r1", "seconds": 86401}"#, "at most 86400 s"),
        (
            r#"{"room": "r1", "seconds": 18446744073709551615}"#,
            "at most 86400 s",
        ),
        (r#"{"room": "r1", "seconds": -1}"#, "must be JSON"),
        (r#"{"room": "r1", "seconds": "30"}"#, "must be JSON"),
        (
            r#"{"room": "r1", "seconds": 30, "s": 1}"#,
            "unknown field `s`",
        ),
        (r#"{"room": "live:r1", "seconds": 30}"#, "room id"),
        (r#"{"room": "", "seconds": 30}"#, "room id"),
    ] {
        let reply = post(body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        let error = json_of(&reply);
        assert_eq!(error["error"], "bad_request", "{body}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    assert_eq!(
        *backend.slow_modes.lock().unwrap(),
        [
            ("r1".to_string(), Some(30)),
            ("r1".to_string(), Some(0)),
            ("r.2".to_string(), Some(86_400)),
            ("r1".to_string(), None),
        ]
    );

    let reply = request(node.addr, "GET", "/admin/live/slow/r1", &auth).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(json_of(&reply)["room"], "r1");
    let reply = request(node.addr, "GET", "/admin/live/slow/r%201", &auth).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let reply = request(node.addr, "GET", "/admin/live/slow/r1", &[]).await;
    assert_eq!(reply.status, 401);
    node.stop().await;
}

#[tokio::test]
async fn shutdown_waits_for_nothing_when_idle_and_closes_the_port() {
    let node = start(Readiness::new(), None, Arc::new(FakeNode::default())).await;
    let addr = node.addr;
    node.stop().await;
    assert!(TcpStream::connect(addr).await.is_err());
}

#[test]
fn bearer_parsing() {
    assert_eq!(bearer_token("Bearer abc"), Some("abc"));
    assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
    assert_eq!(bearer_token("Basic abc"), None);
    assert_eq!(bearer_token("Bearer"), None);
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"abcd"));
}
