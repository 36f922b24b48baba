//! The traffic rules engine: compiled vServices, rule conditions and CORS
//! policy selection (R16, R17).
//!
//! Evaluation order, per request:
//! 1. the vService is the listener the request arrived on; a request whose
//!    host is not among its `hostnames` gets 404 (still completed with the
//!    vService's CORS policy, R25);
//! 2. rules are tried in configuration order; the first whose conditions all
//!    hold handles the request. For a preflight, a method condition is
//!    tested against `Access-Control-Request-Method`, a header-presence
//!    condition against the names in `Access-Control-Request-Headers`, and
//!    header value conditions count as "could match" (R17);
//! 3. the CORS policy is the most specific binding: the matched rule's, else
//!    the longest `pathCors` prefix, else `hostCors`, else the vService's,
//!    else the global one. It applies whole; fields never merge (R16).

use corsgate_config::{Config, HeaderMatch, PathMatch, Rule, VService};
use corsgate_policy::{Policy, RequestFields};
use http::header::{ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD};
use http::{HeaderMap, HeaderName, Method};
use regex::Regex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What a rule does.
#[derive(Debug)]
pub enum Action {
    /// Forward to upstreams, round robin.
    Forward {
        /// Upstream base URLs (`http://host:port`), without a trailing slash.
        upstreams: Vec<String>,
        /// Next upstream index.
        next: AtomicUsize,
        /// Connect timeout.
        connect_timeout: std::time::Duration,
        /// Time to response headers.
        timeout: std::time::Duration,
        /// HTTP/2 (h2c) to the upstreams.
        http2: bool,
        /// `Host` sent upstream instead of the client's.
        rewrite_host: Option<http::HeaderValue>,
        /// Path change before forwarding.
        rewrite_path: Option<PathChange>,
        /// Protocols a client may upgrade to (`Upgrade`), lower case.
        upgrades: Vec<String>,
    },
    /// Answer directly.
    Direct {
        /// Status.
        status: http::StatusCode,
        /// Headers, precomputed.
        headers: HeaderMap,
        /// Body.
        body: bytes::Bytes,
    },
    /// Redirect.
    Redirect {
        /// Status.
        status: http::StatusCode,
        /// Where to.
        target: RedirectTarget,
    },
}

/// A path replacement, compiled.
#[derive(Debug, Clone)]
pub enum PathChange {
    /// Replace the whole path.
    Full(String),
    /// Replace the matched prefix `matched` with `with`.
    Prefix {
        /// The rule's prefix condition.
        matched: String,
        /// Its replacement.
        with: String,
    },
}

impl PathChange {
    /// The new path for `path` (which the rule matched).
    pub fn apply(&self, path: &str) -> String {
        match self {
            PathChange::Full(p) => p.clone(),
            PathChange::Prefix { matched, with } => {
                let rest = path
                    .get(matched.trim_end_matches('/').len()..)
                    .unwrap_or("");
                let with = with.trim_end_matches('/');
                match (with.is_empty(), rest.is_empty()) {
                    (true, true) => "/".to_owned(),
                    (true, false) => rest.to_owned(),
                    (false, _) => format!("{with}{rest}"),
                }
            }
        }
    }
}

/// Where a redirect goes.
#[derive(Debug)]
pub enum RedirectTarget {
    /// A fixed `Location`.
    Fixed(http::HeaderValue),
    /// The request's URL with parts replaced.
    Computed {
        /// Scheme, else the request's.
        scheme: Option<String>,
        /// Host name, else the request's.
        hostname: Option<String>,
        /// Port, else the request's (or the scheme's default when the
        /// scheme changes).
        port: Option<u16>,
        /// Path change, else the request's path.
        path: Option<PathChange>,
    },
}

