//! Gateway API import: every supported feature, precedence, what is
//! reported, and errors located in the manifests.

use corsgate_config::{check_str, load_file, NoteKind, Report};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Write `files` into a fresh directory and check `gw.yaml` there.
fn check_files(name: &str, files: &[(&str, &str)]) -> (Report, PathBuf) {
    let dir = std::env::temp_dir().join(format!("corsgate-gwapi-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (f, text) in files {
        std::fs::write(dir.join(f), text).unwrap();
    }
    let gw = dir.join("gw.yaml");
    let text = std::fs::read_to_string(&gw).unwrap();
    let report = check_str(&text, Some(&gw.display().to_string()));
    let _ = std::fs::remove_dir_all(&dir);
    (report, dir)
}

const TABLE: &str = "gatewayApi:\n  manifests: [m.yaml]\n  listeners:\n    infra/gw: \"127.0.0.1:0\"\n  backends:\n    apps/api:8080: \"http://127.0.0.1:9001\"\n    apps/v2:8080: \"http://127.0.0.1:9002\"\n";

const GATEWAY: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: infra }
spec:
  gatewayClassName: corsgate
  listeners:
    - name: http
      port: 80
      protocol: HTTP
      hostname: \"*.example.com\"
      allowedRoutes: { namespaces: { from: All } }
";

fn route(body: &str) -> String {
    format!(
        "{GATEWAY}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: api, namespace: apps }}
spec:
  parentRefs: [{{ name: gw, namespace: infra }}]
{body}"
    )
}

