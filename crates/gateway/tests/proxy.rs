//! End-to-end tests: a real corsgate on loopback in front of a real
//! recording backend, spoken to by a real HTTP client.

use bytes::Bytes;
use corsgate_gateway::Running;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// What the backend saw: method, path, request headers.
type Seen = Arc<Mutex<Vec<(Method, String, HeaderMap)>>>;

/// A loopback backend that records every request. Paths:
/// `/slow` waits 3 s; `/cors-star` answers with its own
/// `Access-Control-Allow-Origin: *`; `/reflect` reflects the Origin with
/// credentials like httpbin; `/status/503` answers 503; anything else 200.
async fn backend() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        log.lock().unwrap().push((
                            req.method().clone(),
                            path.clone(),
                            req.headers().clone(),
                        ));
                        let origin = req.headers().get("origin").cloned();
                        let mut resp =
                            http::Response::new(Full::new(Bytes::from_static(b"from backend")));
                        match path.as_str() {
                            "/slow" => tokio::time::sleep(Duration::from_secs(3)).await,
                            "/cors-star" => {
                                resp.headers_mut()
                                    .insert("access-control-allow-origin", "*".parse().unwrap());
                            }
                            "/reflect" => {
                                if let Some(o) = origin {
                                    resp.headers_mut().insert("access-control-allow-origin", o);
                                }
                                resp.headers_mut().insert(
                                    "access-control-allow-credentials",
                                    "true".parse().unwrap(),
                                );
                                resp.headers_mut()
                                    .insert("access-control-max-age", "3600".parse().unwrap());
                            }
                            "/status/503" => *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE,
                            _ => {}
                        }
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// An address nothing listens on.
async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

async fn gateway(yaml: &str) -> Running {
    let loaded =
        corsgate_config::load_str(yaml, Some("test.yaml")).unwrap_or_else(|e| panic!("{e}"));
    corsgate_gateway::start(&loaded).await.unwrap()
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn one(&self, name: &str) -> Option<&str> {
        let mut it = self.headers.get_all(name).iter();
        let v = it.next().map(|v| v.to_str().unwrap());
        assert!(
            it.next().is_none(),
            "{name} appears twice: {:?}",
            self.headers
        );
        v
    }
    fn acx(&self) -> Vec<&str> {
        self.headers
            .keys()
            .map(|k| k.as_str())
            .filter(|k| k.starts_with("access-control-"))
            .collect()
    }
}

async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

fn config_with(backend: SocketAddr, dead: SocketAddr) -> String {
    format!(
        r#"
policies:
  seed:
    allowCredentials: true
    allowHeaders: [Origin]
    allowMethods: [GET, POST, OPTIONS]
    allowOrigins: ["https://example.com"]
    exposeHeaders: [Origin, X-HTTPRoute-Header]
    maxAge: 86400
  public:
    allowOrigins: ["*"]
    allowMethods: [GET, POST]
  admin:
    allowOrigins: ["https://admin.example.com"]
    allowMethods: [GET, PUT, DELETE]
    allowHeaders: [Authorization]
    allowCredentials: true
  partner:
    allowOrigins: ["https://partner.example.net"]
    allowMethods: [GET, POST]
    allowHeaders: [X-Partner-Key, Content-Type]
  writers:
    allowOrigins: ["https://editor.example.com"]
    allowMethods: [PUT]
    allowHeaders: [Content-Type]
  tenants:
    allowOrigins: ["https://*.apps.example.com"]
    allowMethods: [GET, PUT]
    allowCredentials: true
vservices:
  - name: api
    listen: "127.0.0.1:0"
    cors: seed
    pathCors:
      - {{ prefix: /public, cors: public }}
      - {{ prefix: /admin, cors: admin }}
      - {{ prefix: /tenant, cors: tenants }}
    rules:
      - name: partner
        match:
          path: {{ prefix: /partner }}
          headers: [{{ name: x-partner-key }}]
        cors: partner
        forward: {{ upstreams: ["http://{backend}"] }}
      - name: writes
        match:
          path: {{ prefix: /docs }}
          methods: [PUT]
        cors: writers
        forward: {{ upstreams: ["http://{backend}"] }}
      - name: slow
        match:
          path: {{ exact: /slow }}
        forward: {{ upstreams: ["http://{backend}"], timeoutMs: 300 }}
      - name: down
        match:
          path: {{ prefix: /down }}
        forward: {{ upstreams: ["http://{dead}"], connectTimeoutMs: 500 }}
      - name: everything
        match:
          path: {{ prefix: / }}
          hosts: ["www.example.com", "*.apps.example.com", "127.0.0.1"]
        forward: {{ upstreams: ["http://{backend}"] }}
"#
    )
}

fn config(backend: SocketAddr) -> String {
    config_with(backend, "127.0.0.1:1".parse().unwrap())
}

const ACRM: &str = "access-control-request-method";
const ACRH: &str = "access-control-request-headers";