impl RedirectTarget {
    /// The `Location` for a request to `host_header` (`host[:port]`) with
    /// `path` and `query`, received over TLS or not.
    pub fn location(
        &self,
        tls: bool,
        host_header: &str,
        path: &str,
        query: Option<&str>,
    ) -> Option<http::HeaderValue> {
        let RedirectTarget::Computed {
            scheme,
            hostname,
            port,
            path: change,
        } = self
        else {
            let RedirectTarget::Fixed(v) = self else {
                return None;
            };
            return Some(v.clone());
        };
        let request_scheme = if tls { "https" } else { "http" };
        let scheme = scheme.as_deref().unwrap_or(request_scheme);
        let (req_host, req_port) = split_host_port(host_header);
        let host = hostname.as_deref().unwrap_or(req_host);
        let port = match (port, scheme == request_scheme) {
            (Some(p), _) => Some(*p),
            (None, true) => req_port,
            (None, false) => None,
        };
        let default = if scheme == "https" { 443 } else { 80 };
        let mut loc = format!("{scheme}://{host}");
        if let Some(p) = port.filter(|p| *p != default) {
            loc.push_str(&format!(":{p}"));
        }
        match change {
            Some(c) => loc.push_str(&c.apply(path)),
            None => loc.push_str(path),
        }
        if let Some(q) = query {
            loc.push('?');
            loc.push_str(q);
        }
        http::HeaderValue::from_str(&loc).ok()
    }
}

fn split_host_port(h: &str) -> (&str, Option<u16>) {
    let (host, port) = match h.rfind(':') {
        Some(i) if !h[i..].contains(']') => (&h[..i], h[i + 1..].parse().ok()),
        _ => (h, None),
    };
    (host, port)
}

/// Header changes, compiled: names and values parsed at load time.
#[derive(Debug, Default)]
pub struct HeaderChanges {
    set: Vec<(HeaderName, http::HeaderValue)>,
    add: Vec<(HeaderName, http::HeaderValue)>,
    remove: Vec<HeaderName>,
}

impl HeaderChanges {
    fn compile(e: &corsgate_config::HeaderEdits) -> Self {
        let pairs = |m: &BTreeMap<String, String>| {
            m.iter()
                .filter_map(|(k, v)| {
                    Some((
                        HeaderName::from_bytes(k.as_bytes()).ok()?,
                        http::HeaderValue::from_str(v).ok()?,
                    ))
                })
                .collect()
        };
        HeaderChanges {
            set: pairs(&e.set),
            add: pairs(&e.add),
            remove: e
                .remove
                .iter()
                .filter_map(|k| HeaderName::from_bytes(k.as_bytes()).ok())
                .collect(),
        }
    }

    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Apply: remove, then set, then add (the Gateway API's order does not
    /// matter as long as a name appears in one list only, which is the
    /// Gateway API's own rule).
    pub fn apply(&self, headers: &mut HeaderMap) {
        for n in &self.remove {
            headers.remove(n);
        }
        for (n, v) in &self.set {
            headers.insert(n.clone(), v.clone());
        }
        for (n, v) in &self.add {
            headers.append(n.clone(), v.clone());
        }
    }
}

impl Action {
    /// The upstream to use for the next forwarded request.
    pub fn pick_upstream(&self) -> Option<&str> {
        match self {
            Action::Forward {
                upstreams, next, ..
            } => {
                let i = next.fetch_add(1, Ordering::Relaxed) % upstreams.len().max(1);
                upstreams.get(i).map(String::as_str)
            }
            _ => None,
        }
    }
}

#[derive(Debug)]
enum PathCond {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

#[derive(Debug)]
enum HeaderCond {
    Present(HeaderName),
    Equals(HeaderName, String),
    Regex(HeaderName, Regex),
}

/// A compiled rule.
#[derive(Debug)]
pub struct CompiledRule {
    /// Position in the vService's rules.
    pub index: usize,
    /// Name for logs.
    pub name: String,
    hosts: Vec<HostPattern>,
    path: Option<PathCond>,
    methods: Vec<Method>,
    headers: Vec<HeaderCond>,
    query: Vec<QueryCond>,
    /// The rule's own policy.
    pub cors: Option<Arc<Policy>>,
    /// What to do.
    pub action: Action,
    /// Request header changes before forwarding.
    pub request_headers: HeaderChanges,
    /// Response header changes, before CORS completion.
    pub response_headers: HeaderChanges,
}

#[derive(Debug, Clone)]
enum HostPattern {
    Exact(String),
    Suffix(String),
}

impl HostPattern {
    fn new(p: &str) -> Self {
        let p = p.to_ascii_lowercase();
        match p.strip_prefix("*.") {
            Some(s) => HostPattern::Suffix(format!(".{s}")),
            None => HostPattern::Exact(p),
        }
    }
    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h.eq_ignore_ascii_case(host),
            HostPattern::Suffix(s) => {
                host.len() > s.len()
                    && host.as_bytes()[host.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
        }
    }
}

/// A compiled vService.
#[derive(Debug)]
pub struct CompiledVService {
    /// Name.
    pub name: String,
    /// Listen address as configured.
    pub listen: String,
    hostnames: Vec<HostPattern>,
    cors: Option<Arc<Policy>>,
    cors_is_global: bool,
    host_cors: Vec<(HostPattern, Arc<Policy>)>,
    path_cors: Vec<(String, Arc<Policy>)>,
    /// Rules in order.
    pub rules: Vec<CompiledRule>,
    index: RuleIndex,
    /// Request size, time and connection limits.
    pub limits: corsgate_config::Limits,
    /// How paths are normalised.
    pub paths: corsgate_config::Paths,
    /// TLS material, if the vService terminates TLS.
    pub tls: Option<corsgate_config::Tls>,
}

/// The request facts the router looks at. The fields are any
/// [`RequestFields`]: an `http::HeaderMap`, or the list corsgate's HTTP/1.1
/// front reads.
pub struct RequestFacts<'a, H: RequestFields + ?Sized = HeaderMap> {
    /// Method.
    pub method: &'a Method,
    /// Host without port, lower case.
    pub host: &'a str,
    /// Path.
    pub path: &'a str,
    /// Raw query, if any.
    pub query: Option<&'a str>,
    /// Header fields.
    pub headers: &'a H,
    /// Is this a CORS preflight (R8)?
    pub preflight: bool,
}

/// The router's answer.
pub struct Selection<'a> {
    /// The matched rule, if any.
    pub rule: Option<&'a CompiledRule>,
    /// The CORS policy in scope, if any.
    pub policy: Option<&'a Arc<Policy>>,
    /// Which binding chose it (R16).
    pub binding: Binding<'a>,
    /// Is the host served by this vService at all?
    pub host_served: bool,
}