#[test]
fn the_seed_manifests_load_as_they_stand() {
    let loaded = load_file(&root().join("examples/gateway-api/gateway.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let c = &loaded.config;
    assert_eq!(c.vservices.len(), 1);
    let vs = &c.vservices[0];
    assert_eq!(vs.listen, "127.0.0.1:8080");
    // The Gateway-wide policy binds the vService; the route's CORS filter
    // binds its rule and so takes precedence (R16).
    assert_eq!(
        vs.cors.as_deref(),
        Some("agentgatewaypolicy:agentgateway-system/httpbin-cors")
    );
    assert_eq!(vs.rules.len(), 1);
    assert_eq!(
        vs.rules[0].cors.as_deref(),
        Some("httproute:httpbin/httpbin:rule0")
    );
    assert_eq!(
        vs.rules[0].forward.as_ref().unwrap().upstreams,
        ["http://127.0.0.1:9000"]
    );
    let route_policy = &c.policies["httproute:httpbin/httpbin:rule0"];
    assert_eq!(
        route_policy.expose_headers,
        ["Origin", "X-HTTPRoute-Header"]
    );
    assert_eq!(route_policy.max_age, Some(86400));
    let gw_policy = &c.policies["agentgatewaypolicy:agentgateway-system/httpbin-cors"];
    assert_eq!(
        gw_policy.expose_headers,
        ["Origin", "X-TrafficPolicy-Header"]
    );
}

#[test]
fn matches_filters_and_backends_become_rules() {
    let m = route(
        "  hostnames: [api.example.com]
  rules:
    - matches:
        - path: { type: Exact, value: /health }
          method: GET
        - path: { type: RegularExpression, value: \"/items/[0-9]+\" }
          headers: [{ name: x-tenant, value: acme }, { type: RegularExpression, name: x-v, value: \"v[12]\" }]
          queryParams: [{ name: debug, value: \"1\" }, { type: RegularExpression, name: page, value: \"[0-9]+\" }]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: X-Set, value: a }], add: [{ name: x-add, value: b }], remove: [x-drop] }
        - type: ResponseHeaderModifier
          responseHeaderModifier: { set: [{ name: x-resp, value: c }] }
        - type: URLRewrite
          urlRewrite: { hostname: internal, path: { type: ReplaceFullPath, replaceFullPath: /x } }
      backendRefs:
        - { name: api, port: 8080, weight: 1 }
        - { name: v2, port: 8080, weight: 3 }
      timeouts: { request: 1m30s }
    - matches: [{ path: { type: PathPrefix, value: /old } }]
      filters:
        - type: RequestRedirect
          requestRedirect: { scheme: https, path: { type: ReplacePrefixMatch, replacePrefixMatch: /new }, statusCode: 301 }
",
    );
    let (report, _) = check_files("features", &[("gw.yaml", TABLE), ("m.yaml", &m)]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let c = &report.loaded.as_ref().unwrap().config;
    let rules = &c.vservices[0].rules;
    assert_eq!(rules.len(), 3);
    // Exact path first, then the regex match (no prefix), ... the redirect
    // with the prefix /old sorts before the regex: exact, prefix, regex.
    let exact = &rules[0];
    assert_eq!(
        exact.matches.path.as_ref().unwrap().exact.as_deref(),
        Some("/health")
    );
    assert_eq!(exact.matches.methods, ["GET"]);
    assert_eq!(exact.matches.hosts, ["api.example.com"]);
    let redirect = &rules[1];
    let rd = redirect.redirect.as_ref().unwrap();
    assert_eq!((rd.scheme.as_deref(), rd.status), (Some("https"), 301));
    assert_eq!(rd.path.as_ref().unwrap().prefix.as_deref(), Some("/new"));
    let re = &rules[2];
    assert_eq!(
        re.matches.path.as_ref().unwrap().regex.as_deref(),
        Some("/items/[0-9]+")
    );
    assert_eq!(re.matches.headers.len(), 2);
    assert_eq!(re.matches.headers[1].regex.as_deref(), Some("v[12]"));
    assert_eq!(re.matches.query[0].value.as_deref(), Some("1"));
    assert_eq!(re.matches.query[1].regex.as_deref(), Some("[0-9]+"));
    assert_eq!(re.request_headers.set["x-set"], "a");
    assert_eq!(re.request_headers.remove, ["x-drop"]);
    assert_eq!(re.response_headers.set["x-resp"], "c");
    let f = re.forward.as_ref().unwrap();
    assert_eq!(f.timeout_ms, 90_000);
    // An imported rule keeps the native default of idle connections.
    assert_eq!(f.max_idle_connections, 512);
    assert_eq!(
        f.rewrite.as_ref().unwrap().hostname.as_deref(),
        Some("internal")
    );
    // Weights 1:3 → one entry for api, three for v2.
    assert_eq!(
        f.upstreams,
        [
            "http://127.0.0.1:9001",
            "http://127.0.0.1:9002",
            "http://127.0.0.1:9002",
            "http://127.0.0.1:9002"
        ]
    );
}

#[test]
fn precedence_follows_the_gateway_api_across_routes() {
    let m = format!(
        "{}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: older, namespace: apps, creationTimestamp: \"2020-01-01T00:00:00Z\" }}
spec:
  parentRefs: [{{ name: gw, namespace: infra }}]
  rules:
    - matches: [{{ path: {{ type: PathPrefix, value: /a }} }}]
      backendRefs: [{{ name: api, port: 8080 }}]
",
        route(
            "  rules:
    - matches:
        - path: { type: PathPrefix, value: /a }
        - path: { type: PathPrefix, value: /a/b }
        - path: { type: PathPrefix, value: /a }
          method: POST
        - path: { type: PathPrefix, value: /a }
          headers: [{ name: x, value: y }]
      backendRefs: [{ name: api, port: 8080 }]
"
        )
    );
    let m = m.replace(
        "metadata: { name: api, namespace: apps }",
        "metadata: { name: api, namespace: apps, creationTimestamp: \"2024-01-01T00:00:00Z\" }",
    );
    let (report, _) = check_files("precedence", &[("gw.yaml", TABLE), ("m.yaml", &m)]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let names: Vec<_> = report.loaded.unwrap().config.vservices[0]
        .rules
        .iter()
        .map(|r| r.name.clone().unwrap())
        .collect();
    // Longest prefix; then method; then headers; then the older route; then
    // the newer one.
    assert_eq!(
        names,
        [
            "apps/api#0.1",
            "apps/api#0.2",
            "apps/api#0.3",
            "apps/older#0.0",
            "apps/api#0.0"
        ]
    );
}

#[test]
fn anything_not_implemented_is_reported_never_dropped() {
    let m = route(
        "  rules:
    - matches: [{ path: { type: PathPrefix, value: / } }]
      sessionPersistence: { type: Cookie }
      filters:
        - type: RequestMirror
          requestMirror: { backendRef: { name: api, port: 8080 } }
      backendRefs:
        - { name: api, port: 8080, filters: [] }
        - { name: missing, port: 1 }
",
    )
    .replace(
        "  gatewayClassName: corsgate\n",
        "  gatewayClassName: corsgate\n  addresses: [{ value: 10.0.0.1 }]\n",
    );
    let (report, _) = check_files("unsupported", &[("gw.yaml", TABLE), ("m.yaml", &m)]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let unsupported: Vec<_> = report
        .notes
        .iter()
        .filter(|n| n.kind == NoteKind::Unsupported)
        .map(|n| (n.path.as_str(), n.location.map(|l| l.0)))
        .collect();
    for (path, line) in [
        ("spec.addresses", Some(6)),
        ("spec.rules[0].sessionPersistence", Some(21)),
        ("spec.rules[0].filters[0]", Some(23)),
        ("spec.rules[0].backendRefs[0].filters", Some(26)),
        ("spec.rules[0].backendRefs[1]", Some(27)),
    ] {
        assert!(
            unsupported.contains(&(path, line)),
            "{path} at {line:?} not in {unsupported:?}"
        );
    }
}

#[test]
fn any_origin_with_credentials_is_refused_with_the_opt_in_named_and_located() {
    let m = route(
        "  rules:
    - filters:
        - type: CORS
          cors:
            allowOrigins: [\"*\"]
            allowCredentials: true
      backendRefs: [{ name: api, port: 8080 }]
",
    );
    let (report, dir) = check_files("r5", &[("gw.yaml", TABLE), ("m.yaml", &m)]);
    assert!(report.loaded.is_none());
    let e = report
        .errors
        .iter()
        .find(|e| e.path.ends_with("allowOrigins[0]"))
        .unwrap_or_else(|| panic!("{:?}", report.errors));
    assert!(
        e.reason.contains("unsafeAllowAnyOriginWithCredentials"),
        "{e}"
    );
    assert_eq!(
        e.file.as_deref(),
        Some(dir.join("m.yaml").display().to_string().as_str())
    );
    assert_eq!(e.location, Some((22, 28)), "{e}");
    assert!(report
        .notes
        .iter()
        .any(|n| n.kind == NoteKind::Compat && n.message.contains("R5")));
}

#[test]
fn a_gateway_policy_covers_routes_without_their_own_filter() {
    let m = format!(
        "{}---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayPolicy
metadata: {{ name: cors, namespace: infra }}
spec:
  targetRefs: [{{ group: gateway.networking.k8s.io, kind: Gateway, name: gw }}]
  traffic:
    cors: {{ allowOrigins: [\"https://app.example.com\"] }}
",
        route("  rules:\n    - backendRefs: [{ name: api, port: 8080 }]\n")
    );
    let (report, _) = check_files("gwpolicy", &[("gw.yaml", TABLE), ("m.yaml", &m)]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let c = report.loaded.unwrap().config;
    assert_eq!(
        c.vservices[0].cors.as_deref(),
        Some("agentgatewaypolicy:infra/cors")
    );
    assert_eq!(c.vservices[0].rules[0].cors, None);
    assert_eq!(c.vservices[0].hostnames, ["*.example.com"]);
}

#[test]
fn an_unknown_parent_gateway_is_an_error_in_the_manifest() {
    let m = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: r, namespace: apps }\nspec:\n  parentRefs:\n    - name: nowhere\n  rules: []\n";
    let (report, _) = check_files("noparent", &[("gw.yaml", TABLE), ("m.yaml", m)]);
    let e = report
        .errors
        .iter()
        .find(|e| e.reason.contains("apps/nowhere"))
        .unwrap_or_else(|| panic!("{:?}", report.errors));
    assert_eq!(e.location, Some((6, 7)));
}

#[test]
fn a_bare_manifest_file_can_be_checked() {
    let text =
        std::fs::read_to_string(root().join("examples/gateway-api/seed-httproute.yaml")).unwrap();
    let report = check_str(&text, Some("seed-httproute.yaml"));
    // No Gateway and no listener table: the parentRef cannot resolve.
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.reason.contains("agentgateway-system/agentgateway-proxy")),
        "{:?}",
        report.errors
    );
    assert!(report
        .notes
        .iter()
        .any(|n| n.message.contains("documentation snippet")));
}

/// Filters the import used to resolve silently (the second of two CORS
/// filters won, a status given as a string became 302, a rewrite next to a
/// redirect was dropped, a filter that is not a mapping was skipped) are
/// refused in the manifest, with their IDs: `(filters, id, line, column)`.
/// The filters start on line 21 of the manifest.
#[test]
fn filters_that_would_resolve_silently_are_refused_in_the_manifest() {
    let cors =
        |o: &str| format!("        - type: CORS\n          cors: {{ allowOrigins: [\"{o}\"] }}\n");
    let cases: Vec<(String, Option<&str>, usize, usize)> = vec![
        (
            cors("https://a.example") + &cors("https://b.example"),
            Some("duplicate-cors-filter"),
            23,
            11,
        ),
        (
            "        - { type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: a, value: b }] } }\n        - { type: RequestHeaderModifier, requestHeaderModifier: { remove: [a] } }\n".into(),
            Some("duplicate-filter"),
            22,
            11,
        ),
        (
            "        - { type: URLRewrite, urlRewrite: { hostname: a.example } }\n        - { type: RequestRedirect, requestRedirect: { statusCode: \"301\" } }\n".into(),
            Some("invalid-redirect-status"),
            22,
            67,
        ),
        (
            "        - { type: RequestRedirect, requestRedirect: { port: -1, hostname: a.example } }\n        - { type: URLRewrite, urlRewrite: { hostname: a.example } }\n".into(),
            Some("invalid-port"),
            21,
            61,
        ),
        (
            "        - { type: RequestRedirect, requestRedirect: { hostname: a.example } }\n        - { type: URLRewrite, urlRewrite: { hostname: a.example } }\n".into(),
            Some("redirect-with-rewrite"),
            22,
            11,
        ),
        (
            "        - { type: ResponseHeaderModifier, responseHeaderModifier: { add: [{ name: a, value: b }] } }\n        - { type: RequestRedirect, requestRedirect: null }\n".into(),
            None,
            22,
            53,
        ),
    ];
    for (i, (filters, id, line, col)) in cases.iter().enumerate() {
        let body = format!(
            "  rules:\n    - backendRefs: [{{ name: api, port: 8080 }}]\n      filters:\n{filters}"
        );
        let (report, _) = check_files(
            &format!("filters{i}"),
            &[("gw.yaml", TABLE), ("m.yaml", &route(&body))],
        );
        let e = report
            .errors
            .iter()
            .find(|e| e.id == *id && e.file.as_deref().is_some_and(|f| f.ends_with("m.yaml")))
            .unwrap_or_else(|| panic!("no {id:?} error for\n{filters}: {:?}", report.errors));
        assert_eq!(e.location, Some((*line, *col)), "{filters}{e}");
        assert!(report.loaded.is_none());
    }
}
