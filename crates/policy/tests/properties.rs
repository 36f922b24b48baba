//! Property tests: for arbitrary policies, request header bytes and upstream
//! responses, the engine never panics and its output always satisfies the
//! invariants browsers and caches depend on. Origin decisions are checked
//! against a deliberately naive reference model written from the rules
//! (R9-R15 in `docs/rules.md`).

use corsgate_policy::{Evaluation, Policy, PolicySpec, CORS_RESPONSE_HEADERS};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use proptest::prelude::*;

const ENTRIES: &[&str] = &[
    "*",
    "https://app.example.com",
    "https://*.example.com",
    "http://localhost:3000",
    "https://*",
    "http://*:8080",
    "https://*.tenants.example.net",
    "https://a.test:8443",
];
const REGEXES: &[&str] = &[
    r"https://[a-z0-9-]+\.tenants\.example\.com",
    r"https?://(www|api)\.example\.org",
];
const ORIGINS: &[&str] = &[
    "https://app.example.com",
    "https://x.example.com",
    "https://a.b.example.com",
    "https://example.com",
    "http://app.example.com",
    "https://app.example.com:8443",
    "http://localhost:3000",
    "http://localhost",
    "https://a.test:8443",
    "https://a.test",
    "http://q.test:8080",
    "https://t1.tenants.example.com",
    "https://t1.tenants.example.net",
    "https://www.example.org",
    "http://api.example.org",
    "null",
    "https://evil.test",
    "https://app.example.com.evil.test",
    "https://APP.example.com",
    "https://app.example.com/",
    "https://app.example.com, https://evil.test",
];

/// Reference model of R9-R15 for canonical origins: deliberately simple.
fn reference_allows(spec: &PolicySpec, origin: &str) -> bool {
    if origin == "null" {
        let star = spec.allow_origins.iter().any(|o| o == "*");
        return (star && !spec.allow_credentials) || spec.allow_null_origin;
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    if rest.is_empty()
        || rest.contains(['/', ',', ' ', '@', '?', '#'])
        || origin.bytes().any(|c| c.is_ascii_uppercase())
        || (scheme != "http" && scheme != "https")
    {
        return false;
    }
    let default = if scheme == "https" { 443 } else { 80 };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => match p.parse::<u16>() {
            Ok(n) if n != default && !p.starts_with('0') => (h, n),
            _ => return false,
        },
        None => (rest, default),
    };
    let host_ok = host.split('.').all(|l| {
        !l.is_empty()
            && l.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
    });
    if !host_ok {
        return false;
    }
    for entry in &spec.allow_origins {
        if entry == "*" {
            return true;
        }
        let (es, erest) = entry.split_once("://").unwrap();
        let (ehost, eport) = match erest.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().unwrap()),
            None => (erest, if es == "https" { 443 } else { 80 }),
        };
        if es != scheme || eport != port {
            continue;
        }
        if ehost == "*" {
            return true;
        }
        if let Some(suffix) = ehost.strip_prefix("*.") {
            if host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")) {
                return true;
            }
        } else if ehost == host {
            return true;
        }
    }
    spec.allow_origin_regexes.iter().any(|r| {
        regex::Regex::new(&format!("^(?:{r})$"))
            .unwrap()
            .is_match(origin)
    })
}

fn arb_spec() -> impl Strategy<Value = PolicySpec> {
    (
        proptest::sample::subsequence(ENTRIES, 0..4),
        proptest::sample::subsequence(REGEXES, 0..3),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![
            Just(vec![]),
            Just(vec!["*"]),
            Just(vec!["GET", "PUT", "PATCH"])
        ],
        prop_oneof![
            Just(vec![]),
            Just(vec!["*"]),
            Just(vec!["X-A", "Authorization"])
        ],
        prop_oneof![Just(vec![]), Just(vec!["*"]), Just(vec!["X-B"])],
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            1i64..100_000,
        ),
    )
        .prop_map(
            |(origins, regexes, creds, null, methods, headers, expose, flags)| {
                let s = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect::<Vec<_>>();
                let (pna, strict, preserve, opt_in, max_age) = flags;
                PolicySpec {
                    allow_origins: s(origins),
                    allow_origin_regexes: s(regexes),
                    allow_credentials: creds,
                    allow_null_origin: null,
                    allow_methods: s(methods),
                    allow_headers: s(headers),
                    expose_headers: s(expose),
                    allow_private_network: pna,
                    preflight_validation: if strict {
                        corsgate_policy::PreflightValidation::Strict
                    } else {
                        corsgate_policy::PreflightValidation::Browser
                    },
                    upstream_cors_headers: if preserve {
                        corsgate_policy::UpstreamCorsHeaders::Preserve
                    } else {
                        corsgate_policy::UpstreamCorsHeaders::Override
                    },
                    unsafe_allow_any_origin_with_credentials: opt_in,
                    max_age: Some(max_age),
                    ..PolicySpec::default()
                }
            },
        )
}

