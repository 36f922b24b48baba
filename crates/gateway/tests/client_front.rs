//! corsgate's own HTTP/1.1 front, seen from a raw client on a real loopback
//! socket: pipelining, the hand-over to hyper in the middle of a connection
//! (request bodies, HTTP/1.0, malformed and oversized heads), response
//! framing (length, chunked, HEAD, 204), `Connection: close`, closing
//! idle connections on shutdown, and the header and idle timeouts.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Set when a `/slow` request's handler is dropped before it answers.
static SLOW_ABANDONED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

struct Abandoned(bool);

impl Drop for Abandoned {
    fn drop(&mut self) {
        if !self.0 {
            SLOW_ABANDONED.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// A backend: `/echo` answers with the method and the length of the body
/// it received; `/stream` streams a body of unknown length; `/nocontent`
/// answers 204; `/slow` answers after 3 s (and records being abandoned
/// before that); anything else "from backend".
async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: http::Request<Incoming>| async move {
                    let method = req.method().clone();
                    let path = req.uri().path().to_owned();
                    if path == "/slow" {
                        let mut guard = Abandoned(false);
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        guard.0 = true;
                    }
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let resp: http::Response<crate_body::B> = match path.as_str() {
                        "/echo" => crate_body::full(format!("{method} {}", body.len())),
                        "/stream" => {
                            let frames = futures_util::stream::iter(
                                ["ab", "c"]
                                    .map(|s| Ok::<_, Infallible>(Frame::data(Bytes::from(s)))),
                            );
                            http::Response::new(StreamBody::new(frames).boxed())
                        }
                        "/nocontent" => {
                            let mut r = crate_body::full(String::new());
                            *r.status_mut() = http::StatusCode::NO_CONTENT;
                            r
                        }
                        _ => crate_body::full("from backend".into()),
                    };
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

mod crate_body {
    use super::*;
    pub type B = http_body_util::combinators::BoxBody<Bytes, Infallible>;
    pub fn full(s: String) -> http::Response<B> {
        http::Response::new(Full::new(Bytes::from(s)).boxed())
    }
}

async fn gateway(backend: SocketAddr) -> corsgate_gateway::Running {
    gateway_with(backend, "{}").await
}

/// The test gateway with these `limits`.
async fn gateway_with(backend: SocketAddr, limits: &str) -> corsgate_gateway::Running {
    let yaml = format!(
        r#"
policies:
  web: {{ allowOrigins: ["https://app.test"], allowMethods: [GET, POST, PUT] }}
vservices:
  - name: v
    listen: "127.0.0.1:0"
    cors: web
    limits: {limits}
    rules:
      - match: {{ path: {{ exact: /direct }} }}
        direct: {{ status: 200, body: "hello" }}
      - forward: {{ upstreams: ["http://{backend}"] }}
"#
    );
    let loaded = corsgate_config::load_str(&yaml, Some("test.yaml")).unwrap();
    corsgate_gateway::start(&loaded).await.unwrap()
}

/// One response as read off the wire.
#[derive(Debug)]
struct Wire {
    status: u16,
    /// Header lines, lower-cased `name: value`.
    fields: Vec<String>,
    body: Vec<u8>,
    chunked: bool,
}

impl Wire {
    fn field(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.fields
            .iter()
            .find_map(|f| f.strip_prefix(prefix.as_str()))
    }
}

/// Read one response from `buf` + `s`; `head_only` for a response to HEAD.
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>, head_only: bool) -> Wire {
    async fn more(s: &mut TcpStream, buf: &mut Vec<u8>) {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("timed out waiting for the response")
            .unwrap();
        assert!(
            n > 0,
            "connection closed inside a response: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
    let (status, fields, len) = loop {
        let mut raw = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut raw);
        if let httparse::Status::Complete(len) = resp.parse(buf).unwrap() {
            let fields = resp
                .headers
                .iter()
                .map(|h| {
                    format!(
                        "{}: {}",
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value)
                    )
                })
                .collect::<Vec<_>>();
            break (resp.code.unwrap(), fields, len);
        }
        more(s, buf).await;
    };
    buf.drain(..len);
    let mut wire = Wire {
        status,
        fields,
        body: Vec::new(),
        chunked: false,
    };
    if head_only || status == 204 || status == 304 {
        return wire;
    }
    if let Some(n) = wire.field("content-length") {
        let n: usize = n.parse().unwrap();
        while buf.len() < n {
            more(s, buf).await;
        }
        wire.body = buf.drain(..n).collect();
    } else if wire.field("transfer-encoding") == Some("chunked") {
        wire.chunked = true;
        loop {
            let line_end = loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                more(s, buf).await;
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).unwrap(), 16).unwrap();
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                more(s, buf).await;
            }
            if size == 0 {
                assert_eq!(&buf[..2], b"\r\n", "trailers not expected here");
                buf.drain(..2);
                break;
            }
            wire.body.extend(buf.drain(..size));
            buf.drain(..2);
        }
    } else {
        // Close-delimited.
        s.read_to_end(buf).await.unwrap();
        wire.body = std::mem::take(buf);
    }
    wire
}

