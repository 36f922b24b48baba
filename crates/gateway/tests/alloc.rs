//! Allocations per request on the gateway's paths, counted with a
//! counting global allocator (this test binary only), as the policy crate
//! does for its own path (`crates/policy/tests/alloc.rs`).
//!
//! The gateway runs alone on one thread with a current-thread runtime, so
//! every task of it (accept, connection, upstream exchange) runs there and
//! only that thread's allocations are counted; the client and the backend
//! run on another thread. After a warm-up (connections open, pools and
//! caches filled) a fixed number of requests is sent one after another on
//! one connection and the count is divided by it.
//!
//! The bounds are today's counts with a margin, so that a change that adds
//! allocations to a path fails here and is looked at; the counts
//! themselves are printed (`-- --nocapture`) and recorded in
//! docs/performance.md.

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;

struct Counting;

static COUNT: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the gateway's thread only.
    static ON: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ON.with(Cell::get) {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ON.with(Cell::get) {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ORIGIN: &str = "https://app.test";

/// A backend answering every request with a small JSON body.
async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<Incoming>| async move {
                    let _ = req.into_body().collect().await;
                    let mut r = http::Response::new(Full::new(Bytes::from_static(
                        b"{\"ok\":true,\"n\":17}",
                    )));
                    r.headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    Ok::<_, std::convert::Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Start the gateway on its own thread; its address.
fn gateway(backend: SocketAddr) -> SocketAddr {
    let yaml = format!(
        r#"
policies:
  web:
    allowOrigins: ["{ORIGIN}"]
    allowMethods: [GET, POST, PUT]
    allowHeaders: [content-type]
    maxAge: 600
vservices:
  - name: v
    listen: "127.0.0.1:0"
    cors: web
    rules:
      - forward: {{ upstreams: ["http://{backend}"] }}
"#
    );
    let loaded = corsgate_config::load_str(&yaml, Some("alloc.yaml")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        ON.with(|o| o.set(true));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let running = corsgate_gateway::start(&loaded).await.unwrap();
            tx.send(running.addr("v").unwrap()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

/// Allocations on the gateway's thread per request, over `n` requests
/// made by `send` after `n / 4` of warm-up.
async fn per_request<F, Fut>(n: u64, mut send: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..n / 4 {
        send().await;
    }
    let before = COUNT.load(Ordering::Relaxed);
    for _ in 0..n {
        send().await;
    }
    (COUNT.load(Ordering::Relaxed) - before) as f64 / n as f64
}

#[test]
fn allocations_per_request_stay_within_their_bounds() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let gw = gateway(backend().await);
        let h1: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let h2: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();
        let url = format!("http://{gw}/api/items");
        let preflight = |client: Client<_, Full<Bytes>>, url: String| async move {
            let req = Request::builder()
                .method(Method::OPTIONS)
                .uri(&url)
                .header("origin", ORIGIN)
                .header("access-control-request-method", "PUT")
                .header("access-control-request-headers", "content-type")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let r = client.request(req).await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            assert!(r.headers().contains_key("access-control-allow-origin"));
            r.into_body().collect().await.unwrap();
        };
        let get = |client: Client<_, Full<Bytes>>, url: String| async move {
            let req = Request::builder()
                .uri(&url)
                .header("origin", ORIGIN)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let r = client.request(req).await.unwrap();
            assert_eq!(r.status(), 200);
            assert!(r.headers().contains_key("access-control-allow-origin"));
            r.into_body().collect().await.unwrap();
        };
        let body = Bytes::from(format!(
            "{{\"items\":[{}]}}",
            vec!["\"abcdefghij\""; 83].join(",")
        ));
        assert!((1000..1100).contains(&body.len()));
        let post = |client: Client<_, Full<Bytes>>, url: String, body: Bytes| async move {
            let req = Request::builder()
                .method(Method::POST)
                .uri(&url)
                .header("origin", ORIGIN)
                .header("content-type", "application/json")
                .body(Full::new(body))
                .unwrap();
            let r = client.request(req).await.unwrap();
            assert_eq!(r.status(), 200);
            assert!(r.headers().contains_key("access-control-allow-origin"));
            r.into_body().collect().await.unwrap();
        };
        const N: u64 = 200;
        // (path, counted, bound): see BOUNDS.
        let mut rows: Vec<(&str, f64, f64)> = Vec::new();
        let c = h1.clone();
        rows.push((
            "HTTP/1.1 preflight (front, answered at the gateway)",
            per_request(N, || preflight(c.clone(), url.clone())).await,
            BOUNDS[0],
        ));
        let c = h1.clone();
        rows.push((
            "HTTP/1.1 GET with CORS (front, own exchange)",
            per_request(N, || get(c.clone(), url.clone())).await,
            BOUNDS[1],
        ));
        let c = h1.clone();
        rows.push((
            "HTTP/1.1 POST, 1 KiB JSON body (hyper server and client)",
            per_request(N, || post(c.clone(), url.clone(), body.clone())).await,
            BOUNDS[2],
        ));
        let c = h2.clone();
        rows.push((
            "h2c preflight (hyper's HTTP/2 server)",
            per_request(N, || preflight(c.clone(), url.clone())).await,
            BOUNDS[3],
        ));
        let c = h2.clone();
        rows.push((
            "h2c GET with CORS",
            per_request(N, || get(c.clone(), url.clone())).await,
            BOUNDS[4],
        ));
        let c = h2.clone();
        rows.push((
            "h2c POST, 1 KiB JSON body",
            per_request(N, || post(c.clone(), url.clone(), body.clone())).await,
            BOUNDS[5],
        ));
        for (name, counted, _) in &rows {
            eprintln!("{counted:>6.1} allocations per request: {name}");
        }
        for (name, counted, bound) in &rows {
            assert!(
                counted <= bound,
                "{name}: {counted:.1} allocations per request, over its bound {bound}"
            );
            assert!(
                *counted > 0.0,
                "{name}: nothing counted (is the gateway thread flagged?)"
            );
        }
    });
}

/// In the order of the rows above. Counted on 2026-12-03 (af117f1, debug
/// build): 1, 2, 16, 11, 14 and 21 allocations per request.
const BOUNDS: [f64; 6] = [2.0, 3.0, 20.0, 14.0, 18.0, 26.0];