fn arb_origin_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::sample::select(ORIGINS).prop_map(|o| o.as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..40),
        1 => "[a-zA-Z0-9:/.,@ *-]{0,30}".prop_map(String::into_bytes),
    ]
}

fn arb_request() -> impl Strategy<Value = (bool, Vec<(&'static str, Vec<u8>)>)> {
    let field = prop_oneof![
        3 => arb_origin_bytes().prop_map(|v| ("origin", v)),
        2 => proptest::sample::select(&["PUT", "GET", "patch", "PUT, GET", "", " X "][..])
            .prop_map(|v| ("access-control-request-method", v.as_bytes().to_vec())),
        2 => proptest::sample::select(&["x-a", "X-A, authorization", "x y", ",,", ""][..])
            .prop_map(|v| ("access-control-request-headers", v.as_bytes().to_vec())),
        1 => proptest::sample::select(&["true", "false"][..])
            .prop_map(|v| ("access-control-request-private-network", v.as_bytes().to_vec())),
        1 => proptest::collection::vec(any::<u8>(), 0..20).prop_map(|v| ("cookie", v)),
    ];
    (any::<bool>(), proptest::collection::vec(field, 0..6))
}

fn arb_upstream() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
    let field = proptest::sample::select(
        &[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-origin", "https://evil.test"),
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-methods", "*"),
            ("access-control-max-age", "99"),
            ("access-control-expose-headers", "x-secret"),
            ("access-control-allow-private-network", "true"),
            ("vary", "Accept-Encoding"),
            ("vary", "*"),
            ("vary", "origin"),
            ("set-cookie", "a=b"),
            ("x-trace", "1"),
            ("content-type", "text/plain"),
        ][..],
    );
    proptest::collection::vec(field, 0..6)
}

fn to_map(fields: &[(&'static str, Vec<u8>)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in fields {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            h.append(HeaderName::from_static(k), v);
        }
    }
    h
}

fn at_most_one_line_each(h: &HeaderMap) -> Result<(), TestCaseError> {
    for name in &CORS_RESPONSE_HEADERS {
        prop_assert!(h.get_all(name).iter().count() <= 1, "{name} twice: {h:?}");
    }
    Ok(())
}

