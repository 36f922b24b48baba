//! Criterion benchmarks of the per-request decisions.
//!
//! Run: `cargo bench -p corsgate-policy --bench engine`. Results and the
//! machine they were measured on are in docs/performance.md.

use corsgate_policy::{Evaluation, Policy, PolicySpec};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use http::{HeaderMap, HeaderValue, Method};
use std::time::Duration;

fn spec(origins: Vec<String>, regexes: Vec<String>) -> PolicySpec {
    PolicySpec {
        allow_origins: origins,
        allow_origin_regexes: regexes,
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
    }
}

/// (name, policy, matched origin, unmatched origin)
fn scenarios() -> Vec<(&'static str, Policy, &'static str, &'static str)> {
    let exact = |n: usize| {
        (0..n)
            .map(|i| format!("https://app{i}.example.com"))
            .collect::<Vec<_>>()
    };
    let compile = |s: PolicySpec| Policy::compile(&s).expect("bench policy compiles").policy;
    vec![
        (
            "exact_10",
            compile(spec(exact(10), vec![])),
            "https://app7.example.com",
            "https://evil.example.org",
        ),
        (
            "exact_10000",
            compile(spec(exact(10_000), vec![])),
            "https://app7777.example.com",
            "https://evil.example.org",
        ),
        (
            "subdomain_100",
            compile(spec(
                (0..100)
                    .map(|i| format!("https://*.sub{i}.example.com"))
                    .collect(),
                vec![],
            )),
            "https://t1.app.sub77.example.com",
            "https://t1.app.sub777.example.com",
        ),
        (
            "regex_1000",
            compile(spec(
                vec![],
                (0..1000)
                    .map(|i| format!(r"https://[a-z0-9-]+\.tenant{i}\.example\.com"))
                    .collect(),
            )),
            "https://t1.tenant777.example.com",
            "https://t1.tenant7777.example.com",
        ),
    ]
}

/// A typical upstream response: no CORS headers of its own.
fn upstream_plain() -> HeaderMap {
    let mut h = HeaderMap::with_capacity(16);
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("content-length", HeaderValue::from_static("17"));
    h.insert(
        "date",
        HeaderValue::from_static("Tue, 24 Nov 2026 06:00:00 GMT"),
    );
    h
}

/// An upstream that sets `Access-Control-Allow-Origin: *` itself.
fn upstream_with_cors() -> HeaderMap {
    let mut h = upstream_plain();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h
}

fn bench(c: &mut Criterion) {
    for (name, policy, matched, unmatched) in scenarios() {
        for (which, origin) in [("matched", matched), ("unmatched", unmatched)] {
            let mut actual = HeaderMap::new();
            actual.insert("origin", HeaderValue::from_static(origin));
            let mut pre = actual.clone();
            pre.insert(
                "access-control-request-method",
                HeaderValue::from_static("PUT"),
            );
            pre.insert(
                "access-control-request-headers",
                HeaderValue::from_static("authorization, x-request-id"),
            );

            // Sanity: the scenario means what its name says.
            let allowed = policy.actual(&actual).allow_origin().is_some();
            assert_eq!(allowed, which == "matched", "{name} {which}");

            let parsed = corsgate_policy::parse_origin(origin);
            c.bench_function(&format!("{name}/{which}/origin_match"), |b| {
                b.iter(|| black_box(policy.match_origin(black_box(parsed))))
            });
            c.bench_function(&format!("{name}/{which}/origin_decision"), |b| {
                b.iter(|| black_box(policy.actual(black_box(&actual))))
            });
            c.bench_function(&format!("{name}/{which}/preflight"), |b| {
                b.iter(|| black_box(policy.evaluate(&Method::OPTIONS, black_box(&pre))))
            });
            c.bench_function(&format!("{name}/{which}/actual_completion"), |b| {
                b.iter_batched_ref(
                    upstream_plain,
                    |resp| {
                        if let Evaluation::Actual(done) = policy.evaluate(&Method::GET, &actual) {
                            policy.complete(&done, resp);
                        }
                    },
                    BatchSize::SmallInput,
                )
            });
            c.bench_function(&format!("{name}/{which}/actual_completion_strip"), |b| {
                b.iter_batched_ref(
                    upstream_with_cors,
                    |resp| {
                        if let Evaluation::Actual(done) = policy.evaluate(&Method::GET, &actual) {
                            policy.complete(&done, resp);
                        }
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
}

criterion_group! {
    name = engine;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = baseline, bench
}
criterion_main!(engine);

/// Calibration: the cost of the primitives on this machine.
fn baseline(c: &mut Criterion) {
    let map: std::collections::HashMap<Box<str>, usize> = (0..10)
        .map(|i| (format!("https://app{i}.example.com").into(), i))
        .collect();
    c.bench_function("baseline/std_hashmap_lookup", |b| {
        b.iter(|| black_box(map.get(black_box("https://app7.example.com"))))
    });
    c.bench_function("baseline/parse_origin", |b| {
        b.iter(|| {
            black_box(corsgate_policy::parse_origin(black_box(
                "https://app7.example.com",
            )))
        })
    });
    let mut h = HeaderMap::new();
    h.insert(
        "origin",
        HeaderValue::from_static("https://app7.example.com"),
    );
    c.bench_function("baseline/headermap_get", |b| {
        b.iter(|| black_box(black_box(&h).get("origin")))
    });
}