/// Whether the server closes the connection (EOF with nothing pending).
async fn closes(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_millis(500), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

struct Expect {
    status: u16,
    body: &'static str,
    head_only: bool,
    /// `name: value` lines the response must carry.
    has: &'static [&'static str],
    /// Field names it must not carry.
    lacks: &'static [&'static str],
}

const fn ok(body: &'static str) -> Expect {
    Expect {
        status: 200,
        body,
        head_only: false,
        has: &[],
        lacks: &[],
    }
}

struct Case {
    name: &'static str,
    /// Written in one go (so several requests arrive pipelined).
    send: String,
    expect: Vec<Expect>,
    /// The server closes the connection after the last response.
    closes: bool,
}

const GET_DIRECT: &str = "GET /direct HTTP/1.1\r\nHost: h\r\nOrigin: https://app.test\r\n\r\n";
const GET_BACKEND: &str = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";

#[tokio::test]
async fn raw_client_table() {
    let gw = gateway(backend().await).await;
    let addr = gw.addr("v").unwrap();
    let big_field = format!("x-big: {}\r\n", "b".repeat(20 * 1024));
    let cases = vec![
        Case {
            name: "pipelined requests are answered in order, CORS and Date included",
            send: format!(
                "{GET_DIRECT}{GET_BACKEND}OPTIONS /direct HTTP/1.1\r\nHost: h\r\nOrigin: https://app.test\r\nAccess-Control-Request-Method: PUT\r\n\r\n"
            ),
            expect: vec![
                Expect {
                    has: &["access-control-allow-origin: https://app.test", "content-length: 5"],
                    ..ok("hello")
                },
                Expect {
                    lacks: &["access-control-allow-origin"],
                    ..ok("from backend")
                },
                Expect {
                    has: &["access-control-allow-methods: GET, POST, PUT"],
                    lacks: &["transfer-encoding"],
                    ..ok("")
                },
            ],
            closes: false,
        },
        Case {
            name: "a request body hands the connection to hyper mid-way; later requests still served",
            send: format!(
                "{GET_BACKEND}POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nabcde{GET_DIRECT}"
            ),
            expect: vec![ok("from backend"), ok("POST 5"), ok("hello")],
            closes: false,
        },
        Case {
            name: "a chunked request body goes to hyper",
            send: "PUT /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n".into(),
            expect: vec![ok("PUT 5")],
            closes: false,
        },
        Case {
            name: "an absolute-form target is routed by its path",
            send: "GET http://h/direct HTTP/1.1\r\nHost: h\r\n\r\n".into(),
            expect: vec![ok("hello")],
            closes: false,
        },
        Case {
            name: "Connection: close is honoured and announced",
            send: "GET /direct HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".into(),
            expect: vec![Expect {
                has: &["connection: close"],
                ..ok("hello")
            }],
            closes: true,
        },
        Case {
            name: "HEAD carries the length GET would, and no body",
            send: format!("HEAD /direct HTTP/1.1\r\nHost: h\r\n\r\n{GET_DIRECT}"),
            expect: vec![
                Expect {
                    head_only: true,
                    has: &["content-length: 5"],
                    ..ok("")
                },
                ok("hello"),
            ],
            closes: false,
        },
        Case {
            name: "a streamed upstream body of unknown length is chunked",
            send: format!("GET /stream HTTP/1.1\r\nHost: h\r\n\r\n{GET_BACKEND}"),
            expect: vec![
                Expect {
                    has: &["transfer-encoding: chunked"],
                    lacks: &["content-length"],
                    ..ok("abc")
                },
                ok("from backend"),
            ],
            closes: false,
        },
        Case {
            name: "204 has neither body nor framing fields",
            send: format!("GET /nocontent HTTP/1.1\r\nHost: h\r\n\r\n{GET_BACKEND}"),
            expect: vec![
                Expect {
                    status: 204,
                    lacks: &["content-length", "transfer-encoding"],
                    ..ok("")
                },
                ok("from backend"),
            ],
            closes: false,
        },
        Case {
            name: "HTTP/1.0 is hyper's, and closes",
            send: "GET /direct HTTP/1.0\r\n\r\n".into(),
            expect: vec![ok("hello")],
            closes: true,
        },
        Case {
            name: "a head larger than the front used to buffer is served by the front",
            send: format!("GET /direct HTTP/1.1\r\nHost: h\r\n{big_field}\r\n{GET_DIRECT}"),
            expect: vec![ok("hello"), ok("hello")],
            closes: false,
        },
        Case {
            name: "a target the front cannot represent gets 400 and a close",
            send: "GET http://[::1 HTTP/1.1\r\nHost: h\r\n\r\n".into(),
            expect: vec![Expect {
                status: 400,
                ..ok("malformed request\n")
            }],
            closes: true,
        },
        Case {
            name: "a malformed request line gets the gateway's 400",
            send: "GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n".into(),
            expect: vec![Expect {
                status: 400,
                ..ok("malformed request\n")
            }],
            closes: true,
        },
    ];
    for case in cases {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(case.send.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        for (i, want) in case.expect.iter().enumerate() {
            let got = read_response(&mut s, &mut buf, want.head_only).await;
            let at = format!("{}: response {i}: {got:?}", case.name);
            assert_eq!(got.status, want.status, "{at}");
            assert_eq!(got.body, want.body.as_bytes(), "{at}");
            for line in want.has {
                assert!(got.fields.iter().any(|f| f == line), "{at}: lacks {line}");
            }
            for name in want.lacks {
                assert!(got.field(name).is_none(), "{at}: has {name}");
            }
            assert!(got.field("date").is_some(), "{at}: no Date");
            assert_eq!(
                got.fields
                    .iter()
                    .filter(
                        |f| f.starts_with("content-length") || f.starts_with("transfer-encoding")
                    )
                    .count(),
                usize::from(want.status != 204),
                "{at}: exactly one framing field"
            );
        }
        assert!(buf.is_empty(), "{}: extra bytes {buf:?}", case.name);
        assert_eq!(closes(&mut s).await, case.closes, "{}", case.name);
    }
    gw.shutdown_within(Duration::from_millis(200)).await;
}

/// An idle keep-alive connection is closed at shutdown, and the shutdown
/// does not wait for the drain deadline because of it.
#[tokio::test]
async fn shutdown_closes_idle_front_connections_promptly() {
    let gw = gateway(backend().await).await;
    let addr = gw.addr("v").unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(GET_DIRECT.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_response(&mut s, &mut buf, false).await.status, 200);
    let started = std::time::Instant::now();
    let stop = tokio::spawn(gw.shutdown_within(Duration::from_secs(20)));
    assert!(closes(&mut s).await, "idle connection left open");
    stop.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown waited {:?}",
        started.elapsed()
    );
}

