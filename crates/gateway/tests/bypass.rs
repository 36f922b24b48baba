//! The request path tried as a hostile client would: path tricks against a
//! `direct 403` rule and a path-scoped CORS policy, missing and forged
//! hosts, absolute-form targets, forged forwarding fields, broken request
//! framing, unknown transfer codings, oversized heads, and oversized
//! upstream heads on both upstream paths. Each probe is a raw request on a
//! real loopback socket to a real gateway in front of a recording backend;
//! docs/security.md has the same table.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the backend saw: path and request header lines (`name: value`).
type Seen = Arc<Mutex<Vec<(String, Vec<String>)>>>;

/// A backend that records each request and answers 200 with the path it
/// saw. `/big-head` answers with a 70 KiB response field.
async fn backend() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let fields = req
                            .headers()
                            .iter()
                            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
                            .collect();
                        log.lock().unwrap().push((path.clone(), fields));
                        let _ = req.into_body().collect().await;
                        let mut resp = http::Response::new(Full::new(Bytes::from(format!(
                            "backend saw {path}"
                        ))));
                        if path == "/big-head" {
                            resp.headers_mut()
                                .insert("x-big", "a".repeat(70 * 1024).parse().unwrap());
                        }
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .max_buf_size(1 << 20)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

async fn gateway(backend: SocketAddr, paths: &str) -> corsgate_gateway::Running {
    gateway_forwarding(backend, paths, "").await
}

/// [`gateway`] with `extra` added to the forwarding rule's settings.
async fn gateway_forwarding(
    backend: SocketAddr,
    paths: &str,
    extra: &str,
) -> corsgate_gateway::Running {
    let yaml = format!(
        r#"
policies:
  public: {{ allowOrigins: ["https://app.test"], exposeHeaders: [x-request-id] }}
  secure: {{ allowOrigins: ["https://admin.test"] }}
vservices:
  - name: v
    listen: "127.0.0.1:0"
    cors: public
    pathCors: [{{ prefix: /secure, cors: secure }}]
    paths: {paths}
    limits: {{ maxBodyBytes: 1000 }}
    rules:
      - name: internal
        match: {{ path: {{ prefix: /internal }} }}
        direct: {{ status: 403, body: "forbidden" }}
      - name: blocked-host
        match: {{ hosts: [blocked.test] }}
        direct: {{ status: 403, body: "blocked host" }}
      - name: backend
        forward: {{ upstreams: ["http://{backend}"]{extra} }}
"#
    );
    let loaded = corsgate_config::load_str(&yaml, Some("test.yaml")).unwrap();
    corsgate_gateway::start(&loaded).await.unwrap()
}

/// One response read off the wire.
#[derive(Debug)]
struct Wire {
    status: u16,
    fields: Vec<(String, String)>,
    body: String,
}

