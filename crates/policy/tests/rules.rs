//! One test (or table) per engine rule (R1-R30, defined in `docs/rules.md`).
//! Each test is named after the rule it proves.

mod common;

use common::{actual, acx, headers, one, policy, preflight};
use corsgate_policy::{
    ActualOutcome, ErrorId, Evaluation, InvalidOrigin, MatchedBy, Policy, PolicySpec,
    PreflightOutcome, Refusal, ShadowOutcome, PREFLIGHT_VARY,
};
use http::{Method, StatusCode};

const ORIGIN: &str = "origin";
const ACRM: &str = "access-control-request-method";
const ACRH: &str = "access-control-request-headers";

fn refused_ids(json: &str) -> Vec<ErrorId> {
    let spec: PolicySpec = serde_json::from_str(json).expect("json");
    match Policy::compile(&spec) {
        Ok(_) => Vec::new(),
        Err(r) => r.errors.iter().map(|e| e.id).collect(),
    }
}

/// Does `origin` get an ACAO from this policy on an actual GET?
fn allows(p: &Policy, origin: &str) -> bool {
    let (_, resp) = actual(p, Method::GET, &[(ORIGIN, origin)], &[]);
    one(&resp, "access-control-allow-origin").is_some()
}

#[test]
fn r1_accepts_the_gateway_api_vocabulary_and_rejects_unknown_fields() {
    policy(common::SEED_HTTPROUTE);
    policy(common::SEED_TRAFFIC_POLICY);
    let unknown = serde_json::from_str::<PolicySpec>(r#"{"allowOrigin": ["https://a.test"]}"#);
    assert!(unknown.is_err(), "a typo must not be silently ignored");
}

#[test]
fn r2_defaults_max_age_5_no_credentials_empty_lists_not_sent() {
    let p = policy(r#"{"allowOrigins": ["https://a.test"]}"#);
    let r = preflight(
        &p,
        &[(ORIGIN, "https://a.test"), (ACRM, "PUT"), (ACRH, "x-a")],
    );
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        one(&r.headers(), "access-control-max-age").as_deref(),
        Some("5")
    );
    assert_eq!(
        acx(&r.headers()),
        vec!["access-control-allow-origin", "access-control-max-age"],
        "no ACAC, ACAM, ACAH or ACEH when not configured"
    );
}

#[test]
fn r3_syntax_errors_are_all_reported_with_stable_ids() {
    let cases: &[(&str, &[ErrorId])] = &[
        (r#"{"allowOrigins": ["null"]}"#, &[ErrorId::InvalidOrigin]),
        (
            r#"{"allowOrigins": ["https://a.test/"]}"#,
            &[ErrorId::InvalidOrigin],
        ),
        (
            r#"{"allowOrigins": ["https://a.test:0"]}"#,
            &[ErrorId::InvalidOrigin],
        ),
        (
            r#"{"allowOrigins": ["https://a.test:70000"]}"#,
            &[ErrorId::InvalidOrigin],
        ),
        (
            r#"{"allowOrigins": ["*", "https://a.test"]}"#,
            &[ErrorId::StarNotAlone],
        ),
        (
            r#"{"allowOrigins": ["https://a.test"], "allowMethods": ["GET", "*"]}"#,
            &[ErrorId::StarNotAlone],
        ),
        (
            r#"{"allowOrigins": ["https://a.test"], "allowHeaders": ["*", "x-a"]}"#,
            &[ErrorId::StarNotAlone],
        ),
        (
            r#"{"allowOrigins": ["https://a.test"], "allowMethods": ["get"]}"#,
            &[ErrorId::InvalidMethod],
        ),
        (
            r#"{"allowOrigins": ["https://a.test"], "allowMethods": ["PURGE"]}"#,
            &[ErrorId::InvalidMethod],
        ),
        (
            r#"{"allowOrigins": ["https://a.test"], "allowMethods": ["GET","HEAD","POST","PUT","DELETE","CONNECT","OPTIONS","TRACE","PATCH","GET"]}"#,
            &[ErrorId::InvalidMethod],
        ),
        (
            r#"{"allowOrigins": ["https://a.test"], "allowHeaders": ["x a"]}"#,
            &[ErrorId::InvalidHeaderName],
        ),
        (
            r#"{"allowOrigins": ["https://a.test"], "exposeHeaders": ["x:a"]}"#,
            &[ErrorId::InvalidHeaderName],
        ),
        (
            r#"{"allowOrigins": ["https://a.test"], "maxAge": 0}"#,
            &[ErrorId::InvalidMaxAge],
        ),
        (
            r#"{"allowOrigins": ["https://a.test"], "maxAge": -1}"#,
            &[ErrorId::InvalidMaxAge],
        ),
        (
            r#"{"allowOrigins": ["https://a.test"], "maxAge": 2147483648}"#,
            &[ErrorId::InvalidMaxAge],
        ),
        (
            r#"{"allowOriginRegexes": ["[a-z]+\\.a\\.test"]}"#,
            &[ErrorId::RegexNeedsScheme],
        ),
        (
            r#"{"allowOriginRegexes": ["https://(unclosed"]}"#,
            &[ErrorId::InvalidRegex],
        ),
        (
            r#"{"allowOrigins": ["null", "https://a.test/"], "allowMethods": ["get"], "maxAge": 0}"#,
            &[
                ErrorId::InvalidOrigin,
                ErrorId::InvalidOrigin,
                ErrorId::InvalidMethod,
                ErrorId::InvalidMaxAge,
            ],
        ),
    ];
    for (json, want) in cases {
        assert_eq!(refused_ids(json), *want, "{json}");
    }
}

#[test]
fn r3_errors_name_field_index_and_value() {
    let spec: PolicySpec =
        serde_json::from_str(r#"{"allowOrigins": ["https://ok.test", "https://bad.test/path"]}"#)
            .unwrap();
    let err = Policy::compile(&spec).unwrap_err();
    let e = &err.errors[0];
    assert_eq!(e.at.to_string(), "allowOrigins[1]");
    assert_eq!(e.value, "https://bad.test/path");
    assert!(err.to_string().contains("invalid-origin"), "{err}");
}

#[test]
fn r4_configured_origins_are_canonicalised_to_match_browsers() {
    let p = policy(
        r#"{"allowOrigins": ["HTTPS://App.Example.COM:443"]}"#
            .replace("HTTPS", "https")
            .as_str(),
    );
    assert!(allows(&p, "https://app.example.com"));
    let p = policy(r#"{"allowOrigins": ["http://a.test:80", "https://b.test:08443"]}"#);
    assert!(allows(&p, "http://a.test"));
    assert!(allows(&p, "https://b.test:8443"));
    assert!(!allows(&p, "https://a.test"));
}

#[test]
fn r4_header_names_lower_cased_methods_verbatim_lists_joined() {
    let p = policy(
        r#"{"allowOrigins": ["https://a.test"], "allowMethods": ["PATCH", "GET", "PATCH"],
            "allowHeaders": ["X-Request-ID", "Authorization", "x-request-id"],
            "exposeHeaders": ["X-Trace", "ETag"]}"#,
    );
    let r = preflight(&p, &[(ORIGIN, "https://a.test"), (ACRM, "PATCH")]);
    assert_eq!(
        one(&r.headers(), "access-control-allow-methods").as_deref(),
        Some("PATCH, GET")
    );
    assert_eq!(
        one(&r.headers(), "access-control-allow-headers").as_deref(),
        Some("x-request-id, authorization")
    );
    assert_eq!(
        one(&r.headers(), "access-control-expose-headers").as_deref(),
        Some("x-trace, etag")
    );
}

#[test]
fn r5_any_origin_with_credentials_is_refused_without_opt_in() {
    for origins in [r#"["*"]"#, r#"["https://*"]"#, r#"["http://*:8080"]"#] {
        let json = format!(r#"{{"allowOrigins": {origins}, "allowCredentials": true}}"#);
        assert_eq!(
            refused_ids(&json),
            vec![ErrorId::CredentialsWithAnyOrigin],
            "{json}"
        );
        let spec: PolicySpec = serde_json::from_str(&json).unwrap();
        let msg = Policy::compile(&spec).unwrap_err().to_string();
        assert!(
            msg.contains("unsafeAllowAnyOriginWithCredentials"),
            "names the opt-in: {msg}"
        );
    }
}

#[test]
fn r5_opt_in_reflects_but_never_null() {
    let spec: PolicySpec = serde_json::from_str(
        r#"{"allowOrigins": ["*"], "allowCredentials": true, "unsafeAllowAnyOriginWithCredentials": true}"#,
    )
    .unwrap();
    let compiled = Policy::compile(&spec).expect("opt-in compiles");
    assert!(compiled.lints.iter().any(|l| l.id.as_str() == "L-CRED-ANY"));
    let p = compiled.policy;
    let (_, resp) = actual(&p, Method::GET, &[(ORIGIN, "https://any.test")], &[]);
    assert_eq!(
        one(&resp, "access-control-allow-origin").as_deref(),
        Some("https://any.test")
    );
    assert_eq!(
        one(&resp, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let (c, resp) = actual(&p, Method::GET, &[(ORIGIN, "null")], &[]);
    assert_eq!(c.outcome, ActualOutcome::Refused(Refusal::NullOrigin));
    assert!(acx(&resp).is_empty());
    let r = preflight(&p, &[(ORIGIN, "null"), (ACRM, "PUT")]);
    assert!(acx(&r.headers()).is_empty());
}

#[test]
fn r7_no_origin_is_not_cors_but_still_stripped_and_varied() {
    let p = policy(r#"{"allowOrigins": ["https://a.test"]}"#);
    for req in [vec![], vec![(ORIGIN, "")]] {
        let (c, resp) = actual(
            &p,
            Method::GET,
            &req,
            &[
                ("access-control-allow-origin", "*"),
                ("content-type", "text/plain"),
            ],
        );
        assert_eq!(c.outcome, ActualOutcome::NotCors);
        assert!(acx(&resp).is_empty(), "upstream ACAO stripped: {resp:?}");
        assert_eq!(one(&resp, "vary").as_deref(), Some("Origin"));
    }
}

#[test]
fn r8_preflight_detection_table() {
    let p = policy(r#"{"allowOrigins": ["https://a.test"]}"#);
    // (method, headers, is a preflight?)
    let options = Method::OPTIONS;
    let lower_options = Method::from_bytes(b"options").unwrap();
    type Case<'a> = (&'a Method, Vec<(&'a str, &'a str)>, bool);
    let cases: Vec<Case> = vec![
        (
            &options,
            vec![(ORIGIN, "https://a.test"), (ACRM, "PUT")],
            true,
        ),
        (
            &options,
            vec![(ORIGIN, "https://evil.test"), (ACRM, "PUT")],
            true,
        ),
        (&options, vec![(ORIGIN, "https://a.test")], false),
        (
            &options,
            vec![(ORIGIN, "https://a.test"), (ACRM, "")],
            false,
        ),
        (
            &options,
            vec![(ORIGIN, "https://a.test"), (ACRM, "  ")],
            false,
        ),
        (&options, vec![(ACRM, "PUT")], false),
        (&options, vec![(ORIGIN, ""), (ACRM, "PUT")], false),
        (
            &lower_options,
            vec![(ORIGIN, "https://a.test"), (ACRM, "PUT")],
            false,
        ),
        (
            &Method::GET,
            vec![(ORIGIN, "https://a.test"), (ACRM, "PUT")],
            false,
        ),
    ];
    for (method, req, want) in cases {
        let got = matches!(p.evaluate(method, &headers(&req)), Evaluation::Preflight(_));
        assert_eq!(got, want, "{method} {req:?}");
        assert_eq!(corsgate_policy::is_preflight(method, &headers(&req)), want);
    }
}

#[test]
fn r9_invalid_origins_never_match_even_star() {
    let star = policy(r#"{"allowOrigins": ["*"]}"#);
    let exact = policy(r#"{"allowOrigins": ["https://a.test"]}"#);
    let bad = [
        "https://A.test",
        "https://a.test:443",
        "https://a.test/",
        "https://a.test, https://b.test",
        "https://a.test,https://evil.test",
        " https://a.test",
    ];
    for origin in bad {
        for p in [&star, &exact] {
            let (c, resp) = actual(p, Method::GET, &[(ORIGIN, origin)], &[]);
            assert!(
                matches!(c.outcome, ActualOutcome::Refused(Refusal::OriginInvalid(_))),
                "{origin}"
            );
            assert!(acx(&resp).is_empty(), "{origin}: {resp:?}");
            let r = preflight(p, &[(ORIGIN, origin), (ACRM, "PUT")]);
            assert!(acx(&r.headers()).is_empty(), "{origin}");
        }
    }
    // Two Origin lines, each canonical and allowed on its own.
    let (c, _) = actual(
        &exact,
        Method::GET,
        &[(ORIGIN, "https://a.test"), (ORIGIN, "https://a.test")],
        &[],
    );
    assert_eq!(
        c.outcome,
        ActualOutcome::Refused(Refusal::OriginInvalid(InvalidOrigin::MultipleFieldLines))
    );
}

#[test]
fn r10_exact_entries_compare_scheme_host_and_effective_port() {
    let p = policy(r#"{"allowOrigins": ["https://a.test", "http://b.test:8080"]}"#);
    let cases = [
        ("https://a.test", true),
        ("http://a.test", false),
        ("https://a.test:8443", false),
        ("https://www.a.test", false),
        ("http://b.test:8080", true),
        ("http://b.test", false),
        ("https://b.test:8080", false),
    ];
    for (o, want) in cases {
        assert_eq!(allows(&p, o), want, "{o}");
    }
    let (_, resp) = actual(&p, Method::GET, &[(ORIGIN, "https://a.test")], &[]);
    assert_eq!(
        one(&resp, "access-control-allow-origin").as_deref(),
        Some("https://a.test")
    );
}

#[test]
fn r11_star_without_credentials_answers_star_for_every_valid_origin_including_null() {
    let p = policy(r#"{"allowOrigins": ["*"], "allowMethods": ["PUT"]}"#);
    for o in [
        "https://a.test",
        "http://b.test:1234",
        "null",
        "http://[::1]:3000",
    ] {
        let (c, resp) = actual(&p, Method::GET, &[(ORIGIN, o)], &[]);
        assert_eq!(
            c.outcome,
            ActualOutcome::Allowed(MatchedBy::AnyOrigin),
            "{o}"
        );
        assert_eq!(
            one(&resp, "access-control-allow-origin").as_deref(),
            Some("*"),
            "{o}"
        );
        let r = preflight(&p, &[(ORIGIN, o), (ACRM, "PUT")]);
        assert_eq!(
            one(&r.headers(), "access-control-allow-origin").as_deref(),
            Some("*"),
            "{o}"
        );
    }
}

#[test]
fn r12a_star_methods_echo_the_requested_method_exactly() {
    let p = policy(r#"{"allowOrigins": ["https://a.test"], "allowMethods": ["*"]}"#);
    for m in ["PUT", "patch", "DELETE", "X-CUSTOM"] {
        let r = preflight(&p, &[(ORIGIN, "https://a.test"), (ACRM, m)]);
        assert_eq!(
            one(&r.headers(), "access-control-allow-methods").as_deref(),
            Some(m)
        );
    }
    for bad in ["PUT, DELETE", "PU T", "PUT/1", "(PUT)"] {
        let r = preflight(&p, &[(ORIGIN, "https://a.test"), (ACRM, bad)]);
        assert_eq!(
            r.outcome,
            PreflightOutcome::Refused(Refusal::InvalidRequestMethod),
            "{bad:?}"
        );
        assert!(acx(&r.headers()).is_empty());
    }
    let r = preflight(
        &p,
        &[(ORIGIN, "https://a.test"), (ACRM, "PUT"), (ACRM, "GET")],
    );
    assert_eq!(
        r.outcome,
        PreflightOutcome::Refused(Refusal::InvalidRequestMethod)
    );
}

#[test]
fn r12b_star_headers_echo_normalised_request_headers_or_omit() {
    let p = policy(r#"{"allowOrigins": ["https://a.test"], "allowHeaders": ["*"]}"#);
    let cases: &[(&[&str], Option<&str>)] = &[
        (&["x-b,x-a"], Some("x-b, x-a")),
        (
            &["Authorization, X-Tenant"],
            Some("authorization, x-tenant"),
        ),
        (&[" x-a , , X-A,x-b "], Some("x-a, x-b")),
        (&["x-a", "x-b"], Some("x-a, x-b")),
        (&[], None),
        (&[""], None),
    ];
    for (acrh, want) in cases {
        let mut req = vec![(ORIGIN, "https://a.test"), (ACRM, "PUT")];
        req.extend(acrh.iter().map(|v| (ACRH, *v)));
        let r = preflight(&p, &req);
        assert_eq!(r.status, StatusCode::OK, "{acrh:?}");
        assert_eq!(
            one(&r.headers(), "access-control-allow-headers").as_deref(),
            *want,
            "{acrh:?}"
        );
    }
    let r = preflight(
        &p,
        &[
            (ORIGIN, "https://a.test"),
            (ACRM, "PUT"),
            (ACRH, "x-a, x b"),
        ],
    );
    assert_eq!(
        r.outcome,
        PreflightOutcome::Refused(Refusal::InvalidRequestHeaders)
    );
    assert!(acx(&r.headers()).is_empty());
}

#[test]
fn r12c_expose_star_is_star_without_credentials_and_enumerated_with() {
    let p = policy(r#"{"allowOrigins": ["https://a.test"], "exposeHeaders": ["*"]}"#);
    let (_, resp) = actual(
        &p,
        Method::GET,
        &[(ORIGIN, "https://a.test")],
        &[("x-a", "1")],
    );
    assert_eq!(
        one(&resp, "access-control-expose-headers").as_deref(),
        Some("*")
    );

    let p = policy(
        r#"{"allowOrigins": ["https://a.test"], "exposeHeaders": ["*"], "allowCredentials": true}"#,
    );
    let upstream = [
        ("content-type", "text/plain"),
        ("x-trace", "1"),
        ("set-cookie", "a=b"),
        ("ETag", "\"x\""),
        ("cache-control", "no-store"),
        ("vary", "accept"),
        ("access-control-allow-origin", "*"),
        ("x-trace", "2"),
    ];
    let (_, resp) = actual(&p, Method::GET, &[(ORIGIN, "https://a.test")], &upstream);
    assert_eq!(
        one(&resp, "access-control-expose-headers").as_deref(),
        Some("x-trace, etag")
    );
    let (_, resp) = actual(
        &p,
        Method::GET,
        &[(ORIGIN, "https://a.test")],
        &[("content-type", "a/b")],
    );
    assert_eq!(
        one(&resp, "access-control-expose-headers"),
        None,
        "nothing left to expose"
    );
    let r = preflight(&p, &[(ORIGIN, "https://a.test"), (ACRM, "PUT")]);
    assert_eq!(
        one(&r.headers(), "access-control-expose-headers"),
        None,
        "omitted on preflights"
    );
}

#[test]
fn r13_regexes_are_anchored_full_matches() {
    let p = policy(r#"{"allowOriginRegexes": ["https://[a-z0-9-]+\\.tenants\\.example\\.com"]}"#);
    let cases = [
        ("https://t1.tenants.example.com", true),
        ("https://t-2.tenants.example.com", true),
        ("https://t1.tenants.example.com.evil.test", false),
        ("https://evil.test", false),
        ("http://t1.tenants.example.com", false),
        ("https://t1.tenants.example.com:8443", false),
        ("https://a.b.tenants.example.com", false),
    ];
    for (o, want) in cases {
        assert_eq!(allows(&p, o), want, "{o}");
    }
    // A leading `^` is accepted; anchoring is corsgate's job anyway.
    let p = policy(r#"{"allowOriginRegexes": ["^https://app\\.example\\.com"]}"#);
    assert!(allows(&p, "https://app.example.com"));
    assert!(!allows(&p, "https://app.example.comx"));
}

#[test]
fn r13_first_matching_regex_is_reported() {
    let p = policy(
        r#"{"allowOriginRegexes": ["https://a\\.example\\.com", "https://[a-z]\\.example\\.com"]}"#,
    );
    let (c, _) = actual(&p, Method::GET, &[(ORIGIN, "https://b.example.com")], &[]);
    assert_eq!(c.outcome, ActualOutcome::Allowed(MatchedBy::Regex(1)));
    let (c, _) = actual(&p, Method::GET, &[(ORIGIN, "https://a.example.com")], &[]);
    assert_eq!(c.outcome, ActualOutcome::Allowed(MatchedBy::Regex(0)));
}

#[test]
fn r14_wildcard_subdomains_label_boundary_any_depth_same_scheme_and_port() {
    let p = policy(r#"{"allowOrigins": ["https://*.bar.com", "http://*.dev.test:8080"]}"#);
    let cases = [
        ("https://www.bar.com", true),
        ("https://xpto.www.bar.com", true),
        ("https://bar.com", false),
        ("https://evilbar.com", false),
        ("https://bar.com.evil.net", false),
        ("https://www.bar.com.evil.net", false),
        ("http://www.bar.com", false),
        ("https://www.bar.com:8443", false),
        ("http://a.dev.test:8080", true),
        ("http://a.dev.test", false),
        ("http://a.dev.test:8081", false),
    ];
    for (o, want) in cases {
        assert_eq!(allows(&p, o), want, "{o}");
    }
}

#[test]
fn r14_wildcard_never_matches_bare_suffix() {
    let p = policy(r#"{"allowOrigins": ["https://*.example.com"]}"#);
    assert!(!allows(&p, "https://example.com"));
    assert!(allows(&p, "https://a.example.com"));
}

#[test]
fn r15_bare_host_star_matches_scheme_and_effective_port_only() {
    let p = policy(r#"{"allowOrigins": ["https://*", "http://*:8080"]}"#);
    let cases = [
        ("https://a.test", true),
        ("https://a.test:8443", false),
        ("http://a.test", false),
        ("http://a.test:8080", true),
        ("null", false),
    ];
    for (o, want) in cases {
        assert_eq!(allows(&p, o), want, "{o}");
    }
}

#[test]
fn r18_every_scoped_preflight_is_answered_allowed_or_not() {
    let p = policy(r#"{"allowOrigins": ["https://a.test"]}"#);
    for origin in [
        "https://a.test",
        "https://evil.test",
        "null",
        "https://A.test",
    ] {
        let ev = p.evaluate(
            &Method::OPTIONS,
            &headers(&[(ORIGIN, origin), (ACRM, "DELETE")]),
        );
        assert!(
            matches!(ev, Evaluation::Preflight(_)),
            "{origin}: never forwarded"
        );
    }
}

#[test]
fn r19_allowed_preflight_full_header_set() {
    let p = policy(
        r#"{"allowOrigins": ["https://a.test"], "allowMethods": ["GET", "PUT"],
            "allowHeaders": ["X-A"], "exposeHeaders": ["X-B"], "allowCredentials": true,
            "maxAge": 600, "allowPrivateNetwork": true}"#,
    );
    let r = preflight(
        &p,
        &[
            (ORIGIN, "https://a.test"),
            (ACRM, "PUT"),
            (ACRH, "x-a"),
            ("access-control-request-private-network", "true"),
        ],
    );
    assert_eq!(r.status, StatusCode::OK);
    let want = [
        ("access-control-allow-origin", "https://a.test"),
        ("access-control-allow-credentials", "true"),
        ("access-control-allow-methods", "GET, PUT"),
        ("access-control-allow-headers", "x-a"),
        ("access-control-expose-headers", "x-b"),
        ("access-control-max-age", "600"),
        ("access-control-allow-private-network", "true"),
        ("vary", PREFLIGHT_VARY),
    ];
    for (k, v) in want {
        assert_eq!(one(&r.headers(), k).as_deref(), Some(v), "{k}");
    }
    assert_eq!(
        r.headers().len(),
        want.len(),
        "nothing else: {:?}",
        r.headers()
    );
}

#[test]
fn r19_private_network_only_when_enabled_and_requested_exactly() {
    let on = policy(r#"{"allowOrigins": ["https://a.test"], "allowPrivateNetwork": true}"#);
    let off = policy(r#"{"allowOrigins": ["https://a.test"]}"#);
    let cases = [
        (&on, Some("true"), true),
        (&on, Some("TRUE"), false),
        (&on, Some("false"), false),
        (&on, None, false),
        (&off, Some("true"), false),
    ];
    for (p, acrpn, want) in cases {
        let mut req = vec![(ORIGIN, "https://a.test"), (ACRM, "GET")];
        if let Some(v) = acrpn {
            req.push(("access-control-request-private-network", v));
        }
        let r = preflight(p, &req);
        assert_eq!(
            one(&r.headers(), "access-control-allow-private-network").is_some(),
            want,
            "{acrpn:?}"
        );
    }
}

#[test]
fn r19_browser_validation_does_not_check_method_or_headers_strict_does() {
    let json = r#"{"allowOrigins": ["https://a.test"], "allowMethods": ["PUT"], "allowHeaders": ["x-a"]%}"#;
    let browser = policy(&json.replace('%', ""));
    let strict = policy(&json.replace('%', r#", "preflightValidation": "strict""#));
    // (ACRM, ACRH, strict outcome)
    let cases: &[(&str, Option<&str>, Option<Refusal>)] = &[
        ("PUT", Some("x-a"), None),
        ("PUT", Some("X-A"), None),
        ("GET", None, None),
        ("POST", Some("x-a"), None),
        ("DELETE", None, Some(Refusal::MethodNotAllowed)),
        ("put", None, Some(Refusal::MethodNotAllowed)),
        ("PUT", Some("x-a, x-b"), Some(Refusal::HeaderNotAllowed)),
        ("GET", Some("content-type"), Some(Refusal::HeaderNotAllowed)),
    ];
    for (m, h, want) in cases {
        let mut req = vec![(ORIGIN, "https://a.test"), (ACRM, *m)];
        if let Some(h) = h {
            req.push((ACRH, *h));
        }
        let b = preflight(&browser, &req);
        assert_eq!(
            b.outcome,
            PreflightOutcome::Allowed(MatchedBy::Exact(0)),
            "browser {m} {h:?}"
        );
        let s = preflight(&strict, &req);
        match want {
            None => assert!(
                matches!(s.outcome, PreflightOutcome::Allowed(_)),
                "strict {m} {h:?}"
            ),
            Some(r) => {
                assert_eq!(s.outcome, PreflightOutcome::Refused(*r), "strict {m} {h:?}");
                assert!(acx(&s.headers()).is_empty());
            }
        }
    }
}

#[test]
fn r20_refused_preflight_has_no_cors_headers_and_configurable_status() {
    for (status, want) in [
        ("", 200),
        (r#", "preflightRejectStatus": 204"#, 204),
        (r#", "preflightRejectStatus": 403"#, 403),
    ] {
        let p = policy(&format!(
            r#"{{"allowOrigins": ["https://a.test"], "allowMethods": ["GET"], "allowCredentials": true, "maxAge": 60{status}}}"#
        ));
        for origin in [
            "https://evil.test",
            "null",
            "https://a.test.evil.test",
            "https://a.test/",
        ] {
            let r = preflight(&p, &[(ORIGIN, origin), (ACRM, "GET")]);
            assert_eq!(r.status.as_u16(), want, "{origin}");
            assert!(acx(&r.headers()).is_empty(), "{origin}: {:?}", r.headers());
            assert_eq!(one(&r.headers(), "vary").as_deref(), Some(PREFLIGHT_VARY));
        }
    }
    let bad = serde_json::from_str::<PolicySpec>(r#"{"preflightRejectStatus": 500}"#);
    assert!(bad.is_err(), "only 200, 204, 403");
}

#[test]
fn r21_preflight_headers_never_on_actual_responses() {
    let p = policy(
        r#"{"allowOrigins": ["https://a.test"], "allowMethods": ["PUT"], "allowHeaders": ["x-a"],
            "maxAge": 60, "allowPrivateNetwork": true, "exposeHeaders": ["x-b"]}"#,
    );
    let (_, resp) = actual(
        &p,
        Method::PUT,
        &[(ORIGIN, "https://a.test"), (ACRM, "PUT"), (ACRH, "x-a")],
        &[
            ("access-control-max-age", "99"),
            ("access-control-allow-methods", "*"),
        ],
    );
    assert_eq!(
        acx(&resp),
        vec![
            "access-control-allow-origin",
            "access-control-expose-headers"
        ]
    );
}

#[test]
fn r22_actual_requests_from_refused_origins_are_forwarded() {
    let p = policy(r#"{"allowOrigins": ["https://a.test"]}"#);
    for o in ["https://evil.test", "null", "garbage"] {
        let ev = p.evaluate(&Method::POST, &headers(&[(ORIGIN, o)]));
        assert!(
            matches!(ev, Evaluation::Actual(_)),
            "{o}: forwarded, not answered"
        );
    }
}

#[test]
fn r23_upstream_cors_headers_are_replaced_never_duplicated_or_leaked() {
    let p = policy(r#"{"allowOrigins": ["https://a.test"], "allowCredentials": true}"#);
    let upstream = [
        ("access-control-allow-origin", "*"),
        ("access-control-allow-origin", "https://evil.test"),
        ("access-control-allow-credentials", "true"),
        (
            "access-control-allow-methods",
            "GET, POST, HEAD, PUT, DELETE, PATCH, OPTIONS",
        ),
        ("access-control-allow-headers", "*"),
        ("access-control-expose-headers", "x-secret"),
        ("access-control-max-age", "3600"),
        ("access-control-allow-private-network", "true"),
        ("x-other", "kept"),
    ];
    let (_, resp) = actual(&p, Method::GET, &[(ORIGIN, "https://a.test")], &upstream);
    assert_eq!(
        acx(&resp),
        vec![
            "access-control-allow-credentials",
            "access-control-allow-origin"
        ]
    );
    assert_eq!(
        one(&resp, "access-control-allow-origin").as_deref(),
        Some("https://a.test")
    );
    assert_eq!(one(&resp, "x-other").as_deref(), Some("kept"));
    for o in ["https://evil.test", "https://A.test"] {
        let (_, resp) = actual(&p, Method::GET, &[(ORIGIN, o)], &upstream);
        assert!(
            acx(&resp).is_empty(),
            "{o}: nothing of the upstream's leaks"
        );
    }
}

#[test]
fn r23_preserve_mode_behaves_like_envoy() {
    let p = policy(r#"{"allowOrigins": ["https://a.test"], "upstreamCorsHeaders": "preserve"}"#);
    let upstream = [
        ("access-control-allow-origin", "*"),
        ("access-control-max-age", "10"),
    ];
    let (_, resp) = actual(&p, Method::GET, &[(ORIGIN, "https://a.test")], &upstream);
    assert_eq!(
        one(&resp, "access-control-allow-origin").as_deref(),
        Some("https://a.test")
    );
    assert_eq!(one(&resp, "access-control-max-age").as_deref(), Some("10"));
    let (_, resp) = actual(&p, Method::GET, &[(ORIGIN, "https://evil.test")], &upstream);
    assert_eq!(
        one(&resp, "access-control-allow-origin").as_deref(),
        Some("*")
    );
}

#[test]
fn r24_vary_origin_on_every_scoped_response() {
    let p = policy(r#"{"allowOrigins": ["*"]}"#);
    for req in [
        vec![(ORIGIN, "https://a.test")],
        vec![(ORIGIN, "bad")],
        vec![],
    ] {
        for upstream in [
            vec![],
            vec![("vary", "Accept-Encoding")],
            vec![("vary", "*")],
        ] {
            let (_, resp) = actual(&p, Method::GET, &req, &upstream);
            let vary = one(&resp, "vary").unwrap();
            assert!(
                vary == "*" || vary.split(", ").any(|t| t == "Origin"),
                "{req:?} {upstream:?}: {vary}"
            );
            if let Some((_, v)) = upstream.first() {
                assert!(vary.starts_with(v), "merged, not replaced: {vary}");
            }
        }
    }
}

#[test]
fn r25_gateway_generated_errors_are_completed_the_same_way() {
    let p = policy(r#"{"allowOrigins": ["https://a.test"], "allowCredentials": true}"#);
    let c = match p.evaluate(&Method::GET, &headers(&[(ORIGIN, "https://a.test")])) {
        Evaluation::Actual(c) => c,
        other => panic!("{other:?}"),
    };
    // A 502 the gateway makes itself: only content-type and content-length.
    for status_headers in [
        vec![("content-type", "text/plain"), ("content-length", "11")],
        vec![],
    ] {
        let mut resp = headers(&status_headers);
        p.complete(&c, &mut resp);
        assert_eq!(
            one(&resp, "access-control-allow-origin").as_deref(),
            Some("https://a.test")
        );
        assert_eq!(
            one(&resp, "access-control-allow-credentials").as_deref(),
            Some("true")
        );
        assert_eq!(one(&resp, "vary").as_deref(), Some("Origin"));
    }
}

#[test]
fn r27_one_line_each_and_lower_case_true() {
    let p = policy(
        r#"{"allowOrigins": ["https://a.test"], "allowCredentials": true, "exposeHeaders": ["x-a"]}"#,
    );
    let (_, resp) = actual(
        &p,
        Method::GET,
        &[(ORIGIN, "https://a.test")],
        &[
            ("access-control-allow-credentials", "True"),
            ("access-control-expose-headers", "x-b"),
        ],
    );
    for h in [
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-expose-headers",
    ] {
        assert_eq!(resp.get_all(h).iter().count(), 1, "{h}");
    }
    assert_eq!(
        one(&resp, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
}

#[test]
fn r28_credentials_from_configuration_never_from_the_request() {
    let p = policy(r#"{"allowOrigins": ["https://a.test"]}"#);
    let (_, resp) = actual(
        &p,
        Method::GET,
        &[
            (ORIGIN, "https://a.test"),
            ("cookie", "sid=1"),
            ("authorization", "Bearer x"),
        ],
        &[],
    );
    assert_eq!(
        one(&resp, "access-control-allow-origin").as_deref(),
        Some("https://a.test")
    );
    assert_eq!(one(&resp, "access-control-allow-credentials"), None);
}

#[test]
fn r29_shadow_mode_changes_nothing_and_reports_what_would_happen() {
    let p = policy(r#"{"allowOrigins": ["https://a.test"], "mode": "shadow"}"#);
    let ev = p.evaluate(
        &Method::OPTIONS,
        &headers(&[(ORIGIN, "https://evil.test"), (ACRM, "PUT")]),
    );
    match ev {
        Evaluation::Shadow(ShadowOutcome::Preflight(PreflightOutcome::Refused(
            Refusal::OriginNotAllowed,
        ))) => {}
        other => panic!("{other:?}"),
    }
    let ev = p.evaluate(&Method::GET, &headers(&[(ORIGIN, "https://a.test")]));
    match ev {
        Evaluation::Shadow(ShadowOutcome::Actual(ActualOutcome::Allowed(MatchedBy::Exact(0)))) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn r30_decision_labels_are_stable() {
    assert_eq!(
        PreflightOutcome::Allowed(MatchedBy::AnyOrigin).label(),
        "preflight_allowed"
    );
    assert_eq!(
        PreflightOutcome::Refused(Refusal::NullOrigin).label(),
        "preflight_rejected"
    );
    assert_eq!(
        ActualOutcome::Allowed(MatchedBy::AnyOrigin).label(),
        "actual_allowed"
    );
    assert_eq!(
        ActualOutcome::Refused(Refusal::OriginNotAllowed).label(),
        "actual_not_allowed"
    );
    let labels: Vec<&str> = [
        Refusal::OriginNotAllowed,
        Refusal::OriginInvalid(InvalidOrigin::Comma),
        Refusal::NullOrigin,
        Refusal::InvalidRequestMethod,
        Refusal::InvalidRequestHeaders,
        Refusal::MethodNotAllowed,
        Refusal::HeaderNotAllowed,
    ]
    .iter()
    .map(|r| r.as_str())
    .collect();
    assert_eq!(
        labels,
        [
            "origin_not_allowed",
            "origin_invalid",
            "origin_null",
            "invalid_request_method",
            "invalid_request_headers",
            "method_not_allowed",
            "header_not_allowed"
        ]
    );
}

#[test]
fn p4_null_origin_only_when_explicitly_allowed() {
    let p = policy(r#"{"allowOrigins": ["https://a.test"]}"#);
    let (c, _) = actual(&p, Method::GET, &[(ORIGIN, "null")], &[]);
    assert_eq!(c.outcome, ActualOutcome::Refused(Refusal::NullOrigin));
    let p = policy(r#"{"allowOrigins": ["https://a.test"], "allowNullOrigin": true}"#);
    let (c, resp) = actual(&p, Method::GET, &[(ORIGIN, "null")], &[]);
    assert_eq!(c.outcome, ActualOutcome::Allowed(MatchedBy::NullOrigin));
    assert_eq!(
        one(&resp, "access-control-allow-origin").as_deref(),
        Some("null")
    );
}
