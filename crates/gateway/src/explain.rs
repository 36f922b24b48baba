//! `corsgate explain`: what a browser would send for a request, what
//! corsgate answers to each leg, and the browser's verdict per the Fetch
//! standard, with the precise reason.
//!
//! The legs are decided by the same code the running gateway uses (the
//! router's `select`, the policy's `evaluate_classified` and `complete`),
//! and a test compares this output with the live gateway's responses.

use crate::router::{Action, CompiledVService, RequestFacts};
use corsgate_policy::{
    is_forbidden_request_header, is_preflight, is_safelisted_method, is_safelisted_request_header,
    Evaluation, OriginVerdict, Policy,
};
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD,
    ORIGIN,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// A request as a script would make it with `fetch()`.
#[derive(Clone, Debug)]
pub struct BrowserRequest {
    /// The page's origin (`https://app.example.com`).
    pub origin: String,
    /// The method.
    pub method: String,
    /// The URL fetched (`http://127.0.0.1:8080/api/x?y=1`).
    pub url: Uri,
    /// Headers the script sets.
    pub headers: Vec<(String, String)>,
    /// `credentials: 'include'`.
    pub credentials: bool,
}

/// Why the explanation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The URL has no host.
    #[error("the URL {0} has no host")]
    NoHost(String),
    /// The method is not a token.
    #[error("{0:?} is not an HTTP method")]
    BadMethod(String),
    /// A header name or value is invalid.
    #[error("invalid header {0:?}")]
    BadHeader(String),
    /// The gateway refuses the URL's path before routing (400).
    #[error("the gateway answers 400 to the path of {url}: {reason}")]
    BadPath {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No vService serves the URL.
    #[error("no vService listens on port {port} or serves host {host}")]
    NoVService {
        /// Port of the URL.
        port: u16,
        /// Host of the URL.
        host: String,
    },
}

/// The browser's verdict on one leg.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "verdict", content = "reasons", rename_all = "lowercase")]
pub enum Verdict {
    /// The browser accepts the response.
    Allowed,
    /// The browser refuses it; scripts see a `TypeError`.
    Blocked(Vec<String>),
    /// The backend's own response decides (the gateway adds nothing).
    Backend(Vec<String>),
}

/// Who answers a leg, and with what.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "by", rename_all = "lowercase")]
pub enum Answer {
    /// corsgate answers itself: the whole response head.
    Gateway {
        /// Status.
        status: u16,
        /// Headers, in order.
        headers: Vec<(String, String)>,
    },
    /// Forwarded; corsgate removes the backend's `Access-Control-*` headers
    /// and writes these on its response.
    Upstream {
        /// The upstream chosen first.
        upstream: String,
        /// Headers corsgate writes.
        headers: Vec<(String, String)>,
    },
}

impl Answer {
    /// The headers corsgate writes.
    pub fn headers(&self) -> &[(String, String)] {
        match self {
            Answer::Gateway { headers, .. } | Answer::Upstream { headers, .. } => headers,
        }
    }
}

/// One request the browser sends.
#[derive(Clone, Debug, Serialize)]
pub struct Leg {
    /// `preflight` or `actual`.
    pub kind: &'static str,
    /// Method sent.
    pub method: String,
    /// Request target.
    pub target: String,
    /// Headers the browser sends that matter here.
    pub request_headers: Vec<(String, String)>,
    /// The vService.
    pub vservice: String,
    /// The matched rule, if any.
    pub rule: Option<String>,
    /// The policy in scope, if any.
    pub policy: Option<String>,
    /// Why that policy.
    pub binding: String,
    /// The answer.
    pub answer: Answer,
    /// The browser's verdict.
    pub verdict: Verdict,
}

/// The whole explanation.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    /// The request as given.
    pub request: String,
    /// Its method.
    pub method: String,
    /// Same-origin requests do not use CORS at all.
    pub same_origin: bool,
    /// Why a preflight is sent (empty: a simple request).
    pub preflight_because: Vec<String>,
    /// The legs, in the order the browser sends them.
    pub legs: Vec<Leg>,
    /// Headers scripts can read from the actual response, beyond the
    /// CORS-safelisted ones (from `Access-Control-Expose-Headers`).
    pub readable_headers: Vec<String>,
}

