//! Hot reload of the real binary: SIGHUP and file changes, under load.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ORIGIN: &str = "https://client.example";

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A configuration whose every visible part names `version`: the body, a
/// response header and the policy's exposed header. A response that mixes
/// two versions came from a half-applied configuration.
fn config(port: u16, version: &str, max_age: u32) -> String {
    format!(
        r#"policies:
  p:
    allowOrigins: ["{ORIGIN}", "https://only-{version}.example"]
    allowMethods: [GET, PUT]
    exposeHeaders: ["x-{version}"]
    maxAge: {max_age}
vservices:
  - name: api
    listen: "127.0.0.1:{port}"
    cors: p
    rules:
      - name: rule-{version}
        match: {{ path: {{ prefix: /api }} }}
        direct:
          status: 200
          headers: {{ x-version: "{version}" }}
          body: "{version}"
"#
    )
}

/// Broken on line 6, column 15: a rule names a policy that does not exist.
fn broken(port: u16) -> String {
    format!(
        "policies: {{}}\nvservices:\n  - name: api\n    listen: \"127.0.0.1:{port}\"\n    rules:\n      - cors: missing\n        direct: {{ status: 200 }}\n"
    )
}

struct Gateway {
    child: Child,
    file: PathBuf,
    log: PathBuf,
}

impl Gateway {
    fn start(name: &str, config: &str, port: u16, watch: bool) -> Gateway {
        Gateway::start_with(name, config, &[], port, watch, &[])
    }

    /// Start with more files (manifests) beside the configuration.
    fn start_with(
        name: &str,
        config: &str,
        files: &[(&str, &str)],
        port: u16,
        watch: bool,
        args: &[&str],
    ) -> Gateway {
        let dir =
            std::env::temp_dir().join(format!("corsgate-reload-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (f, text) in files {
            std::fs::write(dir.join(f), text).unwrap();
        }
        let file = dir.join("gw.yaml");
        let log = dir.join("gw.log");
        std::fs::write(&file, config).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_corsgate"));
        cmd.args(["run", "--config"]).arg(&file);
        if !watch {
            cmd.arg("--no-watch");
        }
        for a in args {
            // `{dir}` stands for the gateway's own directory.
            cmd.arg(a.replace("{dir}", &dir.display().to_string()));
        }
        let child = cmd
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "gateway did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Gateway { child, file, log }
    }

    fn write(&self, config: &str) {
        // Write to a temporary file and rename, as editors and config
        // management do, so the gateway never reads a half-written file.
        let tmp = self.file.with_extension("tmp");
        std::fs::write(&tmp, config).unwrap();
        std::fs::rename(&tmp, &self.file).unwrap();
    }

    fn hup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP failed");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = self.file.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

/// `(version from the body, x-version, ACAO, ACEH)` of one GET.
async fn observe(client: &HttpClient, port: u16) -> Result<[Option<String>; 4], String> {
    let req = http::Request::get(format!("http://127.0.0.1:{port}/api/x"))
        .header("origin", ORIGIN)
        .body(Empty::new())
        .unwrap();
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    if resp.status() != 200 {
        return Err(format!("status {}", resp.status()));
    }
    let h = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (v, acao, aceh) = (
        h("x-version"),
        h("access-control-allow-origin"),
        h("access-control-expose-headers"),
    );
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let body = String::from_utf8_lossy(&body.to_bytes()).into_owned();
    Ok([Some(body), v, acao, aceh])
}

/// The configuration version a consistent response came from.
fn version_of(seen: &[Option<String>; 4]) -> Result<String, String> {
    let [Some(body), Some(v), Some(acao), Some(aceh)] = seen else {
        return Err(format!("missing part: {seen:?}"));
    };
    if body != v || aceh != &format!("x-{v}") || acao != ORIGIN {
        return Err(format!("half-applied: {seen:?}"));
    }
    Ok(v.clone())
}

async fn wait_for_version(client: &HttpClient, port: u16, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(seen) = observe(client, port).await {
            if version_of(&seen).as_deref() == Ok(want) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "version {want} never served");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Four keep-alive clients in a loop, each checking that every response
/// is whole and from one configuration.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    loaders: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let loaders = (0..4)
            .map(|_| {
                let (stop, ok) = (stop.clone(), ok.clone());
                tokio::spawn(async move {
                    let client = client();
                    let mut failures = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        match observe(&client, port).await.and_then(|s| version_of(&s)) {
                            Ok(_) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => failures.push(e),
                        }
                    }
                    failures
                })
            })
            .collect();
        Load { stop, ok, loaders }
    }