impl Wire {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Send `raw` on a new connection and read one response (framed by
/// `Content-Length`, or up to the close).
async fn send(addr: SocketAddr, raw: &[u8]) -> Wire {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    read_response(&mut s).await
}

async fn read_response(s: &mut TcpStream) -> Wire {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let mut raw = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut raw);
        if let Ok(httparse::Status::Complete(len)) = resp.parse(&buf) {
            let fields: Vec<(String, String)> = resp
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let status = resp.code.unwrap();
            let want = fields
                .iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.parse::<usize>().unwrap());
            let mut body = buf[len..].to_vec();
            while want.is_some_and(|n| body.len() < n) {
                let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
                    .await
                    .expect("body timed out")
                    .unwrap_or(0);
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            return Wire {
                status,
                fields,
                body: String::from_utf8_lossy(&body).into_owned(),
            };
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("no response within 5 s")
            .unwrap_or(0);
        assert!(
            n > 0,
            "closed without a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn get(target: &str, extra: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: api.test\r\n{extra}Connection: close\r\n\r\n")
        .into_bytes()
}

/// The path tricks of the probe table: none reaches `/internal` on the
/// backend, and each is either answered by the `internal` rule (its
/// normalised path is `/internal/…`) or refused with 400 (an encoded
/// slash, which a backend could decode into another segment).
#[tokio::test]
async fn path_tricks_do_not_bypass_rules() {
    let (addr, seen) = backend().await;
    let gw = gateway(addr, "{}").await;
    let gw_addr = gw.addr("v").unwrap();
    let table: &[(&str, u16)] = &[
        ("/internal/secret.txt", 403),
        ("/x/../internal/secret.txt", 403),
        ("//internal/secret.txt", 403),
        ("/%69nternal/secret.txt", 403),
        ("/./internal/secret.txt", 403),
        ("/x/%2e%2e/internal/secret.txt", 403),
        ("/x/%2E%2E/internal/secret.txt", 403),
        ("/internal%2fsecret.txt", 400),
        ("/internal%2Fsecret.txt", 400),
        ("/internal%5csecret.txt", 400),
        ("/../internal/secret.txt", 400),
        ("/a%zz", 400),
        ("/a%00", 400),
        // A servlet container drops `;…` from a segment before routing:
        // `/x/..;/internal` would be its `/internal`.
        ("/x/..;/internal/secret.txt", 400),
        ("/internal;x/secret.txt", 400),
    ];
    for (target, status) in table {
        let r = send(gw_addr, &get(target, "Origin: https://app.test\r\n")).await;
        assert_eq!(r.status, *status, "{target}: {r:?}");
        // Refused or forbidden, the gateway's answer carries CORS.
        assert_eq!(
            r.field("access-control-allow-origin"),
            Some("https://app.test"),
            "{target}: {r:?}"
        );
    }
    let seen = seen.lock().unwrap();
    assert!(seen.is_empty(), "the backend saw {seen:?}");
}

/// `paths.encodedSlashes: keep` forwards an encoded slash unchanged, inside
/// its segment: `/internal%2Fsecret.txt` is one segment, not under
/// `/internal`, and the backend is sent exactly that.
#[tokio::test]
async fn encoded_slashes_can_be_kept() {
    let (addr, seen) = backend().await;
    let gw = gateway(addr, "{ encodedSlashes: keep }").await;
    let r = send(gw.addr("v").unwrap(), &get("/internal%2fsecret.txt", "")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(seen.lock().unwrap()[0].0, "/internal%2Fsecret.txt");
}

/// `paths.semicolons: keep` forwards a path parameter unchanged, as part
/// of its segment.
#[tokio::test]
async fn semicolons_can_be_kept() {
    let (addr, seen) = backend().await;
    let gw = gateway(addr, "{ semicolons: keep }").await;
    let r = send(gw.addr("v").unwrap(), &get("/items;v=2/x", "")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(seen.lock().unwrap()[0].0, "/items;v=2/x");
}

/// The same tricks cannot pick another CORS policy: `/secure` refuses
/// `https://app.test`, whatever spelling of `/secure` is sent, and the
/// backend is sent the path that was routed.
#[tokio::test]
async fn path_tricks_do_not_change_the_cors_policy() {
    let (addr, seen) = backend().await;
    let gw = gateway(addr, "{}").await;
    let gw_addr = gw.addr("v").unwrap();
    for target in [
        "/secure/x",
        "/%73ecure/x",
        "//secure/x",
        "/api/../secure/x",
        "/./secure/x",
    ] {
        for (origin, allowed) in [("https://app.test", false), ("https://admin.test", true)] {
            let r = send(gw_addr, &get(target, &format!("Origin: {origin}\r\n"))).await;
            assert_eq!(r.status, 200, "{target}");
            assert_eq!(r.body, "backend saw /secure/x", "{target}");
            assert_eq!(
                r.field("access-control-allow-origin").is_some(),
                allowed,
                "{target} from {origin}: {r:?}"
            );
        }
    }
    assert!(seen.lock().unwrap().iter().all(|(p, _)| p == "/secure/x"));
}

/// RFC 9112 §3.2: a missing, repeated or invalid `Host` is a 400, on the
/// front and on hyper's path (a request with a body); an absolute-form
/// target is routed by its authority.
#[tokio::test]
async fn hosts_are_strict() {
    let (addr, seen) = backend().await;
    let gw = gateway(addr, "{}").await;
    let gw_addr = gw.addr("v").unwrap();
    let o = "Origin: https://app.test\r\n";
    let table: Vec<(&str, String, u16)> = vec![
        ("no Host", format!("GET /a HTTP/1.1\r\n{o}\r\n"), 400),
        (
            "two Host lines",
            format!("GET /a HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n{o}\r\n"),
            400,
        ),
        (
            "Host with space, slash and @",
            format!("GET /a HTTP/1.1\r\nHost: a b/c@d\r\n{o}\r\n"),
            400,
        ),
        (
            "Host with userinfo",
            format!("GET /a HTTP/1.1\r\nHost: user@a.test\r\n{o}\r\n"),
            400,
        ),
        (
            "no Host, with a body (hyper's path)",
            format!("POST /a HTTP/1.1\r\nContent-Length: 2\r\n{o}\r\nhi"),
            400,
        ),
        (
            "two Host lines, with a body",
            format!(
                "POST /a HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nContent-Length: 2\r\n{o}\r\nhi"
            ),
            400,
        ),
        (
            "absolute-form routed by its authority",
            format!("GET http://blocked.test/a HTTP/1.1\r\nHost: api.test\r\n{o}\r\n"),
            403,
        ),
        (
            "Host names the blocked host",
            format!("GET /a HTTP/1.1\r\nHost: blocked.test\r\n{o}\r\n"),
            403,
        ),
        (
            "trailing dot is the same host",
            format!("GET /a HTTP/1.1\r\nHost: blocked.test.\r\n{o}\r\n"),
            403,
        ),
        (
            "absolute-form to an allowed host",
            format!("GET http://api.test/a HTTP/1.1\r\nHost: blocked.test\r\n{o}\r\n"),
            200,
        ),
        (
            "HTTP/1.0 without Host",
            format!("GET /a HTTP/1.0\r\n{o}\r\n"),
            200,
        ),
    ];
    for (name, raw, status) in &table {
        let r = send(gw_addr, raw.as_bytes()).await;
        assert_eq!(r.status, *status, "{name}: {r:?}");
        assert_eq!(
            r.field("access-control-allow-origin"),
            Some("https://app.test"),
            "{name}: {r:?}"
        );
    }
    // The absolute-form request to api.test was forwarded with its
    // authority as Host, not the Host line's.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].1.contains(&"host: api.test".to_owned()), "{seen:?}");
}

/// The forwarding fields are the gateway's on both upstream paths: a
/// client's `X-Forwarded-Host` and `X-Forwarded-Proto` never reach the
/// backend, and a request without `Host` (HTTP/1.0) is sent with the
/// upstream's authority as `Host`.
#[tokio::test]
async fn forwarding_fields_are_written_by_the_gateway() {
    let (addr, seen) = backend().await;
    let gw = gateway(addr, "{}").await;
    let gw_addr = gw.addr("v").unwrap();
    let forged = "X-Forwarded-Host: evil.test\r\nX-Forwarded-Proto: https\r\n";
    let cases = [
        format!("GET /a HTTP/1.1\r\nHost: api.test\r\n{forged}\r\n"),
        format!("POST /a HTTP/1.1\r\nHost: api.test\r\nContent-Length: 2\r\n{forged}\r\nhi"),
        format!("POST /a HTTP/1.0\r\nContent-Length: 2\r\n{forged}\r\nhi"),
        format!("GET /a HTTP/1.0\r\n{forged}\r\n"),
    ];
    for raw in &cases {
        let r = send(gw_addr, raw.as_bytes()).await;
        assert_eq!(r.status, 200, "{raw}: {r:?}");
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), cases.len());
    for (i, (_, fields)) in seen.iter().enumerate() {
        let host: Vec<_> = fields.iter().filter(|f| f.starts_with("host: ")).collect();
        assert_eq!(host.len(), 1, "case {i}: {fields:?}");
        assert!(
            !fields.iter().any(|f| f.contains("evil.test")),
            "case {i}: {fields:?}"
        );
        assert!(
            fields.contains(&"x-forwarded-proto: http".to_owned()),
            "case {i}: {fields:?}"
        );
        if i < 2 {
            assert_eq!(host[0], "host: api.test", "case {i}");
            assert!(fields.contains(&"x-forwarded-host: api.test".to_owned()));
        } else {
            assert_eq!(host[0], &format!("host: {addr}"), "case {i}");
            assert!(!fields.iter().any(|f| f.starts_with("x-forwarded-host")));
        }
    }
}

/// `forwardedHeaders` chooses what the upstream is told, the same on both
/// upstream paths (a bodiless GET through corsgate's exchange, a POST with
/// a body through hyper's client), and a client's forged host and proto
/// never pass in any mode.
#[tokio::test]
async fn forwarded_headers_follow_the_rule_on_both_upstream_paths() {
    let forged =
        "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Host: evil.test\r\nX-Forwarded-Proto: https\r\n";
    let requests = [
        format!("GET /a HTTP/1.1\r\nHost: api.test\r\n{forged}\r\n"),
        format!("POST /a HTTP/1.1\r\nHost: api.test\r\nContent-Length: 2\r\n{forged}\r\nhi"),
    ];
    let table: [(&str, &[&str]); 3] = [
        (
            "",
            &[
                "x-forwarded-for: 192.0.2.7, 127.0.0.1",
                "x-forwarded-host: api.test",
                "x-forwarded-proto: http",
            ],
        ),
        (
            ", forwardedHeaders: replace",
            &[
                "x-forwarded-for: 127.0.0.1",
                "x-forwarded-host: api.test",
                "x-forwarded-proto: http",
            ],
        ),
        (", forwardedHeaders: off", &[]),
    ];
    for (extra, expect) in table {
        let (addr, seen) = backend().await;
        let gw = gateway_forwarding(addr, "{}", extra).await;
        let gw_addr = gw.addr("v").unwrap();
        for raw in &requests {
            let r = send(gw_addr, raw.as_bytes()).await;
            assert_eq!(r.status, 200, "{extra}: {raw}: {r:?}");
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), requests.len(), "{extra}");
        for (i, (_, fields)) in seen.iter().enumerate() {
            let forwarding: Vec<&str> = fields
                .iter()
                .map(String::as_str)
                .filter(|f| f.starts_with("x-forwarded-"))
                .collect();
            assert_eq!(forwarding, expect, "{extra:?}, request {i}: {fields:?}");
        }
    }
}

/// Client framing errors are the client's: a broken chunk size is a 400,
/// a streamed body over `maxBodyBytes` a 413, an unknown transfer coding a
/// 501 — never a 502 that blames the upstream — each with CORS.
#[tokio::test]
async fn client_framing_errors_are_client_errors() {
    let (addr, _seen) = backend().await;
    let gw = gateway(addr, "{}").await;
    let gw_addr = gw.addr("v").unwrap();
    let head = |te: &str| {
        format!(
            "POST /a HTTP/1.1\r\nHost: api.test\r\nOrigin: https://app.test\r\nTransfer-Encoding: {te}\r\n\r\n"
        )
    };
    let big_chunk = format!(
        "3e8\r\n{}\r\n3e8\r\n{}\r\n0\r\n\r\n",
        "a".repeat(1000),
        "b".repeat(1000)
    );
    let table: Vec<(&str, String, u16)> = vec![
        ("negative chunk size", head("chunked") + "-1\r\nx\r\n0\r\n\r\n", 400),
        ("0x chunk size", head("chunked") + "0x5\r\nhello\r\n0\r\n\r\n", 400),
        ("18 hex digits", head("chunked") + "100000000000000005\r\nhello\r\n0\r\n\r\n", 400),
        ("leading zeros are a size", head("chunked") + "000000000000000005\r\nhello\r\n0\r\n\r\n", 200),
        ("bare LF after size", head("chunked") + "5\nhello\r\n0\r\n\r\n", 400),
        ("streamed body over the limit", head("chunked") + &big_chunk, 413),
        ("gzip, chunked", head("gzip, chunked") + "5\r\nhello\r\n0\r\n\r\n", 501),
        ("chunked twice", head("chunked, chunked") + "5\r\nhello\r\n0\r\n\r\n", 501),
        (
            "declared body over the limit",
            "POST /a HTTP/1.1\r\nHost: api.test\r\nOrigin: https://app.test\r\nContent-Length: 10000000000\r\n\r\n"
                .into(),
            413,
        ),
    ];
    for (name, raw, status) in &table {
        let r = send(gw_addr, raw.as_bytes()).await;
        assert_eq!(r.status, *status, "{name}: {r:?}");
        assert_eq!(
            r.field("access-control-allow-origin"),
            Some("https://app.test"),
            "{name}: {r:?}"
        );
    }
    let metrics = gw.metrics().render();
    for reason in ["body_framing", "body_too_large", "transfer_coding"] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("corsgate_client_errors_total")
                    && l.contains(&format!("reason=\"{reason}\""))
            })
            .unwrap_or_else(|| panic!("no {reason} counter: {metrics}"));
        assert!(!line.ends_with(" 0"), "{line}");
    }
}