fn pairs(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn list(h: &HeaderMap, name: &HeaderName) -> Vec<String> {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Why the origin is refused, in the words of the policy's explanation.
fn origin_reason(policy: Option<&Policy>, origin: &str) -> String {
    let Some(policy) = policy else {
        return "no Access-Control-Allow-Origin: no CORS policy covers this route".into();
    };
    let e = policy.explain_origin(origin);
    let mut r = match e.verdict {
        OriginVerdict::Invalid(why) => format!("origin `{origin}` is not a valid origin ({why})"),
        OriginVerdict::NullNotAllowed => {
            "origin `null` is not allowed (allowNullOrigin is off)".into()
        }
        _ => format!("origin `{origin}` is not in allowOrigins"),
    };
    for m in e.near_misses {
        let _ = write!(r, "; it {} ({})", m.reason, m.entry);
    }
    r
}

/// The Fetch "CORS check" on a response's headers.
fn cors_check(h: &HeaderMap, req: &BrowserRequest, policy: Option<&Policy>) -> Vec<String> {
    let mut reasons = Vec::new();
    match h
        .get(ACCESS_CONTROL_ALLOW_ORIGIN)
        .map(HeaderValue::as_bytes)
    {
        None => reasons.push(origin_reason(policy, &req.origin)),
        Some(b"*") if req.credentials => reasons.push(
            "credentialed request but Access-Control-Allow-Origin is `*`; it must name the origin"
                .into(),
        ),
        Some(b"*") => {}
        Some(v) if v == req.origin.as_bytes() => {}
        Some(v) => reasons.push(format!(
            "Access-Control-Allow-Origin is `{}`, not `{}`",
            String::from_utf8_lossy(v),
            req.origin
        )),
    }
    if req.credentials
        && h.get(ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .map(HeaderValue::as_bytes)
            != Some(b"true")
    {
        reasons.push(
            "credentialed request but the policy does not allow credentials (no \
             Access-Control-Allow-Credentials: true)"
                .into(),
        );
    }
    reasons
}

/// The vService a URL reaches: the one listening on its port, else the
/// one serving its host, else the only one.
fn pick_vservice<'a>(
    vservices: &'a [CompiledVService],
    url: &Uri,
    host: &str,
) -> Option<&'a CompiledVService> {
    let port = url
        .port_u16()
        .unwrap_or(if url.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    let on_port: Vec<_> = vservices
        .iter()
        .filter(|v| v.listen.rsplit(':').next().and_then(|p| p.parse().ok()) == Some(port))
        .collect();
    let candidates = if on_port.is_empty() {
        vservices.iter().collect()
    } else {
        on_port
    };
    candidates
        .iter()
        .find(|v| v.serves_host(host))
        .or_else(|| (candidates.len() == 1).then(|| &candidates[0]))
        .copied()
}

fn policy_name(policies: &BTreeMap<String, Arc<Policy>>, p: &Arc<Policy>) -> Option<String> {
    policies
        .iter()
        .find(|(_, q)| Arc::ptr_eq(p, q))
        .map(|(n, _)| n.clone())
}

/// What corsgate does with one request, as the server would.
fn run_leg(
    vs: &CompiledVService,
    policies: &BTreeMap<String, Arc<Policy>>,
    method: &Method,
    host: &str,
    url: &Uri,
    headers: &HeaderMap,
) -> (Leg, Option<Arc<Policy>>, HeaderMap) {
    let preflight = is_preflight(method, headers);
    // Routed as the gateway routes: on the normalised path (checked by
    // `explain` before any leg is run).
    let path = crate::pipeline::normalise::path(url.path(), vs.paths.encoded_slashes)
        .unwrap_or(std::borrow::Cow::Borrowed("/"));
    let sel = vs.select(&RequestFacts {
        method,
        host,
        path: &path,
        query: url.query(),
        headers,
        preflight,
    });
    let mut leg = Leg {
        kind: if preflight { "preflight" } else { "actual" },
        method: method.to_string(),
        target: url
            .path_and_query()
            .map_or_else(|| "/".into(), |p| p.as_str().to_owned()),
        request_headers: pairs(headers),
        vservice: vs.name.clone(),
        rule: sel.rule.map(|r| r.name.clone()),
        policy: sel.policy.and_then(|p| policy_name(policies, p)),
        binding: sel.binding.to_string(),
        answer: Answer::Gateway {
            status: 0,
            headers: Vec::new(),
        },
        verdict: Verdict::Allowed,
    };
    let evaluation = sel
        .policy
        .map(|p| p.evaluate_classified(preflight, headers));
    let mut completion = None;
    match evaluation {
        Some(Evaluation::Preflight(answer)) => {
            let headers = answer.headers();
            leg.answer = Answer::Gateway {
                status: answer.status.as_u16(),
                headers: pairs(&headers),
            };
            return (leg, sel.policy.cloned(), headers);
        }
        Some(Evaluation::Actual(c)) => completion = Some(c),
        Some(Evaluation::Shadow(_)) | None => {}
    }
    let mut out = HeaderMap::new();
    let mut status = None;
    let mut upstream = None;
    match sel.rule.map(|r| &r.action) {
        None => status = Some(404),
        Some(Action::Forward { upstreams, .. }) => upstream = upstreams.first().cloned(),
        Some(Action::Direct {
            status: s, headers, ..
        }) => {
            status = Some(s.as_u16());
            out = headers.clone();
        }
        Some(Action::Redirect { status: s, target }) => {
            let host_header = headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(host);
            if let Some(l) = target.location(
                url.scheme_str() == Some("https"),
                host_header,
                &path,
                url.query(),
            ) {
                out.insert(http::header::LOCATION, l);
            }
            status = Some(s.as_u16());
        }
    }
    if let Some(rule) = sel.rule {
        rule.response_headers.apply(&mut out);
    }
    if let (Some(p), Some(c)) = (sel.policy, &completion) {
        p.complete(c, &mut out);
    }
    leg.answer = match (status, upstream) {
        (Some(status), _) => Answer::Gateway {
            status,
            headers: pairs(&out),
        },
        (None, Some(u)) => Answer::Upstream {
            upstream: u,
            headers: pairs(&out),
        },
        (None, None) => Answer::Gateway {
            status: 502,
            headers: pairs(&out),
        },
    };
    (leg, sel.policy.cloned(), out)
}

/// Explain `req` against compiled vServices (and the named policies, to
/// name the one selected).
pub fn explain(
    vservices: &[CompiledVService],
    policies: &BTreeMap<String, Arc<Policy>>,
    req: &BrowserRequest,
) -> Result<Explanation, ExplainError> {
    let host = req
        .url
        .host()
        .ok_or_else(|| ExplainError::NoHost(req.url.to_string()))?
        .to_ascii_lowercase();
    let method = Method::from_bytes(req.method.as_bytes())
        .map_err(|_| ExplainError::BadMethod(req.method.clone()))?;
    let vs = pick_vservice(vservices, &req.url, &host).ok_or_else(|| ExplainError::NoVService {
        port: req.url.port_u16().unwrap_or(80),
        host: host.clone(),
    })?;
    if let Err(bad) = crate::pipeline::normalise::path(req.url.path(), vs.paths.encoded_slashes) {
        return Err(ExplainError::BadPath {
            url: req.url.to_string(),
            reason: bad.text().trim_end().to_owned(),
        });
    }
    let url_origin = format!(
        "{}://{}",
        req.url.scheme_str().unwrap_or("http"),
        req.url.authority().map_or("", |a| a.as_str())
    );
    let mut script_headers = HeaderMap::new();
    let mut preflight_because = Vec::new();
    // Headers the browser would not send, said after the reasons.
    let mut notes = Vec::new();
    let mut unsafe_names = Vec::new();
    for (k, v) in &req.headers {
        let name =
            HeaderName::from_bytes(k.as_bytes()).map_err(|_| ExplainError::BadHeader(k.clone()))?;
        if is_forbidden_request_header(name.as_str()) {
            notes.push(format!(
                "(`{name}` is a forbidden request header: browsers do not let scripts set it, so it is not sent)"
            ));
            continue;
        }
        let value = HeaderValue::from_str(v).map_err(|_| ExplainError::BadHeader(k.clone()))?;
        if !is_safelisted_request_header(name.as_str(), v) {
            unsafe_names.push(name.as_str().to_owned());
        }
        script_headers.append(name, value);
    }
    unsafe_names.sort();
    unsafe_names.dedup();
    let authority = req
        .url
        .authority()
        .map_or(host.clone(), |a| a.as_str().to_owned());
    let same_origin = url_origin.eq_ignore_ascii_case(&req.origin);
    let simple_method = is_safelisted_method(method.as_str().as_bytes());
    if !simple_method {
        preflight_because.push(format!(
            "method {method} is not CORS-safelisted (GET, HEAD, POST)"
        ));
    }
    for n in &unsafe_names {
        preflight_because.push(format!("header `{n}` is not CORS-safelisted"));
    }
    let needs_preflight = !same_origin && !preflight_because.is_empty();
    if same_origin {
        preflight_because.clear();
    }
    let mut legs = Vec::new();
    let mut preflight_ok = true;
    if needs_preflight {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::HOST,
            HeaderValue::from_str(&authority)
                .map_err(|_| ExplainError::BadHeader("host".into()))?,
        );
        h.insert(
            ORIGIN,
            HeaderValue::from_str(&req.origin)
                .map_err(|_| ExplainError::BadHeader("origin".into()))?,
        );
        h.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_str(method.as_str())
                .map_err(|_| ExplainError::BadMethod(req.method.clone()))?,
        );
        if !unsafe_names.is_empty() {
            h.insert(
                ACCESS_CONTROL_REQUEST_HEADERS,
                HeaderValue::from_str(&unsafe_names.join(",")).map_err(|_| {
                    ExplainError::BadHeader("access-control-request-headers".into())
                })?,
            );
        }
        let (mut leg, policy, resp) = run_leg(vs, policies, &Method::OPTIONS, &host, &req.url, &h);
        leg.verdict = match &leg.answer {
            Answer::Upstream { .. } => Verdict::Backend(vec![format!(
                "no CORS policy answers this preflight ({}): the OPTIONS request goes to the backend, and only its response can allow the request",
                leg.binding
            )]),
            Answer::Gateway { status, .. } => {
                let mut reasons = Vec::new();
                if !(200..300).contains(status) {
                    reasons.push(format!("the preflight is answered {status}, not a 2xx status"));
                }
                let p = policy.as_deref();
                reasons.extend(cors_check(&resp, req, p));
                if reasons.is_empty() {
                    let methods = list(&resp, &ACCESS_CONTROL_ALLOW_METHODS);
                    let star = !req.credentials && methods.iter().any(|m| m == "*");
                    if !simple_method && !star && !methods.iter().any(|m| m == method.as_str()) {
                        let hint = p
                            .map(|p| p.preflight_problems(method.as_str(), &[], false))
                            .and_then(|v| v.into_iter().next())
                            .map_or_else(|| format!("method `{method}` is not in allowMethods"), |pr| pr.to_string());
                        reasons.push(hint);
                    }
                    let allowed = list(&resp, &ACCESS_CONTROL_ALLOW_HEADERS);
                    let hstar = !req.credentials && allowed.iter().any(|h| h == "*");
                    for n in &unsafe_names {
                        let ok = allowed.iter().any(|a| a.eq_ignore_ascii_case(n)) || (hstar && n != "authorization");
                        if !ok {
                            reasons.push(if hstar {
                                format!("`{n}` is not covered by `*` in allowHeaders (authorization must be listed by name)")
                            } else {
                                format!("`{n}` is not in allowHeaders")
                            });
                        }
                    }
                }
                if reasons.is_empty() {
                    Verdict::Allowed
                } else {
                    Verdict::Blocked(reasons)
                }
            }
        };
        preflight_ok = matches!(leg.verdict, Verdict::Allowed);
        legs.push(leg);
    }
    let mut readable = Vec::new();
    if preflight_ok {
        let mut h = script_headers.clone();
        h.insert(
            http::header::HOST,
            HeaderValue::from_str(&authority)
                .map_err(|_| ExplainError::BadHeader("host".into()))?,
        );
        let sends_origin = !same_origin || !matches!(method.as_str(), "GET" | "HEAD");
        if sends_origin {
            h.insert(
                ORIGIN,
                HeaderValue::from_str(&req.origin)
                    .map_err(|_| ExplainError::BadHeader("origin".into()))?,
            );
        }
        let (mut leg, policy, resp) = run_leg(vs, policies, &method, &host, &req.url, &h);
        leg.verdict = if same_origin {
            Verdict::Allowed
        } else {
            let reasons = cors_check(&resp, req, policy.as_deref());
            match (&leg.answer, reasons.is_empty()) {
                (_, true) => Verdict::Allowed,
                (Answer::Upstream { .. }, false) if policy.is_none() => Verdict::Backend(reasons),
                _ => Verdict::Blocked(reasons),
            }
        };
        if leg.verdict == Verdict::Allowed && !same_origin {
            readable = list(&resp, &http::header::ACCESS_CONTROL_EXPOSE_HEADERS);
        }
        legs.push(leg);
    }
    let mut request = format!(
        "{} {} from origin {}, credentials {}",
        method,
        req.url,
        req.origin,
        if req.credentials { "include" } else { "omit" }
    );
    if !req.headers.is_empty() {
        let names: Vec<_> = req
            .headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect();
        let _ = write!(request, ", headers {}", names.join(", "));
    }
    preflight_because.append(&mut notes);
    Ok(Explanation {
        request,
        method: method.to_string(),
        same_origin,
        preflight_because,
        legs,
        readable_headers: readable,
    })
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Request: {}", self.request)?;
        if self.same_origin {
            writeln!(f, "Same-origin request: CORS does not apply.")?;
        } else if self.legs.first().is_some_and(|l| l.kind == "preflight") {
            writeln!(
                f,
                "Preflight: yes, because {}",
                self.preflight_because.join("; ")
            )?;
        } else {
            writeln!(f, "Preflight: no (a simple request)")?;
            for n in &self.preflight_because {
                writeln!(f, "  {n}")?;
            }
        }
        for (i, leg) in self.legs.iter().enumerate() {
            writeln!(f)?;
            writeln!(f, "{}. {} {} {}", i + 1, leg.kind, leg.method, leg.target)?;
            for (k, v) in &leg.request_headers {
                writeln!(f, "   > {k}: {v}")?;
            }
            writeln!(
                f,
                "   vService {}, rule {}, policy {} ({})",
                leg.vservice,
                leg.rule.as_deref().unwrap_or("(none: no rule matches)"),
                leg.policy.as_deref().unwrap_or("(none)"),
                leg.binding
            )?;
            match &leg.answer {
                Answer::Gateway { status, headers } => {
                    writeln!(f, "   corsgate answers itself (not forwarded):")?;
                    writeln!(f, "   < HTTP {status}")?;
                    for (k, v) in headers {
                        writeln!(f, "   < {k}: {v}")?;
                    }
                }
                Answer::Upstream { upstream, headers } => {
                    writeln!(
                        f,
                        "   forwarded to {upstream}; corsgate writes on the backend's response:"
                    )?;
                    if headers.is_empty() {
                        writeln!(f, "   (nothing)")?;
                    }
                    for (k, v) in headers {
                        writeln!(f, "   < {k}: {v}")?;
                    }
                }
            }
            match &leg.verdict {
                Verdict::Allowed => writeln!(f, "   Browser: allowed")?,
                Verdict::Blocked(r) => {
                    writeln!(f, "   Browser: BLOCKED (scripts see a TypeError)")?;
                    for r in r {
                        writeln!(f, "     - {r}")?;
                    }
                }
                Verdict::Backend(r) => {
                    writeln!(f, "   Browser: decided by the backend's response")?;
                    for r in r {
                        writeln!(f, "     - {r}")?;
                    }
                }
            }
        }
        if self.legs.len() == 1 && self.legs[0].kind == "preflight" {
            writeln!(
                f,
                "\n2. actual {}: not sent (the preflight failed)",
                self.method
            )?;
        }
        if !self.readable_headers.is_empty() {
            writeln!(
                f,
                "\nScripts can also read: {}",
                self.readable_headers.join(", ")
            )?;
        }
        Ok(())
    }
}