#[tokio::test]
async fn seed_scenarios_allowed_and_disallowed_preflight_never_reach_the_backend() {
    let (b, seen) = backend().await;
    let gw = gateway(&config(b)).await;
    let a = gw.addr("api").unwrap();
    let host = ("host", "www.example.com");

    let r = send(
        a,
        "OPTIONS",
        "/get",
        &[host, ("origin", "https://example.com"), (ACRM, "GET")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://example.com")
    );
    assert!(r
        .one("access-control-allow-methods")
        .unwrap()
        .contains("GET"));
    assert_eq!(r.one("access-control-max-age"), Some("86400"));
    assert!(r.body.is_empty());

    let r = send(
        a,
        "OPTIONS",
        "/get",
        &[host, ("origin", "https://notallowed.com"), (ACRM, "GET")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.acx().is_empty(), "{:?}", r.headers);
    assert!(
        seen.lock().unwrap().is_empty(),
        "no preflight reached the backend"
    );

    // The actual request from the refused origin is forwarded (R22), and
    // the backend's httpbin-style reflection is stripped (R23).
    let r = send(
        a,
        "GET",
        "/reflect",
        &[host, ("origin", "https://notallowed.com")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"from backend");
    assert!(r.acx().is_empty(), "{:?}", r.headers);
    assert_eq!(seen.lock().unwrap().len(), 1);
    let r = send(
        a,
        "GET",
        "/reflect",
        &[host, ("origin", "https://example.com")],
    )
    .await;
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://example.com")
    );
    assert_eq!(r.one("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.one("access-control-max-age"), None);
    gw.shutdown().await;
}

#[tokio::test]
async fn public_and_admin_paths_on_one_vservice_get_their_own_policies() {
    let (b, _) = backend().await;
    let gw = gateway(&config(b)).await;
    let a = gw.addr("api").unwrap();
    let host = ("host", "www.example.com");
    let r = send(
        a,
        "GET",
        "/public/x",
        &[host, ("origin", "https://anyone.test")],
    )
    .await;
    assert_eq!(r.one("access-control-allow-origin"), Some("*"));
    let r = send(
        a,
        "GET",
        "/admin/x",
        &[host, ("origin", "https://anyone.test")],
    )
    .await;
    assert!(r.acx().is_empty());
    let r = send(
        a,
        "OPTIONS",
        "/admin/x",
        &[
            host,
            ("origin", "https://admin.example.com"),
            (ACRM, "DELETE"),
            (ACRH, "authorization"),
        ],
    )
    .await;
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://admin.example.com")
    );
    assert_eq!(r.one("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.one("access-control-allow-headers"), Some("authorization"));
    gw.shutdown().await;
}

#[tokio::test]
async fn header_conditioned_partner_rule_and_its_preflight() {
    let (b, seen) = backend().await;
    let gw = gateway(&config(b)).await;
    let a = gw.addr("api").unwrap();
    let host = ("host", "www.example.com");
    let partner = ("origin", "https://partner.example.net");
    // The preflight announces x-partner-key in ACRH: matched as the partner rule (R17).
    let r = send(
        a,
        "OPTIONS",
        "/partner/orders",
        &[
            host,
            partner,
            (ACRM, "POST"),
            (ACRH, "content-type,x-partner-key"),
        ],
    )
    .await;
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://partner.example.net")
    );
    assert_eq!(
        r.one("access-control-allow-headers"),
        Some("x-partner-key, content-type")
    );
    // The actual request carries the header and gets the partner policy.
    let r = send(
        a,
        "POST",
        "/partner/orders",
        &[host, partner, ("x-partner-key", "k1")],
    )
    .await;
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://partner.example.net")
    );
    // Without the header the rule does not match; the seed policy applies.
    let r = send(a, "GET", "/partner/orders", &[host, partner]).await;
    assert!(r.acx().is_empty());
    assert_eq!(seen.lock().unwrap().len(), 2, "preflight not forwarded");
    gw.shutdown().await;
}

#[tokio::test]
async fn method_conditioned_rule_is_selected_for_its_preflight() {
    let (b, seen) = backend().await;
    let gw = gateway(&config(b)).await;
    let a = gw.addr("api").unwrap();
    let host = ("host", "www.example.com");
    let editor = ("origin", "https://editor.example.com");
    let r = send(a, "OPTIONS", "/docs/1", &[host, editor, (ACRM, "PUT")]).await;
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://editor.example.com")
    );
    assert_eq!(r.one("access-control-allow-methods"), Some("PUT"));
    // A GET on /docs is not the writes rule: the seed policy refuses the editor.
    let r = send(a, "GET", "/docs/1", &[host, editor]).await;
    assert!(r.acx().is_empty());
    let r = send(a, "PUT", "/docs/1", &[host, editor]).await;
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://editor.example.com")
    );
    assert_eq!(seen.lock().unwrap().len(), 2);
    gw.shutdown().await;
}

#[tokio::test]
async fn tenant_subdomain_pattern_accepts_tenants_and_refuses_look_alikes() {
    let (b, _) = backend().await;
    let gw = gateway(&config(b)).await;
    let a = gw.addr("api").unwrap();
    let host = ("host", "t1.apps.example.com");
    for (origin, ok) in [
        ("https://t1.apps.example.com", true),
        ("https://a.b.apps.example.com", true),
        ("https://apps.example.com", false),
        ("https://t1.apps.example.com.evil.test", false),
        ("https://evilapps.example.com", false),
    ] {
        let r = send(a, "GET", "/tenant/data", &[host, ("origin", origin)]).await;
        assert_eq!(
            r.one("access-control-allow-origin").is_some(),
            ok,
            "{origin}"
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn options_without_request_method_reaches_the_backend() {
    let (b, seen) = backend().await;
    let gw = gateway(&config(b)).await;
    let a = gw.addr("api").unwrap();
    let r = send(
        a,
        "OPTIONS",
        "/get",
        &[
            ("host", "www.example.com"),
            ("origin", "https://example.com"),
        ],
    )
    .await;
    assert_eq!(&r.body[..], b"from backend");
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://example.com")
    );
    assert_eq!(
        r.one("access-control-max-age"),
        None,
        "not a preflight answer"
    );
    assert_eq!(seen.lock().unwrap()[0].0, Method::OPTIONS);
    gw.shutdown().await;
}

#[tokio::test]
async fn upstream_star_yields_exactly_one_acao_or_none() {
    let (b, _) = backend().await;
    let gw = gateway(&config(b)).await;
    let a = gw.addr("api").unwrap();
    let host = ("host", "www.example.com");
    let r = send(
        a,
        "GET",
        "/cors-star",
        &[host, ("origin", "https://example.com")],
    )
    .await;
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://example.com")
    );
    let r = send(
        a,
        "GET",
        "/cors-star",
        &[host, ("origin", "https://evil.test")],
    )
    .await;
    assert!(
        r.acx().is_empty(),
        "the upstream's * must not leak: {:?}",
        r.headers
    );
    assert!(r.headers.get_all("vary").iter().any(|v| v == "Origin"));
    gw.shutdown().await;
}

#[tokio::test]
async fn gateway_errors_carry_cors_headers() {
    let (b, _) = backend().await;
    let gw = gateway(&config_with(b, dead_addr().await)).await;
    let a = gw.addr("api").unwrap();
    let o = ("origin", "https://example.com");
    let host = ("host", "www.example.com");
    // Backend down: 502.
    let r = send(a, "GET", "/down/x", &[host, o]).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://example.com")
    );
    // Slow backend: 504 after the rule's 300 ms.
    let started = std::time::Instant::now();
    let r = send(a, "GET", "/slow", &[host, o]).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://example.com")
    );
    // Backend's own 503 stays a 503 with CORS.
    let r = send(a, "GET", "/status/503", &[host, o]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://example.com")
    );
    // No route (host not matched by any rule): 404 with the vService policy.
    let r = send(a, "GET", "/x", &[("host", "other.test"), o]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://example.com")
    );
    assert_eq!(r.one("access-control-allow-credentials"), Some("true"));
    gw.shutdown().await;
}

