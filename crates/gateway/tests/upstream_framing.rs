//! corsgate's own HTTP/1.1 exchange (bodiless requests) against a scripted
//! upstream on a real loopback socket: every way RFC 9112 §6.3 frames a
//! response, the connection reuse each allows, and the malformed responses
//! that must become a 502 rather than a guess.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An upstream that answers every request head with `response`, then closes
/// the connection when `close` is set. Returns its address and a count of
/// the connections it accepted.
async fn scripted(response: &'static [u8], close: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    upstream(move |_| Some(response), close).await
}

/// An upstream that answers each request head with what `answer` returns
/// for it (`None`: no answer, the connection stays open), then closes the
/// connection when `close` is set. Returns its address and a count of the
/// connections it accepted.
async fn upstream<F>(answer: F, close: bool) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(&[u8]) -> Option<&'static [u8]> + Copy + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    got.extend_from_slice(&buf[..n]);
                    while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        let response = answer(&got[..end + 4]);
                        got.drain(..end + 4);
                        let Some(response) = response else {
                            continue;
                        };
                        if s.write_all(response).await.is_err() || close {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}

async fn gateway(upstream: SocketAddr) -> corsgate_gateway::Running {
    let yaml = format!(
        "vservices:\n  - name: api\n    listen: \"127.0.0.1:0\"\n    rules:\n      - forward: {{ upstreams: [\"http://{upstream}\"], timeoutMs: 2000 }}\n"
    );
    let loaded = corsgate_config::load_str(&yaml, Some("test.yaml")).unwrap();
    corsgate_gateway::start(&loaded).await.unwrap()
}

/// What the client got: status, selected headers, and the body or the
/// error that cut it short. A request that failed before a head arrived
/// has status 599 and the error as its body.
#[derive(Debug)]
struct Got {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Result<Bytes, String>,
}

async fn get(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
    method: &str,
) -> Got {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}/x"))
        .body(Empty::new())
        .unwrap();
    let resp = match client.request(req).await {
        Ok(resp) => resp,
        Err(e) => {
            return Got {
                status: StatusCode::from_u16(599).unwrap(),
                headers: http::HeaderMap::new(),
                body: Err(e.to_string()),
            }
        }
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| e.to_string());
    Got {
        status,
        headers,
        body,
    }
}

struct Case {
    name: &'static str,
    response: &'static [u8],
    /// The upstream closes after each response.
    close: bool,
    status: u16,
    /// The body the client must read; `None` when the body must fail.
    body: Option<&'static str>,
    /// Upstream connections after two requests (1: reused, 2: not).
    connections: usize,
}

