//! `HTTPRoute` objects: parent references, hostnames and rules (matches,
//! filters, timeouts, weighted backends). A route is read on its own here;
//! attaching it to listeners happens once every Gateway is known
//! (`attach.rs`).

use super::filters::{rule_filters, RuleId};
use super::matches::route_match;
use super::walk::{arr, join, obj, string, Ctx};
use super::NoteKind;
use crate::{GatewayApi, HeaderEdits, Match, PathMatch, Redirect, Rewrite};
use serde_json::{Map, Value};

/// A `parentRefs` entry naming a Gateway (and maybe one listener).
pub(super) struct ParentRef {
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) section: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) path: String,
}

/// One rule of a route, read but not yet attached to a listener.
pub(super) struct RouteRule {
    /// The rule's `name`, used in the generated rules' names.
    pub(super) name: Option<String>,
    /// `(native match, source path)`; one per Gateway API match.
    pub(super) matches: Vec<(Match, String)>,
    pub(super) cors: Option<String>,
    pub(super) request_headers: HeaderEdits,
    pub(super) response_headers: HeaderEdits,
    pub(super) redirect: Option<Redirect>,
    pub(super) rewrite: Option<Rewrite>,
    pub(super) upstreams: Vec<String>,
    /// backendRefs were given but none resolved.
    pub(super) unresolved: bool,
    pub(super) timeout_ms: Option<u64>,
}

/// An `HTTPRoute`: its identity and creation time (the precedence
/// tie-breakers), where it came from, its parents, hostnames and rules.
pub(super) struct Route {
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) created: String,
    pub(super) manifest: usize,
    pub(super) doc: usize,
    pub(super) parents: Vec<ParentRef>,
    pub(super) hostnames: Vec<String>,
    pub(super) rules: Vec<RouteRule>,
}

/// Read an `HTTPRoute` document.
pub(super) fn route(
    c: &mut Ctx<'_>,
    doc: &Map<String, Value>,
    namespace: String,
    name: String,
    cfg: &GatewayApi,
) -> Route {
    let created = obj(doc.get("metadata"))
        .and_then(|m| string(m.get("creationTimestamp")))
        .unwrap_or_default();
    let spec = obj(doc.get("spec")).cloned().unwrap_or_default();
    c.extra(&spec, "spec", &["parentRefs", "hostnames", "rules"]);
    let parents = parent_refs(c, &spec, &namespace);
    let hostnames = arr(spec.get("hostnames"))
        .iter()
        .filter_map(|h| string(Some(h)))
        .collect();
    let mut rules = Vec::new();
    for (ri, r) in arr(spec.get("rules")).iter().enumerate() {
        let at = format!("spec.rules[{ri}]");
        let Some(r) = r.as_object() else { continue };
        let id = RuleId {
            namespace: &namespace,
            name: &name,
            index: ri,
        };
        rules.push(route_rule(c, r, &at, &id, cfg));
    }
    Route {
        namespace,
        name,
        created,
        manifest: c.manifest,
        doc: c.doc,
        parents,
        hostnames,
        rules,
    }
}

/// `parentRefs`: the Gateways (and listeners) the route asks to join; a
/// parent of another kind is a note.
fn parent_refs(c: &mut Ctx<'_>, spec: &Map<String, Value>, namespace: &str) -> Vec<ParentRef> {
    let mut parents = Vec::new();
    for (i, p) in arr(spec.get("parentRefs")).iter().enumerate() {
        let at = format!("spec.parentRefs[{i}]");
        let Some(p) = p.as_object() else { continue };
        c.extra(
            p,
            &at,
            &["group", "kind", "name", "namespace", "sectionName", "port"],
        );
        if let Some(k) = string(p.get("kind")).filter(|k| k != "Gateway") {
            c.note(
                &at,
                NoteKind::Unsupported,
                format!("parentRef kind {k} is not implemented; only Gateway"),
            );
            continue;
        }
        parents.push(ParentRef {
            namespace: string(p.get("namespace")).unwrap_or_else(|| namespace.to_owned()),
            name: string(p.get("name")).unwrap_or_default(),
            section: string(p.get("sectionName")),
            port: p
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok()),
            path: at,
        });
    }
    parents
}

/// One entry of `rules`.
fn route_rule(
    c: &mut Ctx<'_>,
    r: &Map<String, Value>,
    at: &str,
    id: &RuleId<'_>,
    cfg: &GatewayApi,
) -> RouteRule {
    c.extra(
        r,
        at,
        &["name", "matches", "filters", "backendRefs", "timeouts"],
    );
    let mut rule = RouteRule {
        name: string(r.get("name")),
        matches: rule_matches(c, r, at),
        cors: None,
        request_headers: HeaderEdits::default(),
        response_headers: HeaderEdits::default(),
        redirect: None,
        rewrite: None,
        upstreams: Vec::new(),
        unresolved: false,
        timeout_ms: None,
    };
    rule_filters(c, r, at, id, &mut rule);
    rule.timeout_ms = rule_timeout(c, r, at);
    let refs = arr(r.get("backendRefs"));
    let weighted = backend_refs(c, refs, at, id.namespace, cfg);
    rule.unresolved = !refs.is_empty() && weighted.is_empty();
    rule.upstreams = spread(&weighted);
    rule
}