#[tokio::test]
async fn forwarded_requests_carry_x_forwarded_headers_and_keep_host() {
    let (b, seen) = backend().await;
    let gw = gateway(&config(b)).await;
    let a = gw.addr("api").unwrap();
    // GET goes through corsgate's own exchange, POST through hyper's
    // client: both must forward the same way.
    for (i, method) in ["GET", "POST"].into_iter().enumerate() {
        for prior in [&[][..], &["1.1.1.1", "2.2.2.2"][..]] {
            let mut headers = vec![
                ("host", "www.example.com"),
                ("connection", "x-hop"),
                ("x-hop", "1"),
                ("te", "trailers"),
                ("x-forwarded-proto", "gopher"),
            ];
            headers.extend(prior.iter().map(|p| ("x-forwarded-for", *p)));
            send(a, method, "/get?q=1", &headers).await;
            let (m, path, h) = seen.lock().unwrap().pop().unwrap();
            assert_eq!((m.as_str(), path.as_str()), (method, "/get"), "{i}");
            assert_eq!(h["host"], "www.example.com", "{method}");
            let xff: Vec<_> = h.get_all("x-forwarded-for").iter().collect();
            let want = if prior.is_empty() {
                "127.0.0.1"
            } else {
                "1.1.1.1, 2.2.2.2, 127.0.0.1"
            };
            assert_eq!(xff, [want], "{method}: {h:?}");
            assert_eq!(h["x-forwarded-host"], "www.example.com", "{method}");
            assert_eq!(h["x-forwarded-proto"], "http", "{method}");
            assert!(
                h.get("x-hop").is_none() && h.get("te").is_none() && h.get("connection").is_none(),
                "{method}: hop-by-hop fields are removed: {h:?}"
            );
        }
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let (b, _) = backend().await;
    let gw = gateway(&config(b)).await;
    let a = gw.addr("api").unwrap();
    let req = Request::builder()
        .method("OPTIONS")
        .uri(format!("http://www.example.com:{}/get", a.port()))
        .header("origin", "https://example.com")
        .header(ACRM, "GET")
        .body(Empty::<Bytes>::new())
        .unwrap();
    // Connect to loopback while keeping the authority www.example.com.
    let stream = tokio::net::TcpStream::connect(a).await.unwrap();
    let (mut send_req, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = send_req.send_request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://example.com"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn oversized_headers_get_431_and_declared_big_bodies_413_both_with_cors() {
    let (b, seen) = backend().await;
    let gw = gateway(&config(b)).await;
    let a = gw.addr("api").unwrap();
    let big = "x".repeat(40 * 1024);
    let r = send(
        a,
        "GET",
        "/get",
        &[
            ("host", "www.example.com"),
            ("origin", "https://example.com"),
            ("x-big", &big),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://example.com")
    );
    let r = send(
        a,
        "POST",
        "/get",
        &[
            ("host", "www.example.com"),
            ("origin", "https://example.com"),
            ("content-length", "999999999"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://example.com")
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "neither reached the backend"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_completes_an_in_flight_request_and_stops_accepting() {
    let (b, _) = backend().await;
    // A rule with a long enough timeout for the backend's 3 s /slow.
    let yaml = config(b).replace("timeoutMs: 300", "timeoutMs: 10000");
    let gw = gateway(&yaml).await;
    let a = gw.addr("api").unwrap();
    let in_flight = tokio::spawn(async move {
        send(
            a,
            "GET",
            "/slow",
            &[
                ("host", "www.example.com"),
                ("origin", "https://example.com"),
            ],
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = tokio::spawn(gw.shutdown_within(Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tokio::net::TcpStream::connect(a).await.is_err(),
        "listener closed"
    );
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"from backend");
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://example.com")
    );
    stopping.await.unwrap();
}

/// A request still in flight when the drain deadline passes is cut off:
/// shutdown returns soon after the deadline, not when the backend answers,
/// and the client sees its connection closed without a response.
#[tokio::test]
async fn shutdown_cuts_off_connections_still_busy_after_the_drain_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (b, _) = backend().await;
    let yaml = config(b).replace("timeoutMs: 300", "timeoutMs: 10000");
    let gw = gateway(&yaml).await;
    let a = gw.addr("api").unwrap();
    let mut s = tokio::net::TcpStream::connect(a).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    gw.shutdown_within(Duration::from_millis(200)).await;
    let waited = started.elapsed();
    // The backend's /slow answers after 3 s.
    assert!(
        waited < Duration::from_millis(2500),
        "shutdown waited {waited:?}"
    );
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "connection left open"
    );
    assert!(buf.is_empty(), "a response after the cut: {buf:?}");
}

/// A gateway on `config(backend)` whose listener serves TLS with a fresh
/// self-signed certificate for `www.example.com`, under `limits`; and a
/// client configuration that trusts it and asks for `alpn`. `tag` names the
/// certificate's temporary directory (`dir`), which the test removes.
async fn tls_gateway(backend: SocketAddr, limits: &str, alpn: &[u8], tag: &str) -> TlsGateway {
    let cert = rcgen::generate_simple_self_signed(vec!["www.example.com".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("corsgate-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let yaml = config(backend).replace(
        "    cors: seed\n",
        &format!(
            "    cors: seed\n    tls: {{ certFile: {:?}, keyFile: {:?} }}\n    limits: {limits}\n",
            cert_file.display().to_string(),
            key_file.display().to_string()
        ),
    );
    let gw = gateway(&yaml).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![alpn.to_vec()];
    TlsGateway { gw, client, dir }
}

/// What [`tls_gateway`] starts.
struct TlsGateway {
    gw: Running,
    client: rustls::ClientConfig,
    dir: std::path::PathBuf,
}

#[tokio::test]
async fn http2_over_tls_with_alpn_serves_preflights_and_proxies() {
    let (b, seen) = backend().await;
    let tls = tls_gateway(b, "{ idleTimeoutMs: 1500 }", b"h2", "tls").await;
    let a = tls.gw.addr("api").unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls.client.clone()));
    let tcp = tokio::net::TcpStream::connect(a).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("www.example.com").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);

    let preflight = Request::builder()
        .method("OPTIONS")
        .uri(format!("https://www.example.com:{}/get", a.port()))
        .header("origin", "https://example.com")
        .header(ACRM, "POST")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = h2.send_request(preflight).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://example.com"
    );

    let get = Request::builder()
        .uri(format!("https://www.example.com:{}/get", a.port()))
        .header("origin", "https://example.com")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = h2.send_request(get).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://example.com"
    );
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"from backend");
    let (_, _, h) = seen.lock().unwrap()[0].clone();
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["host"], format!("www.example.com:{}", a.port()));

    // A client that completes the handshake and then says nothing is closed
    // after the idle timeout (hyper would wait for its first bytes forever).
    let tcp = tokio::net::TcpStream::connect(a).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("www.example.com").unwrap();
    let mut silent = connector.connect(name, tcp).await.unwrap();
    let started = std::time::Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut silent, &mut byte),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "a silent TLS client was not closed: {read:?}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(8),
        "closed after {took:?}"
    );
    let _ = std::fs::remove_dir_all(&tls.dir);
    tls.gw.shutdown().await;
}

