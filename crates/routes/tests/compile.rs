//! The route compiler through the whole load: every refusal located in
//! the file, line and column it is about, with its stable ID, all at once.

use corsgate_routes::{check_str, load_str, RouteErrorId};

const BASE: &str = "vservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n";

/// `BASE` with one rule (`rule` is the rule's mapping, indented for
/// `rules:`).
fn with_rule(rule: &str) -> String {
    format!("{BASE}    rules:\n      - {rule}\n")
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
        "rule-action",
        "invalid-listen",
        "a path starts with /",
        "not an http://host:port URL",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert_eq!(err.0.len(), 7, "{text}");
}

/// Every error points at the offending text: `(config, path or "" for a
/// parse error, line, column, words of the reason)`.
#[test]
fn every_error_carries_the_line_and_column_of_the_offending_text() {
    const BASE: &str = "vservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n";
    let cases: &[(&str, &str, usize, usize, &str)] = &[
        // YAML syntax: an unclosed flow sequence.
        ("policies:\n  p:\n    allowOrigins: [\"https://a.example\"\n", "", 4, 1, "did not find expected"),
        // Unknown field.
        ("policies:\n  p:\n    allowOrigin: [https://a.example]\n", "", 3, 5, "unknown field `allowOrigin`"),
        // Wrong type.
        ("policies:\n  p:\n    allowOrigins: [https://a.example]\n    maxAge: soon\n", "", 4, 13, "invalid type"),
        // A reference to a policy that does not exist.
        ("vservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    rules:\n      - cors: missing\n        direct: { status: 200 }\n", "vservices[0].rules[0].cors", 5, 15, "no policy named \"missing\""),
        // An origin the engine refuses, second in its list.
        ("policies:\n  p:\n    allowOrigins:\n      - https://a.example\n      - \"https://a.example/path\"\n", "policies.p.allowOrigins[1]", 5, 9, "path"),
        // A bad listen address, in a flow mapping.
        ("vservices:\n  - { name: a, listen: nowhere }\n", "vservices[0].listen", 2, 24, "not an address"),
        // An invalid header regex, deep in a rule.
        ("vservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    rules:\n      - match:\n          headers:\n            - { name: x-t, regex: \"(\" }\n        direct: { status: 200 }\n", "vservices[0].rules[0].match.headers[0].regex", 7, 35, "regex"),
        // h2c is never tunnelled, and a protocol is a token.
        ("vservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    rules:\n      - forward: { upstreams: [\"http://127.0.0.1:1\"], upgrades: [websocket, h2c] }\n", "vservices[0].rules[0].forward.upgrades[1]", 5, 77, "h2c is never tunnelled"),
        ("vservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    rules:\n      - forward: { upstreams: [\"http://127.0.0.1:1\"], upgrades: [\"web socket\"] }\n", "vservices[0].rules[0].forward.upgrades[0]", 5, 66, "not a protocol name"),
        // Connection and stream caps of zero would refuse everything.
        ("vservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    limits: { maxConnections: 0 }\n", "vservices[0].limits.maxConnections", 4, 31, "not between 1 and"),
        ("vservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    limits: { http2MaxConcurrentStreams: 0 }\n", "vservices[0].limits.http2MaxConcurrentStreams", 4, 42, "not between 1 and"),
    ];
    for (yaml, path, line, col, words) in cases {
        let text = if yaml.contains("vservices") {
            (*yaml).to_owned()
        } else {
            format!("{yaml}{BASE}")
        };
        let err = load_str(&text, Some("gw.yaml")).expect_err(yaml);
        let e = err
            .0
            .iter()
            .find(|e| e.path == *path)
            .unwrap_or_else(|| panic!("no error at {path:?}: {err}"));
        assert_eq!(e.location, Some((*line, *col)), "{path}: {e}");
        assert!(e.reason.contains(words), "{path}: {e}");
        // The message shows the source line with a caret under the column.
        let snippet = e.snippet.as_deref().expect("snippet");
        let source = text.lines().nth(line - 1).unwrap();
        assert!(snippet.contains(source), "{snippet}");
        let caret = snippet.lines().last().unwrap();
        assert_eq!(
            caret.find('^').unwrap() - caret.find('|').unwrap() - 2,
            col - 1,
            "{snippet}"
        );
        assert!(
            e.to_string()
                .starts_with(&format!("gw.yaml:{line}:{col}: ")),
            "{e}"
        );
    }
}

