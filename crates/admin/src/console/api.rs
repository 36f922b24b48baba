//! The read-only computations the console needs beyond the store's API:
//! validating a candidate before apply, the effective policy of every
//! route, and explaining a browser request.

use super::ExplainInput;
use crate::replies::{config_of, propagation};
use crate::{error, reply, with_store, AdminState, Resp};
use corsgate_config::Loaded;
use corsgate_routes::{Binding, RequestFacts};
use http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateBody {
    content: String,
}

/// `POST /api/v1/validate`, `GET /api/v1/effective` and
/// `POST /api/v1/explain`; `None` for any other path.
pub(crate) async fn route(
    state: &Arc<AdminState>,
    method: &Method,
    segments: &[&str],
    body: &[u8],
) -> Option<Result<Resp, Resp>> {
    Some(match (method, segments) {
        (&Method::POST, ["api", "v1", "validate"]) => match crate::parse_json::<ValidateBody>(body)
        {
            Ok(b) => {
                with_store(state, move |s, _| {
                    let active = s.active().ok().flatten();
                    reply(
                        StatusCode::OK,
                        &validate(
                            active.as_ref().map(|v| (v.id, v.content.as_str())),
                            &b.content,
                        ),
                    )
                })
                .await
            }
            Err(r) => Ok(*r),
        },
        (&Method::GET, ["api", "v1", "effective"]) => {
            with_store(state, |s, _| match s.active() {
                Ok(Some(v)) => match corsgate_routes::load_str(&v.content, Some("active")) {
                    Ok(loaded) => reply(StatusCode::OK, &effective(v.id, &loaded)),
                    Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                },
                Ok(None) => error(StatusCode::NOT_FOUND, "no active version"),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            })
            .await
        }
        (&Method::POST, ["api", "v1", "explain"]) => {
            let Some(explainer) = state.console.explain.clone() else {
                return Some(Ok(error(
                    StatusCode::NOT_FOUND,
                    "explain is not available here",
                )));
            };
            match crate::parse_json::<ExplainInput>(body) {
                Ok(input) => {
                    with_store(state, move |s, _| match s.active() {
                        Ok(Some(v)) => {
                            match corsgate_routes::load_str(&v.content, Some("active")) {
                                Ok(loaded) => match explainer(&loaded, &input) {
                                    Ok(e) => reply(
                                        StatusCode::OK,
                                        &json!({ "version": v.id, "explanation": e }),
                                    ),
                                    Err(why) => error(StatusCode::BAD_REQUEST, &why),
                                },
                                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                            }
                        }
                        Ok(None) => error(StatusCode::NOT_FOUND, "no active version"),
                        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                    })
                    .await
                }
                Err(r) => Ok(*r),
            }
        }
        _ => return None,
    })
}

/// Everything `apply` would say about `content`, without applying it:
/// each error and lint with its line and column, the policy tests run, and
/// when it is valid the semantic diff and the tightenings against the
/// active version.
pub(crate) fn validate(active: Option<(i64, &str)>, content: &str) -> Value {
    let report = corsgate_routes::check_str(content, Some("candidate"));
    let errors: Vec<Value> = report
        .errors
        .iter()
        .map(|e| {
            json!({
                "line": e.location.map(|l| l.0),
                "column": e.location.map(|l| l.1),
                "path": e.path,
                "id": e.id,
                "reason": e.reason,
                "message": e.to_string(),
            })
        })
        .collect();
    let lints: Vec<Value> = report
        .lints
        .iter()
        .map(corsgate_config::ConfigLint::to_json)
        .collect();
    let valid = report.errors.is_empty() && report.loaded.is_some();
    let (diff, prop) = match (active, valid) {
        (Some((_, old)), true) => match (config_of(old), report.loaded.as_ref()) {
            (Some(a), Some(b)) => (
                serde_json::to_value(corsgate_config::diff(&a, &b.config)).unwrap_or(Value::Null),
                propagation(Some(old), content),
            ),
            _ => (Value::Null, json!([])),
        },
        _ => (Value::Null, json!([])),
    };
    json!({
        "valid": valid,
        "errors": errors,
        "lints": lints,
        "policyTests": report.policy_tests,
        "base": active.map(|a| a.0),
        "diff": diff,
        "propagation": prop,
    })
}