#[tokio::test]
async fn websocket_echo_through_the_gateway() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    // A real WebSocket echo server.
    let ws_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = ws_listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = ws_listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_text() || msg.is_binary() {
                ws.send(msg).await.unwrap();
            }
        }
    });
    let (b, _) = backend().await;
    let yaml = config(b).replace(
        "      - name: slow\n",
        &format!("      - name: ws\n        match: {{ path: {{ exact: /ws }} }}\n        forward: {{ upstreams: [\"http://{ws_addr}\"] }}\n      - name: slow\n"),
    );
    let gw = gateway(&yaml).await;
    let a = gw.addr("api").unwrap();
    let tcp = tokio::net::TcpStream::connect(a).await.unwrap();
    let req = http::Request::builder()
        .uri(format!("ws://www.example.com:{}/ws", a.port()))
        .header("host", "www.example.com")
        .header("origin", "https://example.com")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header(
            "sec-websocket-key",
            tokio_tungstenite::tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    for text in ["hello", "through corsgate"] {
        ws.send(Message::text(text)).await.unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    ws.close(None).await.unwrap();
    gw.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn http2_to_the_upstream_when_configured() {
    // An h2c-capable backend that records the protocol version it saw.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let versions: Arc<Mutex<Vec<http::Version>>> = Arc::default();
    let log = versions.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    log.lock().unwrap().push(req.version());
                    async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from_static(b"h2 backend"),
                        )))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let yaml = format!(
        "policies: {{ p: {{ allowOrigins: [\"https://a.test\"] }} }}\nvservices:\n  - name: v\n    listen: 127.0.0.1:0\n    cors: p\n    rules:\n      - forward: {{ upstreams: [\"http://{addr}\"], http2: true }}\n"
    );
    let gw = gateway(&yaml).await;
    let a = gw.addr("v").unwrap();
    for _ in 0..3 {
        let r = send(a, "GET", "/x", &[("origin", "https://a.test")]).await;
        assert_eq!(&r.body[..], b"h2 backend");
        assert_eq!(r.one("access-control-allow-origin"), Some("https://a.test"));
    }
    assert_eq!(*versions.lock().unwrap(), vec![http::Version::HTTP_2; 3]);
    gw.shutdown().await;
}

