//! `HTTPRouteMatch`: path, headers, query parameters and method of one
//! match, as a native [`Match`]. An unknown match type is refused, never
//! read as a wider match.

use super::walk::{arr, join, obj, string, Ctx};
use crate::{HeaderMatch, Match, PathMatch, QueryMatch};
use serde_json::{Map, Value};

/// One entry of a rule's `matches`.
pub(super) fn route_match(c: &mut Ctx<'_>, m: &Value, path: &str) -> Match {
    let mut out = Match::default();
    let Some(o) = m.as_object() else {
        c.error(path, "expected a mapping".into());
        return out;
    };
    c.extra(o, path, &["path", "headers", "queryParams", "method"]);
    if let Some(p) = obj(o.get("path")) {
        out.path = Some(path_match(c, p, &join(path, "path")));
    }
    header_matches(c, o, path, &mut out.headers);
    query_matches(c, o, path, &mut out.query);
    if let Some(m) = string(o.get("method")) {
        out.methods.push(m);
    }
    out
}

/// `path`: `PathPrefix` (the default), `Exact` or `RegularExpression`.
fn path_match(c: &mut Ctx<'_>, p: &Map<String, Value>, at: &str) -> PathMatch {
    c.extra(p, at, &["type", "value"]);
    let value = string(p.get("value")).unwrap_or_else(|| "/".into());
    match p
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("PathPrefix")
    {
        "Exact" => PathMatch {
            exact: Some(value),
            ..PathMatch::default()
        },
        "PathPrefix" => PathMatch {
            prefix: Some(value),
            ..PathMatch::default()
        },
        "RegularExpression" => PathMatch {
            regex: Some(value),
            ..PathMatch::default()
        },
        other => {
            c.error(
                &join(at, "type"),
                format!("unknown path match type {other:?}"),
            );
            PathMatch {
                prefix: Some(value),
                ..PathMatch::default()
            }
        }
    }
}

/// `headers`: `Exact` (the default) or `RegularExpression`.
fn header_matches(c: &mut Ctx<'_>, o: &Map<String, Value>, path: &str, out: &mut Vec<HeaderMatch>) {
    for (i, h) in arr(o.get("headers")).iter().enumerate() {
        let at = format!("{path}.headers[{i}]");
        let Some(h) = h.as_object() else { continue };
        c.extra(h, &at, &["type", "name", "value"]);
        let name = string(h.get("name")).unwrap_or_default();
        let value = string(h.get("value"));
        match h.get("type").and_then(Value::as_str).unwrap_or("Exact") {
            "Exact" => out.push(HeaderMatch {
                name,
                value,
                regex: None,
            }),
            "RegularExpression" => out.push(HeaderMatch {
                name,
                value: None,
                regex: value,
            }),
            other => c.error(
                &join(&at, "type"),
                format!("unknown header match type {other:?}"),
            ),
        }
    }
}

/// `queryParams`: `Exact` (the default) or `RegularExpression`.
fn query_matches(c: &mut Ctx<'_>, o: &Map<String, Value>, path: &str, out: &mut Vec<QueryMatch>) {
    for (i, q) in arr(o.get("queryParams")).iter().enumerate() {
        let at = format!("{path}.queryParams[{i}]");
        let Some(q) = q.as_object() else { continue };
        c.extra(q, &at, &["type", "name", "value"]);
        let name = string(q.get("name")).unwrap_or_default();
        let value = string(q.get("value"));
        match q.get("type").and_then(Value::as_str).unwrap_or("Exact") {
            "Exact" => out.push(QueryMatch {
                name,
                value,
                regex: None,
            }),
            "RegularExpression" => out.push(QueryMatch {
                name,
                value: None,
                regex: value,
            }),
            other => c.error(
                &join(&at, "type"),
                format!("unknown query match type {other:?}"),
            ),
        }
    }
}