fn binding_name(b: &Binding<'_>) -> (&'static str, Option<String>) {
    match b {
        Binding::Rule => ("rule", None),
        Binding::Path(p) => ("path", Some((*p).to_owned())),
        Binding::Host => ("host", None),
        Binding::VService => ("vService", None),
        Binding::Global => ("global", None),
        Binding::None => ("none", None),
    }
}

/// The effective policy of each rule of each vService, chosen by the route
/// compiler's own `select` for a sample request the rule matches (its
/// first host, its path, its first method): rule, path, host, vService or
/// global binding (R16).
pub(crate) fn effective(version: i64, loaded: &Loaded) -> Value {
    let compiled = match corsgate_routes::compile(loaded) {
        Ok(c) => c,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let name_of = |p: &Arc<corsgate_policy::Policy>| {
        loaded
            .policies
            .iter()
            .find(|(_, q)| Arc::ptr_eq(p, q))
            .map(|(n, _)| n.clone())
    };
    let headers = HeaderMap::new();
    let mut vservices = Vec::new();
    for (vs, conf) in compiled.iter().zip(&loaded.config.vservices) {
        let mut rules = Vec::new();
        for (rule, rc) in vs.rules.iter().zip(&conf.rules) {
            let m = &rc.matches;
            let path = m
                .path
                .as_ref()
                .and_then(|p| p.exact.clone().or_else(|| p.prefix.clone()))
                .unwrap_or_else(|| "/".to_owned());
            let host = m
                .hosts
                .first()
                .or(conf.hostnames.first())
                .map(|h| h.trim_start_matches("*.").to_owned())
                .unwrap_or_else(|| "localhost".to_owned());
            let method: Method = m
                .methods
                .first()
                .and_then(|x| x.parse().ok())
                .unwrap_or(Method::GET);
            let sel = vs.select(&RequestFacts {
                method: &method,
                host: &host,
                path: &path,
                query: None,
                headers: &headers,
                preflight: false,
            });
            let (level, prefix) = binding_name(&sel.binding);
            rules.push(json!({
                "index": rule.index,
                "name": rule.name,
                "match": {
                    "hosts": m.hosts,
                    "path": m.path.as_ref().map(|p| json!({ "exact": p.exact, "prefix": p.prefix, "regex": p.regex })),
                    "methods": m.methods,
                    "headers": m.headers.len(),
                    "query": m.query.len(),
                },
                "action": if rc.forward.is_some() { "forward" } else if rc.redirect.is_some() { "redirect" } else { "direct" },
                "sample": { "method": method.as_str(), "host": host, "path": path },
                "matchedRule": sel.rule.map(|r| r.name.clone()),
                "policy": sel.policy.and_then(name_of),
                "binding": level,
                "bindingPrefix": prefix,
                "why": sel.binding.to_string(),
            }));
        }
        vservices.push(json!({
            "name": vs.name,
            "listen": vs.listen,
            "hostnames": conf.hostnames,
            "cors": conf.cors.clone().or_else(|| loaded.config.cors.clone()),
            "hostCors": conf.host_cors,
            "pathCors": conf.path_cors.iter().map(|p| json!({ "prefix": p.prefix, "cors": p.cors })).collect::<Vec<_>>(),
            "tls": vs.tls.is_some(),
            "rules": rules,
        }));
    }
    json!({
        "version": version,
        "globalCors": loaded.config.cors,
        "policies": loaded.config.policies,
        "policyTests": policy_tests(loaded),
        "vservices": vservices,
    })
}

/// Each policy's tests (`tests.allow`, `tests.deny`) with their results,
/// run by the policy crate's own `run_tests`, as `corsgate check` runs
/// them: `{ policy: [{ at, origin, expect, passed, reason }] }`.
fn policy_tests(loaded: &Loaded) -> Value {
    let mut out = serde_json::Map::new();
    for (name, spec) in &loaded.config.policies {
        let failures = loaded
            .policies
            .get(name)
            .map(|p| p.run_tests())
            .unwrap_or_default();
        let case = |kind: &str, i: usize, origin: &String| {
            let at = format!("tests.{kind}[{i}]");
            let failed = failures.iter().find(|f| f.at == at);
            json!({
                "at": at,
                "origin": origin,
                "expect": if kind == "allow" { "allowed" } else { "refused" },
                "passed": failed.is_none(),
                "reason": failed.map(|f| f.reason.clone()),
            })
        };
        let cases: Vec<Value> = (spec.tests.allow.iter().enumerate())
            .map(|(i, o)| case("allow", i, o))
            .chain(
                spec.tests
                    .deny
                    .iter()
                    .enumerate()
                    .map(|(i, o)| case("deny", i, o)),
            )
            .collect();
        out.insert(name.clone(), Value::Array(cases));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
policies:
  public:
    allowOrigins: ["https://app.example.com"]
    allowMethods: [GET, POST]
    maxAge: 600
  partner:
    allowOrigins: ["https://partner.example.com"]
cors: public
vservices:
  - name: api
    listen: "127.0.0.1:0"
    pathCors:
      - { prefix: /partner, cors: partner }
    rules:
      - name: own
        match: { path: { prefix: /own } }
        cors: partner
        direct: { status: 200 }
      - name: partner
        match: { path: { prefix: /partner/x } }
        direct: { status: 200 }
      - name: rest
        match: { path: { prefix: / } }
        direct: { status: 200 }
"#;

    #[test]
    fn effective_names_each_binding_level() {
        let loaded = corsgate_routes::load_str(BASE, None).unwrap();
        let e = effective(3, &loaded);
        let rules = &e["vservices"][0]["rules"];
        let got: Vec<(String, String)> = (0..3)
            .map(|i| {
                (
                    rules[i]["binding"].as_str().unwrap().to_owned(),
                    rules[i]["policy"].as_str().unwrap_or("-").to_owned(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("rule".into(), "partner".into()),
                ("path".into(), "partner".into()),
                ("global".into(), "public".into())
            ]
        );
        assert_eq!(rules[1]["bindingPrefix"], "/partner");
    }

    #[test]
    fn effective_lists_each_policy_test_with_its_result() {
        let with_tests = BASE.replace(
            "    maxAge: 600\n",
            "    maxAge: 600\n    tests: { allow: [\"https://app.example.com\"], deny: [\"https://evil.example\"] }\n",
        );
        let loaded = corsgate_routes::load_str(&with_tests, None).unwrap();
        let e = effective(1, &loaded);
        let public = e["policyTests"]["public"].as_array().unwrap();
        let got: Vec<(&str, &str, &str, bool)> = public
            .iter()
            .map(|t| {
                (
                    t["at"].as_str().unwrap(),
                    t["origin"].as_str().unwrap(),
                    t["expect"].as_str().unwrap(),
                    t["passed"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("tests.allow[0]", "https://app.example.com", "allowed", true),
                ("tests.deny[0]", "https://evil.example", "refused", true),
            ]
        );
        assert_eq!(e["policyTests"]["partner"], json!([]));
    }

    #[test]
    fn validate_locates_an_invalid_origin_and_diffs_a_valid_edit() {
        let bad = BASE.replace("https://partner.example.com", "partner.example.com/x");
        let v = validate(Some((1, BASE)), &bad);
        assert_eq!(v["valid"], false);
        let line = BASE
            .lines()
            .position(|l| l.contains("partner.example.com"))
            .unwrap()
            + 1;
        assert!(
            v["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["line"] == line),
            "{v:#}"
        );
        assert!(v["diff"].is_null());

        let good = BASE
            .replace("maxAge: 600", "maxAge: 600\n    allowCredentials: false")
            .replace(
                "[\"https://app.example.com\"]",
                "[\"https://app.example.com\", \"https://new.example.com\"]",
            );
        let v = validate(Some((1, BASE)), &good);
        assert_eq!(v["valid"], true, "{v:#}");
        assert_eq!(v["base"], 1);
        assert!(
            v["diff"].to_string().contains("https://new.example.com"),
            "{v:#}"
        );
    }

    #[test]
    fn validate_reports_tightening() {
        let tighter = BASE.replace("allowMethods: [GET, POST]", "allowMethods: [GET]");
        let v = validate(Some((1, BASE)), &tighter);
        assert_eq!(v["valid"], true);
        let p = v["propagation"].as_array().unwrap();
        assert!(p.iter().any(|t| t["browserCacheSecs"] == 600), "{v:#}");
    }
}