#[tokio::test]
async fn direct_responses_and_redirects_are_completed_and_round_robin_spreads_requests() {
    let (b1, seen1) = backend().await;
    let (b2, seen2) = backend().await;
    let yaml = format!(
        r#"
policies:
  p: {{ allowOrigins: ["https://a.test"], allowCredentials: true }}
vservices:
  - name: v
    listen: "127.0.0.1:0"
    cors: p
    rules:
      - match: {{ path: {{ exact: /moved }} }}
        redirect: {{ location: "https://new.example.com/", status: 308 }}
      - match: {{ path: {{ exact: /teapot }} }}
        direct: {{ status: 418, headers: {{ content-type: text/plain }}, body: "short and stout" }}
      - forward: {{ upstreams: ["http://{b1}", "http://{b2}"] }}
"#
    );
    let gw = gateway(&yaml).await;
    let a = gw.addr("v").unwrap();
    let o = ("origin", "https://a.test");
    let r = send(a, "GET", "/moved", &[o]).await;
    assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.one("location"), Some("https://new.example.com/"));
    assert_eq!(r.one("access-control-allow-origin"), Some("https://a.test"));
    let r = send(a, "GET", "/teapot", &[o]).await;
    assert_eq!(r.status.as_u16(), 418);
    assert_eq!(&r.body[..], b"short and stout");
    assert_eq!(r.one("access-control-allow-credentials"), Some("true"));
    // A preflight to a redirect route is still answered by the gateway (R17).
    let r = send(a, "OPTIONS", "/moved", &[o, (ACRM, "GET")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.one("access-control-allow-origin"), Some("https://a.test"));
    for _ in 0..6 {
        send(a, "GET", "/rr", &[o]).await;
    }
    assert_eq!(
        (seen1.lock().unwrap().len(), seen2.lock().unwrap().len()),
        (3, 3)
    );
    gw.shutdown().await;
}

/// R16: rule > path > host > vService > global; the winner applies whole.
#[tokio::test]
async fn binding_precedence_rule_path_host_vservice_global() {
    let yaml = r#"
policies:
  global: { allowOrigins: ["https://global.test"] }
  vs: { allowOrigins: ["https://vs.test"] }
  host: { allowOrigins: ["https://host.test"] }
  path: { allowOrigins: ["https://path.test"] }
  deeper: { allowOrigins: ["https://deeper.test"] }
  rule: { allowOrigins: ["https://rule.test"], allowCredentials: true }
cors: global
vservices:
  - name: a
    listen: "127.0.0.1:0"
    cors: vs
    hostCors: { "*.tenants.test": host }
    pathCors:
      - { prefix: /p, cors: path }
      - { prefix: /p/deeper, cors: deeper }
    rules:
      - { match: { path: { prefix: /r } }, cors: rule, direct: { status: 200 } }
      - { direct: { status: 200 } }
  - name: b
    listen: "127.0.0.1:0"
    rules:
      - { direct: { status: 200 } }
"#;
    let gw = gateway(yaml).await;
    let (a, b) = (gw.addr("a").unwrap(), gw.addr("b").unwrap());
    // (vService address, host, path, the only origin that gets ACAO)
    let cases = [
        (a, "x.tenants.test", "/r/1", "https://rule.test"),
        (a, "x.tenants.test", "/p/1", "https://path.test"),
        (a, "x.tenants.test", "/p/deeper/1", "https://deeper.test"),
        (a, "x.tenants.test", "/other", "https://host.test"),
        (a, "www.test", "/other", "https://vs.test"),
        (b, "www.test", "/other", "https://global.test"),
    ];
    let origins = [
        "https://rule.test",
        "https://path.test",
        "https://deeper.test",
        "https://host.test",
        "https://vs.test",
        "https://global.test",
    ];
    for (addr, host, path, winner) in cases {
        for origin in origins {
            let r = send(addr, "GET", path, &[("host", host), ("origin", origin)]).await;
            let allowed = r.one("access-control-allow-origin").is_some();
            assert_eq!(allowed, origin == winner, "{host}{path} with {origin}");
            // Whole policy, never merged: only the rule policy has credentials.
            assert_eq!(
                r.one("access-control-allow-credentials").is_some(),
                allowed && winner == "https://rule.test"
            );
        }
    }
    gw.shutdown().await;
}