#[tokio::test]
async fn upstream_response_framing_table() {
    let cases = [
        Case {
            name: "content-length, kept alive",
            response: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            close: false,
            status: 200,
            body: Some("hello"),
            connections: 1,
        },
        Case {
            name: "chunked with extensions and trailers",
            response: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
            close: false,
            status: 200,
            body: Some("hello world"),
            connections: 1,
        },
        Case {
            name: "transfer-encoding overrides content-length",
            response: b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            close: false,
            status: 200,
            body: Some("hello"),
            connections: 1,
        },
        Case {
            name: "close-delimited body is read to the end, never reused",
            response: b"HTTP/1.1 200 OK\r\n\r\nuntil close",
            close: true,
            status: 200,
            body: Some("until close"),
            connections: 2,
        },
        Case {
            name: "Connection: close is honoured",
            response: b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
            close: false,
            status: 200,
            body: Some("ok"),
            connections: 2,
        },
        Case {
            name: "HTTP/1.0 without keep-alive is not reused",
            response: b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
            close: false,
            status: 200,
            body: Some("ok"),
            connections: 2,
        },
        Case {
            name: "HTTP/1.0 with keep-alive is reused",
            response: b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
            close: false,
            status: 200,
            body: Some("ok"),
            connections: 1,
        },
        Case {
            name: "interim 1xx responses are skipped",
            response: b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            close: false,
            status: 200,
            body: Some("ok"),
            connections: 1,
        },
        Case {
            name: "204 has no body",
            response: b"HTTP/1.1 204 No Content\r\n\r\n",
            close: false,
            status: 204,
            body: Some(""),
            connections: 1,
        },
        Case {
            name: "bytes beyond the framed body: answered, connection discarded",
            response: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",
            close: false,
            status: 200,
            body: Some("ok"),
            connections: 2,
        },
        Case {
            name: "upstream closes after each response: the stale connection is replaced",
            response: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            close: true,
            status: 200,
            body: Some("ok"),
            connections: 2,
        },
        Case {
            name: "conflicting Content-Length is a 502",
            response: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
            close: false,
            status: 502,
            body: Some("upstream unavailable\n"),
            connections: 2,
        },
        Case {
            name: "non-numeric Content-Length is a 502",
            response: b"HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\nok",
            close: false,
            status: 502,
            body: Some("upstream unavailable\n"),
            connections: 2,
        },
        Case {
            name: "malformed status line is a 502",
            response: b"HTTP/1.1 abc\r\n\r\n",
            close: false,
            status: 502,
            body: Some("upstream unavailable\n"),
            connections: 2,
        },
        Case {
            name: "101 without an upgrade request is a 502",
            response: b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
            close: false,
            status: 502,
            body: Some("upstream unavailable\n"),
            connections: 2,
        },
        Case {
            name: "a body cut short fails the client's body, not silently",
            response: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            close: true,
            status: 200,
            body: None,
            connections: 2,
        },
        Case {
            name: "a malformed chunk fails the body",
            response: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            close: false,
            status: 200,
            body: None,
            connections: 2,
        },
    ];
    // A body far larger than one read: the connection is still reused.
    let big: &'static [u8] = {
        let mut r =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 256 * 1024).into_bytes();
        r.extend(std::iter::repeat_n(b'x', 256 * 1024));
        Box::leak(r.into_boxed_slice())
    };
    for case in cases {
        let (up, accepted) = scripted(case.response, case.close).await;
        let gw = gateway(up).await;
        let addr = gw.addr("api").unwrap();
        let client = Client::builder(TokioExecutor::new()).build_http();
        for round in 0..2 {
            let got = get(&client, addr, "GET").await;
            // A body that fails may fail before the head is flushed (599).
            if case.body.is_some() || got.status.as_u16() != 599 {
                assert_eq!(
                    got.status.as_u16(),
                    case.status,
                    "{}: round {round}: {got:?}",
                    case.name
                );
            }
            match case.body {
                Some(want) => assert_eq!(
                    got.body.as_deref().map_err(String::as_str),
                    Ok(want.as_bytes()),
                    "{}: round {round}",
                    case.name
                ),
                None => assert!(got.body.is_err(), "{}: round {round}: {got:?}", case.name),
            }
            // Give a closing upstream's FIN time to arrive before reuse.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            case.connections,
            "{}: upstream connections",
            case.name
        );
        gw.shutdown_within(Duration::from_millis(100)).await;
    }
    let (up, accepted) = scripted(big, false).await;
    let gw = gateway(up).await;
    let addr = gw.addr("api").unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http();
    for _ in 0..3 {
        let got = get(&client, addr, "GET").await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body.unwrap().len(), 256 * 1024);
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "large bodies keep the connection"
    );
}

