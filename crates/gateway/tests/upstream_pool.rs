//! `forward.maxIdleConnections` on real loopback sockets: a backend counts
//! the connections the gateway holds open to it. Concurrent requests each
//! need their own HTTP/1.1 upstream connection; once they have finished,
//! the gateway keeps at most the limit open (bodiless requests and
//! requests with bodies together), none with 0, and every one by default.
//! Over h2c one connection carries every stream.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Concurrent requests per round.
const N: usize = 8;

/// Connections a backend has accepted, and how many are still open.
#[derive(Default)]
struct Count {
    accepted: AtomicUsize,
    open: AtomicUsize,
}

impl Count {
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

/// A backend that answers every request after 300 ms (so that `N`
/// requests sent together overlap), over HTTP/1.1 or h2c.
async fn backend(http2: bool) -> (SocketAddr, Arc<Count>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(Count::default());
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            c.accepted.fetch_add(1, Ordering::SeqCst);
            c.open.fetch_add(1, Ordering::SeqCst);
            let c = c.clone();
            tokio::spawn(async move {
                let svc = service_fn(|_req: http::Request<Incoming>| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(b"from backend"),
                    )))
                });
                let io = TokioIo::new(stream);
                if http2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, svc)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                }
                c.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, count)
}

/// A gateway forwarding everything to `backend` with `extra` forward
/// settings (`, maxIdleConnections: 2`).
async fn gateway(backend: SocketAddr, extra: &str) -> corsgate_gateway::Running {
    let yaml = format!(
        r#"
vservices:
  - name: v
    listen: "127.0.0.1:0"
    rules:
      - forward: {{ upstreams: ["http://{backend}"]{extra} }}
"#
    );
    let loaded = corsgate_config::load_str(&yaml, Some("test.yaml")).unwrap();
    corsgate_gateway::start(&loaded).await.unwrap()
}

/// One request on its own client connection (closed after the response);
/// the response's status line.
async fn request(gw: SocketAddr, raw: &'static [u8]) -> String {
    let mut s = TcpStream::connect(gw).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("response within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.ends_with("from backend"), "{text}");
    text.lines().next().unwrap_or_default().to_owned()
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
const POST: &[u8] =
    b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";

/// `N` requests at once, each answered 200.
async fn round(gw: SocketAddr, raw: &'static [u8]) {
    let tasks: Vec<_> = (0..N).map(|_| tokio::spawn(request(gw, raw))).collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), "HTTP/1.1 200 OK");
    }
}

/// Wait (up to 3 s) for the backend's open connections to come down to
/// `want`, then check they stay there for a moment; the count seen.
async fn settles_at(count: &Count, want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(3);
    while count.open() != want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    count.open()
}

#[tokio::test]
async fn at_most_the_limit_stays_open_after_concurrent_requests() {
    let (addr, count) = backend(false).await;
    let gw = gateway(addr, ", maxIdleConnections: 2").await;
    let front = gw.addr("v").unwrap();

    // Bodiless requests (the gateway's own exchange).
    round(front, GET).await;
    assert_eq!(count.accepted(), N, "each concurrent request connected");
    assert_eq!(settles_at(&count, 2).await, 2, "two kept, the rest closed");

    // Requests with bodies (hyper's client) count against the same limit:
    // the two kept connections fill it, so every new one is closed.
    round(front, POST).await;
    assert_eq!(count.accepted(), 2 * N);
    assert_eq!(settles_at(&count, 2).await, 2);

    // The two kept connections are used: requests one after another
    // connect no more.
    for _ in 0..3 {
        assert_eq!(request(front, GET).await, "HTTP/1.1 200 OK");
    }
    assert_eq!(count.accepted(), 2 * N, "kept connections were reused");
    assert_eq!(count.open(), 2);
    gw.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn zero_keeps_no_connection() {
    let (addr, count) = backend(false).await;
    let gw = gateway(addr, ", maxIdleConnections: 0").await;
    let front = gw.addr("v").unwrap();
    for (i, raw) in [GET, POST, GET].into_iter().enumerate() {
        assert_eq!(request(front, raw).await, "HTTP/1.1 200 OK");
        assert_eq!(count.accepted(), i + 1, "a new connection per request");
        assert_eq!(settles_at(&count, 0).await, 0, "closed after its response");
    }
    gw.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn by_default_every_finished_connection_is_kept() {
    let (addr, count) = backend(false).await;
    let gw = gateway(addr, "").await;
    let front = gw.addr("v").unwrap();
    round(front, GET).await;
    assert_eq!(count.accepted(), N);
    // Nothing closes them: the default limit (512) is far above N.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count.open(), N);
    gw.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn h2c_multiplexes_over_one_connection_whatever_the_limit() {
    let (addr, count) = backend(true).await;
    let gw = gateway(addr, ", http2: true, maxIdleConnections: 2").await;
    let front = gw.addr("v").unwrap();
    round(front, GET).await;
    round(front, POST).await;
    assert_eq!(count.accepted(), 1, "one connection carried every stream");
    assert_eq!(settles_at(&count, 1).await, 1);
    gw.shutdown_within(Duration::from_secs(1)).await;

    // With 0 there is no pool: a connection per request, closed after it.
    let (addr, count) = backend(true).await;
    let gw = gateway(addr, ", http2: true, maxIdleConnections: 0").await;
    let front = gw.addr("v").unwrap();
    round(front, GET).await;
    assert_eq!(count.accepted(), N);
    assert_eq!(settles_at(&count, 0).await, 0);
    gw.shutdown_within(Duration::from_secs(1)).await;
}