/// Which binding selected the policy (R16: the most specific applies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding<'a> {
    /// The matched rule's `cors`.
    Rule,
    /// The longest matching `pathCors` prefix.
    Path(&'a str),
    /// A `hostCors` entry.
    Host,
    /// The vService's `cors`.
    VService,
    /// The configuration's global `cors`.
    Global,
    /// No policy: CORS is not applied.
    None,
}

impl std::fmt::Display for Binding<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Binding::Rule => f.write_str("bound to the matched rule"),
            Binding::Path(p) => write!(f, "bound to path prefix {p} (pathCors)"),
            Binding::Host => f.write_str("bound to the request host (hostCors)"),
            Binding::VService => f.write_str("bound to the vService"),
            Binding::Global => f.write_str("the global policy (top-level cors)"),
            Binding::None => f.write_str("no policy is bound at any level"),
        }
    }
}

/// Does `path` fall under `prefix` on a segment boundary?
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    let p = prefix.trim_end_matches('/');
    if p.is_empty() {
        return true;
    }
    path == p || (path.starts_with(p) && path.as_bytes().get(p.len()) == Some(&b'/'))
}

#[derive(Debug)]
struct QueryCond {
    name: String,
    value: Option<String>,
    regex: Option<Regex>,
}

fn query_has(query: Option<&str>, q: &QueryCond) -> bool {
    query.is_some_and(|qs| {
        qs.split('&').any(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            k == q.name
                && q.value.as_deref().is_none_or(|want| want == v)
                && q.regex.as_ref().is_none_or(|re| re.is_match(v))
        })
    })
}

