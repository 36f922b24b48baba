//! Kubernetes Gateway API import: `Gateway`, `HTTPRoute` and CORS policy
//! attachments (`spec.traffic.cors` / `spec.cors` with `targetRefs`)
//! become vServices, rules and policies of the native configuration.
//!
//! Everything in a manifest is either imported or reported: every object
//! walked here names the fields it understands, and any other field is a
//! note ("not implemented"), never silently dropped. Each generated
//! vService, rule and policy remembers the manifest place it came from, so
//! errors and lints found later point into the manifest.
//!
//! Precedence follows the Gateway API (HTTPRoute `rules` documentation):
//! across every route attached to a listener, matches are ordered by
//! hostname specificity (exact, then longer wildcard), then exact path,
//! then longest prefix, then a method match, then the number of header
//! matches, then the number of query matches; ties go to the oldest route
//! (`metadata.creationTimestamp`), then `namespace/name` alphabetically,
//! then rule and match order.

use crate::{Direct, Forward, HeaderEdits, HeaderMatch, Match, PathMatch, PathRewrite};
use crate::{GatewayApi, QueryMatch, Redirect, Rewrite, Rule, Tls, VService};
use corsgate_policy::PolicySpec;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Where something came from: a manifest, a document in it, a path in the
/// document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// Index into the manifests given to [`import`].
    pub manifest: usize,
    /// Document index in the manifest.
    pub doc: usize,
    /// Path in the document (`spec.rules[0].filters[1]`).
    pub path: String,
}

/// How much a note matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteKind {
    /// Something in the manifest corsgate does not implement (ignored).
    Unsupported,
    /// Where corsgate's CORS semantics deliberately differ from the
    /// Gateway API text (docs/gateway-api.md).
    Compat,
    /// Informational (a substituted documentation snippet, a resolved
    /// reference).
    Info,
}

impl NoteKind {
    /// Label for output.
    pub fn as_str(self) -> &'static str {
        match self {
            NoteKind::Unsupported => "unsupported",
            NoteKind::Compat => "compat",
            NoteKind::Info => "info",
        }
    }
}

/// A note about the import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Where.
    pub source: Source,
    /// What kind.
    pub kind: NoteKind,
    /// What.
    pub message: String,
}

/// The result of an import.
#[derive(Debug, Default)]
pub struct Imported {
    /// Generated policies.
    pub policies: BTreeMap<String, PolicySpec>,
    /// Generated vServices.
    pub vservices: Vec<VService>,
    /// Notes.
    pub notes: Vec<Note>,
    /// Problems that refuse the configuration, with a stable ID where
    /// they have one.
    pub errors: Vec<(Source, Option<&'static str>, String)>,
    /// Native path (`vservices[0].rules[3]`, relative to the generated
    /// vServices; `policies.NAME`) → where it came from.
    pub provenance: Vec<(String, Source)>,
}

/// Documentation snippets of the seed page (Hugo `reuse` shortcodes) and
/// what they render to on agentgateway's site, so that manifests copied
/// from it load as they stand.
const SNIPPETS: [(&str, &str); 3] = [
    ("agw-docs/snippets/namespace.md", "agentgateway-system"),
    ("agw-docs/snippets/trafficpolicy.md", "AgentgatewayPolicy"),
    (
        "agw-docs/snippets/trafficpolicy-apiversion.md",
        "agentgateway.dev/v1alpha1",
    ),
];

/// `(1-based line, message)` pairs.
pub type LineMessages = Vec<(usize, String)>;

/// Replace the known `{{< reuse "…" >}}` documentation shortcodes; report
/// each (notes), and refuse unknown ones (errors).
pub fn expand_snippets(text: &str) -> (String, LineMessages, LineMessages) {
    let mut out = String::with_capacity(text.len());
    let mut notes = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        let mut done = String::new();
        while let Some(start) = rest.find("{{<") {
            let Some(len) = rest[start..].find(">}}") else {
                break;
            };
            let inner = rest[start + 3..start + len].trim();
            let name = inner
                .strip_prefix("reuse")
                .map(|r| r.trim().trim_matches('"'))
                .unwrap_or(inner);
            done.push_str(&rest[..start]);
            match SNIPPETS.iter().find(|(k, _)| *k == name) {
                Some((_, v)) => {
                    done.push_str(v);
                    notes.push((
                        i + 1,
                        format!("documentation snippet {name:?} read as {v:?}"),
                    ));
                }
                None => {
                    errors.push((
                        i + 1,
                        format!(
                            "unknown documentation shortcode {:?}",
                            &rest[start..start + len + 3]
                        ),
                    ));
                    done.push('~');
                }
            }
            rest = &rest[start + len + 3..];
        }
        done.push_str(rest);
        out.push_str(&done);
    }
    (out, notes, errors)
}

