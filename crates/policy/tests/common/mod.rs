//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use corsgate_policy::{Completion, Evaluation, Policy, PolicySpec, PreflightResponse};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// Compile a policy from JSON (the Gateway API field names), panicking with
/// the refusal if it does not compile.
pub fn policy(json: &str) -> Policy {
    let spec: PolicySpec = serde_json::from_str(json).expect("policy JSON");
    match Policy::compile(&spec) {
        Ok(c) => c.policy,
        Err(e) => panic!("policy refused: {e}"),
    }
}

/// Build a header map; repeated names become repeated field lines.
pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_bytes(v.as_bytes()).expect("value"),
        );
    }
    h
}

/// Run a preflight through `evaluate`, asserting it is answered locally.
pub fn preflight(p: &Policy, req: &[(&str, &str)]) -> PreflightResponse {
    match p.evaluate(&Method::OPTIONS, &headers(req)) {
        Evaluation::Preflight(r) => r,
        other => panic!("expected a preflight answer, got {other:?}"),
    }
}

/// Run an actual request and complete the given upstream response headers.
pub fn actual(
    p: &Policy,
    method: Method,
    req: &[(&str, &str)],
    upstream: &[(&str, &str)],
) -> (Completion, HeaderMap) {
    let c = match p.evaluate(&method, &headers(req)) {
        Evaluation::Actual(c) => c,
        other => panic!("expected an actual request, got {other:?}"),
    };
    let mut resp = headers(upstream);
    p.complete(&c, &mut resp);
    (c, resp)
}

/// The single value of a header; panics on more than one line.
pub fn one(h: &HeaderMap, name: &str) -> Option<String> {
    let mut it = h.get_all(name).iter();
    let v = it.next().map(|v| v.to_str().expect("ascii").to_owned());
    assert!(it.next().is_none(), "{name} has more than one line: {h:?}");
    v
}

/// Every Access-Control-* header name present.
pub fn acx(h: &HeaderMap) -> Vec<String> {
    let mut v: Vec<String> = h
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect();
    v.sort();
    v
}

/// The seed page's HTTPRoute CORS filter
/// (`examples/gateway-api/seed-httproute.yaml`), as JSON.
pub const SEED_HTTPROUTE: &str = r#"{
    "allowCredentials": true,
    "allowHeaders": ["Origin"],
    "allowMethods": ["GET", "POST", "OPTIONS"],
    "allowOrigins": ["https://example.com"],
    "exposeHeaders": ["Origin", "X-HTTPRoute-Header"],
    "maxAge": 86400
}"#;

/// The seed page's gateway-wide traffic policy CORS block, as JSON.
pub const SEED_TRAFFIC_POLICY: &str = r#"{
    "allowCredentials": true,
    "allowHeaders": ["Origin", "Authorization", "Content-Type"],
    "allowMethods": ["GET", "POST", "OPTIONS"],
    "allowOrigins": ["https://example.com"],
    "exposeHeaders": ["Origin", "X-TrafficPolicy-Header"],
    "maxAge": 86400
}"#;