fn vary_has_origin(h: &HeaderMap) -> bool {
    h.get_all("vary").iter().any(|v| {
        v.to_str()
            .unwrap_or("")
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("origin") || t.trim() == "*")
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn engine_invariants_hold_for_arbitrary_input(
        spec in arb_spec(),
        (options, fields) in arb_request(),
        upstream in arb_upstream(),
    ) {
        let Ok(compiled) = Policy::compile(&spec) else { return Ok(()) };
        let p = compiled.policy;
        let req = to_map(&fields);
        let origin_lines: Vec<&HeaderValue> = req.get_all("origin").iter().collect();
        let method = if options { Method::OPTIONS } else { Method::GET };
        match p.evaluate(&method, &req) {
            Evaluation::Preflight(r) => {
                let headers = r.headers();
                // The encoded lines say exactly what the map says.
                let mut written = Vec::new();
                r.write_fields(&mut written);
                prop_assert_eq!(sorted_lines(&written), sorted_map(&headers));
                at_most_one_line_each(&headers)?;
                prop_assert!(vary_has_origin(&headers));
                if let Some(acao) = headers.get("access-control-allow-origin") {
                    prop_assert_eq!(r.status.as_u16(), 200);
                    prop_assert_eq!(origin_lines.len(), 1);
                    let o = origin_lines[0].to_str().unwrap();
                    prop_assert!(reference_allows(&spec, o), "allowed {o} against {spec:?}");
                    prop_assert!(acao == "*" || acao == o, "ACAO {acao:?} for {o}");
                    prop_assert!(acao != "null" || spec.allow_null_origin);
                } else {
                    prop_assert!(headers.keys().all(|k| !k.as_str().starts_with("access-control-")));
                }
            }
            Evaluation::Actual(c) => {
                let mut resp = HeaderMap::new();
                for (k, v) in &upstream {
                    resp.append(HeaderName::from_static(k), HeaderValue::from_static(v));
                }
                p.complete(&c, &mut resp);
                // Written as lines, the completion leaves exactly the fields
                // the map holds.
                if let Ok(lines) = p.completion_lines(c.clone()) {
                    // Applied to a map, the lines' completion is Policy::complete.
                    let mut applied = HeaderMap::new();
                    for (k, v) in &upstream {
                        applied.append(HeaderName::from_static(k), HeaderValue::from_static(v));
                    }
                    lines.apply(&mut applied);
                    prop_assert_eq!(sorted_map(&applied), sorted_map(&resp));
                    let mut out = Vec::new();
                    for (k, v) in &upstream {
                        if !corsgate_policy::CompletionLines::replaces(k.as_bytes()) {
                            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
                        }
                    }
                    let vary = upstream.iter().filter(|(k, _)| *k == "vary").map(|(_, v)| v.as_bytes());
                    lines.write(vary, &mut out);
                    prop_assert_eq!(sorted_lines(&out), sorted_map(&resp));
                } else {
                    let enumerate = spec.expose_headers.iter().any(|h| h == "*") && spec.allow_credentials;
                    prop_assert!(
                        spec.upstream_cors_headers == corsgate_policy::UpstreamCorsHeaders::Preserve
                            || (enumerate && c.allow_origin().is_some()),
                        "no lines for {spec:?}"
                    );
                }
                let preserve = spec.upstream_cors_headers == corsgate_policy::UpstreamCorsHeaders::Preserve;
                // Preserve mode passes upstream headers through untouched,
                // duplicates included (Envoy semantics); for an allowed origin
                // it still owns ACAO, ACAC and ACEH.
                if !preserve {
                    at_most_one_line_each(&resp)?;
                } else if c.allow_origin().is_some() {
                    for k in ["access-control-allow-origin", "access-control-allow-credentials",
                              "access-control-expose-headers"] {
                        prop_assert!(resp.get_all(k).iter().count() <= 1, "{k} twice: {resp:?}");
                    }
                }
                prop_assert!(vary_has_origin(&resp), "{resp:?}");
                if !preserve {
                    for k in ["access-control-allow-methods", "access-control-allow-headers",
                              "access-control-max-age", "access-control-allow-private-network"] {
                        prop_assert!(resp.get(k).is_none(), "preflight header {k} on an actual response");
                    }
                }
                match c.allow_origin() {
                    Some(acao) => {
                        prop_assert_eq!(origin_lines.len(), 1);
                        let o = origin_lines[0].to_str().unwrap();
                        prop_assert!(reference_allows(&spec, o), "allowed {o} against {spec:?}");
                        prop_assert!(acao == "*" || acao == o);
                        prop_assert_eq!(resp.get("access-control-allow-origin"), Some(acao));
                    }
                    None => {
                        if let [o] = origin_lines.as_slice() {
                            if let Ok(o) = o.to_str() {
                                prop_assert!(!reference_allows(&spec, o), "refused {o} that the model allows: {spec:?}");
                            }
                        }
                        if !preserve {
                            prop_assert!(resp.keys().all(|k| !k.as_str().starts_with("access-control-")));
                        }
                    }
                }
            }
            Evaluation::Shadow(_) => prop_assert!(false, "no shadow policies generated"),
        }
    }

    #[test]
    fn origin_parser_never_panics_and_valid_means_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let corsgate_policy::RequestOrigin::Valid(o) = corsgate_policy::parse_origin_bytes(&bytes) {
            let (scheme, rest) = o.raw.split_once("://").unwrap();
            prop_assert!(scheme == "http" || scheme == "https");
            prop_assert!(rest.bytes().all(|c| !c.is_ascii_uppercase() && !c.is_ascii_whitespace()
                && !matches!(c, b',' | b'/' | b'@' | b'?' | b'#')));
            prop_assert!(!rest.is_empty());
            prop_assert!(o.raw.len() <= corsgate_policy::MAX_ORIGIN_LEN);
        }
    }

    #[test]
    fn compile_never_panics_on_arbitrary_strings(
        origins in proptest::collection::vec("[ -~]{0,24}", 0..4),
        regexes in proptest::collection::vec("[ -~]{0,24}", 0..3),
        methods in proptest::collection::vec("[ -~]{0,8}", 0..4),
        headers in proptest::collection::vec("[ -~]{0,8}", 0..4),
        max_age in any::<i64>(),
        creds in any::<bool>(),
    ) {
        let spec = PolicySpec {
            allow_origins: origins,
            allow_origin_regexes: regexes,
            allow_methods: methods,
            allow_headers: headers.clone(),
            expose_headers: headers,
            max_age: Some(max_age),
            allow_credentials: creds,
            ..PolicySpec::default()
        };
        match Policy::compile(&spec) {
            Ok(c) => prop_assert!(c.lints.iter().all(|l| !l.refuses())),
            Err(r) => prop_assert!(!r.errors.is_empty() || r.lints.iter().any(|l| l.refuses())),
        }
    }
}

/// `name: value\r\n` lines as sorted pairs.
fn sorted_lines(lines: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::str::from_utf8(lines)
        .unwrap()
        .split_terminator("\r\n")
        .map(|l| {
            let (n, v) = l.split_once(": ").unwrap();
            (n.to_owned(), v.to_owned())
        })
        .collect();
    out.sort();
    out
}

/// A map's fields as sorted pairs.
fn sorted_map(map: &HeaderMap) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = map
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    out.sort();
    out
}
