//! One rule compiled: conditions, action and header changes. Every value
//! the router would otherwise have dropped or replaced is refused here.
//!
//! Refused parts get placeholders so that the remaining parts are still
//! checked (every error at once); [`crate::compile`] returns no vService
//! when anything was refused, so a placeholder is never served.

use crate::action::Action;
use crate::compile::{host_pattern, hosts, Bindings};
use crate::error::{Errors, RouteErrorId as E};
use crate::headers::HeaderChanges;
use crate::host::HostPattern;
use crate::path::{not_a_request_path, not_normal, PathChange};
use crate::redirect::RedirectTarget;
use crate::rule::{CompiledRule, HeaderCond, PathCond, QueryCond};
use corsgate_config::{Direct, Forward, HeaderEdits, PathMatch, PathRewrite, Redirect, Rule};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use regex::Regex;
use std::sync::atomic::AtomicUsize;

/// The redirect statuses: the Gateway API's 301 and 302, and 303, 307 and
/// 308 (300, 304, 305 and 306 do not redirect a browser).
const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// Methods whose lower-case spelling is surely a typo: methods are
/// case-sensitive, so `get` would never match a `GET` request.
const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

pub(crate) fn compile_rule(
    at: &str,
    i: usize,
    r: &Rule,
    b: &Bindings<'_>,
    errors: &mut Errors<'_>,
) -> CompiledRule {
    let m = &r.matches;
    CompiledRule {
        index: i,
        name: r.name.clone().unwrap_or_else(|| format!("rule-{i}")),
        hosts: hosts(errors, &format!("{at}.match.hosts"), &m.hosts),
        path: m
            .path
            .as_ref()
            .and_then(|p| path_cond(errors, &format!("{at}.match.path"), p)),
        methods: methods(errors, &format!("{at}.match.methods"), &m.methods),
        headers: header_conds(errors, at, r),
        query: query_conds(errors, at, r),
        cors: r
            .cors
            .as_deref()
            .and_then(|n| b.get(errors, format!("{at}.cors"), n)),
        action: action(errors, at, r),
        request_headers: header_changes(
            errors,
            &format!("{at}.requestHeaders"),
            &r.request_headers,
        ),
        response_headers: header_changes(
            errors,
            &format!("{at}.responseHeaders"),
            &r.response_headers,
        ),
    }
}

/// An anchored regex, or a refusal at `at`.
fn regex(errors: &mut Errors<'_>, at: String, re: &str) -> Option<Regex> {
    match Regex::new(&format!("^(?:{re})$")) {
        Ok(r) => Some(r),
        Err(e) => {
            errors.push(at, E::InvalidRegex, e.to_string());
            None
        }
    }
}

fn path_cond(errors: &mut Errors<'_>, at: &str, p: &PathMatch) -> Option<PathCond> {
    let cond = match (&p.exact, &p.prefix, &p.regex) {
        (Some(e), None, None) => PathCond::Exact(e.clone()),
        (None, Some(pre), None) => PathCond::Prefix(pre.clone()),
        (None, None, Some(re)) => PathCond::Regex(regex(errors, format!("{at}.regex"), re)?),
        _ => {
            errors.push(
                at,
                E::InvalidPathMatch,
                "give exactly one of exact, prefix or regex",
            );
            return None;
        }
    };
    for (field, p) in [("exact", &p.exact), ("prefix", &p.prefix)] {
        if let Some(why) = p.as_deref().and_then(not_a_request_path) {
            errors.push(format!("{at}.{field}"), E::InvalidPath, why);
        } else if let Some(why) = p.as_deref().and_then(not_normal) {
            errors.push(format!("{at}.{field}"), E::InvalidPath, why);
        }
    }
    Some(cond)
}

/// Method conditions. Each entry is one method token: `"GET,POST"` is not
/// a method, and dropping it used to leave the rule matching every method.
fn methods(errors: &mut Errors<'_>, at: &str, list: &[String]) -> Vec<Method> {
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let upper = m.to_ascii_uppercase();
        match Method::from_bytes(m.as_bytes()) {
            Err(_) => errors.push(
                format!("{at}[{i}]"),
                E::InvalidMethod,
                format!("{m:?} is not one method token; list each method as its own entry"),
            ),
            Ok(_) if *m != upper && STANDARD_METHODS.contains(&upper.as_str()) => errors.push(
                format!("{at}[{i}]"),
                E::InvalidMethod,
                format!("methods are case-sensitive: {m:?} never matches {upper}; write {upper}"),
            ),
            Ok(method) => out.push(method),
        }
    }
    out
}

