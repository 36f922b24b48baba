//! Loading and validation of the native configuration.

use corsgate_config::load_str;

#[test]
fn syntax_and_type_errors_carry_line_and_column() {
    let yaml = "vservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    rulez: []\n";
    let err = load_str(yaml, Some("gw.yaml")).unwrap_err();
    let e = &err.0[0];
    assert_eq!(e.file.as_deref(), Some("gw.yaml"));
    let (line, _col) = e.location.expect("location");
    assert_eq!(line, 4, "{e}");
    assert!(e.reason.contains("unknown field `rulez`"), "{e}");
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    let yaml = r#"
policies:
  bad:
    allowOrigins: ["*"]
    allowCredentials: true
  worse:
    allowOrigins: ["https://*.github.io"]
vservices:
  - name: a
    listen: "nonsense"
    cors: missing
    rules:
      - match: { path: { prefix: "x" } }
        forward: { upstreams: ["ftp://x"] }
        direct: { status: 200 }
"#;
    let err = load_str(yaml, Some("gw.yaml")).unwrap_err();
    let text = err.to_string();
    for needle in [
        "policies.bad.allowOrigins[0]",
        "credentials-with-any-origin",
        "policies.worse.allowOrigins[0]",
        "L-PUBLIC-SUFFIX",
        "vservices[0].listen",
        "no policy named \"missing\"",
        "exactly one action",
        "a path starts with /",
        "not an http://host:port URL",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert_eq!(err.0.len(), 7, "{text}");
}

#[test]
fn a_valid_config_loads_with_lints() {
    let yaml = r#"
policies:
  seed:
    allowCredentials: true
    allowHeaders: [Origin]
    allowMethods: [GET, POST, OPTIONS]
    allowOrigins: ["https://example.com"]
    exposeHeaders: [Origin, X-HTTPRoute-Header]
    maxAge: 86400
vservices:
  - name: a
    listen: "127.0.0.1:0"
    cors: seed
    rules:
      - match: { path: { prefix: / } }
        direct: { status: 204 }
"#;
    let loaded = load_str(yaml, None).unwrap();
    let ids: Vec<&str> = loaded.lints.iter().map(|l| l.lint.id.as_str()).collect();
    assert_eq!(
        ids,
        ["L-NOOP-OPTIONS", "L-NOOP-HEADER", "L-MAXAGE-CHROMIUM"]
    );
}

#[test]
fn the_examples_load() {
    for file in ["apis.yaml", "tenants.yaml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(file);
        corsgate_config::load_file(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

#[test]
fn r17_preflight_ambiguous_rules_are_linted() {
    let base = r#"
policies:
  partner: { allowOrigins: ["https://partner.test"] }
  public: { allowOrigins: ["*"] }
vservices:
  - name: a
    listen: "127.0.0.1:0"
    rules:
      - match: { path: { prefix: /api }, headers: [{ name: x-partner, value: "yes" }] }
        cors: partner
        direct: { status: 200 }
      - match: { path: { prefix: /api } }
        cors: public
        direct: { status: 200 }
"#;
    let lints = load_str(base, None).unwrap().lints;
    let ambiguous: Vec<_> = lints
        .iter()
        .filter(|l| l.lint.id.as_str() == "L-PREFLIGHT-AMBIGUOUS")
        .collect();
    assert_eq!(ambiguous.len(), 1, "{lints:?}");
    assert_eq!(ambiguous[0].path, "vservices[0].rules[1]");
    assert!(ambiguous[0]
        .lint
        .message
        .contains("\"partner\" answers them instead of \"public\""));
    // Distinguishable by a header-presence condition: no lint.
    let presence = base.replace(
        r#"{ name: x-partner, value: "yes" }"#,
        "{ name: x-partner }",
    );
    let lints = load_str(&presence, None).unwrap().lints;
    assert!(
        lints
            .iter()
            .all(|l| l.lint.id.as_str() != "L-PREFLIGHT-AMBIGUOUS"),
        "{lints:?}"
    );
    // Different paths: no lint.
    let paths = base.replace(
        "match: { path: { prefix: /api } }",
        "match: { path: { prefix: /other } }",
    );
    let lints = load_str(&paths, None).unwrap().lints;
    assert!(
        lints
            .iter()
            .all(|l| l.lint.id.as_str() != "L-PREFLIGHT-AMBIGUOUS"),
        "{lints:?}"
    );
}