/// The Gateway API filters' native forms: header modifiers, URL rewrite,
/// computed redirects, and query conditions with a regex.
#[tokio::test]
async fn header_modifiers_rewrites_redirects_and_query_regex() {
    let (b, seen) = backend().await;
    let gw = gateway(&format!(
        r#"
policies:
  p:
    allowOrigins: ["https://app.example.com"]
    exposeHeaders: [x-added]
vservices:
  - name: api
    listen: "127.0.0.1:0"
    cors: p
    rules:
      - name: versioned
        match: {{ path: {{ prefix: /v1 }}, query: [{{ name: tenant, regex: "t[0-9]+" }}] }}
        requestHeaders:
          set: {{ x-set: one }}
          add: {{ x-add: two }}
          remove: [x-drop]
        responseHeaders:
          set: {{ x-added: yes, access-control-allow-origin: "*" }}
        forward:
          upstreams: ["http://{b}"]
          rewrite: {{ hostname: internal.svc, path: {{ prefix: /api }} }}
      - name: moved
        match: {{ path: {{ prefix: /old }} }}
        redirect: {{ scheme: https, port: 8443, path: {{ prefix: /new }}, status: 301 }}
      - name: full
        match: {{ path: {{ exact: /x }} }}
        forward:
          upstreams: ["http://{b}"]
          rewrite: {{ path: {{ full: /replaced }} }}
"#
    ))
    .await;
    let a = gw.addr("api").unwrap();
    let origin = ("origin", "https://app.example.com");

    let r = send(
        a,
        "GET",
        "/v1/items/7?tenant=t42",
        &[origin, ("x-drop", "gone"), ("host", "api.example.com")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // Response modifiers applied, but CORS completion came after them: the
    // policy's exact origin, not the modifier's `*`.
    assert_eq!(r.one("x-added"), Some("yes"));
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    {
        let seen = seen.lock().unwrap();
        let (_, path, h) = seen.last().unwrap();
        assert_eq!(path, "/api/items/7");
        assert_eq!(h.get("host").unwrap(), "internal.svc");
        assert_eq!(h.get("x-forwarded-host").unwrap(), "api.example.com");
        assert_eq!(h.get("x-set").unwrap(), "one");
        assert_eq!(h.get("x-add").unwrap(), "two");
        assert!(h.get("x-drop").is_none());
    }
    // The query regex is anchored: t42x does not match, so no rule: 404.
    let r = send(a, "GET", "/v1/items?tenant=t42x", &[origin]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Computed redirect: scheme, port and prefix replaced, query kept, and
    // completed with CORS (R25).
    let r = send(
        a,
        "GET",
        "/old/page?q=1",
        &[origin, ("host", "www.example.com:8080")],
    )
    .await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        r.one("location"),
        Some("https://www.example.com:8443/new/page?q=1")
    );
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://app.example.com")
    );

    let n = seen.lock().unwrap().len();
    let r = send(a, "GET", "/x?k=v", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), n + 1);
    assert_eq!(seen.last().unwrap().1, "/replaced");
}

#[test]
fn path_changes_follow_the_gateway_api_prefix_rules() {
    use corsgate_gateway::router::PathChange;
    let p = |matched: &str, with: &str| PathChange::Prefix {
        matched: matched.into(),
        with: with.into(),
    };
    for (change, path, want) in [
        (p("/foo", "/bar"), "/foo/x", "/bar/x"),
        (p("/foo", "/bar"), "/foo", "/bar"),
        (p("/foo/", "/bar"), "/foo/x", "/bar/x"),
        (p("/foo", "/"), "/foo/x", "/x"),
        (p("/foo", "/"), "/foo", "/"),
        (p("/foo", "/bar/"), "/foo/x", "/bar/x"),
        (PathChange::Full("/z".into()), "/foo/x", "/z"),
    ] {
        assert_eq!(change.apply(path), want, "{change:?} on {path}");
    }
}