fn header_name(errors: &mut Errors<'_>, at: String, name: &str) -> Option<HeaderName> {
    match HeaderName::from_bytes(name.as_bytes()) {
        Ok(n) => Some(n),
        Err(_) => {
            errors.push(
                at,
                E::InvalidHeaderName,
                format!("{name:?} is not a header name"),
            );
            None
        }
    }
}

fn header_value(errors: &mut Errors<'_>, at: String, v: &str) -> Option<HeaderValue> {
    match HeaderValue::from_str(v) {
        Ok(v) => Some(v),
        Err(_) => {
            errors.push(
                at,
                E::InvalidHeaderValue,
                format!("{v:?} is not a header value (control characters or non-ASCII)"),
            );
            None
        }
    }
}

fn header_conds(errors: &mut Errors<'_>, at: &str, r: &Rule) -> Vec<HeaderCond> {
    let mut out = Vec::new();
    for (hi, h) in r.matches.headers.iter().enumerate() {
        let hat = format!("{at}.match.headers[{hi}]");
        let name = header_name(errors, format!("{hat}.name"), &h.name);
        let cond = match (&h.value, &h.regex) {
            (Some(_), Some(_)) => {
                errors.push(hat, E::ConflictingMatch, "give value or regex, not both");
                None
            }
            (Some(v), None) => {
                header_value(errors, format!("{hat}.value"), v);
                name.map(|n| HeaderCond::Equals(n, v.clone()))
            }
            (None, Some(re)) => regex(errors, format!("{hat}.regex"), re)
                .and_then(|re| Some(HeaderCond::Regex(name?, re))),
            (None, None) => name.map(HeaderCond::Present),
        };
        out.extend(cond);
    }
    out
}

fn query_conds(errors: &mut Errors<'_>, at: &str, r: &Rule) -> Vec<QueryCond> {
    let mut out = Vec::new();
    for (qi, q) in r.matches.query.iter().enumerate() {
        let qat = format!("{at}.match.query[{qi}]");
        if q.name.is_empty() {
            errors.push(
                format!("{qat}.name"),
                E::InvalidQuery,
                "a query condition names a parameter",
            );
        }
        let regex = match &q.regex {
            Some(re) => match regex(errors, format!("{qat}.regex"), re) {
                Some(r) => Some(r),
                None => continue,
            },
            None => None,
        };
        out.push(QueryCond {
            name: q.name.clone(),
            value: q.value.clone(),
            regex,
        });
    }
    out
}

fn action(errors: &mut Errors<'_>, at: &str, r: &Rule) -> Action {
    let count = usize::from(r.forward.is_some())
        + usize::from(r.direct.is_some())
        + usize::from(r.redirect.is_some());
    if count != 1 {
        errors.push(
            at,
            E::RuleAction,
            "a rule has exactly one action: forward, direct or redirect",
        );
    }
    let prefix_cond = r.matches.path.as_ref().and_then(|p| p.prefix.as_deref());
    if let Some(f) = &r.forward {
        forward(errors, &format!("{at}.forward"), f, prefix_cond)
    } else if let Some(d) = &r.direct {
        direct(errors, &format!("{at}.direct"), d)
    } else if let Some(rd) = &r.redirect {
        redirect(errors, &format!("{at}.redirect"), rd, prefix_cond)
    } else {
        // Refused above; a placeholder.
        Action::Direct {
            status: StatusCode::NOT_FOUND,
            headers: HeaderMap::new(),
            body: bytes::Bytes::new(),
        }
    }
}