/// Hop-by-hop fields of the response, and those its `Connection` names, do
/// not reach the client; `HEAD` reads no body even with a Content-Length.
#[tokio::test]
async fn response_hop_by_hop_fields_are_dropped_and_head_reads_no_body() {
    let (up, accepted) = scripted(
        b"HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nX-Keep: 2\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok",
        false,
    )
    .await;
    let gw = gateway(up).await;
    let addr = gw.addr("api").unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let got = get(&client, addr, "GET").await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.headers.get("x-hop").is_none(), "{:?}", got.headers);
    assert!(got.headers.get("keep-alive").is_none(), "{:?}", got.headers);
    assert_eq!(got.headers.get("x-keep").unwrap(), "2");
    drop(gw);

    // HEAD: the upstream's Content-Length describes a body it does not send.
    let (up, accepted_head) =
        scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", false).await;
    let gw = gateway(up).await;
    let addr = gw.addr("api").unwrap();
    for _ in 0..2 {
        let got = get(&client, addr, "HEAD").await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.headers.get("content-length").unwrap(), "1234");
        assert_eq!(got.body.unwrap(), Bytes::new());
    }
    assert_eq!(
        accepted_head.load(Ordering::SeqCst),
        1,
        "HEAD reused its connection"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

/// Chunked trailers from the upstream reach a client that asked for them
/// with `TE: trailers`; framing fields among them are dropped.
#[tokio::test]
async fn chunked_trailers_reach_a_client_that_asks_for_them() {
    let (up, _) = scripted(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: abc\r\nContent-Length: 5\r\n\r\n",
        false,
    )
    .await;
    let gw = gateway(up).await;
    let addr = gw.addr("api").unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // The response ends with the last chunk, the trailer and an empty line.
    while !(got.windows(3).any(|w| w == b"0\r\n") && got.ends_with(b"\r\n\r\n") && got.len() > 60) {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("timed out after: {:?}", String::from_utf8_lossy(&got)))
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200 ok\r\n"), "{text}");
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    assert!(text.contains("hello"), "{text}");
    assert!(text.contains("\r\nx-checksum: abc\r\n"), "{text}");
    let after_last_chunk = &text[text.rfind("0\r\n").unwrap()..];
    assert!(!after_last_chunk.contains("content-length"), "{text}");
}

/// An upstream that answers `GET /slow...` never and anything else at once
/// (keep-alive); counts the connections it accepted.
async fn sometimes_silent() -> (SocketAddr, Arc<AtomicUsize>) {
    let ok: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    upstream(
        move |head| (!head.starts_with(b"GET /slow")).then_some(ok),
        false,
    )
    .await
}

/// The response timeout is kept per upstream connection and moved lazily;
/// it must still time every request out at its own deadline: after the
/// connection sat idle past an earlier deadline (no spurious 504), after a
/// request with a longer timeout (brought forward), and again afterwards.
#[tokio::test]
async fn response_timeouts_hold_on_reused_connections() {
    let (upstream, accepted) = sometimes_silent().await;
    let yaml = format!(
        "vservices:\n  - name: api\n    listen: \"127.0.0.1:0\"\n    rules:\n      - match: {{ path: {{ prefix: /long }} }}\n        forward: {{ upstreams: [\"http://{upstream}\"], timeoutMs: 5000 }}\n      - forward: {{ upstreams: [\"http://{upstream}\"], timeoutMs: 300 }}\n"
    );
    let loaded = corsgate_config::load_str(&yaml, Some("test.yaml")).unwrap();
    let gw = corsgate_gateway::start(&loaded).await.unwrap();
    let addr = gw.addr("api").unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let at = |path: &str| {
        http::Request::get(format!("http://{addr}{path}"))
            .body(Empty::new())
            .unwrap()
    };
    let mut run = Vec::new();
    for (path, pause_ms) in [
        ("/fast", 0),
        // Idle past the first request's deadline: the next one is fine.
        ("/fast", 600),
        ("/slow", 0),
        ("/fast", 0),
        // After a pause the timer has fired, so the 5 s request moves it
        // 5 s out; the 300 ms one after it must still fire at 300 ms.
        ("/long/fast", 400),
        ("/slow", 0),
    ] {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        let started = std::time::Instant::now();
        let resp = client.request(at(path)).await.unwrap();
        let code = resp.status();
        let _ = resp.into_body().collect().await;
        run.push((path, code, started.elapsed()));
    }
    for (path, code, took) in &run {
        if path.ends_with("slow") {
            assert_eq!(*code, StatusCode::GATEWAY_TIMEOUT, "{path}: {run:?}");
            assert!(
                *took >= Duration::from_millis(250) && *took < Duration::from_secs(2),
                "{path} timed out after {took:?}: {run:?}"
            );
        } else {
            assert_eq!(*code, StatusCode::OK, "{path}: {run:?}");
        }
    }
    // The fast requests reused one connection (a timed-out one is closed).
    assert!(accepted.load(Ordering::SeqCst) <= 3, "{run:?}");
    gw.shutdown().await;
}
