//! `corsgate check` and `corsgate schema`, run as users run them.

use std::process::Command;

fn corsgate(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_corsgate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn write(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("corsgate-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const WARNS: &str = "policies:\n  p:\n    allowOrigins: [\"https://a.example\"]\n    allowMethods: [GET]\n    allowHeaders: [x-a]\n    exposeHeaders: [x-b]\n    maxAge: 86400\nvservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    cors: p\n";

#[test]
fn check_prints_each_lint_with_id_severity_location_and_fix() {
    let file = write("warns.yaml", WARNS);
    let (code, out) = corsgate(&["check", &file]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "{file}:7:13: warn[L-MAXAGE-CHROMIUM] policies.p.maxAge: "
        )),
        "{out}"
    );
    assert!(
        out.contains("    7 |     maxAge: 86400\n      |             ^\n"),
        "{out}"
    );
    assert!(out.contains("    fix: "), "{out}");
    assert!(
        out.contains("valid: 1 vService(s), 1 policy(ies), 0 rule(s)"),
        "{out}"
    );
    // --strict fails on the warning.
    let (code, out) = corsgate(&["check", "--strict", &file]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("--strict: warnings fail"), "{out}");
    // A clean configuration passes --strict.
    let clean = write("clean.yaml", &WARNS.replace("86400", "600"));
    let (code, out) = corsgate(&["check", "--strict", &clean]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn check_refuses_with_every_error_located_and_json_carries_the_same() {
    let text = WARNS
        .replace(
            "[\"https://a.example\"]",
            "[\"https://a.example\", \"https://*.github.io\"]",
        )
        .replace("cors: p", "cors: q");
    let file = write("bad.yaml", &text);
    let (code, out) = corsgate(&["check", &file]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("error: {file}:3:41: policies.p.allowOrigins[1]: ")),
        "{out}"
    );
    assert!(out.contains("L-PUBLIC-SUFFIX"), "{out}");
    assert!(
        out.contains(&format!(
            "error: {file}:11:11: vservices[0].cors: no policy named \"q\""
        )),
        "{out}"
    );
    assert!(out.contains("refused; 2 error(s)"), "{out}");

    let (code, out) = corsgate(&["check", "--json", &file]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["valid"], false);
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["line"], 3);
    assert_eq!(errors[0]["column"], 41);
    assert!(v["lints"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["id"] == "L-MAXAGE-CHROMIUM" && l["severity"] == "warn" && l["line"] == 7));
}

#[test]
fn check_reports_policy_tests_and_an_unreadable_file() {
    let with_tests = WARNS.replace(
        "    maxAge: 86400\n",
        "    maxAge: 600\n    tests: { allow: [\"https://a.example\"], deny: [\"https://b.example\"] }\n",
    );
    let file = write("tests.yaml", &with_tests);
    let (code, out) = corsgate(&["check", &file]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 policy test(s) passed"), "{out}");
    let failing = write(
        "failing.yaml",
        &with_tests.replace(
            "deny: [\"https://b.example\"]",
            "deny: [\"https://a.example\"]",
        ),
    );
    let (code, out) = corsgate(&["check", &failing]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("policies.p.tests.deny[0]: policy test tests.deny[0]: \"https://a.example\" must be refused"), "{out}");
    let (code, _) = corsgate(&["check", "/nonexistent/corsgate.yaml"]);
    assert_eq!(code, 2);
}

#[test]
fn the_schema_accepts_every_shipped_configuration_and_rejects_mistakes() {
    let (code, out) = corsgate(&["schema"]);
    assert_eq!(code, 0);
    let schema: serde_json::Value = serde_json::from_str(&out).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let mut shipped = vec![root().join("crates/corsgate/src/default.yaml")];
    for e in std::fs::read_dir(root().join("examples")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            shipped.push(p);
        }
    }
    assert!(shipped.len() >= 3);
    for p in &shipped {
        let doc: serde_json::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", p.display());
    }
    // Not vacuous: what the loader refuses as a type or unknown field, the
    // schema refuses too.
    for bad in [
        "vservices: [{ name: a, listen: x, rulez: [] }]",
        "policies: { p: { allowOrigin: [x] } }",
        "policies: { p: { maxAge: soon } }",
        "policies: { p: { preflightRejectStatus: 401 } }",
        "vservices: [{ name: a }]",
    ] {
        let doc: serde_json::Value = serde_yaml_ng::from_str(bad).unwrap();
        assert!(!validator.is_valid(&doc), "schema accepted {bad}");
        assert!(corsgate_config_rejects(bad), "loader accepted {bad}");
    }
}

fn corsgate_config_rejects(yaml: &str) -> bool {
    let file = write("schema-bad.yaml", yaml);
    corsgate(&["check", &file]).0 != 0
}

#[test]
fn explain_gives_each_leg_and_the_browsers_precise_reason() {
    let url = "http://127.0.0.1:8080/api/hello";
    let (code, out) = corsgate(&[
        "explain",
        "--origin",
        "https://app.example.com",
        "--method",
        "PUT",
        "--url",
        url,
        "-H",
        "X-Tenant: acme",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("Preflight: yes, because method PUT is not CORS-safelisted"),
        "{out}"
    );
    assert!(
        out.contains("< access-control-allow-methods: GET, POST, PUT"),
        "{out}"
    );
    assert!(out.contains("- `x-tenant` is not in allowHeaders"), "{out}");
    assert!(
        out.contains("2. actual PUT: not sent (the preflight failed)"),
        "{out}"
    );

    let (code, out) = corsgate(&[
        "explain",
        "--origin",
        "https://app.example.com:8443",
        "--url",
        url,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("differs by port: allowed 443, got 8443"),
        "{out}"
    );

    let (code, out) = corsgate(&[
        "explain",
        "--origin",
        "https://app.example.com",
        "--url",
        url,
        "--credentials",
        "include",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("credentialed request but the policy does not allow credentials"),
        "{out}"
    );

    let (code, out) = corsgate(&[
        "explain",
        "--origin",
        "https://app.example.com",
        "--method",
        "PUT",
        "--url",
        url,
        "-H",
        "Content-Type: application/json",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let legs = v["legs"].as_array().unwrap();
    assert_eq!(legs.len(), 2);
    assert_eq!(legs[0]["kind"], "preflight");
    assert_eq!(legs[0]["answer"]["by"], "gateway");
    assert_eq!(legs[0]["verdict"]["verdict"], "allowed");
    assert_eq!(legs[1]["policy"], "public");
}

#[test]
fn audit_verify_reports_intact_and_tampered_logs() {
    let dir = std::env::temp_dir().join(format!("corsgate-audit-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let mut s = corsgate_store::Store::open(&dir).unwrap();
        s.apply(None, "alice", "one", &WARNS.replace("86400", "600"))
            .unwrap();
        s.record("alice", "token.used", None, &serde_json::json!({}))
            .unwrap();
    }
    let d = dir.display().to_string();
    let (code, out) = corsgate(&["audit", "verify", "--data-dir", &d]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact: 2 entries"), "{out}");
    let c = rusqlite::Connection::open(dir.join("corsgate.db")).unwrap();
    c.execute("UPDATE audit SET actor = 'eve' WHERE seq = 1", [])
        .unwrap();
    drop(c);
    let (code, out) = corsgate(&["audit", "verify", "--data-dir", &d]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("audit entry 1 was edited"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
    let (code, _) = corsgate(&["audit", "verify", "--data-dir", &d]);
    assert_eq!(code, 2);
}

/// `check` runs the route compiler: a method list written as one string
/// (which the router used to drop, matching every method) is refused,
/// located and with its ID, in text and in JSON.
#[test]
fn check_refuses_what_the_route_compiler_refuses_located_with_its_id() {
    let text = "vservices:\n  - name: a\n    listen: \"127.0.0.1:0\"\n    rules:\n      - match: { methods: [\"GET,POST\"] }\n        direct: { status: 200 }\n";
    let file = write("methods.yaml", text);
    let (code, out) = corsgate(&["check", &file]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "error: {file}:5:28: vservices[0].rules[0].match.methods[0]: \"GET,POST\" is not one method token"
        )),
        "{out}"
    );
    assert!(out.contains("(invalid-method)"), "{out}");
    assert!(out.contains("refused; 1 error(s)"), "{out}");
    let (code, out) = corsgate(&["check", "--json", &file]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let e = &v["errors"][0];
    assert_eq!(e["id"], "invalid-method");
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(5), Some(28))
    );
}