/// A pipelined stream cut in two at every position (the second part sent
/// after the server has seen the first): the front waits for the rest of a
/// partial head and answers exactly as it does to the whole stream.
#[tokio::test]
async fn requests_split_at_any_byte_are_answered_the_same() {
    let gw = gateway(backend().await).await;
    let addr = gw.addr("v").unwrap();
    let stream = format!(
        "{GET_DIRECT}OPTIONS /direct HTTP/1.1\r\nHost: h\r\nOrigin: https://app.test\r\nAccess-Control-Request-Method: PUT\r\n\r\n{GET_BACKEND}"
    );
    let bytes = stream.as_bytes();
    let want = [(200, "hello"), (200, ""), (200, "from backend")];
    for cut in (1..bytes.len()).step_by(3) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&bytes[..cut]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        s.write_all(&bytes[cut..]).await.unwrap();
        let mut buf = Vec::new();
        for (i, (status, body)) in want.iter().enumerate() {
            let got = read_response(&mut s, &mut buf, false).await;
            assert_eq!(
                (got.status, got.body.as_slice()),
                (*status, body.as_bytes()),
                "cut at {cut}, response {i}"
            );
        }
        assert!(buf.is_empty(), "cut at {cut}: extra bytes");
    }
    gw.shutdown_within(Duration::from_millis(200)).await;
}

/// A client that closes its connection while the upstream is still working
/// abandons the request: the gateway drops the upstream exchange at once
/// (the backend sees its connection close) instead of waiting for the
/// answer nobody will read.
#[tokio::test]
async fn a_client_that_leaves_abandons_its_upstream_request() {
    let gw = gateway(backend().await).await;
    let addr = gw.addr("v").unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(s);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !SLOW_ABANDONED.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < deadline,
            "the upstream request outlived its client"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.shutdown_within(Duration::from_millis(200)).await;
}

/// When a connection must be closed: no sooner than, no later than.
type Window = (Duration, Duration);