/// Heads over the limit are answered by the gateway, with CORS, on every
/// path: a field block over `maxHeaderBytes` (431), a request line longer
/// than the head limit (414), far past hyper's own buffer too.
#[tokio::test]
async fn oversized_heads_get_cors() {
    let (addr, seen) = backend().await;
    let gw = gateway(addr, "{}").await;
    let gw_addr = gw.addr("v").unwrap();
    let o = "Origin: https://app.test\r\n";
    let field = |n: usize| format!("X-Pad: {}\r\n", "p".repeat(n));
    let table: Vec<(&str, String, u16)> = vec![
        (
            "40 KiB field",
            format!(
                "GET /a HTTP/1.1\r\nHost: api.test\r\n{o}{}\r\n",
                field(40 << 10)
            ),
            431,
        ),
        (
            "200 KiB field",
            format!(
                "GET /a HTTP/1.1\r\nHost: api.test\r\n{o}{}\r\n",
                field(200 << 10)
            ),
            431,
        ),
        (
            "200 KiB field, Origin after it",
            format!(
                "GET /a HTTP/1.1\r\nHost: api.test\r\n{}{o}\r\n",
                field(200 << 10)
            ),
            431,
        ),
        (
            "100 KiB target",
            format!(
                "GET /{} HTTP/1.1\r\nHost: api.test\r\n{o}\r\n",
                "t".repeat(100 << 10)
            ),
            414,
        ),
    ];
    for (name, raw, status) in &table {
        let r = send(gw_addr, raw.as_bytes()).await;
        assert_eq!(r.status, *status, "{name}: {r:?}");
        assert_eq!(
            r.field("access-control-allow-origin"),
            Some("https://app.test"),
            "{name}: {r:?}"
        );
    }
    assert!(seen.lock().unwrap().is_empty());
}

