#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;

const TOKEN: &str = "s3cret-admin-token";

/// A backend that records what it was asked.
#[derive(Default)]
struct FakeNode {
    kicked: Mutex<Vec<String>>,
}

impl AdminBackend for FakeNode {
    fn status(&self) -> AdminFuture<'_> {
        Box::pin(async { Ok(json!({ "node": "n1", "connections": 3 })) })
    }

    fn kick(&self, user: String) -> AdminFuture<'_> {
        Box::pin(async move {
            if user == "ghost" {
                return Err(AdminError::NotFound("ghost is not online".into()));
            }
            self.kicked.lock().unwrap().push(user);
            Ok(json!({ "sessions_closed": 2 }))
        })
    }
}

/// A backend that implements only what it must.
struct MinimalNode;

impl AdminBackend for MinimalNode {
    fn status(&self) -> AdminFuture<'_> {
        Box::pin(async { Ok(json!({})) })
    }
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
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
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
    let node = start(readiness.clone(), None, Arc::new(MinimalNode)).await;

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
    let node = start(Readiness::new(), None, Arc::new(MinimalNode)).await;
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
    assert_eq!(status, json!({ "node": "n1", "connections": 3 }));

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
    let node = start(Readiness::new(), Some(TOKEN), Arc::new(MinimalNode)).await;
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
        json!({ "sessions_closed": 2 })
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
async fn unimplemented_operations_answer_501() {
    let node = start(Readiness::new(), Some(TOKEN), Arc::new(MinimalNode)).await;
    let reply = request(
        node.addr,
        "POST",
        "/admin/kick/alice",
        &[("Authorization", &bearer(TOKEN))],
    )
    .await;
    assert_eq!(reply.status, 501);
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["error"], "unsupported");
    assert_eq!(body["message"], "kick is not implemented by this node");
    node.stop().await;
}

#[tokio::test]
async fn shutdown_waits_for_nothing_when_idle_and_closes_the_port() {
    let node = start(Readiness::new(), None, Arc::new(MinimalNode)).await;
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
