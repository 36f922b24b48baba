//! Routing cost against the number of path rules: the rule index keeps it
//! flat. Run: `cargo bench -p corsgate-gateway --bench routing`.

use corsgate_gateway::router::{compile, RequestFacts};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, Method};
use std::time::Duration;

fn config(rules: usize) -> String {
    let mut y = String::from(
        "policies:\n  p: { allowOrigins: [\"https://a.test\"] }\nvservices:\n  - name: v\n    listen: 127.0.0.1:0\n    cors: p\n    rules:\n",
    );
    for i in 0..rules {
        y.push_str(&format!(
            "      - {{ match: {{ path: {{ prefix: /svc{i}/api }} }}, direct: {{ status: 200 }} }}\n"
        ));
    }
    y
}

fn bench(c: &mut Criterion) {
    let headers = HeaderMap::new();
    for n in [10usize, 5000] {
        let loaded = corsgate_config::load_str(&config(n), None).expect("bench config");
        let vs = compile(&loaded).expect("bench routes").remove(0);
        // The last rule: the worst case for a linear scan.
        let path = format!("/svc{}/api/items/42", n - 1);
        let facts = RequestFacts {
            method: &Method::GET,
            host: "api.example.com",
            path: &path,
            query: None,
            headers: &headers,
            preflight: false,
        };
        assert!(vs.select(&facts).rule.is_some());
        c.bench_function(&format!("route/{n}_prefix_rules/last_rule"), |b| {
            b.iter(|| black_box(vs.select(black_box(&facts)).rule.is_some()))
        });
    }
}

criterion_group! {
    name = routing;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(routing);