/// One upstream head limit on both upstream paths: a 70 KiB response head
/// is a 502 whether the request went through corsgate's exchange (GET) or
/// hyper's client (a request with a body).
#[tokio::test]
async fn one_upstream_head_limit() {
    let (addr, _seen) = backend().await;
    let gw = gateway(addr, "{}").await;
    let gw_addr = gw.addr("v").unwrap();
    let cases = [
        "GET /big-head HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n".to_owned(),
        "POST /big-head HTTP/1.1\r\nHost: api.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
            .to_owned(),
    ];
    for raw in &cases {
        let r = send(gw_addr, raw.as_bytes()).await;
        assert_eq!(
            r.status,
            502,
            "{raw}: {} {:?}",
            r.body,
            r.fields
                .iter()
                .map(|(k, v)| (k, v.len()))
                .collect::<Vec<_>>()
        );
    }
}

/// A backend that speaks h2c when asked (`Upgrade: h2c` answered with 101,
/// then HTTP/2 on the same connection) and serves `/internal/secret.txt`
/// to whoever reaches it: what a smuggled HTTP/2 connection would reach.
async fn h2c_backend() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |mut req: http::Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let fields = req
                            .headers()
                            .iter()
                            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
                            .collect();
                        log.lock()
                            .unwrap()
                            .push((req.uri().path().to_owned(), fields));
                        let h2c = req
                            .headers()
                            .get("upgrade")
                            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"h2c"));
                        if !h2c {
                            return Ok::<_, std::convert::Infallible>(http::Response::new(
                                Full::new(Bytes::from_static(b"plain")),
                            ));
                        }
                        let upgrade = hyper::upgrade::on(&mut req);
                        tokio::spawn(async move {
                            let Ok(io) = upgrade.await else { return };
                            let secret = service_fn(|r: http::Request<Incoming>| async move {
                                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                    Bytes::from(format!("secret at {}", r.uri().path())),
                                )))
                            });
                            let _ = hyper::server::conn::http2::Builder::new(
                                hyper_util::rt::TokioExecutor::new(),
                            )
                            .serve_connection(io, secret)
                            .await;
                        });
                        let mut resp = http::Response::new(Full::new(Bytes::new()));
                        *resp.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
                        resp.headers_mut()
                            .insert("connection", "upgrade".parse().unwrap());
                        resp.headers_mut().insert("upgrade", "h2c".parse().unwrap());
                        Ok(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (addr, seen)
}

