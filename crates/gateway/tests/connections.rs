//! Connection-level limits against hostile clients, on real loopback
//! sockets: HTTP/2 clients that send the preface (or a SETTINGS frame) and
//! nothing else, or go quiet after a request, are closed within the header
//! and idle timeouts; the stream cap is advertised; a rapid-reset flood
//! ends the connection with `ENHANCE_YOUR_CALM`; and connections past
//! `limits.maxConnections` are closed at once.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const EMPTY_SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];

async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|_req: http::Request<Incoming>| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(b"from backend"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

async fn gateway(backend: SocketAddr, limits: &str) -> corsgate_gateway::Running {
    let yaml = format!(
        r#"
policies:
  web: {{ allowOrigins: ["https://app.test"] }}
vservices:
  - name: v
    listen: "127.0.0.1:0"
    cors: web
    limits: {limits}
    rules:
      - forward: {{ upstreams: ["http://{backend}"] }}
"#
    );
    let loaded = corsgate_config::load_str(&yaml, Some("test.yaml")).unwrap();
    corsgate_gateway::start(&loaded).await.unwrap()
}

/// Read (and drop) whatever the server sends until it closes; how long
/// that took, or `None` if it was still open after `within`.
async fn time_to_close(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + within).into(), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// One HTTP/2 frame: (type, flags, stream, payload).
async fn read_frame(s: &mut TcpStream) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut head))
        .await
        .ok()?
        .ok()?;
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut payload))
        .await
        .ok()?
        .ok()?;
    Some((head[3], head[4], stream, payload))
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HTTP/2 clients that never complete a request, or stop after one, are
/// closed within the timeouts (200 ms header, 300 ms idle; the watchdog
/// allows one more second for the GOAWAY to be read).
#[tokio::test]
async fn http2_clients_are_bound_by_the_timeouts() {
    let gw = gateway(
        backend().await,
        "{ headerTimeoutMs: 200, idleTimeoutMs: 300 }",
    )
    .await;
    let addr = gw.addr("v").unwrap();
    let limit = Duration::from_secs(3);

    // Many clients that send only the preface, or the preface and an empty
    // SETTINGS frame, all at once.
    let mut silent = Vec::new();
    let started = Instant::now();
    for i in 0..60 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(PREFACE).await.unwrap();
        if i % 2 == 1 {
            s.write_all(&EMPTY_SETTINGS).await.unwrap();
        }
        silent.push(s);
    }
    let opened = started.elapsed();
    for (i, s) in silent.iter_mut().enumerate() {
        let closed = time_to_close(s, limit).await.map(|_| started.elapsed());
        assert!(
            closed.is_some_and(|t| t >= Duration::from_millis(150)),
            "preface-only client {i} closed {closed:?} after the first connected"
        );
    }
    // All within the timeout and the grace, however many there were.
    assert!(
        started.elapsed() < opened + Duration::from_millis(200) + Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // A client that made one request and then went quiet: GOAWAY after
    // the idle timeout.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(format!("http://{addr}/a"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = h2.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await.unwrap();
    let started = Instant::now();
    let ended = tokio::time::timeout(limit, conn).await;
    assert!(
        ended.is_ok(),
        "an idle HTTP/2 connection was kept for {limit:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    gw.shutdown_within(Duration::from_millis(500)).await;
}

/// The stream cap is advertised in the server's SETTINGS, and a client
/// that resets streams faster than they are served (CVE-2023-44487) gets
/// GOAWAY with ENHANCE_YOUR_CALM.
#[tokio::test]
async fn http2_streams_are_capped_and_rapid_reset_ends_the_connection() {
    let gw = gateway(
        backend().await,
        "{ http2MaxConcurrentStreams: 7, http2MaxPendingResets: 5 }",
    )
    .await;
    let addr = gw.addr("v").unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(PREFACE).await.unwrap();
    s.write_all(&EMPTY_SETTINGS).await.unwrap();
    let (kind, _, _, payload) = read_frame(&mut s).await.expect("server SETTINGS");
    assert_eq!(kind, 4, "first frame is SETTINGS");
    let max_streams = payload
        .chunks(6)
        .find(|c| u16::from_be_bytes([c[0], c[1]]) == 3)
        .map(|c| u32::from_be_bytes([c[2], c[3], c[4], c[5]]));
    assert_eq!(max_streams, Some(7), "SETTINGS {payload:?}");

    // HEADERS for `GET /` (HPACK: static :method GET, :scheme http, :path
    // /, :authority literal) and RST_STREAM(CANCEL) right after, 500 times.
    let mut block = vec![0x82, 0x86, 0x84, 0x01, 6];
    block.extend_from_slice(b"a.test");
    let mut flood = Vec::new();
    for i in 0..500u32 {
        let id = 1 + 2 * i;
        flood.extend(frame(1, 0x5, id, &block));
        flood.extend(frame(3, 0, id, &8u32.to_be_bytes()));
    }
    let _ = s.write_all(&flood).await;
    let mut goaway = None;
    while let Some((kind, _, _, payload)) = read_frame(&mut s).await {
        if kind == 7 {
            goaway = Some(u32::from_be_bytes([
                payload[4], payload[5], payload[6], payload[7],
            ]));
            break;
        }
    }
    assert_eq!(goaway, Some(0xb), "GOAWAY with ENHANCE_YOUR_CALM");
    gw.shutdown_within(Duration::from_millis(500)).await;
}

/// Past `limits.maxConnections` a new connection is closed as soon as it
/// is accepted, and counted; once one closes, new ones are served again.
#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once() {
    let gw = gateway(backend().await, "{ maxConnections: 3 }").await;
    let addr = gw.addr("v").unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    // Let the gateway accept the three.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut excess = TcpStream::connect(addr).await.unwrap();
    let took = time_to_close(&mut excess, Duration::from_secs(2)).await;
    assert!(took.is_some(), "a connection past the cap was kept");
    let metrics = gw.metrics().render();
    assert!(
        metrics.contains("corsgate_connections_refused_total{vservice=\"v\"} 1"),
        "{metrics}"
    );
    // One of the three finishes its request and leaves.
    let mut first = held.remove(0);
    first.write_all(b"Connection: close\r\n\r\n").await.unwrap();
    let mut body = Vec::new();
    first.read_to_end(&mut body).await.unwrap();
    assert!(
        body.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = TcpStream::connect(addr).await.unwrap();
    again
        .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = Vec::new();
    again.read_to_end(&mut body).await.unwrap();
    assert!(
        body.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    gw.shutdown_within(Duration::from_millis(500)).await;
}

/// The accept queue is asked for `LISTEN_BACKLOG` (capped by the kernel's
/// `somaxconn`), not std's 128: a burst of connects must not overflow it
/// into one-second SYN retransmissions. Read with `ss` (iproute2): for a
/// listening socket its Send-Q column is the backlog.
#[tokio::test]
async fn listeners_ask_for_a_deep_accept_queue() {
    let gw = gateway(backend().await, "{}").await;
    let port = gw.addr("v").unwrap().port();
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss (Debian package iproute2; scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let backlog: u32 = text
        .split_whitespace()
        .nth(2)
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("no listening socket on {port} in {text:?}"));
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096);
    assert_eq!(
        backlog,
        corsgate_gateway::LISTEN_BACKLOG.min(somaxconn),
        "{text}"
    );
    assert!(backlog > 128, "std's default backlog: {text}");
}
