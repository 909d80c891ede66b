//! The contract's own checks: every endpoint has one route, and the document
//! describes every route with references that resolve.
#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use crate::openapi::document;
use crate::routes::{Access, Endpoint};
use serde_json::json;

#[test]
fn every_endpoint_has_its_own_route() {
    let mut seen = std::collections::HashSet::new();
    for endpoint in Endpoint::ALL {
        let route = endpoint.route();
        assert_eq!(route.endpoint, endpoint);
        assert!(seen.insert((route.method, route.path)), "{route:?} twice");
        assert!(route.path.starts_with('/'));
        assert_eq!(
            route.access == Access::Open,
            !route.path.starts_with("/admin/")
        );
    }
}

#[test]
fn parameters_are_filled_in() {
    let route = Endpoint::Where.route();
    assert_eq!(route.params(), ["key"]);
    assert_eq!(route.with_param("user:alice"), "/admin/where/user:alice");
    assert_eq!(Endpoint::Status.route().with_param("x"), "/admin/status");
    assert!(Endpoint::Status.route().params().is_empty());
}

#[test]
fn every_route_is_described_and_every_reference_resolves() {
    let doc = serde_json::to_value(document()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for endpoint in Endpoint::ALL {
        let route = endpoint.route();
        let method = route.method.as_str().to_ascii_lowercase();
        assert!(
            doc["paths"][route.path][&method].is_object(),
            "{route:?} is not in the document"
        );
    }
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let target = reference.split('"').next().unwrap();
        let name = target.strip_prefix("#/components/schemas/").unwrap();
        assert!(schemas.contains_key(name), "{target} does not resolve");
    }
}

#[test]
fn wire_names_and_nulls_are_the_documented_ones() {
    use crate::cluster::MemberInfo;
    use crate::live::SlowModeRequest;
    use crate::scaling::ScalingForecast;

    let member: MemberInfo = serde_json::from_value(json!({
        "node_id": "n1", "generation": 1, "status": "serving", "alive": true,
        "connected": true, "self": true, "tcp": "", "ws": "", "admin": "",
        "cluster": null, "load": 0,
    }))
    .unwrap();
    assert!(member.this);
    assert_eq!(serde_json::to_value(&member).unwrap()["self"], true);
    assert_eq!(
        serde_json::to_value(&member).unwrap()["cluster"],
        json!(null)
    );

    // `seconds`: absent, null and a number are three different requests.
    let absent: SlowModeRequest = serde_json::from_value(json!({ "room": "r" })).unwrap();
    assert_eq!(absent.seconds, None);
    let null: SlowModeRequest =
        serde_json::from_value(json!({ "room": "r", "seconds": null })).unwrap();
    assert_eq!(null.seconds, Some(None));
    assert_eq!(
        serde_json::to_value(SlowModeRequest::new("r", None)).unwrap(),
        json!({ "room": "r", "seconds": null })
    );
    assert_eq!(
        serde_json::to_value(SlowModeRequest::new("r", Some(5))).unwrap(),
        json!({ "room": "r", "seconds": 5 })
    );

    // A pending forecast says `"forecast": null`, a made one has none.
    let pending = json!({ "node": "n1", "forecast": null, "note": "warming up" });
    let read: ScalingForecast = serde_json::from_value(pending.clone()).unwrap();
    assert!(matches!(read, ScalingForecast::Pending(_)));
    assert_eq!(serde_json::to_value(&read).unwrap(), pending);
    let made = json!({
        "node": "n1", "at_ms": 1, "step_s": 10, "mean": [1.0], "lower": [0.5],
        "upper": [2.0], "components": [null],
    });
    let read: ScalingForecast = serde_json::from_value(made.clone()).unwrap();
    assert!(matches!(read, ScalingForecast::Made(_)));
    assert_eq!(serde_json::to_value(&read).unwrap(), made);
}
