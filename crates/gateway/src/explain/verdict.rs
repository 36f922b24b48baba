//! The browser's side (the Fetch standard): the CORS check on a response,
//! and the verdict on each leg with the precise reason, in the words of the
//! policy's own explanation where it has one.

use super::request::ScriptRequest;
use super::{Answer, BrowserRequest, Leg, Verdict};
use corsgate_policy::{OriginVerdict, Policy};
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::fmt::Write as _;

/// The comma-separated items of every `name` field.
pub(super) fn list(h: &HeaderMap, name: &HeaderName) -> Vec<String> {
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
pub(super) fn cors_check(
    h: &HeaderMap,
    req: &BrowserRequest,
    policy: Option<&Policy>,
) -> Vec<String> {
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

/// The verdict on a preflight leg: answered by the backend (no policy), or
/// by corsgate and then checked as the browser checks it.
pub(super) fn preflight_verdict(
    leg: &Leg,
    policy: Option<&Policy>,
    resp: &HeaderMap,
    s: &ScriptRequest<'_>,
) -> Verdict {
    match &leg.answer {
        Answer::Upstream { .. } => Verdict::Backend(vec![format!(
            "no CORS policy answers this preflight ({}): the OPTIONS request goes to the backend, and only its response can allow the request",
            leg.binding
        )]),
        Answer::Gateway { status, .. } => {
            let mut reasons = Vec::new();
            if !(200..300).contains(status) {
                reasons.push(format!("the preflight is answered {status}, not a 2xx status"));
            }
            reasons.extend(cors_check(resp, s.req, policy));
            if reasons.is_empty() {
                method_and_headers_check(resp, s, policy, &mut reasons);
            }
            if reasons.is_empty() {
                Verdict::Allowed
            } else {
                Verdict::Blocked(reasons)
            }
        }
    }
}

/// The preflight answer's `Access-Control-Allow-Methods` and
/// `-Headers` against what the actual request needs (`*` counts only
/// without credentials, and never for `authorization`).
fn method_and_headers_check(
    resp: &HeaderMap,
    s: &ScriptRequest<'_>,
    p: Option<&Policy>,
    reasons: &mut Vec<String>,
) {
    let req = s.req;
    let method = &s.method;
    let methods = list(resp, &ACCESS_CONTROL_ALLOW_METHODS);
    let star = !req.credentials && methods.iter().any(|m| m == "*");
    if !s.simple_method && !star && !methods.iter().any(|m| m == method.as_str()) {
        let hint = p
            .map(|p| p.preflight_problems(method.as_str(), &[], false))
            .and_then(|v| v.into_iter().next())
            .map_or_else(
                || format!("method `{method}` is not in allowMethods"),
                |pr| pr.to_string(),
            );
        reasons.push(hint);
    }
    let allowed = list(resp, &ACCESS_CONTROL_ALLOW_HEADERS);
    let hstar = !req.credentials && allowed.iter().any(|h| h == "*");
    for n in &s.unsafe_names {
        let ok =
            allowed.iter().any(|a| a.eq_ignore_ascii_case(n)) || (hstar && n != "authorization");
        if !ok {
            reasons.push(if hstar {
                format!("`{n}` is not covered by `*` in allowHeaders (authorization must be listed by name)")
            } else {
                format!("`{n}` is not in allowHeaders")
            });
        }
    }
}

/// The verdict on the actual request: same-origin needs no CORS; a
/// refusal on a forwarded response without a policy is the backend's to
/// decide.
pub(super) fn actual_verdict(
    leg: &Leg,
    policy: Option<&Policy>,
    resp: &HeaderMap,
    req: &BrowserRequest,
    same_origin: bool,
) -> Verdict {
    if same_origin {
        return Verdict::Allowed;
    }
    let reasons = cors_check(resp, req, policy);
    match (&leg.answer, reasons.is_empty()) {
        (_, true) => Verdict::Allowed,
        (Answer::Upstream { .. }, false) if policy.is_none() => Verdict::Backend(reasons),
        _ => Verdict::Blocked(reasons),
    }
}