fn forward(errors: &mut Errors<'_>, at: &str, f: &Forward, prefix_cond: Option<&str>) -> Action {
    if f.upstreams.is_empty() {
        errors.push(
            format!("{at}.upstreams"),
            E::NoUpstream,
            "at least one upstream URL",
        );
    }
    for (ui, u) in f.upstreams.iter().enumerate() {
        if let Some(why) = not_an_upstream(u) {
            errors.push(
                format!("{at}.upstreams[{ui}]"),
                E::InvalidUpstream,
                format!("{u:?} is not an http://host:port URL: {why}"),
            );
        }
    }
    for (pi, p) in f.upgrades.iter().enumerate() {
        let pat = format!("{at}.upgrades[{pi}]");
        if p.eq_ignore_ascii_case("h2c") {
            errors.push(
                pat,
                E::InvalidUpgrade,
                "h2c is never tunnelled: an HTTP/2 connection through the gateway would carry \
                 requests that no rule sees",
            );
        } else if !corsgate_policy::is_token(p.as_bytes()) {
            errors.push(
                pat,
                E::InvalidUpgrade,
                format!("{p:?} is not a protocol name (a token)"),
            );
        }
    }
    if f.max_idle_connections > corsgate_config::MAX_IDLE_CONNECTIONS {
        errors.push(
            format!("{at}.maxIdleConnections"),
            E::InvalidLimit,
            format!(
                "{} is not between 0 and {}: the connections from one address to one upstream \
                 are bounded by the local port",
                f.max_idle_connections,
                corsgate_config::MAX_IDLE_CONNECTIONS
            ),
        );
    }
    let rewrite = f.rewrite.as_ref();
    let rewrite_host = rewrite.and_then(|rw| rw.hostname.as_deref()).and_then(|h| {
        let hat = format!("{at}.rewrite.hostname");
        host_pattern(errors, &hat, h)?;
        if h.starts_with("*.") {
            errors.push(
                &hat,
                E::InvalidHost,
                "a rewritten Host is one name, not a pattern",
            );
            return None;
        }
        header_value(errors, hat, h)
    });
    let rewrite_path = rewrite
        .and_then(|rw| rw.path.as_ref())
        .and_then(|p| path_change(errors, &format!("{at}.rewrite.path"), p, prefix_cond));
    Action::Forward {
        upstreams: f
            .upstreams
            .iter()
            .map(|u| u.trim_end_matches('/').to_owned())
            .collect(),
        next: AtomicUsize::new(0),
        connect_timeout: std::time::Duration::from_millis(f.connect_timeout_ms),
        timeout: std::time::Duration::from_millis(f.timeout_ms),
        http2: f.http2,
        rewrite_host,
        rewrite_path,
        upgrades: f.upgrades.iter().map(|p| p.to_ascii_lowercase()).collect(),
        forwarded_headers: f.forwarded_headers,
        max_idle: f.max_idle_connections as usize,
    }
}

/// Why `u` is not an `http://host:port` base URL. The two upstream
/// clients read it differently: one connects to everything after
/// `http://`, the other builds a URL, so a path, a user or a missing port
/// would work on one path and fail (or go elsewhere) on the other.
fn not_an_upstream(u: &str) -> Option<&'static str> {
    let Ok(uri) = u.parse::<http::Uri>() else {
        return Some("not a URL");
    };
    let Some(authority) = uri.authority() else {
        return Some("no host");
    };
    if uri.scheme_str() != Some("http") {
        return Some("the scheme is http");
    }
    if authority.as_str().contains('@') {
        return Some("no user information");
    }
    if authority.port_u16().is_none_or(|p| p == 0) {
        return Some("the port is explicit (1 to 65535)");
    }
    match uri.path_and_query().map(|pq| pq.as_str()) {
        None | Some("" | "/") => None,
        Some(_) => Some("no path or query (use forward.rewrite.path)"),
    }
}