/// What a client does in the timeout table.
enum Pace {
    /// Connects and sends nothing.
    Silent,
    /// One request, answered, then nothing.
    OneRequestThenSilent,
    /// Half a head, then nothing.
    HalfAHead,
    /// A head one byte every 50 ms, never finished in time.
    Trickle,
    /// A request every 300 ms for longer than the idle timeout.
    Busy,
    /// A request with a body (so hyper serves the connection from then
    /// on), answered, then half a head.
    HalfAHeadToHyper,
}

/// How long the gateway took to close the connection after the client's
/// last byte (for `Trickle`, its first), or `None` if it was still open
/// when the client stopped.
async fn time_to_close(addr: SocketAddr, pace: Pace) -> Option<Duration> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    let head = "GET /direct HTTP/1.1\r\nHost: h\r\n";
    let mut last = std::time::Instant::now();
    match pace {
        Pace::Silent => {}
        Pace::OneRequestThenSilent => {
            s.write_all(GET_DIRECT.as_bytes()).await.unwrap();
            assert_eq!(read_response(&mut s, &mut buf, false).await.status, 200);
            last = std::time::Instant::now();
        }
        Pace::HalfAHead => {
            s.write_all(head.as_bytes()).await.unwrap();
            last = std::time::Instant::now();
        }
        Pace::Trickle => {
            // A valid head that never ends: timed from its first byte.
            let first = std::time::Instant::now();
            let slow = format!("{head}x-slow: {}", "a".repeat(200));
            for b in slow.bytes() {
                if s.write_all(&[b]).await.is_err() {
                    return Some(first.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                let mut probe = [0u8; 1];
                if let Ok(Ok(0) | Err(_)) =
                    tokio::time::timeout(Duration::from_millis(1), s.read(&mut probe)).await
                {
                    return Some(first.elapsed());
                }
            }
            return None;
        }
        Pace::Busy => {
            for _ in 0..14 {
                s.write_all(GET_DIRECT.as_bytes()).await.unwrap();
                assert_eq!(read_response(&mut s, &mut buf, false).await.status, 200);
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            // Still open: one more request is answered.
            s.write_all(GET_DIRECT.as_bytes()).await.unwrap();
            assert_eq!(read_response(&mut s, &mut buf, false).await.status, 200);
            return None;
        }
        Pace::HalfAHeadToHyper => {
            s.write_all(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")
                .await
                .unwrap();
            assert_eq!(read_response(&mut s, &mut buf, false).await.status, 200);
            s.write_all(head.as_bytes()).await.unwrap();
            last = std::time::Instant::now();
        }
    }
    let mut b = [0u8; 256];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await {
            Ok(Ok(0) | Err(_)) => return Some(last.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

/// Slow and idle clients lose their connection: a head has
/// `headerTimeoutMs` from its first byte (trickling bytes does not extend
/// it), a kept-alive connection `idleTimeoutMs` between requests; a busy
/// connection is never closed; hyper's connections get the header timeout
/// too. The cases run at once; lower bounds are exact (a timeout never
/// fires early), upper bounds leave room for a loaded machine.
#[tokio::test]
async fn slow_and_idle_clients_are_closed() {
    let gw = gateway_with(
        backend().await,
        "{ headerTimeoutMs: 300, idleTimeoutMs: 3000 }",
    )
    .await;
    let addr = gw.addr("v").unwrap();
    let ms = Duration::from_millis;
    // (case, pace, closed no sooner than, and no later than; None: stays open)
    let table: Vec<(&str, Pace, Option<Window>)> = vec![
        (
            "silent after connecting",
            Pace::Silent,
            Some((ms(2900), ms(8000))),
        ),
        (
            "silent after a response",
            Pace::OneRequestThenSilent,
            Some((ms(2900), ms(8000))),
        ),
        ("half a head", Pace::HalfAHead, Some((ms(250), ms(2500)))),
        // Timed from the first byte: trickling does not extend it.
        ("a head trickled", Pace::Trickle, Some((ms(250), ms(2500)))),
        ("a busy connection", Pace::Busy, None),
        (
            "half a head to hyper",
            Pace::HalfAHeadToHyper,
            Some((ms(250), ms(2500))),
        ),
    ];
    let runs = table
        .into_iter()
        .map(|(name, pace, want)| async move { (name, want, time_to_close(addr, pace).await) });
    for (name, want, got) in futures_util::future::join_all(runs).await {
        match (want, got) {
            (None, None) => {}
            (Some((min, max)), Some(t)) => {
                assert!(
                    t >= min && t <= max,
                    "{name}: closed after {t:?}, want {min:?}..{max:?}"
                )
            }
            _ => panic!("{name}: want {want:?}, got {got:?}"),
        }
    }
}