impl CompiledRule {
    fn matches<H: RequestFields + ?Sized>(&self, r: &RequestFacts<'_, H>) -> bool {
        if !self.hosts.is_empty() && !self.hosts.iter().any(|h| h.matches(r.host)) {
            return false;
        }
        match &self.path {
            None => {}
            Some(PathCond::Exact(p)) if p != r.path => return false,
            Some(PathCond::Prefix(p)) if !prefix_matches(p, r.path) => return false,
            Some(PathCond::Regex(re)) if !re.is_match(r.path) => return false,
            Some(_) => {}
        }
        if !self.methods.is_empty() {
            // R17: a preflight is matched as the request it announces.
            let ok = if r.preflight {
                let acrm = r
                    .headers
                    .first_value(&ACCESS_CONTROL_REQUEST_METHOD)
                    .map(|v| v.as_bytes())
                    .unwrap_or_default();
                self.methods.iter().any(|m| m.as_str().as_bytes() == acrm)
            } else {
                self.methods.contains(r.method)
            };
            if !ok {
                return false;
            }
        }
        for h in &self.headers {
            let ok = if r.preflight {
                match h {
                    HeaderCond::Present(name) => acrh_names(r.headers)
                        .any(|n| n.eq_ignore_ascii_case(name.as_str().as_bytes())),
                    // The preflight cannot carry the value: "could match".
                    HeaderCond::Equals(..) | HeaderCond::Regex(..) => true,
                }
            } else {
                match h {
                    HeaderCond::Present(name) => r.headers.has(name),
                    HeaderCond::Equals(name, v) => {
                        r.headers.values(name).any(|x| x.as_bytes() == v.as_bytes())
                    }
                    HeaderCond::Regex(name, re) => r
                        .headers
                        .values(name)
                        .any(|x| x.to_str().is_ok_and(|s| re.is_match(s))),
                }
            };
            if !ok {
                return false;
            }
        }
        self.query.iter().all(|q| query_has(r.query, q))
    }
}

fn acrh_names<H: RequestFields + ?Sized>(headers: &H) -> impl Iterator<Item = &[u8]> {
    headers
        .values(&ACCESS_CONTROL_REQUEST_HEADERS)
        .flat_map(|v| v.as_bytes().split(|&c| c == b','))
        .map(|n| n.trim_ascii())
        .filter(|n| !n.is_empty())
}

/// Paths to rule lists, built once. Up to [`FEW_PATHS`] keys are compared
/// in a list (a length check rejects most at once), which is cheaper than
/// hashing the path; more go in a hash map, so thousands of rules cost one
/// hash per lookup. The keys come from the configuration and never change
/// after compilation, so a request's path is only looked up, never
/// inserted: a fast hash (foldhash, randomly seeded) gives an attacker
/// nothing to collide with, where SipHash cost ~190 instructions a lookup.
#[derive(Debug, Default)]
struct PathMap {
    few: Vec<(String, Vec<usize>)>,
    many: HashMap<String, Vec<usize>, foldhash::fast::RandomState>,
}

/// Most keys a [`PathMap`] compares in a list.
const FEW_PATHS: usize = 8;

impl PathMap {
    fn push(&mut self, path: String, rule: usize) {
        if let Some((_, rules)) = self.few.iter_mut().find(|(p, _)| *p == path) {
            rules.push(rule);
        } else if let Some(rules) = self.many.get_mut(&path) {
            rules.push(rule);
        } else if self.many.is_empty() && self.few.len() < FEW_PATHS {
            self.few.push((path, vec![rule]));
        } else {
            // Past the list's size everything moves to the map.
            self.many.extend(self.few.drain(..));
            self.many.insert(path, vec![rule]);
        }
    }

    fn get(&self, path: &str) -> Option<&Vec<usize>> {
        if self.many.is_empty() {
            self.few.iter().find(|(p, _)| p == path).map(|(_, r)| r)
        } else {
            self.many.get(path)
        }
    }

    fn is_empty(&self) -> bool {
        self.few.is_empty() && self.many.is_empty()
    }
}

/// An index of rules by path condition, so that routing looks at the rules
/// that can match the request's path instead of scanning them all.
///
/// Exact paths are one lookup in a [`PathMap`]; prefixes are one lookup per segment
/// boundary of the request path; rules with a regex path or no path
/// condition are always candidates. Candidates are visited in rule order,
/// so first-match semantics are exactly those of a linear scan.
#[derive(Debug, Default)]
struct RuleIndex {
    exact: PathMap,
    prefix: PathMap,
    always: Vec<usize>,
    total: usize,
}

/// Paths deeper than this fall back to a linear scan (never seen in practice).
const MAX_INDEXED_DEPTH: usize = 30;

impl RuleIndex {
    fn build(rules: &[CompiledRule]) -> Self {
        let mut idx = RuleIndex {
            total: rules.len(),
            ..RuleIndex::default()
        };
        for (i, r) in rules.iter().enumerate() {
            match &r.path {
                Some(PathCond::Exact(p)) => idx.exact.push(p.clone(), i),
                Some(PathCond::Prefix(p)) if !p.trim_end_matches('/').is_empty() => {
                    idx.prefix.push(p.trim_end_matches('/').to_owned(), i)
                }
                _ => idx.always.push(i),
            }
        }
        idx
    }