fn direct(errors: &mut Errors<'_>, at: &str, d: &Direct) -> Action {
    // A final response is 2xx to 5xx: 1xx is interim, and the rest are not
    // statuses a client understands.
    let status = match StatusCode::from_u16(d.status) {
        Ok(s) if (200..600).contains(&d.status) => s,
        _ => {
            errors.push(
                format!("{at}.status"),
                E::InvalidStatus,
                format!("{} is not a final HTTP status (200 to 599)", d.status),
            );
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    let mut headers = HeaderMap::new();
    for (k, v) in &d.headers {
        let hat = format!("{at}.headers.{k}");
        let name = header_name(errors, hat.clone(), k);
        if let (Some(k), Some(v)) = (name, header_value(errors, hat, v)) {
            headers.append(k, v);
        }
    }
    Action::Direct {
        status,
        headers,
        body: bytes::Bytes::from(d.body.clone()),
    }
}

fn redirect(errors: &mut Errors<'_>, at: &str, rd: &Redirect, prefix_cond: Option<&str>) -> Action {
    if !REDIRECT_STATUSES.contains(&rd.status) {
        errors.push(
            format!("{at}.status"),
            E::InvalidRedirectStatus,
            format!(
                "{} is not a redirect status: 301, 302, 303, 307 or 308",
                rd.status
            ),
        );
    }
    let status = StatusCode::from_u16(rd.status).unwrap_or(StatusCode::FOUND);
    let computed =
        rd.scheme.is_some() || rd.hostname.is_some() || rd.port.is_some() || rd.path.is_some();
    let target = match (&rd.location, computed) {
        (Some(l), false) => match HeaderValue::from_str(l) {
            Ok(v) => RedirectTarget::Fixed(v),
            Err(_) => {
                errors.push(
                    format!("{at}.location"),
                    E::InvalidLocation,
                    format!("{l:?} is not a header value (control characters or non-ASCII)"),
                );
                RedirectTarget::Fixed(HeaderValue::from_static("/"))
            }
        },
        (Some(_), true) => {
            errors.push(
                at,
                E::RedirectConflict,
                "give either a fixed location or any of scheme, hostname, port, path",
            );
            RedirectTarget::Fixed(HeaderValue::from_static("/"))
        }
        // A redirect that replaces nothing sends the client back to the
        // URL it asked for, forever.
        (None, false) => {
            errors.push(
                at,
                E::RedirectLoop,
                "a redirect gives a location or replaces at least one of scheme, hostname, \
                 port, path; this one would send the client back to the same URL",
            );
            RedirectTarget::Fixed(HeaderValue::from_static("/"))
        }
        // What is not replaced is the request's own: scheme, host, port,
        // path (a missing path keeps the request's path) and query.
        (None, true) => RedirectTarget::Computed {
            scheme: rd.scheme.clone(),
            hostname: rd.hostname.clone(),
            port: rd.port,
            path: rd
                .path
                .as_ref()
                .and_then(|p| path_change(errors, &format!("{at}.path"), p, prefix_cond)),
        },
    };
    if let Some(sc) = rd
        .scheme
        .as_deref()
        .filter(|s| *s != "http" && *s != "https")
    {
        errors.push(
            format!("{at}.scheme"),
            E::InvalidScheme,
            format!("{sc:?}: http or https"),
        );
    }
    if let Some(h) = &rd.hostname {
        if HostPattern::parse(h).is_none() || h.starts_with("*.") {
            errors.push(
                format!("{at}.hostname"),
                E::InvalidHost,
                format!("{h:?} is not a host name"),
            );
        }
    }
    if rd.port == Some(0) {
        errors.push(format!("{at}.port"), E::InvalidPort, "a port is 1 to 65535");
    }
    Action::Redirect { status, target }
}

fn path_change(
    errors: &mut Errors<'_>,
    at: &str,
    p: &PathRewrite,
    prefix_cond: Option<&str>,
) -> Option<PathChange> {
    match (&p.full, &p.prefix, prefix_cond) {
        (Some(f), None, _) => {
            if let Some(why) = not_a_request_path(f) {
                errors.push(format!("{at}.full"), E::InvalidPath, why);
            }
            Some(PathChange::Full(f.clone()))
        }
        (None, Some(with), Some(matched)) => {
            // An empty replacement drops the prefix.
            if let Some(why) = Some(with.as_str())
                .filter(|w| !w.is_empty())
                .and_then(not_a_request_path)
            {
                errors.push(format!("{at}.prefix"), E::InvalidPath, why);
            }
            Some(PathChange::Prefix {
                matched: matched.to_owned(),
                with: with.clone(),
            })
        }
        (None, Some(_), None) => {
            errors.push(
                at,
                E::InvalidPathRewrite,
                "a prefix replacement needs a `match.path.prefix` condition to replace",
            );
            None
        }
        _ => {
            errors.push(
                at,
                E::InvalidPathRewrite,
                "give exactly one of full or prefix",
            );
            None
        }
    }
}

/// Header changes at `at` (`set`, `add`, `remove`).
fn header_changes(errors: &mut Errors<'_>, at: &str, e: &HeaderEdits) -> HeaderChanges {
    let mut pairs = |list: &str, m: &std::collections::BTreeMap<String, String>| {
        let mut out = Vec::new();
        for (k, v) in m {
            let kat = format!("{at}.{list}.{k}");
            let name = header_name(errors, kat.clone(), k);
            if let (Some(n), Some(v)) = (name, header_value(errors, kat, v)) {
                out.push((n, v));
            }
        }
        out
    };
    let set = pairs("set", &e.set);
    let add = pairs("add", &e.add);
    let remove = e
        .remove
        .iter()
        .enumerate()
        .filter_map(|(i, k)| header_name(errors, format!("{at}.remove[{i}]"), k))
        .collect();
    HeaderChanges { set, add, remove }
}