/// The seed page's scenario, from its manifests as they stand: an allowed
/// and a disallowed origin, the page's own curl (an OPTIONS without
/// Access-Control-Request-Method) and a browser's real preflight.
#[tokio::test]
async fn seed_manifests_serve_the_pages_scenarios() {
    let (b, seen) = backend().await;
    let dir = std::env::temp_dir().join(format!("corsgate-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let examples =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/gateway-api");
    for f in ["seed-httproute.yaml", "seed-policy.yaml"] {
        std::fs::copy(examples.join(f), dir.join(f)).unwrap();
    }
    let gw_yaml = format!(
        "gatewayApi:\n  manifests: [seed-httproute.yaml, seed-policy.yaml]\n  listeners:\n    agentgateway-system/agentgateway-proxy: \"127.0.0.1:0\"\n  backends:\n    httpbin/httpbin:8000: \"http://{b}\"\n"
    );
    std::fs::write(dir.join("gw.yaml"), gw_yaml).unwrap();
    let loaded = corsgate_config::load_file(&dir.join("gw.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&dir);
    let gw = corsgate_gateway::start(&loaded).await.unwrap();
    let a = gw.addrs[0].1;
    let host = ("host", "www.example.com");

    // A browser's preflight from the allowed origin: answered at the
    // gateway from the route's CORS filter, never forwarded.
    let r = send(
        a,
        "OPTIONS",
        "/get",
        &[
            host,
            ("origin", "https://example.com"),
            ("access-control-request-method", "POST"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://example.com")
    );
    assert!(r
        .one("access-control-allow-methods")
        .unwrap()
        .contains("GET"));
    assert_eq!(r.one("access-control-max-age"), Some("86400"));
    assert_eq!(r.one("access-control-allow-credentials"), Some("true"));
    assert!(
        seen.lock().unwrap().is_empty(),
        "a preflight reached the backend"
    );

    // The same from https://notallowed.com: 200 without CORS headers, and
    // still not forwarded (R18, R20).
    let r = send(
        a,
        "OPTIONS",
        "/get",
        &[
            host,
            ("origin", "https://notallowed.com"),
            ("access-control-request-method", "POST"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.acx().is_empty(), "{:?}", r.headers);
    assert!(seen.lock().unwrap().is_empty());

    // The page's curl: OPTIONS without ACRM is not a preflight (R8); it is
    // forwarded and completed like any response.
    let r = send(
        a,
        "OPTIONS",
        "/headers",
        &[host, ("origin", "https://example.com")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.one("access-control-allow-origin"),
        Some("https://example.com")
    );
    assert_eq!(
        r.one("access-control-expose-headers"),
        Some("origin, x-httproute-header")
    );
    assert!(r.one("access-control-max-age").is_none());
    assert_eq!(seen.lock().unwrap().len(), 1);

    // An actual request: forwarded, completed with the route's policy (its
    // exposeHeaders, not the Gateway policy's X-TrafficPolicy-Header).
    let r = send(a, "GET", "/get", &[host, ("origin", "https://example.com")]).await;
    assert_eq!(r.body, Bytes::from_static(b"from backend"));
    assert_eq!(
        r.one("access-control-expose-headers"),
        Some("origin, x-httproute-header")
    );
    let r = send(
        a,
        "GET",
        "/get",
        &[host, ("origin", "https://notallowed.com")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.acx().is_empty());
    assert_eq!(r.one("vary"), Some("Origin"));
}

/// `explain` must agree exactly with the running gateway: for a table of
/// browser requests, every leg explain predicts is sent to a live gateway
/// built from the same configuration, and the answers are compared.
#[tokio::test]
async fn explain_agrees_with_the_live_gateway() {
    use corsgate_gateway::explain::{explain, Answer, BrowserRequest, Verdict};
    let (b, _) = backend().await;
    let yaml = format!(
        r#"
policies:
  public:
    allowOrigins: ["https://*.example.com"]
    allowMethods: [GET, PUT]
    allowHeaders: [Content-Type, X-Request-ID]
    exposeHeaders: [X-Request-ID]
    maxAge: 600
  admin:
    allowOrigins: ["https://admin.example.com"]
    allowMethods: [GET, DELETE]
    allowHeaders: [Authorization]
    allowCredentials: true
    maxAge: 60
  partner:
    allowOrigins: ["https://portal.partner.example.net"]
    allowMethods: [POST]
    allowHeaders: [X-Partner-Key, Content-Type]
    preflightValidation: strict
    preflightRejectStatus: 403
vservices:
  - name: api
    listen: "127.0.0.1:0"
    cors: public
    pathCors: [{{ prefix: /admin, cors: admin }}]
    rules:
      - name: partner
        match: {{ path: {{ prefix: /api }}, headers: [{{ name: x-partner-key }}] }}
        cors: partner
        forward: {{ upstreams: ["http://{b}"] }}
      - name: api
        match: {{ path: {{ prefix: /api }} }}
        forward: {{ upstreams: ["http://{b}"] }}
        responseHeaders: {{ set: {{ x-served-by: corsgate }} }}
      - name: admin
        match: {{ path: {{ prefix: /admin }} }}
        direct: {{ status: 200, headers: {{ content-type: application/json }}, body: "{{}}" }}
      - name: moved
        match: {{ path: {{ prefix: /old }} }}
        redirect: {{ path: {{ prefix: /api }}, status: 308 }}
      - name: open
        match: {{ path: {{ prefix: /open }} }}
        cors: public
        forward: {{ upstreams: ["http://{b}"] }}
"#
    );
    let loaded = corsgate_config::load_str(&yaml, None).unwrap();
    let gw = corsgate_gateway::start(&loaded).await.unwrap();
    let a = gw.addr("api").unwrap();
    let compiled = corsgate_gateway::router::compile(&loaded).unwrap();
    let base = format!("http://{a}");
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        bool,
        bool,
    );
    // (origin, method, path, headers, credentials, browser allows)
    let cases: &[Case] = &[
        (
            "https://app.example.com",
            "GET",
            "/api/items",
            &[],
            false,
            true,
        ),
        (
            "https://app.example.com",
            "PUT",
            "/api/items",
            &[("content-type", "application/json")],
            false,
            true,
        ),
        (
            "https://app.example.com",
            "PUT",
            "/api/items",
            &[("x-tenant", "acme")],
            false,
            false,
        ),
        (
            "https://app.example.com",
            "DELETE",
            "/api/items",
            &[],
            false,
            false,
        ),
        (
            "https://app.example.com:8443",
            "GET",
            "/api/items",
            &[],
            false,
            false,
        ),
        (
            "https://evil.example.net",
            "PUT",
            "/api/items",
            &[],
            false,
            false,
        ),
        (
            "https://app.example.com",
            "GET",
            "/api/items",
            &[],
            true,
            false,
        ),
        (
            "https://admin.example.com",
            "DELETE",
            "/admin/users/1",
            &[("authorization", "Bearer t")],
            true,
            true,
        ),
        (
            "https://app.example.com",
            "GET",
            "/admin/users",
            &[],
            true,
            false,
        ),
        (
            "https://portal.partner.example.net",
            "POST",
            "/api/orders",
            &[("x-partner-key", "k"), ("content-type", "application/json")],
            false,
            true,
        ),
        (
            "https://portal.partner.example.net",
            "PUT",
            "/api/orders",
            &[("x-partner-key", "k")],
            false,
            false,
        ),
        (
            "https://app.example.com",
            "GET",
            "/old/page?x=1",
            &[],
            false,
            true,
        ),
        (
            "https://app.example.com",
            "GET",
            "/nowhere",
            &[],
            false,
            true,
        ),
        (
            "https://app.example.com",
            "POST",
            "/open/form",
            &[("content-type", "text/plain")],
            false,
            true,
        ),
    ];
    for (origin, method, path, headers, credentials, allows) in cases {
        let req = BrowserRequest {
            origin: (*origin).into(),
            method: (*method).into(),
            url: format!("{base}{path}").parse().unwrap(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            credentials: *credentials,
        };
        let e = explain(&compiled, &loaded.policies, &req).unwrap();
        let all_allowed = e.legs.iter().all(|l| l.verdict == Verdict::Allowed);
        assert_eq!(all_allowed, *allows, "{e}");
        for leg in &e.legs {
            let hs: Vec<(&str, &str)> = leg
                .request_headers
                .iter()
                .filter(|(k, _)| k != "host")
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let live = send(a, &leg.method, &leg.target, &hs).await;
            let cors = |h: &[(String, String)]| {
                let mut v: Vec<(String, String)> = h
                    .iter()
                    .filter(|(k, _)| k.starts_with("access-control-") || k == "vary")
                    .cloned()
                    .collect();
                v.sort();
                v
            };
            let live_pairs: Vec<(String, String)> = live
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                .collect();
            assert_eq!(
                cors(leg.answer.headers()),
                cors(&live_pairs),
                "{} {}: {e}",
                leg.method,
                leg.target
            );
            match &leg.answer {
                Answer::Gateway { status, headers } => {
                    assert_eq!(*status, live.status.as_u16(), "{e}");
                    for (k, v) in headers {
                        assert!(
                            live_pairs.contains(&(k.clone(), v.clone())),
                            "{k}: {v} missing live: {e}"
                        );
                    }
                }
                Answer::Upstream { headers, .. } => {
                    assert_eq!(live.body, Bytes::from_static(b"from backend"), "{e}");
                    for (k, v) in headers {
                        assert!(
                            live_pairs.contains(&(k.clone(), v.clone())),
                            "{k}: {v} missing live: {e}"
                        );
                    }
                }
            }
        }
    }
}

/// A reload swaps the configuration for new requests only: a request in
/// flight finishes on the configuration it started with, on the same
/// listener, and the listener keeps its address.
#[tokio::test]
async fn a_request_in_flight_during_a_reload_finishes_on_its_configuration() {
    let (b, _) = backend().await;
    let config = |version: &str| {
        format!(
            "vservices:\n  - name: api\n    listen: \"127.0.0.1:0\"\n    rules:\n      - forward: {{ upstreams: [\"http://{b}\"] }}\n        responseHeaders: {{ set: {{ x-version: {version} }} }}\n"
        )
    };
    let load = |yaml: String| corsgate_config::load_str(&yaml, None).unwrap();
    let mut gw = corsgate_gateway::start(&load(config("a"))).await.unwrap();
    let a = gw.addr("api").unwrap();
    // /slow takes 3 s at the backend.
    let slow = tokio::spawn(async move { send(a, "GET", "/slow", &[]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = gw.reload(&load(config("b"))).await.unwrap();
    assert_eq!(report.kept, ["api"]);
    assert_eq!(gw.addr("api"), Some(a));
    let fresh = send(a, "GET", "/fast", &[]).await;
    assert_eq!(fresh.one("x-version"), Some("b"));
    let old = slow.await.unwrap();
    assert_eq!(old.status, StatusCode::OK);
    assert_eq!(old.one("x-version"), Some("a"));
}

/// A reload that cannot bind a new listener changes nothing.
#[tokio::test]
async fn a_reload_that_cannot_bind_changes_nothing() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let busy = taken.local_addr().unwrap();
    let direct = |body: &str, extra: &str| {
        format!(
            "vservices:\n  - name: api\n    listen: \"127.0.0.1:0\"\n    rules:\n      - direct: {{ status: 200, body: {body} }}\n{extra}"
        )
    };
    let load = |yaml: String| corsgate_config::load_str(&yaml, None).unwrap();
    let mut gw = corsgate_gateway::start(&load(direct("one", "")))
        .await
        .unwrap();
    let a = gw.addr("api").unwrap();
    let second = format!(
        "  - name: other\n    listen: \"{busy}\"\n    rules:\n      - direct: {{ status: 200 }}\n"
    );
    let err = gw.reload(&load(direct("two", &second))).await.unwrap_err();
    assert!(err.to_string().contains(&busy.to_string()), "{err}");
    assert_eq!(
        send(a, "GET", "/", &[]).await.body,
        Bytes::from_static(b"one")
    );
    assert_eq!(gw.addrs.len(), 1);
}

/// An HTTP/1.0 upstream's version does not leak to the client: the client
/// still gets HTTP/1.1 and a kept-alive connection.
#[tokio::test]
async fn an_http10_upstream_does_not_downgrade_the_client() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let u = upstream.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = upstream.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    let gw = gateway(&format!(
        "vservices:\n  - name: api\n    listen: \"127.0.0.1:0\"\n    rules:\n      - forward: {{ upstreams: [\"http://{u}\"] }}\n"
    ))
    .await;
    let a = gw.addr("api").unwrap();
    let mut s = tokio::net::TcpStream::connect(a).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"ok") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "connection closed: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        assert!(
            got.starts_with(b"HTTP/1.1 200 OK\r\n"),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
}

/// A TLS client may send its first request in the same flight as the
/// handshake's last message; rustls then holds the request decrypted and
/// the socket never turns readable for it. The gateway, which waits for a
/// connection's first bytes before it sets up the front, must see it and
/// answer at once. rustls's client sends what was written before the
/// handshake completed right after its Finished, in one write.
#[tokio::test]
async fn a_request_sent_with_the_tls_handshake_is_answered() {
    use std::io::{Read, Write};
    let (b, _) = backend().await;
    // An idle timeout far beyond the test's wait: an answer that only came
    // after it would be a failure here.
    let fixture = tls_gateway(b, "{ idleTimeoutMs: 20000 }", b"http/1.1", "tls-first").await;
    let a = fixture.gw.addr("api").unwrap();
    let tls = fixture.client.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let name = rustls::pki_types::ServerName::try_from("www.example.com").unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(tls), name).unwrap();
        // Queued before the handshake: sent right after the Finished.
        conn.writer()
            .write_all(
                b"OPTIONS /get HTTP/1.1\r\nHost: www.example.com\r\nOrigin: https://example.com\r\n\
                  Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
        let mut tcp = std::net::TcpStream::connect(a).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out);
        out
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "no answer in 5 s: {text:?}"
    );
    assert!(
        text.to_ascii_lowercase()
            .contains("access-control-allow-origin: https://example.com"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&fixture.dir);
}
