//! `HTTPRoute` rule filters: CORS, request and response header modifiers,
//! `RequestRedirect` and `URLRewrite`. The Gateway API allows each filter
//! type once a rule, and forbids a redirect next to a rewrite; both are
//! refused here, because the second filter would otherwise replace the
//! first (or be dropped) without a word.

use super::cors::route_rule_policy;
use super::route::RouteRule;
use super::walk::{arr, join, string, Ctx};
use super::NoteKind;
use crate::{HeaderEdits, PathRewrite, Redirect, Rewrite};
use serde_json::{Map, Value};

/// The route a rule belongs to and the rule's index: what the generated
/// CORS policy's name is made of.
pub(super) struct RuleId<'a> {
    pub(super) namespace: &'a str,
    pub(super) name: &'a str,
    pub(super) index: usize,
}

/// Read a rule's `filters` into `rule`.
pub(super) fn rule_filters(
    c: &mut Ctx<'_>,
    r: &Map<String, Value>,
    at: &str,
    id: &RuleId<'_>,
    rule: &mut RouteRule,
) {
    // Each filter type at most once per rule (the Gateway API's rule):
    // a second one would silently replace the first.
    let mut seen: Vec<(String, String)> = Vec::new();
    for (fi, f) in arr(r.get("filters")).iter().enumerate() {
        let fat = format!("{at}.filters[{fi}]");
        let Some(f) = f.as_object() else { continue };
        let kind = string(f.get("type")).unwrap_or_default();
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == kind) {
            let id = if kind == "CORS" {
                corsgate_policy::ErrorId::DuplicateCorsFilter.as_str()
            } else {
                "duplicate-filter"
            };
            c.refuse(
                &fat,
                id,
                format!("a rule has at most one {kind} filter; the first is {first}"),
            );
            continue;
        }
        seen.push((kind.clone(), fat.clone()));
        if let Some((body, bat)) = filter_body(c, f, &fat, &kind) {
            apply_filter(c, &kind, body, &bat, id, rule);
        }
    }
    // A redirect answers without forwarding: a rewrite next to it would
    // be dropped without a word (the Gateway API forbids the pair).
    if let (Some(_), Some((_, rw))) = (
        seen.iter().find(|(k, _)| k == "RequestRedirect"),
        seen.iter().find(|(k, _)| k == "URLRewrite"),
    ) {
        c.refuse(
            rw,
            "redirect-with-rewrite",
            "a rule with a RequestRedirect filter cannot also have a URLRewrite filter".into(),
        );
    }
}

/// The body of a filter of a type corsgate implements, with its path; an
/// unknown type is a note, a missing or non-mapping body an error.
fn filter_body<'v>(
    c: &mut Ctx<'_>,
    f: &'v Map<String, Value>,
    fat: &str,
    kind: &str,
) -> Option<(&'v Value, String)> {
    let field = match kind {
        "CORS" => "cors",
        "RequestHeaderModifier" => "requestHeaderModifier",
        "ResponseHeaderModifier" => "responseHeaderModifier",
        "RequestRedirect" => "requestRedirect",
        "URLRewrite" => "urlRewrite",
        other => {
            c.note(
                fat,
                NoteKind::Unsupported,
                format!("filter type {other:?} is not implemented and is ignored"),
            );
            return None;
        }
    };
    c.extra(f, fat, &["type", field]);
    let Some(body) = f.get(field) else {
        c.error(fat, format!("a {kind} filter needs `{field}`"));
        return None;
    };
    let bat = join(fat, field);
    // A filter that is not a mapping used to be skipped, leaving the
    // rule to forward as if it had no filter.
    if !body.is_object() {
        c.error(&bat, format!("`{field}` is a mapping"));
        return None;
    }
    Some((body, bat))
}