/// The documents of a manifest text (empty documents skipped, indexes
/// kept).
pub fn documents(text: &str) -> Result<Vec<Value>, serde_yaml_ng::Error> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for d in serde_yaml_ng::Deserializer::from_str(text) {
        docs.push(Value::deserialize(d)?);
    }
    Ok(docs)
}

/// Does this text look like Kubernetes manifests rather than a native
/// configuration?
pub fn looks_like_manifests(text: &str) -> bool {
    let (text, _, _) = expand_snippets(text);
    documents(&text)
        .ok()
        .and_then(|d| d.into_iter().find(|v| !v.is_null()))
        .is_some_and(|v| v.get("apiVersion").is_some() && v.get("kind").is_some())
}

struct Ctx<'a> {
    manifest: usize,
    doc: usize,
    out: &'a mut Imported,
}

impl Ctx<'_> {
    fn src(&self, path: &str) -> Source {
        Source {
            manifest: self.manifest,
            doc: self.doc,
            path: path.to_owned(),
        }
    }
    fn note(&mut self, path: &str, kind: NoteKind, message: String) {
        let source = self.src(path);
        self.out.notes.push(Note {
            source,
            kind,
            message,
        });
    }
    fn error(&mut self, path: &str, message: String) {
        let source = self.src(path);
        self.out.errors.push((source, None, message));
    }
    /// A refusal with a stable ID.
    fn refuse(&mut self, path: &str, id: &'static str, message: String) {
        let source = self.src(path);
        self.out.errors.push((source, Some(id), message));
    }
    /// Report every key of `obj` not in `known`.
    fn extra(&mut self, obj: &Map<String, Value>, path: &str, known: &[&str]) {
        for k in obj.keys() {
            if !known.contains(&k.as_str()) {
                self.note(
                    &join(path, k),
                    NoteKind::Unsupported,
                    format!("`{k}` is not implemented by corsgate and is ignored"),
                );
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn obj(v: Option<&Value>) -> Option<&Map<String, Value>> {
    v.and_then(Value::as_object)
}
fn arr(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}
fn string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[derive(Clone, Debug)]
struct Listener {
    name: String,
    port: u16,
    hostname: Option<String>,
    tls: Option<Tls>,
    same_namespace_only: bool,
    source: Source,
}

#[derive(Clone, Debug)]
struct Gateway {
    namespace: String,
    name: String,
    listeners: Vec<Listener>,
}

struct ParentRef {
    namespace: String,
    name: String,
    section: Option<String>,
    port: Option<u16>,
    path: String,
}

struct RouteRule {
    /// The rule's `name`, used in the generated rules' names.
    name: Option<String>,
    /// `(native match, source path)`; one per Gateway API match.
    matches: Vec<(Match, String)>,
    cors: Option<String>,
    request_headers: HeaderEdits,
    response_headers: HeaderEdits,
    redirect: Option<Redirect>,
    rewrite: Option<Rewrite>,
    upstreams: Vec<String>,
    /// backendRefs were given but none resolved.
    unresolved: bool,
    timeout_ms: Option<u64>,
}

struct Route {
    namespace: String,
    name: String,
    created: String,
    manifest: usize,
    doc: usize,
    parents: Vec<ParentRef>,
    hostnames: Vec<String>,
    rules: Vec<RouteRule>,
}

/// A CORS policy attached with `targetRefs`.
struct Attachment {
    kind: String,
    namespace: String,
    name: String,
    policy: String,
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

fn route_match(c: &mut Ctx<'_>, m: &Value, path: &str) -> Match {
    let mut out = Match::default();
    let Some(o) = m.as_object() else {
        c.error(path, "expected a mapping".into());
        return out;
    };
    c.extra(o, path, &["path", "headers", "queryParams", "method"]);
    if let Some(p) = obj(o.get("path")) {
        let at = join(path, "path");
        c.extra(p, &at, &["type", "value"]);
        let value = string(p.get("value")).unwrap_or_else(|| "/".into());
        out.path = Some(
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
                        &join(&at, "type"),
                        format!("unknown path match type {other:?}"),
                    );
                    PathMatch {
                        prefix: Some(value),
                        ..PathMatch::default()
                    }
                }
            },
        );
    }
    for (i, h) in arr(o.get("headers")).iter().enumerate() {
        let at = format!("{path}.headers[{i}]");
        let Some(h) = h.as_object() else { continue };
        c.extra(h, &at, &["type", "name", "value"]);
        let name = string(h.get("name")).unwrap_or_default();
        let value = string(h.get("value"));
        match h.get("type").and_then(Value::as_str).unwrap_or("Exact") {
            "Exact" => out.headers.push(HeaderMatch {
                name,
                value,
                regex: None,
            }),
            "RegularExpression" => out.headers.push(HeaderMatch {
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
    for (i, q) in arr(o.get("queryParams")).iter().enumerate() {
        let at = format!("{path}.queryParams[{i}]");
        let Some(q) = q.as_object() else { continue };
        c.extra(q, &at, &["type", "name", "value"]);
        let name = string(q.get("name")).unwrap_or_default();
        let value = string(q.get("value"));
        match q.get("type").and_then(Value::as_str).unwrap_or("Exact") {
            "Exact" => out.query.push(QueryMatch {
                name,
                value,
                regex: None,
            }),
            "RegularExpression" => out.query.push(QueryMatch {
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
    if let Some(m) = string(o.get("method")) {
        out.methods.push(m);
    }
    out
}

fn policy_spec(c: &mut Ctx<'_>, v: &Value, path: &str) -> Option<PolicySpec> {
    match serde_json::from_value::<PolicySpec>(v.clone()) {
        Ok(spec) => Some(spec),
        Err(e) => {
            c.error(path, format!("not a CORS filter: {e}"));
            None
        }
    }
}

#[allow(clippy::too_many_lines)]
fn route(
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
            namespace: string(p.get("namespace")).unwrap_or_else(|| namespace.clone()),
            name: string(p.get("name")).unwrap_or_default(),
            section: string(p.get("sectionName")),
            port: p
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok()),
            path: at,
        });
    }
    let hostnames = arr(spec.get("hostnames"))
        .iter()
        .filter_map(|h| string(Some(h)))
        .collect();
    let mut rules = Vec::new();
    for (ri, r) in arr(spec.get("rules")).iter().enumerate() {
        let at = format!("spec.rules[{ri}]");
        let Some(r) = r.as_object() else { continue };
        c.extra(
            r,
            &at,
            &["name", "matches", "filters", "backendRefs", "timeouts"],
        );
        let mut rule = RouteRule {
            name: string(r.get("name")),
            matches: Vec::new(),
            cors: None,
            request_headers: HeaderEdits::default(),
            response_headers: HeaderEdits::default(),
            redirect: None,
            rewrite: None,
            upstreams: Vec::new(),
            unresolved: false,
            timeout_ms: None,
        };
        let matches = arr(r.get("matches"));
        if matches.is_empty() {
            // No match: every request (PathPrefix "/").
            rule.matches.push((
                Match {
                    path: Some(PathMatch {
                        prefix: Some("/".into()),
                        ..PathMatch::default()
                    }),
                    ..Match::default()
                },
                at.clone(),
            ));
        }
        for (mi, m) in matches.iter().enumerate() {
            let mat = format!("{at}.matches[{mi}]");
            let mut native = route_match(c, m, &mat);
            if native.path.is_none() {
                native.path = Some(PathMatch {
                    prefix: Some("/".into()),
                    ..PathMatch::default()
                });
            }
            rule.matches.push((native, mat));
        }
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
            let field = match kind.as_str() {
                "CORS" => "cors",
                "RequestHeaderModifier" => "requestHeaderModifier",
                "ResponseHeaderModifier" => "responseHeaderModifier",
                "RequestRedirect" => "requestRedirect",
                "URLRewrite" => "urlRewrite",
                other => {
                    c.note(
                        &fat,
                        NoteKind::Unsupported,
                        format!("filter type {other:?} is not implemented and is ignored"),
                    );
                    continue;
                }
            };
            c.extra(f, &fat, &["type", field]);
            let Some(body) = f.get(field) else {
                c.error(&fat, format!("a {kind} filter needs `{field}`"));
                continue;
            };
            let bat = join(&fat, field);
            // A filter that is not a mapping used to be skipped, leaving the
            // rule to forward as if it had no filter.
            if !body.is_object() {
                c.error(&bat, format!("`{field}` is a mapping"));
                continue;
            }
            match kind.as_str() {
                "CORS" => {
                    if let Some(spec) = policy_spec(c, body, &bat) {
                        let pname = format!("httproute:{namespace}/{name}:rule{ri}");
                        c.out
                            .provenance
                            .push((format!("policies.{pname}"), c.src(&bat)));
                        c.out.policies.insert(pname.clone(), spec);
                        rule.cors = Some(pname);
                    }
                }
                "RequestHeaderModifier" => rule.request_headers = edits(c, body, &bat),
                "ResponseHeaderModifier" => rule.response_headers = edits(c, body, &bat),
                "RequestRedirect" => {
                    let Some(o) = body.as_object() else { continue };
                    rule.redirect = request_redirect(c, o, &bat);
                }
                _ => {
                    let Some(o) = body.as_object() else { continue };
                    c.extra(o, &bat, &["hostname", "path"]);
                    rule.rewrite = Some(Rewrite {
                        hostname: string(o.get("hostname")),
                        path: o
                            .get("path")
                            .and_then(|p| path_modifier(c, p, &join(&bat, "path"))),
                    });
                }
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
        if let Some(t) = obj(r.get("timeouts")) {
            let tat = join(&at, "timeouts");
            c.extra(t, &tat, &["request", "backendRequest"]);
            let pick = string(t.get("backendRequest")).or_else(|| string(t.get("request")));
            if let Some(d) = pick {
                match duration_ms(&d) {
                    Some(0) => {} // "0s": no timeout; keep the default
                    Some(ms) => rule.timeout_ms = Some(ms),
                    None => c.error(&tat, format!("{d:?} is not a Gateway API duration")),
                }
            }
        }
        let refs = arr(r.get("backendRefs"));
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
                string(b.get("namespace")).unwrap_or_else(|| namespace.clone()),
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
        rule.unresolved = !refs.is_empty() && weighted.is_empty();
        rule.upstreams = spread(&weighted);
        rules.push(rule);
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

fn gateway(
    c: &mut Ctx<'_>,
    doc: &Map<String, Value>,
    namespace: String,
    name: String,
    cfg: &GatewayApi,
) -> Gateway {
    let spec = obj(doc.get("spec")).cloned().unwrap_or_default();
    c.extra(&spec, "spec", &["gatewayClassName", "listeners"]);
    let mut listeners = Vec::new();
    for (i, l) in arr(spec.get("listeners")).iter().enumerate() {
        let at = format!("spec.listeners[{i}]");
        let Some(l) = l.as_object() else { continue };
        c.extra(
            l,
            &at,
            &[
                "name",
                "hostname",
                "port",
                "protocol",
                "tls",
                "allowedRoutes",
            ],
        );
        let lname = string(l.get("name")).unwrap_or_else(|| format!("listener-{i}"));
        let Some(port) = l
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
        else {
            c.error(&at, "a listener needs a port".into());
            continue;
        };
        let protocol = string(l.get("protocol")).unwrap_or_else(|| "HTTP".into());
        let mut tls = None;
        match protocol.as_str() {
            "HTTP" => {}
            "HTTPS" => {
                let tat = join(&at, "tls");
                let t = obj(l.get("tls")).cloned().unwrap_or_default();
                c.extra(&t, &tat, &["mode", "certificateRefs"]);
                if string(t.get("mode")).is_some_and(|m| m != "Terminate") {
                    c.error(&tat, "only tls.mode Terminate is implemented".into());
                }
                let refs = arr(t.get("certificateRefs"));
                let key = refs.first().map(|r| {
                    format!(
                        "{}/{}",
                        string(r.get("namespace")).unwrap_or_else(|| namespace.clone()),
                        string(r.get("name")).unwrap_or_default()
                    )
                });
                match key.as_ref().and_then(|k| cfg.certificates.get(k)) {
                    Some(files) => tls = Some(files.clone()),
                    None => c.error(
                        &tat,
                        format!(
                            "certificateRef {} has no entry in gatewayApi.certificates",
                            key.unwrap_or_else(|| "(none)".into())
                        ),
                    ),
                }
                if refs.len() > 1 {
                    c.note(
                        &tat,
                        NoteKind::Unsupported,
                        "only the first certificateRef is used".into(),
                    );
                }
            }
            other => {
                c.note(
                    &at,
                    NoteKind::Unsupported,
                    format!("protocol {other} is not implemented; listener skipped"),
                );
                continue;
            }
        }
        let mut same_namespace_only = true;
        if let Some(a) = obj(l.get("allowedRoutes")) {
            let aat = join(&at, "allowedRoutes");
            c.extra(a, &aat, &["namespaces"]);
            if let Some(from) = obj(a.get("namespaces")).and_then(|n| string(n.get("from"))) {
                match from.as_str() {
                    "Same" => {}
                    "All" => same_namespace_only = false,
                    other => c.note(
                        &aat,
                        NoteKind::Unsupported,
                        format!("namespaces.from {other} is not implemented; treated as Same"),
                    ),
                }
            }
        }
        listeners.push(Listener {
            name: lname,
            port,
            hostname: string(l.get("hostname")),
            tls,
            same_namespace_only,
            source: c.src(&at),
        });
    }
    Gateway {
        namespace,
        name,
        listeners,
    }
}

fn attachment(
    c: &mut Ctx<'_>,
    doc: &Map<String, Value>,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Vec<Attachment> {
    let spec = obj(doc.get("spec")).cloned().unwrap_or_default();
    let (cors, at) = match (obj(spec.get("traffic")), spec.get("cors")) {
        (Some(t), _) if t.contains_key("cors") => {
            c.extra(t, "spec.traffic", &["cors"]);
            (t.get("cors"), "spec.traffic.cors")
        }
        (_, Some(c)) => (Some(c), "spec.cors"),
        _ => (None, ""),
    };
    c.extra(&spec, "spec", &["targetRefs", "traffic", "cors"]);
    let Some(cors) = cors else {
        c.note(
            "spec",
            NoteKind::Unsupported,
            format!("{kind} without a CORS policy: nothing corsgate implements"),
        );
        return Vec::new();
    };
    let Some(policy) = policy_spec(c, cors, at) else {
        return Vec::new();
    };
    let pname = format!("{}:{namespace}/{name}", kind.to_ascii_lowercase());
    c.out
        .provenance
        .push((format!("policies.{pname}"), c.src(at)));
    c.out.policies.insert(pname.clone(), policy);
    let mut out = Vec::new();
    for (i, t) in arr(spec.get("targetRefs")).iter().enumerate() {
        let tat = format!("spec.targetRefs[{i}]");
        let Some(t) = t.as_object() else { continue };
        c.extra(t, &tat, &["group", "kind", "name"]);
        let tk = string(t.get("kind")).unwrap_or_default();
        if tk != "Gateway" && tk != "HTTPRoute" {
            c.note(
                &tat,
                NoteKind::Unsupported,
                format!("targetRef kind {tk:?} is not implemented; only Gateway and HTTPRoute"),
            );
            continue;
        }
        out.push(Attachment {
            kind: tk,
            namespace: namespace.to_owned(),
            name: string(t.get("name")).unwrap_or_default(),
            policy: pname.clone(),
        });
    }
    if out.is_empty() {
        c.note(
            "spec.targetRefs",
            NoteKind::Unsupported,
            "the policy targets nothing corsgate imports".into(),
        );
    }
    out
}

/// Does a route hostname fall under a listener hostname? Returns the
/// narrower of the two, as the Gateway API intersects them.
fn intersect(route: &str, listener: &str) -> Option<String> {
    let r = route.to_ascii_lowercase();
    let l = listener.to_ascii_lowercase();
    let covers = |pat: &str, host: &str| match pat.strip_prefix("*.") {
        Some(suffix) => host.ends_with(&format!(".{suffix}")) && host.len() > suffix.len() + 1,
        None => pat == host,
    };
    if r == l || covers(&l, &r) {
        Some(r)
    } else if covers(&r, &l) {
        Some(l)
    } else {
        None
    }
}

/// Precedence key of one generated rule (smaller sorts first).
type Key = (u8, i64, u8, i64, u8, i64, i64, String, String, usize, usize);

fn key(host: Option<&str>, m: &Match, route: &Route, ri: usize, mi: usize) -> Key {
    let len = |s: &str| -i64::try_from(s.len()).unwrap_or(i64::MAX);
    let (hk, hl) = match host {
        Some(h) if h.starts_with("*.") => (1, len(h)),
        Some(h) => (0, len(h)),
        None => (2, 0),
    };
    let (pk, pl) = match &m.path {
        Some(PathMatch { exact: Some(p), .. }) => (0, len(p)),
        Some(PathMatch {
            prefix: Some(p), ..
        }) => (1, len(p)),
        _ => (2, 0),
    };
    let count = |n: usize| -i64::try_from(n).unwrap_or(i64::MAX);
    (
        hk,
        hl,
        pk,
        pl,
        u8::from(m.methods.is_empty()),
        count(m.headers.len()),
        count(m.query.len()),
        route.created.clone(),
        format!("{}/{}", route.namespace, route.name),
        ri,
        mi,
    )
}

/// Import Gateway API manifests: `(manifest index, document index,
/// document)` for every document of every manifest.
#[allow(clippy::too_many_lines)]
pub fn import(docs: &[(usize, usize, Value)], cfg: &GatewayApi) -> Imported {
    let mut out = Imported::default();
    let mut gateways: Vec<Gateway> = Vec::new();
    let mut routes: Vec<Route> = Vec::new();
    let mut attachments: Vec<Attachment> = Vec::new();
    for (manifest, doc, value) in docs {
        let mut c = Ctx {
            manifest: *manifest,
            doc: *doc,
            out: &mut out,
        };
        let Some(o) = value.as_object() else {
            if !value.is_null() {
                c.error("", "a manifest document is a mapping".into());
            }
            continue;
        };
        let api = string(o.get("apiVersion")).unwrap_or_default();
        let kind = string(o.get("kind")).unwrap_or_default();
        let meta = obj(o.get("metadata")).cloned().unwrap_or_default();
        let name = string(meta.get("name")).unwrap_or_default();
        let namespace = string(meta.get("namespace")).unwrap_or_else(|| "default".into());
        c.extra(o, "", &["apiVersion", "kind", "metadata", "spec", "status"]);
        let gateway_api = api.starts_with("gateway.networking.k8s.io/");
        match kind.as_str() {
            "Gateway" if gateway_api => gateways.push(gateway(&mut c, o, namespace, name, cfg)),
            "HTTPRoute" if gateway_api => routes.push(route(&mut c, o, namespace, name, cfg)),
            _ if !gateway_api
                && obj(o.get("spec")).is_some_and(|s| s.contains_key("targetRefs")) =>
            {
                attachments.extend(attachment(&mut c, o, &kind, &namespace, &name));
            }
            _ => c.note(
                "kind",
                NoteKind::Unsupported,
                format!("{api} {kind} is not a resource corsgate imports; ignored"),
            ),
        }
    }
    // Gateways named only in the listener table: one HTTP listener.
    for r in &routes {
        for p in &r.parents {
            let key = format!("{}/{}", p.namespace, p.name);
            let known = gateways
                .iter()
                .any(|g| g.namespace == p.namespace && g.name == p.name);
            if !known && cfg.listeners.contains_key(&key) {
                gateways.push(Gateway {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    listeners: vec![Listener {
                        name: "http".into(),
                        port: 0,
                        hostname: None,
                        tls: None,
                        same_namespace_only: false,
                        source: Source {
                            manifest: r.manifest,
                            doc: r.doc,
                            path: p.path.clone(),
                        },
                    }],
                });
            }
        }
    }
    // One vService per (Gateway, port); listeners on one port share it.
    struct Slot {
        vs: VService,
        rules: Vec<(Key, Rule, Source)>,
        source: Source,
        gateway: (String, String),
        port: u16,
        /// One of its listeners has no hostname: it serves any host.
        any_host: bool,
    }
    let mut slots: Vec<Slot> = Vec::new();
    let slot_of = |g: &Gateway, l: &Listener, slots: &mut Vec<Slot>| -> usize {
        if let Some(i) = slots
            .iter()
            .position(|s| s.gateway.0 == g.namespace && s.gateway.1 == g.name && s.port == l.port)
        {
            return i;
        }
        let listen = cfg
            .listeners
            .get(&format!("{}/{}/{}", g.namespace, g.name, l.name))
            .or_else(|| cfg.listeners.get(&format!("{}/{}", g.namespace, g.name)))
            .cloned()
            .unwrap_or_else(|| format!("{}:{}", cfg.bind_address, l.port));
        slots.push(Slot {
            vs: VService {
                name: format!("{}/{}:{}", g.namespace, g.name, l.port),
                listen,
                tls: l.tls.clone(),
                ..VService::default()
            },
            rules: Vec::new(),
            source: l.source.clone(),
            gateway: (g.namespace.clone(), g.name.clone()),
            port: l.port,
            any_host: false,
        });
        slots.len() - 1
    };
    for g in &gateways {
        for l in &g.listeners {
            let i = slot_of(g, l, &mut slots);
            match &l.hostname {
                Some(h) if !slots[i].vs.hostnames.contains(h) => {
                    slots[i].vs.hostnames.push(h.clone());
                }
                Some(_) => {}
                None => slots[i].any_host = true,
            }
        }
    }
    // A vService serves any host if one of its listeners does.
    for slot in &mut slots {
        if slot.any_host {
            slot.vs.hostnames.clear();
        }
    }
    for route in &routes {
        for p in &route.parents {
            let mut c = Ctx {
                manifest: route.manifest,
                doc: route.doc,
                out: &mut out,
            };
            let Some(g) = gateways
                .iter()
                .find(|g| g.namespace == p.namespace && g.name == p.name)
            else {
                c.error(
                    &p.path,
                    format!(
                        "parentRef names Gateway {}/{}, which is neither in the manifests nor in gatewayApi.listeners",
                        p.namespace, p.name
                    ),
                );
                continue;
            };
            let mut attached = false;
            for l in &g.listeners {
                if p.section.as_ref().is_some_and(|s| *s != l.name)
                    || p.port.is_some_and(|pt| pt != l.port)
                {
                    continue;
                }
                if l.same_namespace_only && route.namespace != g.namespace {
                    continue;
                }
                let hosts: Vec<Option<String>> = match (&l.hostname, route.hostnames.is_empty()) {
                    (None, true) => vec![None],
                    (None, false) => route.hostnames.iter().cloned().map(Some).collect(),
                    (Some(lh), true) => vec![Some(lh.clone())],
                    (Some(lh), false) => route
                        .hostnames
                        .iter()
                        .filter_map(|rh| intersect(rh, lh))
                        .map(Some)
                        .collect(),
                };
                if hosts.is_empty() {
                    continue;
                }
                attached = true;
                let i = slot_of(g, l, &mut slots);
                let route_policy = attachments
                    .iter()
                    .find(|a| {
                        a.kind == "HTTPRoute"
                            && a.namespace == route.namespace
                            && a.name == route.name
                    })
                    .map(|a| a.policy.clone());
                for (ri, r) in route.rules.iter().enumerate() {
                    for (mi, (m, mpath)) in r.matches.iter().enumerate() {
                        for h in &hosts {
                            let mut matches = m.clone();
                            matches.hosts = h.iter().cloned().collect();
                            let mut rule = Rule {
                                name: Some(format!(
                                    "{}/{}#{}.{mi}",
                                    route.namespace,
                                    route.name,
                                    r.name.clone().unwrap_or_else(|| ri.to_string())
                                )),
                                matches,
                                cors: r.cors.clone().or_else(|| route_policy.clone()),
                                request_headers: r.request_headers.clone(),
                                response_headers: r.response_headers.clone(),
                                ..Rule::default()
                            };
                            if let Some(rd) = &r.redirect {
                                rule.redirect = Some(rd.clone());
                            } else if r.upstreams.is_empty() {
                                rule.direct = Some(Direct {
                                    status: 500,
                                    headers: BTreeMap::new(),
                                    body: if r.unresolved {
                                        "backend not resolved\n".into()
                                    } else {
                                        "no backend\n".into()
                                    },
                                });
                            } else {
                                let mut f = Forward {
                                    upstreams: r.upstreams.clone(),
                                    connect_timeout_ms: 2000,
                                    timeout_ms: r.timeout_ms.unwrap_or(30_000),
                                    http2: false,
                                    rewrite: r.rewrite.clone(),
                                    upgrades: crate::model::default_upgrades(),
                                    forwarded_headers: Default::default(),
                                };
                                if f.rewrite
                                    .as_ref()
                                    .is_some_and(|rw| rw.hostname.is_none() && rw.path.is_none())
                                {
                                    f.rewrite = None;
                                }
                                rule.forward = Some(f);
                            }
                            let k = key(h.as_deref(), &rule.matches, route, ri, mi);
                            let src = Source {
                                manifest: route.manifest,
                                doc: route.doc,
                                path: mpath.clone(),
                            };
                            slots[i].rules.push((k, rule, src));
                        }
                    }
                }
            }
            if !attached {
                let mut c = Ctx {
                    manifest: route.manifest,
                    doc: route.doc,
                    out: &mut out,
                };
                c.note(
                    &p.path,
                    NoteKind::Unsupported,
                    "no listener of the Gateway accepts this route (sectionName, port, hostnames or allowedRoutes)".into(),
                );
            }
        }
    }
    for (vi, mut slot) in slots.into_iter().enumerate() {
        slot.rules.sort_by(|a, b| a.0.cmp(&b.0));
        let gw_policy = attachments
            .iter()
            .find(|a| a.kind == "Gateway" && (a.namespace.clone(), a.name.clone()) == slot.gateway)
            .map(|a| a.policy.clone());
        slot.vs.cors = gw_policy;
        out.provenance
            .push((format!("vservices[{vi}]"), slot.source.clone()));
        for (ri, (_, rule, src)) in slot.rules.into_iter().enumerate() {
            out.provenance
                .push((format!("vservices[{vi}].rules[{ri}]"), src));
            slot.vs.rules.push(rule);
        }
        out.vservices.push(slot.vs);
    }
    // Where corsgate's semantics differ from the Gateway API text, once per
    // imported policy.
    let policies: Vec<(String, PolicySpec)> = out
        .policies
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (name, spec) in policies {
        let Some(src) = out
            .provenance
            .iter()
            .find(|(p, _)| *p == format!("policies.{name}"))
            .map(|(_, s)| s.clone())
        else {
            continue;
        };
        let mut compat = |message: String| {
            out.notes.push(Note {
                source: src.clone(),
                kind: NoteKind::Compat,
                message,
            })
        };
        if spec.allow_credentials
            && spec
                .allow_origins
                .iter()
                .any(|o| o == "*" || o.ends_with("://*") || o.contains("://*:"))
        {
            compat("`*` with allowCredentials: the Gateway API reflects any origin; corsgate refuses this \
                    unless the policy sets unsafeAllowAnyOriginWithCredentials: true (R5)"
                .into());
        }
        compat("every response on the route carries `Vary: Origin`, also refused and no-Origin ones (R24); \
                the Gateway API text does not require it"
            .into());
        compat("Access-Control-* headers set by the backend are removed and replaced by the policy's (R23)".into());
        compat("only OPTIONS with Origin and Access-Control-Request-Method is a preflight (R8): an OPTIONS \
                without it, like the seed page's curl example, is forwarded to the backend and completed \
                like any request, without Allow-Methods or Max-Age"
            .into());
        compat("a preflight from an origin that is not allowed gets 200 without any CORS headers (R20; \
                preflightRejectStatus: 403 or 204 changes the status), not the reflected origin some \
                implementations (and the seed page's second example) show"
            .into());
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

    #[test]
    fn hostnames_intersect_like_the_gateway_api() {
        assert_eq!(
            intersect("www.example.com", "*.example.com").as_deref(),
            Some("www.example.com")
        );
        assert_eq!(
            intersect("*.example.com", "www.example.com").as_deref(),
            Some("www.example.com")
        );
        assert_eq!(
            intersect("*.a.example.com", "*.example.com").as_deref(),
            Some("*.a.example.com")
        );
        assert_eq!(intersect("www.example.net", "*.example.com"), None);
        assert_eq!(intersect("example.com", "*.example.com"), None);
    }

    #[test]
    fn known_documentation_snippets_are_substituted_and_others_refused() {
        let (t, notes, errors) = expand_snippets(
            "namespace: {{< reuse \"agw-docs/snippets/namespace.md\" >}}\nkind: {{< other >}}\n",
        );
        assert_eq!(t, "namespace: agentgateway-system\nkind: ~\n");
        assert_eq!(notes.len(), 1);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, 2);
    }
}
