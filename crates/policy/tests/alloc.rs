//! Allocation counts on the per-request path, measured with a counting
//! global allocator (this test binary only). The goal (issue #2): an actual
//! completion for a matched origin allocates at most once — the echoed
//! origin value.

use bytes::Bytes;
use corsgate_policy::{Evaluation, Policy, PolicySpec};
use http::{HeaderMap, HeaderValue, Method};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static COUNT: Cell<u64> = const { Cell::new(0) };
    static ON: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ON.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ON.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Count allocations made by `f` on this thread.
fn count<R>(f: impl FnOnce() -> R) -> (R, u64) {
    COUNT.with(|c| c.set(0));
    ON.with(|o| o.set(true));
    let r = f();
    ON.with(|o| o.set(false));
    (r, COUNT.with(Cell::get))
}

fn policy() -> Policy {
    let mut origins: Vec<String> = (0..10)
        .map(|i| format!("https://app{i}.example.com"))
        .collect();
    origins.push("https://*.tenants.example.com".into());
    let spec = PolicySpec {
        allow_origins: origins,
        allow_methods: vec!["GET".into(), "PUT".into(), "POST".into(), "DELETE".into()],
        allow_headers: vec![
            "authorization".into(),
            "content-type".into(),
            "x-request-id".into(),
        ],
        expose_headers: vec!["x-request-id".into()],
        allow_credentials: true,
        max_age: Some(600),
        ..PolicySpec::default()
    };
    Policy::compile(&spec).expect("compiles").policy
}

/// A response as a proxy holds it: a few headers, room for a few more.
fn upstream_response() -> HeaderMap {
    let mut h = HeaderMap::with_capacity(16);
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("content-length", HeaderValue::from_static("17"));
    h.insert(
        "date",
        HeaderValue::from_static("Tue, 24 Nov 2026 06:00:00 GMT"),
    );
    h
}

fn actual_allocs(p: &Policy, req: &HeaderMap) -> u64 {
    let mut resp = upstream_response();
    let (_, n) = count(|| {
        let Evaluation::Actual(c) = p.evaluate(&Method::GET, req) else {
            panic!("actual")
        };
        p.complete(&c, &mut resp);
    });
    assert_eq!(resp["access-control-allow-origin"], req["origin"]);
    n
}

#[test]
fn actual_completion_matched_origin_allocates_at_most_once() {
    let p = policy();
    // As hyper parses it: a slice of the shared read buffer.
    let shared = Bytes::from_static(b"GET / HTTP/1.1\r\norigin: https://app7.example.com\r\n");
    let mut req = HeaderMap::new();
    let value = "https://app7.example.com";
    let start = shared
        .windows(value.len())
        .position(|w| w == value.as_bytes())
        .unwrap();
    let slice = shared.slice(start..start + value.len());
    req.insert("origin", HeaderValue::from_maybe_shared(slice).unwrap());
    let from_hyper_like = actual_allocs(&p, &req);

    // Built by copying into a fresh buffer (HeaderValue::from_str).
    let mut req2 = HeaderMap::new();
    req2.insert(
        "origin",
        HeaderValue::from_str("https://x.tenants.example.com").unwrap(),
    );
    let from_copy = actual_allocs(&p, &req2);

    eprintln!("allocations per actual completion: shared-buffer origin {from_hyper_like}, copied origin {from_copy}");
    assert!(from_hyper_like <= 1, "{from_hyper_like}");
    assert!(from_copy <= 1, "{from_copy}");
}

#[test]
fn actual_completion_refused_or_no_origin_allocates_nothing() {
    let p = policy();
    for origin in [
        Some("https://evil.test"),
        Some("null"),
        Some("https://A.example.com"),
        None,
    ] {
        let mut req = HeaderMap::new();
        if let Some(o) = origin {
            req.insert("origin", HeaderValue::from_static(o));
        }
        let mut resp = upstream_response();
        resp.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        let (_, n) = count(|| {
            let Evaluation::Actual(c) = p.evaluate(&Method::GET, &req) else {
                panic!("actual")
            };
            p.complete(&c, &mut resp);
        });
        assert_eq!(n, 0, "{origin:?}");
    }
}

#[test]
fn preflight_allocation_count_is_bounded() {
    let p = policy();
    let mut req = HeaderMap::new();
    req.insert(
        "origin",
        HeaderValue::from_static("https://app3.example.com"),
    );
    req.insert(
        "access-control-request-method",
        HeaderValue::from_static("PUT"),
    );
    req.insert(
        "access-control-request-headers",
        HeaderValue::from_static("authorization"),
    );
    let (ev, n) = count(|| p.evaluate(&Method::OPTIONS, &req));
    assert!(matches!(ev, Evaluation::Preflight(_)));
    eprintln!("allocations per allowed preflight decision: {n}");
    // The response header map itself (index + entries); values are shared.
    assert!(n <= 2, "{n}");
}
