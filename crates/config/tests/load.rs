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

#[test]
fn lints_carry_the_location_of_what_they_are_about() {
    let yaml = "policies:\n  p:\n    allowOrigins: [\"https://*.github.io\"]\n    allowMethods: [GET]\n    maxAge: 86400\nvservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    cors: p\n";
    // L-PUBLIC-SUFFIX refuses; drop the subdomain to keep the config valid
    // and see the maxAge lint's location.
    let valid = yaml.replace("https://*.github.io", "https://a.example");
    let loaded = load_str(&valid, Some("gw.yaml")).unwrap();
    let lint = loaded
        .lints
        .iter()
        .find(|l| l.lint.id == corsgate_policy::LintId::MaxAgeChromium)
        .expect("maxAge lint");
    assert_eq!(lint.location, Some((5, 13)));
    let err = load_str(yaml, Some("gw.yaml")).unwrap_err();
    let e = err
        .0
        .iter()
        .find(|e| e.reason.contains("L-PUBLIC-SUFFIX"))
        .unwrap();
    assert_eq!(e.location, Some((3, 20)));
}

#[test]
fn policy_tests_run_on_load_and_a_failing_one_refuses_the_configuration() {
    let yaml = |allow: &str, deny: &str| {
        format!(
            "policies:\n  p:\n    allowOrigins: [\"https://*.example.com\"]\n    allowOriginRegexes: [\"https://app-[0-9]+\\\\.example\\\\.net\"]\n    tests:\n      allow: [{allow}]\n      deny: [{deny}]\nvservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    cors: p\n"
        )
    };
    // Passing tests: the config loads.
    load_str(
        &yaml(
            "https://a.example.com, https://app-7.example.net",
            "https://example.com, https://a.example.com.evil.net, https://app-x.example.net",
        ),
        Some("gw.yaml"),
    )
    .expect("passing policy tests");

    // The bare domain is not covered by the subdomain pattern, and a
    // look-alike is not refused because someone widened the regex.
    let text = yaml(
        "https://a.example.com, https://example.com",
        "https://app-1.example.net",
    );
    let err = load_str(&text, Some("gw.yaml")).unwrap_err();
    assert_eq!(err.0.len(), 2, "{err}");
    let allow = err
        .0
        .iter()
        .find(|e| e.path == "policies.p.tests.allow[1]")
        .expect("allow failure");
    assert!(allow.reason.contains("must be allowed"), "{allow}");
    assert!(
        allow.reason.contains("never matches the bare domain"),
        "{allow}"
    );
    assert_eq!(allow.location, Some((6, 38)), "{allow}");
    let deny = err
        .0
        .iter()
        .find(|e| e.path == "policies.p.tests.deny[0]")
        .expect("deny failure");
    assert!(
        deny.reason.contains("must be refused but is allowed by"),
        "{deny}"
    );
    assert_eq!(deny.location, Some((7, 14)), "{deny}");
}

/// `forward.maxIdleConnections` in the JSON schema `corsgate schema`
/// prints: a count from 0 to the bound the route compiler enforces,
/// default 512; and the loader reads it into the model.
#[test]
fn max_idle_connections_in_the_schema_and_the_model() {
    let schema = serde_json::to_value(schemars::schema_for!(corsgate_config::Config)).unwrap();
    let field = &schema["$defs"]["Forward"]["properties"]["maxIdleConnections"];
    assert_eq!(field["type"], "integer", "{field}");
    assert_eq!(field["minimum"], 0, "{field}");
    assert_eq!(
        field["maximum"],
        corsgate_config::MAX_IDLE_CONNECTIONS,
        "{field}"
    );
    assert_eq!(field["default"], 512, "{field}");

    for (extra, want) in [
        ("", 512),
        (", maxIdleConnections: 0", 0),
        (", maxIdleConnections: 7", 7),
    ] {
        let yaml = format!(
            "vservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    rules:\n      - forward: {{ upstreams: [\"http://127.0.0.1:1\"]{extra} }}\n"
        );
        let loaded = load_str(&yaml, None).unwrap_or_else(|e| panic!("{extra}: {e}"));
        let f = loaded.config.vservices[0].rules[0]
            .forward
            .as_ref()
            .unwrap();
        assert_eq!(f.max_idle_connections, want, "{extra}");
    }
}