    /// Visit candidate rule indices for `path` in ascending order until `f`
    /// returns true; returns that index.
    fn first(&self, path: &str, mut f: impl FnMut(usize) -> bool) -> Option<usize> {
        let mut lists: [&[usize]; MAX_INDEXED_DEPTH + 2] = [&[]; MAX_INDEXED_DEPTH + 2];
        let mut n = 0;
        lists[n] = &self.always;
        n += 1;
        if let Some(v) = (!self.exact.is_empty())
            .then(|| self.exact.get(path))
            .flatten()
        {
            lists[n] = v;
            n += 1;
        }
        if !self.prefix.is_empty() {
            // Every segment-boundary prefix of the path, and the path itself.
            let ends = path
                .match_indices('/')
                .map(|(i, _)| i)
                .filter(|&i| i > 0)
                .chain(std::iter::once(path.len()));
            for end in ends {
                if n == lists.len() {
                    // Too deep to index: scan every rule in order.
                    return (0..self.total).find(|&i| f(i));
                }
                if let Some(v) = self.prefix.get(&path[..end]) {
                    lists[n] = v;
                    n += 1;
                }
            }
        }
        let lists = &mut lists[..n];
        loop {
            // k-way merge: the smallest head among the candidate lists.
            let (li, &i) = lists
                .iter()
                .enumerate()
                .filter_map(|(li, l)| l.first().map(|i| (li, i)))
                .min_by_key(|(_, i)| **i)?;
            lists[li] = &lists[li][1..];
            // The same rule can only sit in one list, so no duplicates.
            if f(i) {
                return Some(i);
            }
        }
    }
}

impl CompiledVService {
    /// Does this vService serve `host` (no `hostnames`: every host)?
    pub fn serves_host(&self, host: &str) -> bool {
        self.hostnames.is_empty() || self.hostnames.iter().any(|h| h.matches(host))
    }

    /// Route a request and select its CORS policy.
    pub fn select<H: RequestFields + ?Sized>(&self, r: &RequestFacts<'_, H>) -> Selection<'_> {
        let host_served = self.serves_host(r.host);
        let rule = if host_served {
            self.index
                .first(r.path, |i| self.rules[i].matches(r))
                .map(|i| &self.rules[i])
        } else {
            None
        };
        let (policy, binding) = if let Some(p) = rule.and_then(|rule| rule.cors.as_ref()) {
            (Some(p), Binding::Rule)
        } else if let Some((prefix, p)) = self
            .path_cors
            .iter()
            .filter(|(p, _)| prefix_matches(p, r.path))
            .max_by_key(|(p, _)| p.len())
        {
            (Some(p), Binding::Path(prefix.as_str()))
        } else if let Some((_, p)) = self.host_cors.iter().find(|(h, _)| h.matches(r.host)) {
            (Some(p), Binding::Host)
        } else if let Some(p) = &self.cors {
            let b = if self.cors_is_global {
                Binding::Global
            } else {
                Binding::VService
            };
            (Some(p), b)
        } else {
            (None, Binding::None)
        };
        Selection {
            rule,
            policy,
            binding,
            host_served,
        }
    }
}

/// Compile every vService of a validated configuration.
pub fn compile(config: &Config, policies: &BTreeMap<String, Arc<Policy>>) -> Vec<CompiledVService> {
    let get = |name: &Option<String>| name.as_ref().and_then(|n| policies.get(n)).cloned();
    let global = get(&config.cors);
    config
        .vservices
        .iter()
        .map(|vs| compile_vservice(vs, policies, global.clone()))
        .collect()
}

fn compile_vservice(
    vs: &VService,
    policies: &BTreeMap<String, Arc<Policy>>,
    global: Option<Arc<Policy>>,
) -> CompiledVService {
    let get = |name: &Option<String>| name.as_ref().and_then(|n| policies.get(n)).cloned();
    let rules: Vec<CompiledRule> = vs
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| compile_rule(i, r, policies))
        .collect();
    CompiledVService {
        index: RuleIndex::build(&rules),
        rules,
        name: vs.name.clone(),
        listen: vs.listen.clone(),
        hostnames: vs.hostnames.iter().map(|h| HostPattern::new(h)).collect(),
        cors_is_global: vs.cors.is_none() && global.is_some(),
        cors: get(&vs.cors).or(global),
        host_cors: vs
            .host_cors
            .iter()
            .filter_map(|(h, p)| policies.get(p).map(|p| (HostPattern::new(h), p.clone())))
            .collect(),
        path_cors: vs
            .path_cors
            .iter()
            .filter_map(|pc| {
                policies
                    .get(&pc.cors)
                    .map(|p| (pc.prefix.clone(), p.clone()))
            })
            .collect(),
        limits: vs.limits.clone(),
        paths: vs.paths.clone(),
        tls: vs.tls.clone(),
    }
}

