//! Fuzz the engine over policy + raw request headers + upstream response.
//!
//! Input layout: 2 bytes choose a policy (a subset of a pool of origin
//! entries and regexes, plus flags; compiled policies are cached so the
//! fuzzer spends its time on decisions), 1 byte chooses the method, the rest
//! is split on `\n` into header lines `name: value` for the request, then
//! after a `\0` the upstream response. Compilation of arbitrary strings has
//! its own target, `compile`.
//!
//! Invariants checked: no panic; at most one line of each Access-Control-*
//! header we own; ACAO only `*` or the request's single Origin; `Vary`
//! covers Origin; no preflight-only header on an actual response.
#![no_main]

use corsgate_policy::{Evaluation, Policy, PolicySpec, PreflightValidation, UpstreamCorsHeaders};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::collections::HashMap;

const ENTRIES: [&str; 8] = [
    "*",
    "https://app.example.com",
    "https://*.example.com",
    "http://localhost:3000",
    "https://*",
    "http://*:8080",
    "https://*.tenants.example.net",
    "https://a.test:8443",
];
const REGEXES: [&str; 2] = [
    r"https://[a-z0-9-]+\.tenants\.example\.com",
    r"https?://(www|api)\.example\.org",
];

fn spec_from_bits(bits: u16) -> PolicySpec {
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    PolicySpec {
        allow_origins: ENTRIES
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, e)| (*e).to_owned())
            .collect(),
        allow_origin_regexes: REGEXES
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << (8 + i)) != 0)
            .map(|(_, e)| (*e).to_owned())
            .collect(),
        allow_credentials: bits & (1 << 10) != 0,
        unsafe_allow_any_origin_with_credentials: bits & (1 << 11) != 0,
        allow_methods: if bits & (1 << 12) != 0 {
            s(&["*"])
        } else {
            s(&["GET", "PUT"])
        },
        allow_headers: if bits & (1 << 13) != 0 {
            s(&["*"])
        } else {
            s(&["x-a", "authorization"])
        },
        expose_headers: if bits & (1 << 14) != 0 {
            s(&["*"])
        } else {
            s(&["x-b"])
        },
        preflight_validation: if bits & (1 << 15) != 0 {
            PreflightValidation::Strict
        } else {
            PreflightValidation::Browser
        },
        allow_private_network: bits & 1 != 0,
        upstream_cors_headers: if bits & 2 != 0 {
            UpstreamCorsHeaders::Override
        } else {
            UpstreamCorsHeaders::Preserve
        },
        ..PolicySpec::default()
    }
}

thread_local! {
    static CACHE: RefCell<HashMap<u16, Option<std::rc::Rc<Policy>>>> = RefCell::new(HashMap::new());
}

fn parse_headers(data: &[u8]) -> Vec<(HeaderName, HeaderValue)> {
    data.split(|&b| b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let name = HeaderName::from_bytes(&line[..colon]).ok()?;
            let v = &line[colon + 1..];
            let v = v.strip_prefix(b" ").unwrap_or(v);
            Some((name, HeaderValue::from_bytes(v).ok()?))
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let bits = u16::from_le_bytes([data[0], data[1]]);
    let method = match data[2] % 4 {
        0 | 1 => Method::OPTIONS,
        2 => Method::GET,
        _ => Method::POST,
    };
    let rest = &data[3..];
    let (req_part, resp_part) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let req_fields = parse_headers(req_part);

    // 509 policies spread over the whole 16-bit space (a multiplicative
    // hash of the key): the cache stays small and warm, so the fuzzer spends
    // its time on decisions, not on compiling policies.
    let key = bits % 509;
    let cached = CACHE.with(|c| {
        c.borrow_mut()
            .entry(key)
            .or_insert_with(|| {
                Policy::compile(&spec_from_bits(key.wrapping_mul(40503)))
                    .ok()
                    .map(|c| std::rc::Rc::new(c.policy))
            })
            .clone()
    });
    let Some(policy) = cached else { return };

    let mut req = HeaderMap::new();
    for (k, v) in req_fields {
        req.append(k, v);
    }
    let origins: Vec<HeaderValue> = req.get_all("origin").iter().cloned().collect();
    let preserve = policy.upstream_cors_headers() == UpstreamCorsHeaders::Preserve;
    let vary_ok = |h: &HeaderMap| {
        h.get_all("vary").iter().any(|v| {
            v.as_bytes().split(|&b| b == b',').any(|t| {
                let t = t.trim_ascii();
                t.eq_ignore_ascii_case(b"origin") || t == b"*"
            })
        })
    };
    match policy.evaluate(&method, &req) {
        Evaluation::Preflight(r) => {
            let headers = r.headers();
            for name in &corsgate_policy::CORS_RESPONSE_HEADERS {
                assert!(headers.get_all(name).iter().count() <= 1);
            }
            if let Some(acao) = headers.get("access-control-allow-origin") {
                assert!(acao == "*" || (origins.len() == 1 && *acao == origins[0]));
            }
            assert!(vary_ok(&headers));
        }
        Evaluation::Actual(c) => {
            let mut resp = HeaderMap::new();
            for (k, v) in parse_headers(resp_part) {
                resp.append(k, v);
            }
            policy.complete(&c, &mut resp);
            if let Some(acao) = c.allow_origin() {
                assert!(acao == "*" || (origins.len() == 1 && *acao == origins[0]));
                for name in [
                    "access-control-allow-origin",
                    "access-control-allow-credentials",
                    "access-control-expose-headers",
                ] {
                    assert!(resp.get_all(name).iter().count() <= 1);
                }
            }
            if !preserve {
                for name in &corsgate_policy::CORS_RESPONSE_HEADERS {
                    assert!(resp.get_all(name).iter().count() <= 1);
                }
                for name in [
                    "access-control-allow-methods",
                    "access-control-allow-headers",
                    "access-control-max-age",
                ] {
                    assert!(resp.get(name).is_none());
                }
                if c.allow_origin().is_none() {
                    for name in &corsgate_policy::CORS_RESPONSE_HEADERS {
                        assert!(resp.get(name).is_none());
                    }
                }
            }
            assert!(vary_ok(&resp));
        }
        Evaluation::Shadow(_) => {}
    }
});
