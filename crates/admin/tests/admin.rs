//! The admin API on a real listener over a real SQLite file.

use bytes::Bytes;
use corsgate_admin::{serve, AdminState, Token};
use corsgate_config::Role;
use corsgate_store::Store;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

fn token(name: &str, secret: &str, role: Role) -> Token {
    Token {
        name: name.into(),
        sha256: Sha256::digest(secret.as_bytes()).into(),
        role,
    }
}

fn config(origin: &str, credentials: bool) -> String {
    format!(
        "policies:\n  p:\n    allowOrigins: [\"{origin}\"]\n    allowMethods: [GET]\n    allowCredentials: {credentials}\n    maxAge: 600\nvservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    cors: p\n"
    )
}

struct Admin {
    addr: SocketAddr,
    applied: Arc<Mutex<Vec<String>>>,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn start(dir: &std::path::Path) -> Admin {
    let store = Store::open(dir).unwrap();
    let applied: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = applied.clone();
    let state = Arc::new(AdminState {
        store: Arc::new(Mutex::new(store)),
        tokens: vec![
            token("viewer", "v-secret", Role::Viewer),
            token("alice", "a-secret", Role::Editor),
            token("bob", "b-secret", Role::Editor),
        ],
        max_body: 64 * 1024,
        // Record what reached the "gateway"; refuse a marker origin to test
        // the not-applied path.
        activate: Arc::new(move |l| {
            let names: Vec<String> = l.policies.keys().cloned().collect();
            if l.config
                .policies
                .values()
                .any(|p| p.allow_origins.iter().any(|o| o.contains("unbindable")))
            {
                return Err("address in use".into());
            }
            seen.lock().unwrap().push(names.join(","));
            Ok(())
        }),
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
    Admin {
        addr,
        applied,
        _stop: stop,
    }
}

async fn call(
    a: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (u16, Value) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{a}{path}"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = client
        .request(
            req.body(Full::new(Bytes::from(body.unwrap_or_default())))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn apply_body(base: Option<i64>, content: &str) -> Option<String> {
    Some(json!({ "base": base, "comment": "test", "content": content }).to_string())
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("corsgate-admin-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[tokio::test]
async fn tokens_and_roles_are_checked_before_anything_else() {
    let d = dir("auth");
    let a = start(&d).await;
    // No token, a wrong token: 401 whether or not the path exists.
    for path in ["/api/v1/versions", "/api/v1/versions/42", "/nothing/here"] {
        assert_eq!(call(a.addr, "GET", path, None, None).await.0, 401, "{path}");
        assert_eq!(
            call(a.addr, "GET", path, Some("wrong"), None).await.0,
            401,
            "{path}"
        );
    }
    // A viewer may read but not apply: 403, for real and unknown paths.
    assert_eq!(
        call(a.addr, "GET", "/api/v1/versions", Some("v-secret"), None)
            .await
            .0,
        200
    );
    let body = apply_body(None, &config("https://a.example", false));
    assert_eq!(
        call(
            a.addr,
            "POST",
            "/api/v1/versions",
            Some("v-secret"),
            body.clone()
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(a.addr, "POST", "/nothing/here", Some("v-secret"), body)
            .await
            .0,
        403
    );
    assert!(a.applied.lock().unwrap().is_empty());
    // The OpenAPI document is public and names the endpoints.
    let (s, doc) = call(a.addr, "GET", "/openapi.json", None, None).await;
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/rollback"]["post"].is_object());
    // The first denial is in the audit log (the second, in the same
    // minute, only counted), after the token's first use.
    let (_, audit) = call(a.addr, "GET", "/api/v1/audit", Some("v-secret"), None).await;
    let entries: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        entries,
        [("token.used", "viewer"), ("token.denied", "viewer")],
        "{audit}"
    );
    // The public readiness probe reports an intact store.
    assert_eq!(call(a.addr, "GET", "/ready", None, None).await.0, 200);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn two_editors_from_one_base_one_wins_the_other_gets_409() {
    let d = dir("race");
    let a = start(&d).await;
    let (s, v1) = call(
        a.addr,
        "POST",
        "/api/v1/versions",
        Some("a-secret"),
        apply_body(None, &config("https://a.example", false)),
    )
    .await;
    assert_eq!(s, 201, "{v1}");
    assert_eq!(v1["author"], "alice");
    let (r1, r2) = tokio::join!(
        call(
            a.addr,
            "POST",
            "/api/v1/versions",
            Some("a-secret"),
            apply_body(Some(1), &config("https://b.example", false))
        ),
        call(
            a.addr,
            "POST",
            "/api/v1/versions",
            Some("b-secret"),
            apply_body(Some(1), &config("https://c.example", false))
        ),
    );
    let mut statuses = [r1.0, r2.0];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{r1:?} {r2:?}");
    let loser = if r1.0 == 409 { &r1.1 } else { &r2.1 };
    assert_eq!(loser["active"], 2);
    let (_, h) = call(a.addr, "GET", "/api/v1/versions", Some("v-secret"), None).await;
    assert_eq!(h["versions"].as_array().unwrap().len(), 2);
    assert_eq!(a.applied.lock().unwrap().len(), 2);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let d = dir("bad");
    let a = start(&d).await;
    // Malformed JSON: 400 with line and column.
    let (s, e) = call(
        a.addr,
        "POST",
        "/api/v1/versions",
        Some("a-secret"),
        Some("{\n  \"base\": nul }".into()),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(2), Some(14)),
        "{e}"
    );
    // A refused configuration: 400 with each error located in the YAML.
    let (s, e) = call(
        a.addr,
        "POST",
        "/api/v1/versions",
        Some("a-secret"),
        apply_body(None, &config("*", true)),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    let errors = e["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|x| x
            .as_str()
            .unwrap()
            .contains(":3:20: policies.p.allowOrigins[0]")),
        "{e}"
    );
    // Over the body limit: 413.
    let big = "x".repeat(70 * 1024);
    assert_eq!(
        call(
            a.addr,
            "POST",
            "/api/v1/versions",
            Some("a-secret"),
            apply_body(None, &big)
        )
        .await
        .0,
        413
    );
    // Valid but the gateway cannot take it: 500, nothing stored.
    let (s, e) = call(
        a.addr,
        "POST",
        "/api/v1/versions",
        Some("a-secret"),
        apply_body(None, &config("https://unbindable.example", false)),
    )
    .await;
    assert_eq!(s, 500, "{e}");
    assert_eq!(
        call(
            a.addr,
            "GET",
            "/api/v1/versions/active",
            Some("v-secret"),
            None
        )
        .await
        .0,
        404
    );
    assert!(a.applied.lock().unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn diff_rollback_and_restart() {
    let d = dir("diff");
    {
        let a = start(&d).await;
        call(
            a.addr,
            "POST",
            "/api/v1/versions",
            Some("a-secret"),
            apply_body(None, &config("https://a.example", true)),
        )
        .await;
        let (s, v2) = call(
            a.addr,
            "POST",
            "/api/v1/versions",
            Some("a-secret"),
            apply_body(Some(1), &config("https://b.example", false)),
        )
        .await;
        assert_eq!(s, 201);
        // Tightening reported with its browser propagation time.
        let p = v2["propagation"].as_array().unwrap();
        assert!(
            p.iter()
                .any(|t| t["change"] == "credentials turned off" && t["browserCacheSecs"] == 600),
            "{v2}"
        );
        let (s, d12) = call(
            a.addr,
            "GET",
            "/api/v1/diff?from=1&to=2",
            Some("v-secret"),
            None,
        )
        .await;
        assert_eq!(s, 200);
        let fields = &d12["diff"]["policies"][0]["fields"];
        assert_eq!(fields[0]["field"], "allowOrigins");
        assert_eq!(fields[0]["added"], json!(["https://b.example"]));
        assert_eq!(fields[0]["removed"], json!(["https://a.example"]));
        assert_eq!(fields[1]["field"], "allowCredentials");
        assert_eq!(
            (fields[1]["from"].as_str(), fields[1]["to"].as_str()),
            (Some("true"), Some("false"))
        );
        let (s, v3) = call(
            a.addr,
            "POST",
            "/api/v1/rollback",
            Some("b-secret"),
            Some(json!({ "base": 2, "to": 1 }).to_string()),
        )
        .await;
        assert_eq!(s, 201, "{v3}");
        assert_eq!(v3["id"], 3);
        assert_eq!(v3["comment"], "rollback to version 1");
        assert_eq!(a.applied.lock().unwrap().len(), 3);
    }
    // Restart on the same file: same active version and history.
    let a = start(&d).await;
    let (_, active) = call(
        a.addr,
        "GET",
        "/api/v1/versions/active",
        Some("v-secret"),
        None,
    )
    .await;
    assert_eq!(active["id"], 3);
    assert!(active["content"]
        .as_str()
        .unwrap()
        .contains("https://a.example"));
    let (_, h) = call(a.addr, "GET", "/api/v1/versions", Some("v-secret"), None).await;
    assert_eq!(h["versions"].as_array().unwrap().len(), 3);
    let (_, v) = call(
        a.addr,
        "GET",
        "/api/v1/audit/verify",
        Some("v-secret"),
        None,
    )
    .await;
    assert_eq!(v["intact"], true);
    // Two applies and a rollback, plus each token's first use in each of
    // the two runs (alice, viewer, bob; then viewer again).
    assert_eq!(v["entries"], 7);
    let _ = std::fs::remove_dir_all(&d);
}
