//! Every lint ID (R6 in `docs/rules.md`) has a case that triggers it and
//! one that does not.

use corsgate_policy::{Lint, LintId, Policy, PolicySpec, Severity};

/// All lints of a policy, whether or not it compiled.
fn lints(json: &str) -> Vec<Lint> {
    let spec: PolicySpec = serde_json::from_str(json).expect("json");
    match Policy::compile(&spec) {
        Ok(c) => c.lints,
        Err(r) => r.lints,
    }
}

fn refused(json: &str) -> bool {
    let spec: PolicySpec = serde_json::from_str(json).expect("json");
    Policy::compile(&spec).is_err()
}

const FULL: &str = r#""allowMethods": ["GET"], "allowHeaders": ["x-a"], "exposeHeaders": ["x-b"]"#;

/// (id, triggering policy, severity, refuses?, clean policy)
fn table() -> Vec<(LintId, String, Severity, bool, String)> {
    let p = |body: &str| format!("{{{body}, {FULL}}}");
    vec![
        (
            LintId::CredAny,
            p(r#""allowOrigins": ["*"], "allowCredentials": true, "unsafeAllowAnyOriginWithCredentials": true"#),
            Severity::Error,
            false,
            p(r#""allowOrigins": ["*"]"#),
        ),
        (LintId::PublicSuffix, p(r#""allowOrigins": ["https://*.github.io"]"#), Severity::Error, true, p(r#""allowOrigins": ["https://*.example.github.io"]"#)),
        (LintId::PublicSuffix, p(r#""allowOrigins": ["https://*.co.uk"]"#), Severity::Error, true, p(r#""allowOrigins": ["http://*.localhost:3000"]"#)),
        (LintId::PublicSuffix, p(r#""allowOrigins": ["https://*.com"]"#), Severity::Error, true, p(r#""allowOrigins": ["https://*.example.com"]"#)),
        (LintId::RegexDot, p(r#""allowOriginRegexes": ["https://app.example\\.com"]"#), Severity::Error, true, p(r#""allowOriginRegexes": ["https://app\\.example\\.com"]"#)),
        (LintId::RegexCanary, p(r#""allowOriginRegexes": ["https://app\\.example\\.com[a-z\\.]*"]"#), Severity::Error, true, p(r#""allowOriginRegexes": ["https://[a-z]+\\.example\\.com"]"#)),
        (LintId::RegexCanary, p(r#""allowOriginRegexes": ["https://[a-z]*example\\.com"]"#), Severity::Error, true, p(r#""allowOriginRegexes": ["https://([a-z]+\\.)?example\\.com"]"#)),
        (LintId::RegexCanary, p(r#""allowOriginRegexes": ["https://app\\.example\\.com(:[0-9]+)?"]"#), Severity::Error, true, p(r#""allowOriginRegexes": ["https://app\\.example\\.com(:8443)?"]"#)),
        (LintId::RegexCanary, p(r#""allowOriginRegexes": ["https?://app\\.example\\.com|null"]"#), Severity::Error, true, p(r#""allowOriginRegexes": ["https?://app\\.example\\.com"]"#)),
        (LintId::RegexCanary, p(r#""allowOriginRegexes": ["https://[^/]+"]"#), Severity::Error, true, p(r#""allowOriginRegexes": ["https://[a-z]+\\.example\\.com"]"#)),
        (LintId::HttpOriginCreds, p(r#""allowOrigins": ["http://app.example.com"], "allowCredentials": true"#), Severity::Warn, false, p(r#""allowOrigins": ["https://app.example.com"], "allowCredentials": true"#)),
        (LintId::HttpOriginCreds, p(r#""allowOriginRegexes": ["https?://app\\.example\\.com"], "allowCredentials": true"#), Severity::Warn, false, p(r#""allowOriginRegexes": ["https?://app\\.example\\.com"]"#)),
        (LintId::MaxAgeChromium, p(r#""allowOrigins": ["https://a.test"], "maxAge": 7201"#), Severity::Warn, false, p(r#""allowOrigins": ["https://a.test"], "maxAge": 7200"#)),
        (LintId::MaxAgeAll, p(r#""allowOrigins": ["https://a.test"], "maxAge": 86401"#), Severity::Warn, false, p(r#""allowOrigins": ["https://a.test"], "maxAge": 86400"#)),
        (
            LintId::NoopMethod,
            r#"{"allowOrigins": ["https://a.test"], "allowMethods": ["GET", "TRACE"], "allowHeaders": ["x-a"], "exposeHeaders": ["x-b"]}"#.into(),
            Severity::Info,
            false,
            p(r#""allowOrigins": ["https://a.test"]"#),
        ),
        (
            LintId::NoopHeader,
            r#"{"allowOrigins": ["https://a.test"], "allowMethods": ["GET"], "allowHeaders": ["Origin"], "exposeHeaders": ["x-b"]}"#.into(),
            Severity::Info,
            false,
            p(r#""allowOrigins": ["https://a.test"]"#),
        ),
        (
            LintId::NoopOptions,
            r#"{"allowOrigins": ["https://a.test"], "allowMethods": ["OPTIONS"], "allowHeaders": ["x-a"], "exposeHeaders": ["x-b"]}"#.into(),
            Severity::Info,
            false,
            p(r#""allowOrigins": ["https://a.test"]"#),
        ),
        (LintId::Empty, p(r#""allowOrigins": []"#), Severity::Warn, false, p(r#""allowNullOrigin": false, "allowOriginRegexes": ["https://a\\.test"]"#)),
        (LintId::EmptyList, r#"{"allowOrigins": ["https://a.test"]}"#.into(), Severity::Info, false, p(r#""allowOrigins": ["https://a.test"]"#)),
        (
            LintId::WildcardCreds,
            r#"{"allowOrigins": ["https://a.test"], "allowMethods": ["*"], "allowHeaders": ["x-a"], "exposeHeaders": ["x-b"], "allowCredentials": true}"#.into(),
            Severity::Warn,
            false,
            r#"{"allowOrigins": ["https://a.test"], "allowMethods": ["*"], "allowHeaders": ["x-a"], "exposeHeaders": ["x-b"]}"#.into(),
        ),
        (LintId::RegexCase, p(r#""allowOriginRegexes": ["(?i)https://app\\.example\\.com"]"#), Severity::Info, false, p(r#""allowOriginRegexes": ["https://app\\.example\\.com"]"#)),
        (
            LintId::ExposeStarCreds,
            r#"{"allowOrigins": ["https://a.test"], "allowMethods": ["GET"], "allowHeaders": ["x-a"], "exposeHeaders": ["*"], "allowCredentials": true}"#.into(),
            Severity::Warn,
            false,
            r#"{"allowOrigins": ["https://a.test"], "allowMethods": ["GET"], "allowHeaders": ["x-a"], "exposeHeaders": ["*"]}"#.into(),
        ),
        (LintId::Null, p(r#""allowOrigins": ["https://a.test"], "allowNullOrigin": true"#), Severity::Warn, false, p(r#""allowOrigins": ["https://a.test"]"#)),
        (LintId::Null, p(r#""allowOrigins": ["https://a.test"], "allowNullOrigin": true, "allowCredentials": true"#), Severity::Error, true, p(r#""allowOrigins": ["https://a.test"], "allowCredentials": true"#)),
    ]
}

#[test]
fn r6_every_lint_triggers_with_its_severity_and_stays_quiet_otherwise() {
    let mut seen = std::collections::HashSet::new();
    for (id, bad, severity, refuses, good) in table() {
        let found: Vec<Lint> = lints(&bad).into_iter().filter(|l| l.id == id).collect();
        assert!(!found.is_empty(), "{id} not raised by {bad}");
        assert!(
            found.iter().all(|l| l.severity == severity),
            "{id}: {found:?}"
        );
        assert_eq!(refused(&bad), refuses, "{id} refusal for {bad}");
        assert!(!found[0].message.is_empty() && !found[0].fix.is_empty());
        let quiet: Vec<Lint> = lints(&good).into_iter().filter(|l| l.id == id).collect();
        assert!(
            quiet.is_empty(),
            "{id} raised by the clean policy {good}: {quiet:?}"
        );
        seen.insert(id);
    }
    for id in LintId::ALL {
        // L-PREFLIGHT-AMBIGUOUS needs routes, L-ADMIN-PLAINTEXT the admin
        // section: corsgate-config raises and tests them.
        if id != LintId::PreflightAmbiguous && id != LintId::AdminPlaintext {
            assert!(seen.contains(&id), "{id} has no test");
        }
    }
}

#[test]
fn r6_seed_manifest_lints_as_documented() {
    let spec: PolicySpec = serde_json::from_str(
        r#"{"allowCredentials": true, "allowHeaders": ["Origin"], "allowMethods": ["GET", "POST", "OPTIONS"],
            "allowOrigins": ["https://example.com"], "exposeHeaders": ["Origin", "X-HTTPRoute-Header"], "maxAge": 86400}"#,
    )
    .unwrap();
    let ids: Vec<&str> = Policy::compile(&spec)
        .unwrap()
        .lints
        .iter()
        .map(|l| l.id.as_str())
        .collect();
    assert_eq!(
        ids,
        vec!["L-NOOP-OPTIONS", "L-NOOP-HEADER", "L-MAXAGE-CHROMIUM"]
    );
}

#[test]
fn p1_envoys_own_test_pattern_is_refused() {
    // Envoy's unit test uses `.*.envoyproxy.io`, which matches
    // https://evilenvoyproxy.io.
    let spec: PolicySpec =
        serde_json::from_str(r#"{"allowOriginRegexes": ["https://.*.envoyproxy.io"]}"#).unwrap();
    let err = Policy::compile(&spec).unwrap_err();
    let ids: Vec<&str> = err
        .lints
        .iter()
        .filter(|l| l.refuses())
        .map(|l| l.id.as_str())
        .collect();
    assert!(ids.contains(&"L-REGEX-DOT"), "{ids:?}");
}