fn compile_rule(i: usize, r: &Rule, policies: &BTreeMap<String, Arc<Policy>>) -> CompiledRule {
    // The configuration was validated, so the regexes and names below
    // compile; anything that still fails makes the condition never match.
    let never = || Regex::new("[^\\s\\S]").expect("constant regex");
    let path = r.matches.path.as_ref().map(|p: &PathMatch| match p {
        PathMatch { exact: Some(p), .. } => PathCond::Exact(p.clone()),
        PathMatch {
            prefix: Some(p), ..
        } => PathCond::Prefix(p.clone()),
        PathMatch {
            regex: Some(re), ..
        } => PathCond::Regex(Regex::new(&format!("^(?:{re})$")).unwrap_or_else(|_| never())),
        _ => PathCond::Regex(never()),
    });
    let headers = r
        .matches
        .headers
        .iter()
        .filter_map(|h: &HeaderMatch| {
            let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
            Some(match (&h.value, &h.regex) {
                (Some(v), _) => HeaderCond::Equals(name, v.clone()),
                (None, Some(re)) => HeaderCond::Regex(
                    name,
                    Regex::new(&format!("^(?:{re})$")).unwrap_or_else(|_| never()),
                ),
                (None, None) => HeaderCond::Present(name),
            })
        })
        .collect();
    let action = if let Some(f) = &r.forward {
        Action::Forward {
            upstreams: f
                .upstreams
                .iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            next: AtomicUsize::new(0),
            upgrades: f.upgrades.iter().map(|p| p.to_ascii_lowercase()).collect(),
            connect_timeout: std::time::Duration::from_millis(f.connect_timeout_ms),
            timeout: std::time::Duration::from_millis(f.timeout_ms),
            http2: f.http2,
            rewrite_host: f
                .rewrite
                .as_ref()
                .and_then(|rw| rw.hostname.as_deref())
                .and_then(|h| http::HeaderValue::from_str(h).ok()),
            rewrite_path: f
                .rewrite
                .as_ref()
                .and_then(|rw| rw.path.as_ref())
                .and_then(|p| path_change(p, r)),
        }
    } else if let Some(d) = &r.direct {
        let mut headers = HeaderMap::new();
        for (k, v) in &d.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(v),
            ) {
                headers.append(k, v);
            }
        }
        Action::Direct {
            status: http::StatusCode::from_u16(d.status).unwrap_or(http::StatusCode::OK),
            headers,
            body: bytes::Bytes::from(d.body.clone()),
        }
    } else if let Some(rd) = &r.redirect {
        Action::Redirect {
            status: http::StatusCode::from_u16(rd.status).unwrap_or(http::StatusCode::FOUND),
            target: match &rd.location {
                Some(l) => RedirectTarget::Fixed(
                    http::HeaderValue::from_str(l).unwrap_or(http::HeaderValue::from_static("/")),
                ),
                None => RedirectTarget::Computed {
                    scheme: rd.scheme.clone(),
                    hostname: rd.hostname.clone(),
                    port: rd.port,
                    path: rd.path.as_ref().and_then(|p| path_change(p, r)),
                },
            },
        }
    } else {
        Action::Direct {
            status: http::StatusCode::NOT_FOUND,
            headers: HeaderMap::new(),
            body: bytes::Bytes::new(),
        }
    };
    CompiledRule {
        index: i,
        name: r.name.clone().unwrap_or_else(|| format!("rule-{i}")),
        hosts: r
            .matches
            .hosts
            .iter()
            .map(|h| HostPattern::new(h))
            .collect(),
        path,
        methods: r
            .matches
            .methods
            .iter()
            .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
            .collect(),
        headers,
        query: r
            .matches
            .query
            .iter()
            .map(|q| QueryCond {
                name: q.name.clone(),
                value: q.value.clone(),
                regex: q
                    .regex
                    .as_ref()
                    .map(|re| Regex::new(&format!("^(?:{re})$")).unwrap_or_else(|_| never())),
            })
            .collect(),
        cors: r.cors.as_ref().and_then(|n| policies.get(n)).cloned(),
        action,
        request_headers: HeaderChanges::compile(&r.request_headers),
        response_headers: HeaderChanges::compile(&r.response_headers),
    }
}

