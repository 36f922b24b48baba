//! The route compiler on the wire: redirects and rewrites as served by a
//! real gateway on loopback, and reloads of configurations the compiler
//! refuses.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Send `head` (a whole HTTP/1.1 request head) and read the response head.
async fn exchange(addr: SocketAddr, head: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before a response head");
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn status(resp: &str) -> &str {
    resp.split(' ').nth(1).unwrap_or("")
}

fn header<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    resp.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// A loopback backend answering 200 to everything, recording paths.
async fn backend() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end);
                    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                    log.lock().unwrap().push(path);
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                }
            });
        }
    });
    (addr, seen)
}

fn get(path: &str, host: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n")
}

/// A redirect that names no status is 302 and one that names no path
/// keeps the request's path and query (docs/configuration.md, the Gateway
/// API's `RequestRedirect`).
#[tokio::test]
async fn a_redirect_without_status_or_path_is_302_to_the_requests_path() {
    let yaml = "vservices:\n  - name: v\n    listen: \"127.0.0.1:0\"\n    rules:\n      - { match: { path: { prefix: /moved } }, redirect: { hostname: new.example } }\n      - { match: { path: { prefix: /fixed } }, redirect: { location: \"https://x.example/\" } }\n";
    let loaded = corsgate_routes::load_str(yaml, None).unwrap_or_else(|e| panic!("{e}"));
    let gw = corsgate_gateway::start(&loaded).await.unwrap();
    let a = gw.addr("v").unwrap();
    let r = exchange(a, &get("/moved/a/b?x=1", "old.example:8080")).await;
    assert_eq!(status(&r), "302", "{r}");
    assert_eq!(
        header(&r, "location"),
        Some("http://new.example:8080/moved/a/b?x=1"),
        "{r}"
    );
    let r = exchange(a, &get("/fixed", "old.example")).await;
    assert_eq!(status(&r), "302", "{r}");
    assert_eq!(header(&r, "location"), Some("https://x.example/"), "{r}");
}

/// The same through an imported HTTPRoute's `RequestRedirect` without
/// `statusCode` and `path`.
#[tokio::test]
async fn a_gateway_api_request_redirect_without_status_or_path_is_302_to_the_requests_path() {
    let dir = std::env::temp_dir().join(format!("corsgate-routes-redirect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("m.yaml"),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: { name: gw, namespace: infra }\nspec:\n  gatewayClassName: corsgate\n  listeners:\n    - { name: http, port: 80, protocol: HTTP }\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: r, namespace: infra }\nspec:\n  parentRefs: [{ name: gw }]\n  rules:\n    - matches: [{ path: { type: PathPrefix, value: /old } }]\n      filters:\n        - type: RequestRedirect\n          requestRedirect: { hostname: new.example }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("gw.yaml"),
        "gatewayApi:\n  manifests: [m.yaml]\n  listeners:\n    infra/gw: \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let loaded = corsgate_routes::load_file(&dir.join("gw.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&dir);
    let gw = corsgate_gateway::start(&loaded).await.unwrap();
    let a = gw.addrs[0].1;
    let r = exchange(a, &get("/old/page?q=2", "site.example")).await;
    assert_eq!(status(&r), "302", "{r}");
    assert_eq!(
        header(&r, "location"),
        Some("http://new.example/old/page?q=2"),
        "{r}"
    );
}

/// A reload with a configuration the route compiler refuses is refused as
/// a whole and the running rules stay in force: here a method list in one
/// string, which used to make the rule match every method.
#[tokio::test]
async fn a_reload_the_compiler_refuses_leaves_the_running_rules_in_force() {
    let (b, seen) = backend().await;
    let good = format!(
        "vservices:\n  - name: v\n    listen: \"127.0.0.1:0\"\n    rules:\n      - {{ match: {{ methods: [GET] }}, forward: {{ upstreams: [\"http://{b}\"] }} }}\n"
    );
    let loaded = corsgate_routes::load_str(&good, None).unwrap();
    let mut gw = corsgate_gateway::start(&loaded).await.unwrap();
    let a = gw.addr("v").unwrap();
    let bad = good.replace("[GET]", "[\"GET,POST\"]");
    // The loader alone (policies, schema) accepts it; the compiler does not.
    let unchecked = corsgate_config::load_str(&bad, Some("bad.yaml")).unwrap();
    let err = gw.reload(&unchecked).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("bad.yaml:5:"), "{text}");
    assert!(text.contains("(invalid-method)"), "{text}");
    assert!(corsgate_routes::load_str(&bad, None).is_err());
    // Still the old rule: GET forwarded, DELETE not routed.
    let r = exchange(a, &get("/x", "h")).await;
    assert_eq!(status(&r), "200", "{r}");
    let r = exchange(
        a,
        "DELETE /x HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(status(&r), "404", "{r}");
    assert_eq!(seen.lock().unwrap().as_slice(), ["/x"]);
}

/// A rewrite to a path that cannot be sent is refused at load: it used to
/// forward the request's original path instead.
#[tokio::test]
async fn an_unsendable_rewrite_path_is_refused_and_a_valid_one_is_forwarded() {
    let (b, seen) = backend().await;
    let yaml = |to: &str| {
        format!(
            "vservices:\n  - name: v\n    listen: \"127.0.0.1:0\"\n    rules:\n      - {{ match: {{ path: {{ prefix: /a }} }}, forward: {{ upstreams: [\"http://{b}\"], rewrite: {{ path: {{ full: \"{to}\" }} }} }} }}\n"
        )
    };
    let err = corsgate_routes::load_str(&yaml("/new path"), Some("gw.yaml")).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(err.0[0].id, Some("invalid-path"));
    assert_eq!(
        err.0[0].path,
        "vservices[0].rules[0].forward.rewrite.path.full"
    );
    let loaded = corsgate_routes::load_str(&yaml("/new%20path"), None).unwrap();
    let gw = corsgate_gateway::start(&loaded).await.unwrap();
    let r = exchange(gw.addr("v").unwrap(), &get("/a/old", "h")).await;
    assert_eq!(status(&r), "200", "{r}");
    assert_eq!(seen.lock().unwrap().as_slice(), ["/new%20path"]);
}