/// A PathPrefix `/` match: what a rule without matches, or a match
/// without a path, means in the Gateway API.
fn any_path() -> PathMatch {
    PathMatch {
        prefix: Some("/".into()),
        ..PathMatch::default()
    }
}

/// `matches`, each with its source path.
fn rule_matches(c: &mut Ctx<'_>, r: &Map<String, Value>, at: &str) -> Vec<(Match, String)> {
    let mut out = Vec::new();
    let matches = arr(r.get("matches"));
    if matches.is_empty() {
        // No match: every request (PathPrefix "/").
        out.push((
            Match {
                path: Some(any_path()),
                ..Match::default()
            },
            at.to_owned(),
        ));
    }
    for (mi, m) in matches.iter().enumerate() {
        let mat = format!("{at}.matches[{mi}]");
        let mut native = route_match(c, m, &mat);
        if native.path.is_none() {
            native.path = Some(any_path());
        }
        out.push((native, mat));
    }
    out
}

/// `timeouts`: `backendRequest`, else `request`; `0s` means none and keeps
/// the default.
fn rule_timeout(c: &mut Ctx<'_>, r: &Map<String, Value>, at: &str) -> Option<u64> {
    let t = obj(r.get("timeouts"))?;
    let tat = join(at, "timeouts");
    c.extra(t, &tat, &["request", "backendRequest"]);
    let d = string(t.get("backendRequest")).or_else(|| string(t.get("request")))?;
    match duration_ms(&d) {
        Some(0) => None, // "0s": no timeout; keep the default
        Some(ms) => Some(ms),
        None => {
            c.error(&tat, format!("{d:?} is not a Gateway API duration"));
            None
        }
    }
}

/// `backendRefs` as `(upstream URL, weight)`: a Service reference is
/// resolved through `gatewayApi.backends` (corsgate does not watch
/// Kubernetes endpoints); one without an entry is a note and not used.
fn backend_refs(
    c: &mut Ctx<'_>,
    refs: &[Value],
    at: &str,
    namespace: &str,
    cfg: &GatewayApi,
) -> Vec<(String, u64)> {
    let mut weighted = Vec::new();
    for (bi, b) in refs.iter().enumerate() {
        let bat = format!("{at}.backendRefs[{bi}]");
        let Some(b) = b.as_object() else { continue };
        c.extra(
            b,
            &bat,
            &["group", "kind", "name", "namespace", "port", "weight"],
        );
        if let Some(k) = string(b.get("kind")).filter(|k| k != "Service") {
            c.note(
                &bat,
                NoteKind::Unsupported,
                format!("backendRef kind {k} is not implemented; only Service"),
            );
            continue;
        }
        let key = format!(
            "{}/{}:{}",
            string(b.get("namespace")).unwrap_or_else(|| namespace.to_owned()),
            string(b.get("name")).unwrap_or_default(),
            string(b.get("port")).unwrap_or_default()
        );
        let weight = b.get("weight").and_then(Value::as_u64).unwrap_or(1);
        match cfg.backends.get(&key) {
            Some(url) if weight > 0 => weighted.push((url.clone(), weight)),
            Some(_) => {}
            None => c.note(
                &bat,
                NoteKind::Unsupported,
                format!(
                    "backendRef {key} has no entry in gatewayApi.backends; it is not used \
                     (a rule with no usable backend answers 500, as the Gateway API requires)"
                ),
            ),
        }
    }
    weighted
}

/// Gateway API durations (`1h`, `10s`, `500ms`, `1m30s`) in milliseconds.
fn duration_ms(s: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('s') {
            (1000, 1)
        } else {
            return None;
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        rest = &rest[len..];
    }
    Some(total)
}

/// Weighted backends as a round-robin list: each URL repeated by its
/// weight divided by the weights' greatest common divisor (at most 100
/// entries in all).
fn spread(weighted: &[(String, u64)]) -> Vec<String> {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let g = weighted.iter().fold(0, |g, (_, w)| gcd(g, *w)).max(1);
    let total: u64 = weighted.iter().map(|(_, w)| w / g).sum();
    let scale = total.div_ceil(100).max(1);
    let mut out = Vec::new();
    for (u, w) in weighted {
        for _ in 0..(w / g / scale).max(1) {
            out.push(u.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_the_gateway_api() {
        for (s, ms) in [
            ("10s", Some(10_000)),
            ("500ms", Some(500)),
            ("1m30s", Some(90_000)),
            ("1h", Some(3_600_000)),
            ("0s", Some(0)),
            ("", None),
            ("10", None),
            ("1d", None),
        ] {
            assert_eq!(duration_ms(s), ms, "{s}");
        }
    }

    #[test]
    fn weights_spread_over_a_round_robin_list() {
        let w = |v: &[(&str, u64)]| {
            spread(
                &v.iter()
                    .map(|(u, w)| ((*u).to_owned(), *w))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(w(&[("a", 1), ("b", 1)]), ["a", "b"]);
        assert_eq!(w(&[("a", 20), ("b", 80)]), ["a", "b", "b", "b", "b"]);
        // Capped near 100 entries; a tiny weight still gets one.
        let v = w(&[("a", 1000), ("b", 1)]);
        assert!(v.len() <= 101, "{}", v.len());
        assert_eq!(v.iter().filter(|u| *u == "b").count(), 1);
    }
}