    /// Stop; `(requests served, failures)`.
    async fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut failures = Vec::new();
        for l in self.loaders {
            failures.extend(l.await.unwrap());
        }
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_reloads_under_load_lose_no_request_and_never_mix_configurations() {
    let port = free_port();
    let gw = Gateway::start("fifty", &config(port, "a", 60), port, false);
    let load = Load::start(port);
    let probe = client();
    let mut current = "a";
    let mut refused = 0;
    for i in 1..=50 {
        if i % 10 == 0 {
            gw.write(&broken(port));
            gw.hup();
            refused += 1;
            // The refusal is logged; the previous version stays in force.
            let deadline = Instant::now() + Duration::from_secs(10);
            while gw.log().matches("reload refused").count() < refused {
                assert!(Instant::now() < deadline, "refusal {refused} not logged");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            wait_for_version(&probe, port, current).await;
        } else {
            current = if current == "a" { "b" } else { "a" };
            gw.write(&config(port, current, 60));
            gw.hup();
            wait_for_version(&probe, port, current).await;
        }
    }
    let (served, failures) = load.stop().await;
    eprintln!(
        "50 reloads (5 refused): {served} requests served, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "failed or mixed responses: {:?}",
        &failures[..failures.len().min(5)]
    );
    assert!(served > 500, "the load loop barely ran: {served}");
    let log = gw.log();
    // The refusal names the file, line and column of the bad reference.
    let file = gw.file.display().to_string();
    assert!(
        log.contains(&format!("{file}:6:15: vservices[0].rules[0].cors")),
        "refusal without location: {log}"
    );
    assert!(log.contains("missing"), "{log}");
}

#[tokio::test]
async fn a_changed_file_is_applied_without_a_signal_and_tightening_is_warned() {
    let port = free_port();
    let gw = Gateway::start("watch", &config(port, "a", 86400), port, true);
    let probe = client();
    wait_for_version(&probe, port, "a").await;
    // Version b drops the origin https://only-a.example: a tightening,
    // cached by browsers for min(86400, 7200) s.
    gw.write(&config(port, "b", 86400));
    wait_for_version(&probe, port, "b").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gw.log().contains("policy tightened") {
        assert!(
            Instant::now() < deadline,
            "no tightening warning: {}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = gw.log();
    assert!(
        log.contains("origin https://only-a.example removed"),
        "{log}"
    );
    assert!(log.contains("7200 s"), "{log}");
    // A broken file is refused; b stays in force.
    gw.write(&broken(port));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gw.log().contains("reload refused") {
        assert!(
            Instant::now() < deadline,
            "broken file not reported: {}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for_version(&probe, port, "b").await;
    // So is one only the route compiler refuses: a method list in one
    // string, which used to make the rule match every method.
    gw.write(&config(port, "c", 86400).replace(
        "match: { path: { prefix: /api } }",
        "match: { path: { prefix: /api }, methods: [\"GET,PUT\"] }",
    ));
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.log().matches("reload refused").count() < 2 {
        assert!(Instant::now() < deadline, "not refused: {}", gw.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gw.log().contains("(invalid-method)"), "{}", gw.log());
    wait_for_version(&probe, port, "b").await;
    // And fixing it applies the fix.
    gw.write(&config(port, "a", 86400));
    wait_for_version(&probe, port, "a").await;
}

/// An HTTPRoute whose CORS filter allows `origin`; its backend is not
/// resolved, so the gateway answers 500, completed with CORS (R25).
fn manifest(origin: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{ name: r, namespace: apps }}\nspec:\n  parentRefs: [{{ name: gw, namespace: infra }}]\n  rules:\n    - filters:\n        - type: CORS\n          cors: {{ allowOrigins: [\"{origin}\"] }}\n      backendRefs: [{{ name: nowhere, port: 1 }}]\n"
    )
}

#[tokio::test]
async fn an_edited_manifest_is_applied_on_its_own() {
    let port = free_port();
    let native = format!("gatewayApi:\n  manifests: [routes.yaml]\n  listeners:\n    infra/gw: \"127.0.0.1:{port}\"\n");
    let gw = Gateway::start_with(
        "manifest",
        &native,
        &[("routes.yaml", &manifest(ORIGIN))],
        port,
        true,
        &[],
    );
    let dir = gw.file.parent().unwrap().to_path_buf();
    let acao = |origin: &'static str| async move {
        let req = http::Request::get(format!("http://127.0.0.1:{port}/x"))
            .header("origin", origin)
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = client().request(req).await.unwrap();
        assert_eq!(resp.status(), 500);
        resp.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(acao(ORIGIN).await.as_deref(), Some(ORIGIN));
    // Only the manifest changes.
    let tmp = dir.join("routes.tmp");
    std::fs::write(&tmp, manifest("https://other.example")).unwrap();
    std::fs::rename(&tmp, dir.join("routes.yaml")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while acao(ORIGIN).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "manifest change not applied: {}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        acao("https://other.example").await.as_deref(),
        Some("https://other.example")
    );
}

/// A configuration of `version` with the admin API on `admin_port`.
fn admin_config(port: u16, admin_port: u16, version: &str) -> String {
    format!(
        "{}admin:\n  listen: \"127.0.0.1:{admin_port}\"\n  tokens:\n    - {{ name: ops, sha256: {EDITOR_HASH}, role: editor }}\n",
        config(port, version, 60)
    )
}

/// Start a gateway with a store in its own directory and wait for its admin
/// API.
fn start_managed(name: &str, config: &str, port: u16, admin_port: u16, watch: bool) -> Gateway {
    let gw = Gateway::start_with(
        name,
        config,
        &[],
        port,
        watch,
        &["--data-dir", "{dir}/data"],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", admin_port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "admin API did not start: {}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    gw
}

/// SHA-256 of "editor-secret".
const EDITOR_HASH: &str = "2ab2be1f6eca11ec9aeb4cda517586091446724556c17637fadb27d0cee08173";

async fn admin(
    port: u16,
    method: &str,
    path: &str,
    body: Option<String>,
) -> (u16, serde_json::Value) {
    let client: Client<_, http_body_util::Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{port}{path}"))
        .header("authorization", "Bearer editor-secret")
        .body(http_body_util::Full::new(Bytes::from(
            body.unwrap_or_default(),
        )))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_applies_and_rollbacks_under_load_lose_no_request() {
    let port = free_port();
    let admin_port = free_port();
    let with_admin = |version: &str| admin_config(port, admin_port, version);
    let gw = start_managed("admin", &with_admin("a"), port, admin_port, false);
    let load = Load::start(port);
    let probe = client();
    let (s, active) = admin(admin_port, "GET", "/api/v1/versions/active", None).await;
    assert_eq!(s, 200, "{active}");
    assert_eq!(active["author"], "file");
    let mut base = active["id"].as_i64().unwrap();
    for _ in 0..5 {
        let body =
            serde_json::json!({ "base": base, "comment": "to b", "content": with_admin("b") })
                .to_string();
        let (s, v) = admin(admin_port, "POST", "/api/v1/versions", Some(body)).await;
        assert_eq!(s, 201, "{v}");
        wait_for_version(&probe, port, "b").await;
        let b = v["id"].as_i64().unwrap();
        let body = serde_json::json!({ "base": b, "to": 1 }).to_string();
        let (s, v) = admin(admin_port, "POST", "/api/v1/rollback", Some(body)).await;
        assert_eq!(s, 201, "{v}");
        wait_for_version(&probe, port, "a").await;
        base = v["id"].as_i64().unwrap();
    }
    let (served, failures) = load.stop().await;
    eprintln!(
        "5 applies + 5 rollbacks through the admin API: {served} requests served, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{:?}",
        &failures[..failures.len().min(5)]
    );
    assert!(served > 100, "{served}");
    let (_, v) = admin(admin_port, "GET", "/api/v1/audit/verify", None).await;
    assert_eq!(v["intact"], true, "{v}");
    // Bootstrap, 5 applies, 5 rollbacks, and the token's first use.
    assert_eq!(v["entries"], 12, "{v}");

    // The same through `corsgate admin`.
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_corsgate"))
            .arg("admin")
            .args(args)
            .env(
                "CORSGATE_ADMIN_URL",
                format!("http://127.0.0.1:{admin_port}"),
            )
            .env("CORSGATE_ADMIN_TOKEN", "editor-secret")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = cli(&["history"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), 12, "{out}");
    assert!(out.contains("rollback to version 1"), "{out}");
    let (code, out) = cli(&["diff", "1", "2"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("allowOrigins: + https://only-b.example"),
        "{out}"
    );
    assert!(
        out.contains("allowOrigins: - https://only-a.example"),
        "{out}"
    );
    let (code, out) = cli(&["audit"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("hash chain intact (12 entries)"), "{out}");
    // A stale base is refused with 409, and nothing changes.
    let file = gw.file.with_file_name("b.yaml");
    std::fs::write(&file, with_admin("b")).unwrap();
    let (code, out) = cli(&[
        "apply",
        &file.display().to_string(),
        "--base",
        "1",
        "-m",
        "late",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error 409"), "{out}");
    let (code, out) = cli(&["apply", &file.display().to_string(), "-m", "current"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("version 12"), "{out}");
    assert!(
        out.contains("tightened: policy p: origin https://only-a.example removed"),
        "{out}"
    );
    wait_for_version(&probe, port, "b").await;
    let (code, out) = cli(&["--json", "show"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["comment"], "current");

    // Metrics: valid Prometheus text whose counters move with traffic.
    let scrape = || async {
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let req = http::Request::get(format!("http://127.0.0.1:{admin_port}/metrics"))
            .header("authorization", "Bearer editor-secret")
            .body(Empty::new())
            .unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let text = String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        let sample = regex::Regex::new(r#"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.eE+-]+(\.[0-9]+)?$"#).unwrap();
        let mut values = std::collections::HashMap::new();
        for line in text.lines() {
            if line.starts_with("# HELP ")
                || line.starts_with("# TYPE ")
                || line == "# EOF"
                || line.starts_with("# UNIT ")
            {
                continue;
            }
            assert!(sample.is_match(line), "not Prometheus text: {line:?}");
            let (k, v) = line.rsplit_once(' ').unwrap();
            values.insert(k.to_owned(), v.parse::<f64>().unwrap());
        }
        values
    };
    let total = |m: &std::collections::HashMap<String, f64>, prefix: &str| -> f64 {
        m.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    };
    let before = scrape().await;
    assert_eq!(
        before.get("corsgate_config_version"),
        Some(&12.0),
        "{before:?}"
    );
    assert!(
        total(&before, "corsgate_config_reloads_total{result=\"ok\"}") >= 12.0,
        "{before:?}"
    );
    for _ in 0..10 {
        observe(&probe, port).await.unwrap();
    }
    let req = http::Request::get(format!("http://127.0.0.1:{port}/api/x"))
        .header("origin", "https://evil.example")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(probe.request(req).await.unwrap().status(), 200);
    let after = scrape().await;
    let requests = |m| {
        total(
            m,
            "corsgate_requests_total{vservice=\"api\",rule=\"rule-b\",status=\"200\"}",
        )
    };
    assert!(requests(&after) >= requests(&before) + 11.0, "{after:?}");
    let allowed = |m| {
        total(
            m,
            "corsgate_cors_decisions_total{policy=\"p\",decision=\"allowed\"",
        )
    };
    assert!(allowed(&after) >= allowed(&before) + 10.0, "{after:?}");
    assert_eq!(
        after.get("corsgate_cors_refused_origins_total{origin=\"https://evil.example\"}"),
        Some(&1.0),
        "{after:?}"
    );
    assert!(total(&after, "corsgate_cors_decisions_total{policy=\"p\",decision=\"refused\",reason=\"origin_not_allowed\"}") >= 1.0);
}

#[tokio::test]
async fn a_shadow_candidate_reports_what_it_would_change_then_is_promoted() {
    let port = free_port();
    let admin_port = free_port();
    let with_admin = |version: &str| admin_config(port, admin_port, version);
    let _gw = start_managed("shadow", &with_admin("a"), port, admin_port, false);
    let probe = client();
    // Candidate b drops https://only-a.example and adds https://only-b.example.
    let body = serde_json::json!({ "comment": "try b", "content": with_admin("b") }).to_string();
    let (s, v) = admin(admin_port, "POST", "/api/v1/shadow", Some(body)).await;
    assert_eq!(s, 201, "{v}");
    let get = |origin: &'static str| {
        let probe = probe.clone();
        async move {
            let req = http::Request::get(format!("http://127.0.0.1:{port}/api/items"))
                .header("origin", origin)
                .body(Empty::<Bytes>::new())
                .unwrap();
            let resp = probe.request(req).await.unwrap();
            resp.headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap().to_owned())
        }
    };
    for _ in 0..3 {
        // Responses still come from the active version a.
        assert_eq!(
            get("https://only-a.example").await.as_deref(),
            Some("https://only-a.example")
        );
        assert_eq!(get("https://only-b.example").await, None);
        assert_eq!(get(ORIGIN).await.as_deref(), Some(ORIGIN));
    }
    let (s, report) = admin(admin_port, "GET", "/api/v1/shadow", None).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["compared"], 9, "{report}");
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2, "{report}");
    let find = |origin: &str| {
        findings
            .iter()
            .find(|f| f["origin"] == origin)
            .unwrap()
            .clone()
    };
    let refused = find("https://only-a.example");
    assert_eq!(
        (refused["policy"].as_str(), refused["change"].as_str()),
        (Some("p"), Some("newly_refused"))
    );
    assert_eq!(refused["count"], 3);
    assert_eq!(refused["sample"], "GET /api/items");
    assert_eq!(find("https://only-b.example")["change"], "newly_allowed");

    // Promote in one call: b becomes active, the shadow ends.
    let (s, v) = admin(
        admin_port,
        "POST",
        "/api/v1/shadow/promote",
        Some(serde_json::json!({ "base": 1 }).to_string()),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["comment"], "promoted from shadow");
    wait_for_version(&probe, port, "b").await;
    assert_eq!(
        get("https://only-b.example").await.as_deref(),
        Some("https://only-b.example")
    );
    assert_eq!(
        admin(admin_port, "GET", "/api/v1/shadow", None).await.0,
        404
    );

    // Stopping a candidate is audited; stopping nothing records nothing.
    let body =
        serde_json::json!({ "content": admin_config(port, admin_port, "a"), "comment": "try a" });
    let (s, v) = admin(admin_port, "POST", "/api/v1/shadow", Some(body.to_string())).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        admin(admin_port, "DELETE", "/api/v1/shadow", None).await.0,
        200
    );
    assert_eq!(
        admin(admin_port, "DELETE", "/api/v1/shadow", None).await.0,
        200
    );
    let (_, log) = admin(admin_port, "GET", "/api/v1/audit", None).await;
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("shadow."))
        .collect();
    assert_eq!(
        actions,
        ["shadow.started", "shadow.started", "shadow.stopped"],
        "{log}"
    );
}

#[tokio::test]
async fn with_the_admin_api_sighup_applies_the_file_as_a_new_version() {
    let port = free_port();
    let admin_port = free_port();
    let with_admin = |version: &str| admin_config(port, admin_port, version);
    let gw = start_managed("sighup-store", &with_admin("a"), port, admin_port, true);
    let probe = client();
    // A file change alone is not applied while the store is in charge...
    gw.write(&with_admin("b"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    wait_for_version(&probe, port, "a").await;
    // ...SIGHUP applies it as a new, audited version.
    gw.hup();
    wait_for_version(&probe, port, "b").await;
    let (_, v) = admin(admin_port, "GET", "/api/v1/versions/active", None).await;
    assert_eq!(
        (v["id"].as_i64(), v["author"].as_str()),
        (Some(2), Some("file")),
        "{v}"
    );
    let (_, audit) = admin(admin_port, "GET", "/api/v1/audit", None).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"config.reloaded_from_file"),
        "{actions:?}"
    );
}

/// With the admin API on, the file is not applied when it changes; a real
/// edit is reported once, and files written beside it (other instances'
/// logs and data, an editor's swap files) are not reported at all.
#[test]
fn with_the_admin_api_only_a_real_edit_of_the_file_is_reported() {
    let port = free_port();
    let admin_port = free_port();
    let gw = start_managed(
        "admin-watch",
        &admin_config(port, admin_port, "a"),
        port,
        admin_port,
        true,
    );
    let warned = |gw: &Gateway| {
        gw.log()
            .matches("a changed file is applied only on SIGHUP")
            .count()
    };
    for i in 0..5 {
        std::fs::write(
            gw.file.with_file_name(format!("neighbour-{i}.log")),
            "noise",
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(warned(&gw), 0, "unrelated files: {}", gw.log());
    std::fs::write(&gw.file, admin_config(port, admin_port, "b")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while warned(&gw) == 0 {
        assert!(
            Instant::now() < deadline,
            "the edit was not reported: {}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(warned(&gw), 1, "reported once: {}", gw.log());
}
