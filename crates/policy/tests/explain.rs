//! Structured explanations: which entry matched, or why none did; which
//! requested method or header the browser will refuse.

mod common;

use common::policy;
use corsgate_policy::{MatchedBy, OriginVerdict, RequestProblem};

#[test]
fn explain_names_the_matching_entry() {
    let p = policy(
        r#"{"allowOrigins": ["https://a.test", "https://*.b.test"], "allowOriginRegexes": ["https://[a-z]+\\.c\\.test"]}"#,
    );
    let cases = [
        (
            "https://a.test",
            MatchedBy::Exact(0),
            "allowOrigins[0] \"https://a.test\"",
        ),
        (
            "https://x.b.test",
            MatchedBy::Subdomain(1),
            "allowOrigins[1] \"https://*.b.test\"",
        ),
        (
            "https://x.c.test",
            MatchedBy::Regex(0),
            "allowOriginRegexes[0]",
        ),
    ];
    for (origin, by, entry) in cases {
        match p.explain_origin(origin).verdict {
            OriginVerdict::Allowed {
                by: got,
                entry: e,
                acao,
            } => {
                assert_eq!(got, by);
                assert!(e.starts_with(entry), "{e}");
                assert_eq!(acao, origin);
            }
            other => panic!("{origin}: {other:?}"),
        }
    }
}

#[test]
fn explain_near_misses_say_scheme_port_label_boundary_and_canonical_form() {
    let p = policy(r#"{"allowOrigins": ["https://app.example.com", "https://*.bar.com"]}"#);
    let cases = [
        (
            "https://app.example.com:8443",
            "differs by port: allowed 443, got 8443",
        ),
        (
            "http://app.example.com",
            "differs by scheme: allowed https, got http",
        ),
        ("https://bar.com", "never matches the bare domain"),
        ("https://evilbar.com", "not at a label boundary"),
        (
            "https://x.app.example.com",
            "is a subdomain of app.example.com",
        ),
        ("http://www.bar.com", "differs by scheme"),
        ("https://APP.example.com", "would match if sent canonically"),
        (
            "https://app.example.com:443",
            "would match if sent canonically",
        ),
    ];
    for (origin, reason) in cases {
        let e = p.explain_origin(origin);
        assert!(
            e.near_misses.iter().any(|m| m.reason.contains(reason)),
            "{origin}: {e:?}"
        );
    }
    assert!(p
        .explain_origin("https://unrelated.test")
        .near_misses
        .is_empty());
    assert_eq!(
        p.explain_origin("null").verdict,
        OriginVerdict::NullNotAllowed
    );
}

#[test]
fn explain_preflight_problems_name_method_header_and_credentials() {
    let p = policy(
        r#"{"allowOrigins": ["https://a.test"], "allowMethods": ["PATCH"], "allowHeaders": ["x-a"]}"#,
    );
    let problems = p.preflight_problems("patch", &["x-a", "X-Tenant"], true);
    assert_eq!(
        problems,
        vec![
            RequestProblem::MethodNotAllowed {
                method: "patch".into(),
                case_variant: Some("PATCH".into())
            },
            RequestProblem::HeaderNotAllowed {
                name: "x-tenant".into()
            },
            RequestProblem::CredentialsNotAllowed,
        ]
    );
    assert_eq!(problems[1].to_string(), "`x-tenant` is not in allowHeaders");
    assert!(problems[0].to_string().contains("case-sensitive"));
    assert!(
        p.preflight_problems("GET", &[], false).is_empty(),
        "safelisted method"
    );
    assert!(p.preflight_problems("PATCH", &["X-A"], false).is_empty());
}