#[test]
fn the_examples_pass_the_route_compiler() {
    for file in ["apis.yaml", "tenants.yaml", "gateway-api/gateway.yaml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(file);
        if path.exists() {
            corsgate_routes::load_file(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }
}

/// Every value the router used to drop or replace, and every check moved
/// here from the loader: `(rule, path, id, line, column)`. Line 5 is the
/// rule's line in [`with_rule`]; the column points at the value.
#[test]
fn every_refusal_has_its_id_and_location() {
    let cases: &[(&str, &str, &str, usize, usize)] = &[
        // A method list in one string used to match every method.
        (
            r#"{ match: { methods: ["GET,POST"] }, direct: { status: 200 } }"#,
            "vservices[0].rules[0].match.methods[0]",
            "invalid-method",
            5,
            30,
        ),
        (
            r#"{ match: { methods: [get] }, direct: { status: 200 } }"#,
            "vservices[0].rules[0].match.methods[0]",
            "invalid-method",
            5,
            30,
        ),
        (
            r#"{ match: { methods: ["GET POST"] }, direct: { status: 200 } }"#,
            "vservices[0].rules[0].match.methods[0]",
            "invalid-method",
            5,
            30,
        ),
        // A header condition whose name is not a token used to be dropped.
        (
            r#"{ match: { headers: [{ name: "x y" }] }, direct: { status: 200 } }"#,
            "vservices[0].rules[0].match.headers[0].name",
            "invalid-header-name",
            5,
            38,
        ),
        // value and regex: the regex used to be ignored.
        (
            r#"{ match: { headers: [{ name: x, value: a, regex: "b.*" }] }, direct: { status: 200 } }"#,
            "vservices[0].rules[0].match.headers[0]",
            "conflicting-match",
            5,
            30,
        ),
        (
            r#"{ match: { headers: [{ name: x, regex: "(" }] }, direct: { status: 200 } }"#,
            "vservices[0].rules[0].match.headers[0].regex",
            "invalid-regex",
            5,
            48,
        ),
        (
            r#"{ match: { query: [{ name: q, regex: "[" }] }, direct: { status: 200 } }"#,
            "vservices[0].rules[0].match.query[0].regex",
            "invalid-regex",
            5,
            46,
        ),
        (
            r#"{ match: { query: [{ name: "" }] }, direct: { status: 200 } }"#,
            "vservices[0].rules[0].match.query[0].name",
            "invalid-query",
            5,
            36,
        ),
        (
            r#"{ match: { path: { regex: "(" } }, direct: { status: 200 } }"#,
            "vservices[0].rules[0].match.path.regex",
            "invalid-regex",
            5,
            35,
        ),
        (
            r#"{ match: { path: { exact: /a, prefix: /b } }, direct: { status: 200 } }"#,
            "vservices[0].rules[0].match.path",
            "invalid-path-match",
            5,
            20,
        ),
        (
            r#"{ match: { path: { prefix: "a" } }, direct: { status: 200 } }"#,
            "vservices[0].rules[0].match.path.prefix",
            "invalid-path",
            5,
            36,
        ),
        (
            r#"{ match: { path: { exact: "/a b" } }, direct: { status: 200 } }"#,
            "vservices[0].rules[0].match.path.exact",
            "invalid-path",
            5,
            35,
        ),
        // Requests are routed on their normalised path: a condition not in
        // that form would match nothing.
        (
            r#"{ match: { path: { prefix: "/a//b" } }, direct: { status: 200 } }"#,
            "vservices[0].rules[0].match.path.prefix",
            "invalid-path",
            5,
            36,
        ),
        (
            r#"{ match: { path: { exact: "/a/../b" } }, direct: { status: 200 } }"#,
            "vservices[0].rules[0].match.path.exact",
            "invalid-path",
            5,
            35,
        ),
        (
            r#"{ match: { path: { prefix: "/%69nternal" } }, direct: { status: 200 } }"#,
            "vservices[0].rules[0].match.path.prefix",
            "invalid-path",
            5,
            36,
        ),
        (
            r#"{ match: { path: { prefix: "/caf%c3%a9" } }, direct: { status: 200 } }"#,
            "vservices[0].rules[0].match.path.prefix",
            "invalid-path",
            5,
            36,
        ),
        (
            r#"{ match: { hosts: ["api.example.com:8080"] }, direct: { status: 200 } }"#,
            "vservices[0].rules[0].match.hosts[0]",
            "invalid-host",
            5,
            28,
        ),
        // Direct answers: an invalid status used to become 200, invalid
        // headers were dropped.
        (
            r#"{ direct: { status: 99 } }"#,
            "vservices[0].rules[0].direct.status",
            "invalid-status",
            5,
            29,
        ),
        (
            r#"{ direct: { status: 101 } }"#,
            "vservices[0].rules[0].direct.status",
            "invalid-status",
            5,
            29,
        ),
        (
            r#"{ direct: { status: 200, headers: { "x y": v } } }"#,
            "vservices[0].rules[0].direct.headers.x y",
            "invalid-header-name",
            5,
            52,
        ),
        (
            r#"{ direct: { status: 200, headers: { x: "a\u0001b" } } }"#,
            "vservices[0].rules[0].direct.headers.x",
            "invalid-header-value",
            5,
            48,
        ),
        // Redirects: an invalid location used to become `/`.
        (
            r#"{ redirect: { location: "/a\u0001" } }"#,
            "vservices[0].rules[0].redirect.location",
            "invalid-location",
            5,
            33,
        ),
        (
            r#"{ redirect: { location: /a, status: 300 } }"#,
            "vservices[0].rules[0].redirect.status",
            "invalid-redirect-status",
            5,
            45,
        ),
        (
            r#"{ redirect: { location: /a, status: 200 } }"#,
            "vservices[0].rules[0].redirect.status",
            "invalid-redirect-status",
            5,
            45,
        ),
        (
            r#"{ redirect: { location: /a, port: 81 } }"#,
            "vservices[0].rules[0].redirect",
            "redirect-conflict",
            5,
            11,
        ),
        // A redirect that replaces nothing loops.
        (
            r#"{ redirect: {} }"#,
            "vservices[0].rules[0].redirect",
            "redirect-loop",
            5,
            11,
        ),
        (
            r#"{ redirect: { scheme: ftp } }"#,
            "vservices[0].rules[0].redirect.scheme",
            "invalid-scheme",
            5,
            31,
        ),
        (
            r#"{ redirect: { hostname: "a b" } }"#,
            "vservices[0].rules[0].redirect.hostname",
            "invalid-host",
            5,
            33,
        ),
        (
            r#"{ redirect: { port: 0 } }"#,
            "vservices[0].rules[0].redirect.port",
            "invalid-port",
            5,
            29,
        ),
        (
            r#"{ redirect: { path: { full: "x" } } }"#,
            "vservices[0].rules[0].redirect.path.full",
            "invalid-path",
            5,
            37,
        ),
        (
            r#"{ redirect: { path: { prefix: /x } } }"#,
            "vservices[0].rules[0].redirect.path",
            "invalid-path-rewrite",
            5,
            23,
        ),
        // Rewrites: an unparsable path used to forward the original path,
        // an invalid Host the client's.
        (
            r#"{ match: { path: { prefix: /a } }, forward: { upstreams: ["http://127.0.0.1:1"], rewrite: { path: { prefix: "/b c" } } } }"#,
            "vservices[0].rules[0].forward.rewrite.path.prefix",
            "invalid-path",
            5,
            117,
        ),
        (
            r#"{ forward: { upstreams: ["http://127.0.0.1:1"], rewrite: { path: { full: "/x\ty" } } } }"#,
            "vservices[0].rules[0].forward.rewrite.path.full",
            "invalid-path",
            5,
            82,
        ),
        (
            r#"{ forward: { upstreams: ["http://127.0.0.1:1"], rewrite: { path: { full: /a, prefix: /b } } } }"#,
            "vservices[0].rules[0].forward.rewrite.path",
            "invalid-path-rewrite",
            5,
            68,
        ),
        (
            r#"{ forward: { upstreams: ["http://127.0.0.1:1"], rewrite: { hostname: "a/b" } } }"#,
            "vservices[0].rules[0].forward.rewrite.hostname",
            "invalid-host",
            5,
            78,
        ),
        (
            r#"{ forward: { upstreams: [] } }"#,
            "vservices[0].rules[0].forward.upstreams",
            "no-upstream",
            5,
            22,
        ),
        (
            r#"{ forward: { upstreams: ["https://x:1"] } }"#,
            "vservices[0].rules[0].forward.upstreams[0]",
            "invalid-upstream",
            5,
            34,
        ),
        (
            r#"{ forward: { upstreams: ["http://x"] } }"#,
            "vservices[0].rules[0].forward.upstreams[0]",
            "invalid-upstream",
            5,
            34,
        ),
        (
            r#"{ forward: { upstreams: ["http://x:1/base"] } }"#,
            "vservices[0].rules[0].forward.upstreams[0]",
            "invalid-upstream",
            5,
            34,
        ),
        (
            r#"{ forward: { upstreams: ["http://u@x:1"] } }"#,
            "vservices[0].rules[0].forward.upstreams[0]",
            "invalid-upstream",
            5,
            34,
        ),
        (
            r#"{ forward: { upstreams: ["http://x:0"] } }"#,
            "vservices[0].rules[0].forward.upstreams[0]",
            "invalid-upstream",
            5,
            34,
        ),
        // Header changes with invalid names or values used to be dropped.
        (
            r#"{ direct: { status: 200 }, requestHeaders: { set: { "x y": v } } }"#,
            "vservices[0].rules[0].requestHeaders.set.x y",
            "invalid-header-name",
            5,
            68,
        ),
        (
            r#"{ direct: { status: 200 }, responseHeaders: { add: { x: "\n" } } }"#,
            "vservices[0].rules[0].responseHeaders.add.x",
            "invalid-header-value",
            5,
            65,
        ),
        (
            r#"{ direct: { status: 200 }, requestHeaders: { remove: ["a:b"] } }"#,
            "vservices[0].rules[0].requestHeaders.remove[0]",
            "invalid-header-name",
            5,
            63,
        ),
        (
            r#"{ cors: nope, direct: { status: 200 } }"#,
            "vservices[0].rules[0].cors",
            "unknown-policy",
            5,
            17,
        ),
        (
            r#"{ match: {} }"#,
            "vservices[0].rules[0]",
            "rule-action",
            5,
            9,
        ),
    ];
    for (rule, path, id, line, col) in cases {
        let text = with_rule(rule);
        let err = load_str(&text, Some("gw.yaml")).expect_err(rule);
        let e = err
            .0
            .iter()
            .find(|e| e.path == *path)
            .unwrap_or_else(|| panic!("no error at {path:?} for {rule}: {err}"));
        assert_eq!(e.id, Some(*id), "{rule}: {e}");
        assert_eq!(e.location, Some((*line, *col)), "{rule}: {e}");
        assert_eq!(e.file.as_deref(), Some("gw.yaml"));
        assert!(e.to_string().contains(&format!("({id})")), "{e}");
        assert!(RouteErrorId::ALL.iter().any(|i| i.as_str() == *id), "{id}");
    }
}

/// The vService-level checks, also located.
#[test]
fn vservice_refusals_are_located() {
    let cases: &[(&str, &str, &str, usize, usize)] = &[
        ("vservices:\n  - { name: a, listen: nowhere }\n", "vservices[0].listen", "invalid-listen", 2, 24),
        ("vservices:\n  - { name: a, listen: \"127.0.0.1:1\" }\n  - { name: a, listen: \"127.0.0.1:1\" }\n", "vservices[1].name", "duplicate-vservice", 3, 13),
        ("vservices:\n  - { name: a, listen: \"127.0.0.1:1\" }\n  - { name: b, listen: \"127.0.0.1:1\" }\n", "vservices[1].listen", "duplicate-listen", 3, 24),
        ("vservices:\n  - { name: a, listen: \"127.0.0.1:0\", limits: { idleTimeoutMs: 0 } }\n", "vservices[0].limits.idleTimeoutMs", "invalid-timeout", 2, 64),
        ("vservices:\n  - { name: a, listen: \"127.0.0.1:0\", hostnames: [\"*\"] }\n", "vservices[0].hostnames[0]", "invalid-host", 2, 51),
        ("vservices:\n  - { name: a, listen: \"127.0.0.1:0\", pathCors: [{ prefix: x, cors: p }] }\n", "vservices[0].pathCors[0].prefix", "invalid-path", 2, 60),
        ("vservices:\n  - { name: a, listen: \"127.0.0.1:0\", hostCors: { \"a:1\": p } }\n", "vservices[0].hostCors.a:1", "invalid-host", 2, 58),
        ("cors: gone\nvservices:\n  - { name: a, listen: \"127.0.0.1:0\" }\n", "cors", "unknown-policy", 1, 7),
        ("vservices: []\n", "vservices", "no-vservices", 1, 1),
    ];
    for (yaml, path, id, line, col) in cases {
        let text = format!("policies:\n  p: {{ allowOrigins: [\"https://a.test\"] }}\n{yaml}");
        let err = load_str(&text, Some("gw.yaml")).expect_err(yaml);
        let e = err
            .0
            .iter()
            .find(|e| e.path == *path)
            .unwrap_or_else(|| panic!("no error at {path:?}: {err}"));
        assert_eq!(e.id, Some(*id), "{yaml}: {e}");
        assert_eq!(
            e.location.map(|(l, c)| (l - 2, c)),
            Some((*line, *col)),
            "{yaml}: {e}"
        );
    }
}

/// The loader's errors and the compiler's come in one report.
#[test]
fn a_refused_policy_and_a_refused_rule_are_reported_together() {
    let text = "policies:\n  p: { allowOrigins: [\"https://a.test/x\"] }\nvservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    rules:\n      - { cors: p, match: { methods: [\"GET,POST\"] }, direct: { status: 200 } }\n";
    let report = check_str(text, Some("gw.yaml"));
    assert!(report.loaded.is_none());
    let paths: Vec<_> = report
        .errors
        .iter()
        .map(|e| (e.path.as_str(), e.id))
        .collect();
    assert!(
        paths.contains(&("policies.p.allowOrigins[0]", None)),
        "{paths:?}"
    );
    assert!(
        paths.contains(&(
            "vservices[0].rules[0].match.methods[0]",
            Some("invalid-method")
        )),
        "{paths:?}"
    );
    assert!(
        paths.contains(&("vservices[0].rules[0].cors", Some("refused-policy"))),
        "{paths:?}"
    );
}

#[test]
fn a_valid_rule_set_compiles() {
    let text = with_rule(
        r#"{ match: { methods: [GET, POST, PURGE], path: { prefix: /a }, hosts: ["*.example.com", "[::1]"], headers: [{ name: x, regex: "a+" }] }, forward: { upstreams: ["http://127.0.0.1:1"], rewrite: { hostname: b.example, path: { prefix: "" } } } }"#,
    );
    let loaded = load_str(&text, None).unwrap_or_else(|e| panic!("{e}"));
    let vs = corsgate_routes::compile(&loaded).unwrap();
    assert_eq!(vs[0].rules.len(), 1);
}

/// `forward.maxIdleConnections`: what is accepted and what it compiles
/// to, and what is refused, where, and why. `Ok(n)`: compiles to `n`
/// connections kept per upstream; `Err((path, id, column))`: refused.
#[test]
fn max_idle_connections_are_bounded_and_located() {
    type Want = Result<usize, (&'static str, Option<&'static str>, usize)>;
    let at = "vservices[0].rules[0].forward.maxIdleConnections";
    let cases: &[(&str, Want)] = &[
        ("", Ok(512)),
        (", maxIdleConnections: 0", Ok(0)),
        (", maxIdleConnections: 1", Ok(1)),
        (", maxIdleConnections: 65535", Ok(65_535)),
        (", http2: true, maxIdleConnections: 2", Ok(2)),
        // Past what one local address can open to one upstream.
        (
            ", maxIdleConnections: 65536",
            Err((at, Some("invalid-limit"), 77)),
        ),
        (
            ", maxIdleConnections: 4294967295",
            Err((at, Some("invalid-limit"), 77)),
        ),
        // Not a count at all: refused by the loader, at the value.
        (", maxIdleConnections: -1", Err(("", None, 77))),
        (", maxIdleConnections: 4294967296", Err(("", None, 77))),
        (", maxIdleConnections: many", Err(("", None, 77))),
    ];
    for (extra, want) in cases {
        let rule = format!(r#"{{ forward: {{ upstreams: ["http://127.0.0.1:1"]{extra} }} }}"#);
        let text = with_rule(&rule);
        match (load_str(&text, Some("gw.yaml")), want) {
            (Ok(loaded), Ok(n)) => {
                let vs = corsgate_routes::compile(&loaded).unwrap();
                let corsgate_routes::Action::Forward { max_idle, .. } = &vs[0].rules[0].action
                else {
                    panic!("{rule}: not a forward");
                };
                assert_eq!(max_idle, n, "{rule}");
            }
            (Err(err), Err((path, id, col))) => {
                assert_eq!(err.0.len(), 1, "{rule}: {err}");
                let e = &err.0[0];
                assert_eq!(e.path, *path, "{rule}: {e}");
                assert_eq!(e.id, *id, "{rule}: {e}");
                assert_eq!(e.location, Some((5, *col)), "{rule}: {e}");
                assert_eq!(e.file.as_deref(), Some("gw.yaml"));
            }
            (Ok(_), Err(_)) => panic!("{rule}: accepted"),
            (Err(err), Ok(_)) => panic!("{rule}: refused: {err}"),
        }
    }
}