fn path_change(p: &corsgate_config::PathRewrite, r: &Rule) -> Option<PathChange> {
    match (&p.full, &p.prefix) {
        (Some(f), _) => Some(PathChange::Full(f.clone())),
        (None, Some(with)) => Some(PathChange::Prefix {
            matched: r.matches.path.as_ref()?.prefix.clone()?,
            with: with.clone(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        let cases = [
            ("/admin", "/admin", true),
            ("/admin", "/admin/x", true),
            ("/admin/", "/admin/x", true),
            ("/admin", "/administrator", false),
            ("/", "/anything", true),
            ("/a/b", "/a", false),
        ];
        for (prefix, path, want) in cases {
            assert_eq!(prefix_matches(prefix, path), want, "{prefix} {path}");
        }
    }

    /// The index must pick exactly the rule a linear scan would, with few
    /// paths (compared in a list) and with many (hashed).
    #[test]
    fn rule_index_agrees_with_a_linear_scan() {
        for padding in [0, FEW_PATHS + 2] {
            index_agrees_with_a_linear_scan(padding);
        }
    }

    fn index_agrees_with_a_linear_scan(padding: usize) {
        let mut yaml = String::from(
            "policies: {}\nvservices:\n  - name: v\n    listen: 127.0.0.1:0\n    rules:\n",
        );
        let mut paths: Vec<String> = ["/a", "/a/b", "/a/b/c", "/b", "/", "/a/bc", "/x/y"]
            .map(String::from)
            .to_vec();
        paths.extend((0..padding).map(|i| format!("/pad/{i}")));
        for (i, p) in paths.iter().enumerate() {
            yaml.push_str(&format!("      - {{ match: {{ path: {{ prefix: \"{p}\" }}, methods: [GET] }}, direct: {{ status: {} }} }}\n", 200 + i));
            yaml.push_str(&format!(
                "      - {{ match: {{ path: {{ exact: \"{p}\" }} }}, direct: {{ status: {} }} }}\n",
                300 + i
            ));
        }
        yaml.push_str(
            "      - { match: { path: { regex: \"/a/[0-9]+\" } }, direct: { status: 400 } }\n",
        );
        yaml.push_str("      - { match: { headers: [{ name: x-v }] }, direct: { status: 401 } }\n");
        let loaded = corsgate_config::load_str(&yaml, None).unwrap();
        let vs = &compile(&loaded.config, &loaded.policies)[0];
        assert_eq!(vs.index.prefix.many.is_empty(), padding == 0);
        let empty = HeaderMap::new();
        let mut with_header = HeaderMap::new();
        with_header.insert("x-v", http::HeaderValue::from_static("1"));
        for path in [
            "/",
            "/a",
            "/a/",
            "/a/b",
            "/a/b/c/d",
            "/a/bc",
            "/a/12",
            "/ab",
            "/b/x",
            "/x/y",
            "/x",
            "/zzz",
            "/pad/1",
            "/pad/11/x",
            "/pad",
        ] {
            for method in [Method::GET, Method::POST] {
                for headers in [&empty, &with_header] {
                    let facts = RequestFacts {
                        method: &method,
                        host: "h",
                        path,
                        query: None,
                        headers,
                        preflight: false,
                    };
                    let linear = vs.rules.iter().position(|r| r.matches(&facts));
                    let indexed = vs.select(&facts).rule.map(|r| r as *const _);
                    assert_eq!(
                        indexed,
                        linear.map(|i| &vs.rules[i] as *const _),
                        "{method} {path}"
                    );
                }
            }
        }
    }

    #[test]
    fn host_patterns() {
        assert!(HostPattern::new("*.example.com").matches("a.example.com"));
        assert!(!HostPattern::new("*.example.com").matches("example.com"));
        assert!(HostPattern::new("API.example.com").matches("api.example.com"));
    }
}