/// `Upgrade: h2c` is never forwarded: the request reaches an h2c-capable
/// backend as an ordinary request (no `Upgrade`, no `HTTP2-Settings`), so
/// no tunnel opens through which HTTP/2 requests could pass unseen by the
/// rules (here, the `/internal` 403).
#[tokio::test]
async fn h2c_upgrades_are_not_smuggled() {
    let (addr, seen) = h2c_backend().await;
    let gw = gateway(addr, "{}").await;
    let gw_addr = gw.addr("v").unwrap();
    let mut s = TcpStream::connect(gw_addr).await.unwrap();
    s.write_all(
        b"GET /public HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await
    .unwrap();
    let r = read_response(&mut s).await;
    if r.status == 101 {
        // What the attack would do next: speak HTTP/2 through the tunnel.
        let (mut h2, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(s),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = http::Request::builder()
            .uri("http://api.test/internal/secret.txt")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let resp = h2.send_request(req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        panic!("smuggled: {}", String::from_utf8_lossy(&body));
    }
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "plain");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    for gone in ["upgrade", "http2-settings", "connection"] {
        assert!(
            !seen[0]
                .1
                .iter()
                .any(|f| f.starts_with(&format!("{gone}: "))),
            "{gone} forwarded: {:?}",
            seen[0].1
        );
    }
}

/// Under the default `preflightValidation: browser` the gateway answers a
/// preflight whose method or headers the policy does not list with the
/// policy's headers, and the browser then blocks the request: the metrics
/// say so (`preflight_blocked`, with the reason), not `preflight_allowed`.
#[tokio::test]
async fn decisions_tell_the_browsers_verdict() {
    let (addr, seen) = backend().await;
    let gw = gateway(addr, "{}").await;
    let gw_addr = gw.addr("v").unwrap();
    let preflight = |acrm: &str, acrh: &str| {
        format!(
            "OPTIONS /api HTTP/1.1\r\nHost: api.test\r\nOrigin: https://app.test\r\n\
             Access-Control-Request-Method: {acrm}\r\n{acrh}Connection: close\r\n\r\n"
        )
    };
    let cases = [
        (preflight("GET", ""), "preflight_allowed", ""),
        (
            preflight("PUT", ""),
            "preflight_blocked",
            "method_not_allowed",
        ),
        (
            preflight("GET", "Access-Control-Request-Headers: x-custom\r\n"),
            "preflight_blocked",
            "header_not_allowed",
        ),
    ];
    for (raw, _, _) in &cases {
        let r = send(gw_addr, raw.as_bytes()).await;
        assert_eq!(r.status, 200);
        // The answer itself is unchanged: the policy's headers.
        assert_eq!(
            r.field("access-control-allow-origin"),
            Some("https://app.test")
        );
    }
    let metrics = gw.metrics().render();
    for (_, decision, reason) in &cases {
        let line = format!(
            "corsgate_cors_decisions_total{{policy=\"public\",decision=\"{decision}\",reason=\"{reason}\"}} 1"
        );
        assert!(metrics.contains(&line), "{line} not in {metrics}");
    }
    assert!(seen.lock().unwrap().is_empty(), "a preflight was forwarded");
}