/// One filter (of a known type, its body a mapping) into `rule`.
fn apply_filter(
    c: &mut Ctx<'_>,
    kind: &str,
    body: &Value,
    bat: &str,
    id: &RuleId<'_>,
    rule: &mut RouteRule,
) {
    match kind {
        "CORS" => {
            if let Some(p) = route_rule_policy(c, body, bat, id) {
                rule.cors = Some(p);
            }
        }
        "RequestHeaderModifier" => rule.request_headers = edits(c, body, bat),
        "ResponseHeaderModifier" => rule.response_headers = edits(c, body, bat),
        "RequestRedirect" => {
            let Some(o) = body.as_object() else { return };
            rule.redirect = request_redirect(c, o, bat);
        }
        _ => {
            let Some(o) = body.as_object() else { return };
            c.extra(o, bat, &["hostname", "path"]);
            rule.rewrite = Some(Rewrite {
                hostname: string(o.get("hostname")),
                path: o
                    .get("path")
                    .and_then(|p| path_modifier(c, p, &join(bat, "path"))),
            });
        }
    }
}

/// A `RequestHeaderModifier` / `ResponseHeaderModifier` body: `set`,
/// `add` (names lowercased, as the native configuration keys them) and
/// `remove`.
fn edits(c: &mut Ctx<'_>, v: &Value, path: &str) -> HeaderEdits {
    let mut e = HeaderEdits::default();
    let Some(o) = v.as_object() else {
        c.error(path, "expected a mapping".into());
        return e;
    };
    c.extra(o, path, &["set", "add", "remove"]);
    for (which, target) in [("set", &mut e.set), ("add", &mut e.add)] {
        for (i, h) in arr(o.get(which)).iter().enumerate() {
            match (string(h.get("name")), string(h.get("value"))) {
                (Some(n), Some(v)) => {
                    target.insert(n.to_ascii_lowercase(), v);
                }
                _ => c.error(
                    &format!("{path}.{which}[{i}]"),
                    "needs a name and a value".into(),
                ),
            }
        }
    }
    e.remove = arr(o.get("remove"))
        .iter()
        .filter_map(|v| string(Some(v)))
        .collect();
    e
}

/// An `HTTPPathModifier` (redirect and rewrite `path`).
fn path_modifier(c: &mut Ctx<'_>, v: &Value, path: &str) -> Option<PathRewrite> {
    let o = v.as_object()?;
    c.extra(o, path, &["type", "replaceFullPath", "replacePrefixMatch"]);
    match o.get("type").and_then(Value::as_str) {
        Some("ReplaceFullPath") => Some(PathRewrite {
            full: string(o.get("replaceFullPath")),
            prefix: None,
        }),
        Some("ReplacePrefixMatch") => Some(PathRewrite {
            full: None,
            prefix: string(o.get("replacePrefixMatch")),
        }),
        other => {
            c.error(
                &join(path, "type"),
                format!(
                    "path modifier type {other:?} is not ReplaceFullPath or ReplacePrefixMatch"
                ),
            );
            None
        }
    }
}

/// An integer field of `o` that must fit a `u16` if present: a value of
/// another type or out of range is refused, never replaced by a default.
fn small_int(
    c: &mut Ctx<'_>,
    o: &Map<String, Value>,
    at: &str,
    key: &str,
    id: &'static str,
) -> Result<Option<u16>, ()> {
    match o.get(key) {
        None => Ok(None),
        Some(v) => match v.as_u64().and_then(|n| u16::try_from(n).ok()) {
            Some(n) => Ok(Some(n)),
            None => {
                c.refuse(&join(at, key), id, format!("{v} is not a valid {key}"));
                Err(())
            }
        },
    }
}

/// A `RequestRedirect` filter. A missing `statusCode` is 302 and a
/// missing `path` keeps the request's path, as the Gateway API says; a
/// status or port that is not a number is refused.
fn request_redirect(c: &mut Ctx<'_>, o: &Map<String, Value>, at: &str) -> Option<Redirect> {
    c.extra(o, at, &["scheme", "hostname", "path", "port", "statusCode"]);
    let status = small_int(c, o, at, "statusCode", "invalid-redirect-status");
    let port = small_int(c, o, at, "port", "invalid-port");
    let path = o
        .get("path")
        .and_then(|p| path_modifier(c, p, &join(at, "path")));
    Some(Redirect {
        location: None,
        scheme: string(o.get("scheme")),
        hostname: string(o.get("hostname")),
        port: port.ok()?,
        path,
        status: status.ok()?.unwrap_or(302),
    })
}
