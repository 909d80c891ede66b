//! `/admin/openapi.json` against a real `chorus` process: the document lists
//! every route of the contract (`chorus_admin_api::Endpoint::ALL`, the list the
//! router is built from), and a real answer of every route validates against
//! the schema the document gives for its status.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use chorus_admin_api::{Access, Endpoint, Method};
use chorus_node::ctl::{AdminClient, Body};
use serde_json::{Value, json};

const TOKEN: &str = "openapi-test-admin-token";
const JWT_SECRET: &str = "a-jwt-secret-of-32-bytes-for-tests";

/// A `chorus` process, killed when dropped.
struct NodeProc {
    _child: common::process::KillOnDrop,
    admin: String,
    _dir: tempfile::TempDir,
}

/// One node on loopback with every optional route usable: an admin token, JWT
/// auth (for `/admin/token`) and a word list (for `/admin/filter/*`).
fn start() -> NodeProc {
    let dir = tempfile::tempdir().unwrap();
    let words = dir.path().join("words.txt");
    std::fs::write(&words, "badword\n").unwrap();
    let data = dir.path().join("data");
    let config = format!(
        "[listen]\ntcp = \"127.0.0.1:0\"\nws = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [storage]\npath = {data:?}\n\
         [admin]\ntoken = \"{TOKEN}\"\n\
         [auth]\nmode = \"jwt\"\nsecret = \"{JWT_SECRET}\"\n\
         [moderation]\nwords = {words:?}\n"
    );
    let file = dir.path().join("node.toml");
    std::fs::write(&file, config).unwrap();
    let mut child = common::process::serve(&file)
        .spawn()
        .expect("chorus starts");
    let listening = common::process::listening(&mut child);
    NodeProc {
        _child: common::process::KillOnDrop(child),
        admin: listening.admin.to_string(),
        _dir: dir,
    }
}

/// A request of each route that the node answers with its success, where the
/// node's configuration allows one; `/admin/tls/reload` without `[tls]` answers
/// its documented `400`.
fn sample(endpoint: Endpoint) -> (String, Option<Body>) {
    let route = endpoint.route();
    match endpoint {
        Endpoint::Where => (route.with_param("user:alice"), None),
        Endpoint::Kick => (route.with_param("alice"), None),
        Endpoint::LiveSlow => (route.with_param("hall"), None),
        Endpoint::Token => (
            route.path.into(),
            Some(Body::json(
                &json!({ "user": "alice", "roles": ["vip"], "ttl_s": 60 }),
            )),
        ),
        Endpoint::SetLiveSlow => (
            route.path.into(),
            Some(Body::json(&json!({ "room": "hall", "seconds": 30 }))),
        ),
        Endpoint::FilterTest => (route.path.into(), Some(Body::text("a badword here"))),
        _ => (route.path.into(), None),
    }
}

/// The schema the document gives for `status` of `method path` in `media`,
/// made a root schema that resolves the document's components.
fn schema_of(doc: &Value, path: &str, method: &str, status: u16, media: &str) -> Value {
    let content = &doc["paths"][path][method]["responses"][status.to_string()]["content"];
    let mut schema = content[media]["schema"].clone();
    assert!(
        schema.is_object(),
        "{method} {path}: no {media} schema for {status} in {content}"
    );
    schema["components"] = doc["components"].clone();
    schema
}

#[tokio::test]
async fn openapi_describes_every_route_and_every_answer_matches_it() {
    let node = start();
    let client = AdminClient::new(Some(TOKEN.into()), Duration::from_secs(10));
    let doc_answer = client
        .raw(&node.admin, Method::Get, "/admin/openapi.json", None)
        .await
        .unwrap();
    assert_eq!(doc_answer.status, 200);
    assert_eq!(doc_answer.content_type.as_deref(), Some("application/json"));
    let doc: Value = serde_json::from_slice(&doc_answer.body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // The schemas resolve and are not vacuous: a wrong shape is refused.
    let status = schema_of(&doc, "/admin/status", "get", 200, "application/json");
    let status = jsonschema::draft202012::new(&status).unwrap();
    assert!(!status.is_valid(&json!({ "node": "n1" })));
    assert!(!status.is_valid(&json!({
        "node": "n1", "status": "serving", "sessions": "three",
        "listen": { "tcp": "", "ws": "", "admin": "" },
        "entities": { "user": 0, "conversation": 0, "live_room": 0 },
    })));

    // The document lists exactly the routes of the contract.
    let mut listed = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            listed.push(format!("{} {path}", method.to_ascii_uppercase()));
        }
    }
    let mut served: Vec<String> = Endpoint::ALL
        .iter()
        .map(|e| format!("{} {}", e.route().method.as_str(), e.route().path))
        .collect();
    listed.sort();
    served.sort();
    assert_eq!(listed, served);

    // A real answer of each route, drain last: it ends the node.
    let mut endpoints: Vec<Endpoint> = Endpoint::ALL
        .into_iter()
        .filter(|e| *e != Endpoint::Drain)
        .collect();
    endpoints.push(Endpoint::Drain);
    for endpoint in endpoints {
        let route = endpoint.route();
        let (path, body) = sample(endpoint);
        let answer = client
            .raw(&node.admin, route.method, &path, body)
            .await
            .unwrap_or_else(|e| panic!("{route:?}: {e}"));
        let method = route.method.as_str().to_ascii_lowercase();
        let want = if endpoint == Endpoint::TlsReload {
            400
        } else {
            200
        };
        assert_eq!(
            answer.status,
            want,
            "{route:?}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        let media = answer
            .content_type
            .as_deref()
            .and_then(|c| c.split(';').next())
            .unwrap_or_default()
            .trim()
            .to_string();
        let documented = if media == "application/json" {
            "application/json"
        } else {
            assert!(media.starts_with("text/"), "{route:?}: {media}");
            "text/plain"
        };
        let schema = schema_of(&doc, route.path, &method, answer.status, documented);
        let instance = if documented == "application/json" {
            serde_json::from_slice::<Value>(&answer.body).unwrap()
        } else {
            Value::String(String::from_utf8(answer.body.to_vec()).unwrap())
        };
        let validator = jsonschema::draft202012::new(&schema)
            .unwrap_or_else(|e| panic!("{route:?}: the schema does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{route:?}: {instance} does not match its schema: {errors:?}"
        );

        // Every admin route refuses a request without the token, as documented.
        if route.access == Access::Bearer && endpoint != Endpoint::Drain {
            let anonymous = AdminClient::new(None, Duration::from_secs(10));
            let (path, body) = sample(endpoint);
            let refused = anonymous
                .raw(&node.admin, route.method, &path, body)
                .await
                .unwrap();
            assert_eq!(refused.status, 401, "{route:?}");
            let schema = schema_of(&doc, route.path, &method, 401, "application/json");
            let instance: Value = serde_json::from_slice(&refused.body).unwrap();
            assert!(
                jsonschema::draft202012::new(&schema)
                    .unwrap()
                    .is_valid(&instance),
                "{route:?}: {instance}"
            );
        }
    }
}
