//! The answer to an allowed or refused preflight: what varies per request
//! on top of the policy's template, computed once at compile time, given as
//! a map or written straight out as HTTP/1.1 field lines, so that a server
//! that writes its own responses neither builds nor drops a map per
//! preflight.

use super::{line, PreflightOutcome, Refusal, ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK};
use super::{PREFLIGHT_VARY, STAR, TRUE};
use crate::policy::{AllowList, Expose, Policy};
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, VARY,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use std::sync::Arc;

/// A preflight answered at the gateway: status, fields, empty body.
///
/// The fields are kept as what varies per request plus the policy's
/// precomputed rest, and are produced either as a map
/// ([`PreflightResponse::headers`]) or written straight out as HTTP/1.1
/// field lines ([`PreflightResponse::write_fields`]): a server that writes
/// its own responses then neither builds nor drops a map per preflight.
#[derive(Debug)]
pub struct PreflightResponse {
    /// 200 when allowed; the policy's reject status when refused.
    pub status: StatusCode,
    /// Why.
    pub outcome: PreflightOutcome,
    /// An allowed answer the browser will still refuse, and why: under
    /// `preflightValidation: browser` the gateway answers a preflight
    /// whose method or headers the policy does not list with the policy's
    /// headers, and the browser blocks the request (F5, F6). Logs and
    /// metrics report that verdict, not "allowed" (R30).
    pub browser_blocks: Option<Refusal>,
    /// The allowed answer's per-request values; `None` when refused.
    pub(super) allowed: Option<AllowedFields>,
}

/// What an allowed preflight's answer adds to its policy's template.
#[derive(Debug)]
pub(super) struct AllowedFields {
    pub(super) template: Arc<PreflightTemplate>,
    /// `Access-Control-Allow-Origin`.
    pub(super) origin: HeaderValue,
    /// The echoes of `allowMethods: *` and `allowHeaders: *`. Boxed: rare,
    /// and an answer is moved through several layers of a server.
    pub(super) echoes: Option<Box<Echoes>>,
    /// `Access-Control-Allow-Private-Network: true`.
    pub(super) private_network: bool,
}

/// An allowed preflight's answer fields that echo the request.
#[derive(Debug)]
pub(super) struct Echoes {
    /// `Access-Control-Allow-Methods` echoing the request (`allowMethods: *`).
    pub(super) methods: Option<HeaderValue>,
    /// `Access-Control-Allow-Headers` echoing the request (`allowHeaders: *`).
    pub(super) headers: Option<HeaderValue>,
}

/// The request-independent fields of a policy's allowed preflight answers,
/// computed once at compile time, as a map and as encoded field lines.
#[derive(Debug)]
pub(crate) struct PreflightTemplate {
    /// `Vary`, a placeholder `Access-Control-Allow-Origin` (each answer
    /// replaces it), and, when they do not depend on the request,
    /// credentials, methods, headers, expose headers and max-age.
    map: HeaderMap,
    /// The same fields but the placeholder, as `name: value\r\n` lines.
    lines: Box<[u8]>,
}

impl PreflightTemplate {
    /// A placeholder while the policy it belongs to is being built.
    pub(crate) fn empty() -> Arc<Self> {
        Arc::new(PreflightTemplate {
            map: HeaderMap::new(),
            lines: Box::default(),
        })
    }
}

impl PreflightResponse {
    /// All response fields as a map (the body is empty; the server frames
    /// it).
    pub fn headers(&self) -> HeaderMap {
        let Some(a) = &self.allowed else {
            // R20: no Access-Control-* field at all, only Vary.
            let mut out = HeaderMap::with_capacity(1);
            out.insert(VARY, HeaderValue::from_static(PREFLIGHT_VARY));
            return out;
        };
        let mut out = a.template.map.clone();
        // Replaces the template's placeholder in place: no growth.
        out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, a.origin.clone());
        if let Some(e) = &a.echoes {
            if let Some(v) = &e.methods {
                out.insert(ACCESS_CONTROL_ALLOW_METHODS, v.clone());
            }
            if let Some(v) = &e.headers {
                out.insert(ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
            }
        }
        if a.private_network {
            out.insert(ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK, TRUE.clone());
        }
        out
    }

    /// Append the same fields as [`PreflightResponse::headers`] to `out` as
    /// HTTP/1.1 field lines (`name: value\r\n`, names in lower case).
    pub fn write_fields(&self, out: &mut Vec<u8>) {
        let Some(a) = &self.allowed else {
            // R20: only Vary.
            line(out, VARY.as_str(), PREFLIGHT_VARY.as_bytes());
            return;
        };
        line(
            out,
            ACCESS_CONTROL_ALLOW_ORIGIN.as_str(),
            a.origin.as_bytes(),
        );
        out.extend_from_slice(&a.template.lines);
        if let Some(e) = &a.echoes {
            if let Some(v) = &e.methods {
                line(out, ACCESS_CONTROL_ALLOW_METHODS.as_str(), v.as_bytes());
            }
            if let Some(v) = &e.headers {
                line(out, ACCESS_CONTROL_ALLOW_HEADERS.as_str(), v.as_bytes());
            }
        }
        if a.private_network {
            line(out, ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK.as_str(), b"true");
        }
    }
}

/// The fields every allowed preflight of `policy` carries, computed once at
/// compile time: `Vary`, a placeholder `Access-Control-Allow-Origin` (each
/// answer replaces it), and, when they do not depend on the request,
/// credentials, methods, headers, expose headers and max-age; and the same
/// fields as encoded lines. An answer refers to it and adds what varies.
pub(crate) fn preflight_template(policy: &Policy) -> Arc<PreflightTemplate> {
    let mut out = HeaderMap::with_capacity(8);
    out.insert(VARY, HeaderValue::from_static(PREFLIGHT_VARY));
    out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, STAR.clone());
    if policy.credentials {
        out.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE.clone());
    }
    if let AllowList::List { value, .. } = &policy.methods {
        out.insert(ACCESS_CONTROL_ALLOW_METHODS, value.clone());
    }
    if let AllowList::List { value, .. } = &policy.headers {
        out.insert(ACCESS_CONTROL_ALLOW_HEADERS, value.clone());
    }
    match &policy.expose {
        Expose::List(v) => {
            out.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
        Expose::Star => {
            out.insert(ACCESS_CONTROL_EXPOSE_HEADERS, STAR.clone());
        }
        // R12c: nothing to enumerate on a preflight.
        Expose::None | Expose::Enumerate => {}
    }
    out.insert(ACCESS_CONTROL_MAX_AGE, policy.max_age.clone());
    let mut lines = Vec::new();
    for (name, value) in out
        .iter()
        .filter(|(n, _)| **n != ACCESS_CONTROL_ALLOW_ORIGIN)
    {
        line(&mut lines, name.as_str(), value.as_bytes());
    }
    Arc::new(PreflightTemplate {
        map: out,
        lines: lines.into_boxed_slice(),
    })
}
