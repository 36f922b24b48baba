//! Fuzz policy compilation on arbitrary strings: origin entries, regexes,
//! methods, header names and max-age. Compilation must never panic, and a
//! policy that compiles must decide a request for each of its own entries
//! without panicking.
#![no_main]

use corsgate_policy::{Policy, PolicySpec};
use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.split('\n');
    let mut take = || {
        fields
            .next()
            .map(str::to_owned)
            .into_iter()
            .collect::<Vec<_>>()
    };
    let spec = PolicySpec {
        allow_origins: take(),
        allow_origin_regexes: take(),
        allow_methods: take(),
        allow_headers: take(),
        expose_headers: take(),
        allow_credentials: data.first().is_some_and(|b| b & 1 == 1),
        max_age: data.get(1).map(|b| i64::from(*b) - 8),
        ..PolicySpec::default()
    };
    // Regex compilation is linear but not free; keep inputs short.
    if spec.allow_origin_regexes.iter().any(|r| r.len() > 64) {
        return;
    }
    let Ok(compiled) = Policy::compile(&spec) else {
        return;
    };
    let p = compiled.policy;
    for origin in spec.allow_origins.iter().chain(["null".to_owned()].iter()) {
        let mut req = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(origin) {
            req.insert("origin", v);
        }
        req.insert(
            "access-control-request-method",
            HeaderValue::from_static("PUT"),
        );
        let _ = p.evaluate(&Method::OPTIONS, &req);
        let _ = p.explain_origin(origin);
    }
});
