//! The console's sign-in, sessions, CSRF rule and roles on a real listener
//! over a real SQLite file.

use bytes::Bytes;
use corsgate_admin::{serve, AdminState, Token};
use corsgate_config::Role;
use corsgate_store::Store;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

const CONFIG: &str = "policies:\n  p:\n    allowOrigins: [\"https://a.example\"]\n    allowMethods: [GET]\n    maxAge: 600\nvservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    cors: p\n    rules:\n      - name: all\n        match: { path: { prefix: / } }\n        direct: { status: 200 }\n";

fn token(name: &str, secret: &str, role: Role) -> Token {
    Token {
        name: name.into(),
        sha256: Sha256::digest(secret.as_bytes()).into(),
        role,
    }
}

async fn start(dir: &std::path::Path) -> (SocketAddr, tokio::sync::watch::Sender<bool>) {
    let store = Store::open(dir).unwrap();
    let state = Arc::new(AdminState {
        store: Arc::new(Mutex::new(store)),
        tokens: vec![
            token("viewer", "v-secret", Role::Viewer),
            token("alice", "a-secret", Role::Editor),
        ],
        max_body: 64 * 1024,
        activate: Arc::new(|_| Ok(())),
        metrics: None,
        shadow: None,
        used: Mutex::default(),
        limits: corsgate_admin::Limits::default(),
        tls: None,
        denials: corsgate_admin::Denials::default(),
        integrity: Mutex::default(),
        console: Default::default(),
        fleet: None,
        node_address: "127.0.0.1".into(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(serve(listener, state, rx));
    (addr, stop)
}

async fn call(
    a: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<Value>,
) -> (u16, HeaderMap, Value) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{a}{path}"));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let resp = client
        .request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        h,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn own(a: SocketAddr) -> (&'static str, String) {
    ("origin", format!("http://{a}"))
}

/// Sign in; the cookie header to send and the CSRF token.
async fn login(a: SocketAddr, secret: &str) -> ((&'static str, String), String) {
    let (s, h, b) = call(
        a,
        "POST",
        "/ui/login",
        &[own(a)],
        Some(json!({ "token": secret })),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let set = h["set-cookie"].to_str().unwrap().to_owned();
    let pair = set.split(';').next().unwrap().to_owned();
    (("cookie", pair), b["csrf"].as_str().unwrap().to_owned())
}

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("corsgate-console-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[tokio::test]
async fn sign_in_sets_a_strict_cookie_and_a_wrong_token_gets_nothing() {
    let (a, _stop) = start(&dir("login")).await;
    let (s, h, _) = call(
        a,
        "POST",
        "/ui/login",
        &[own(a)],
        Some(json!({ "token": "nope" })),
    )
    .await;
    assert_eq!(s, 401);
    assert!(h.get("set-cookie").is_none());
    // Sign-in from another site's page is refused even with a good token.
    let evil = ("origin", "http://evil.example".to_owned());
    let (s, h, _) = call(
        a,
        "POST",
        "/ui/login",
        &[evil],
        Some(json!({ "token": "a-secret" })),
    )
    .await;
    assert_eq!(s, 403);
    assert!(h.get("set-cookie").is_none());

    let (s, h, b) = call(
        a,
        "POST",
        "/ui/login",
        &[own(a)],
        Some(json!({ "token": "a-secret" })),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(b["role"], "editor");
    let set = h["set-cookie"].to_str().unwrap();
    assert!(set.starts_with("corsgate_session="), "{set}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "plain-text listener: {set}");
    assert!(!set.contains("a-secret") && !b.to_string().contains("a-secret"));
}

#[tokio::test]
async fn a_session_reads_and_its_changes_need_origin_and_csrf() {
    let (a, _stop) = start(&dir("csrf")).await;
    let (cookie, csrf) = login(a, "a-secret").await;
    let apply = json!({ "base": null, "comment": "c", "content": CONFIG });
    assert_eq!(
        call(
            a,
            "GET",
            "/api/v1/versions",
            std::slice::from_ref(&cookie),
            None
        )
        .await
        .0,
        200
    );
    let csrf_h = ("x-csrf-token", csrf.clone());
    let evil = ("origin", "http://evil.example".to_owned());
    // (headers, expected status) for the same apply.
    let cases: Vec<(Vec<(&str, String)>, u16)> = vec![
        (vec![cookie.clone()], 403),
        (vec![cookie.clone(), own(a)], 403),
        (vec![cookie.clone(), csrf_h.clone()], 403),
        (vec![cookie.clone(), evil, csrf_h.clone()], 403),
        (
            vec![cookie.clone(), own(a), ("x-csrf-token", "0".repeat(64))],
            403,
        ),
        (
            vec![
                ("cookie", "corsgate_session=forged".into()),
                own(a),
                csrf_h.clone(),
            ],
            401,
        ),
        (vec![cookie.clone(), own(a), csrf_h.clone()], 201),
    ];
    for (i, (h, want)) in cases.iter().enumerate() {
        let (s, _, b) = call(a, "POST", "/api/v1/versions", h, Some(apply.clone())).await;
        assert_eq!(s, *want, "case {i}: {b}");
    }
    let (_, _, versions) = call(
        a,
        "GET",
        "/api/v1/versions",
        std::slice::from_ref(&cookie),
        None,
    )
    .await;
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        1,
        "only the last case applied"
    );
    assert_eq!(versions["versions"][0]["author"], "alice");

    // Sign-out ends the session server side.
    let (s, _, _) = call(
        a,
        "POST",
        "/ui/logout",
        &[cookie.clone(), own(a), csrf_h],
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        call(a, "GET", "/api/v1/versions", &[cookie], None).await.0,
        401
    );
}

#[tokio::test]
async fn a_viewer_session_is_refused_changes_whatever_it_sends() {
    let (a, _stop) = start(&dir("viewer")).await;
    let bearer = ("authorization", "Bearer a-secret".to_owned());
    let apply = json!({ "base": null, "comment": "c", "content": CONFIG });
    assert_eq!(
        call(
            a,
            "POST",
            "/api/v1/versions",
            &[bearer],
            Some(apply.clone())
        )
        .await
        .0,
        201
    );
    let (cookie, csrf) = login(a, "v-secret").await;
    let h = vec![cookie, own(a), ("x-csrf-token", csrf)];
    assert_eq!(
        call(
            a,
            "POST",
            "/api/v1/versions",
            &h,
            Some(json!({ "base": 1, "comment": "x", "content": CONFIG }))
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            a,
            "POST",
            "/api/v1/rollback",
            &h,
            Some(json!({ "base": 1, "to": 1 }))
        )
        .await
        .0,
        403
    );
    assert_eq!(call(a, "DELETE", "/api/v1/shadow", &h, None).await.0, 403);
    // The read-only computations are open to a viewer.
    let (s, _, v) = call(
        a,
        "POST",
        "/api/v1/validate",
        &h,
        Some(json!({ "content": CONFIG.replace("https://a.example", "a.example/x") })),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["line"], 3, "{v}");
    let (s, _, e) = call(a, "GET", "/api/v1/effective", &h, None).await;
    assert_eq!(s, 200);
    assert_eq!(e["vservices"][0]["rules"][0]["binding"], "vService");
    assert_eq!(e["vservices"][0]["rules"][0]["policy"], "p");
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_bearer_clients_are_unchanged() {
    let (a, _stop) = start(&dir("headers")).await;
    let bearer = ("authorization", "Bearer v-secret".to_owned());
    let paths = [
        ("GET", "/ui/", 200, "text/html; charset=utf-8"),
        ("GET", "/ui/app.js", 200, "text/javascript; charset=utf-8"),
        (
            "GET",
            "/ui/pages/edit.js",
            200,
            "text/javascript; charset=utf-8",
        ),
        ("GET", "/ui/app.css", 200, "text/css; charset=utf-8"),
        ("GET", "/ui/missing.js", 404, "application/json"),
        ("GET", "/ui/session", 200, "application/json"),
        ("GET", "/api/v1/versions", 200, "application/json"),
        ("GET", "/api/v1/nothing", 404, "application/json"),
    ];
    for (m, p, want, ctype) in paths {
        let (s, h, _) = call(a, m, p, std::slice::from_ref(&bearer), None).await;
        assert_eq!(s, want, "{p}");
        assert_eq!(h["content-type"], ctype, "{p}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{p}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{p}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{p}"
        );
    }
    // The unauthenticated answer is still the bearer API's.
    let (s, h, _) = call(a, "GET", "/api/v1/versions", &[], None).await;
    assert_eq!(s, 401);
    assert_eq!(h["www-authenticate"], "Bearer");
}
