//! `corsgate explain`: what a browser would send for a request, what
//! corsgate answers to each leg, and the browser's verdict per the Fetch
//! standard, with the precise reason.
//!
//! The legs are decided by the same code the running gateway uses (the
//! router's `select`, the policy's `evaluate_classified` and `complete`),
//! and a test compares this output with the live gateway's responses.
//!
//! One step a file: `request.rs` (what the browser sends and why a
//! preflight), `leg.rs` (one request run as the server runs it),
//! `verdict.rs` (the browser's CORS check), `display.rs` (the text
//! printed).

mod display;
mod leg;
mod request;
mod verdict;

use crate::router::CompiledVService;
use corsgate_policy::Policy;
use http::{Method, Uri};
use leg::{pick_vservice, run_leg};
use request::ScriptRequest;
use serde::Serialize;
use std::collections::BTreeMap;
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
    if let Err(bad) = crate::pipeline::normalise::path(req.url.path(), &vs.paths) {
        return Err(ExplainError::BadPath {
            url: req.url.to_string(),
            reason: bad.text().trim_end().to_owned(),
        });
    }
    let mut s = ScriptRequest::new(req, method, host)?;
    let needs_preflight = s.needs_preflight();
    if s.same_origin {
        s.preflight_because.clear();
    }
    let mut legs = Vec::new();
    let mut preflight_ok = true;
    if needs_preflight {
        let h = s.preflight_headers()?;
        let (mut leg, policy, resp) =
            run_leg(vs, policies, &Method::OPTIONS, &s.host, &req.url, &h);
        leg.verdict = verdict::preflight_verdict(&leg, policy.as_deref(), &resp, &s);
        preflight_ok = matches!(leg.verdict, Verdict::Allowed);
        legs.push(leg);
    }
    let mut readable = Vec::new();
    if preflight_ok {
        let h = s.actual_headers()?;
        let (mut leg, policy, resp) = run_leg(vs, policies, &s.method, &s.host, &req.url, &h);
        leg.verdict = verdict::actual_verdict(&leg, policy.as_deref(), &resp, req, s.same_origin);
        if leg.verdict == Verdict::Allowed && !s.same_origin {
            readable = verdict::list(&resp, &http::header::ACCESS_CONTROL_EXPOSE_HEADERS);
        }
        legs.push(leg);
    }
    let request = s.describe();
    let mut preflight_because = std::mem::take(&mut s.preflight_because);
    preflight_because.append(&mut s.notes);
    Ok(Explanation {
        request,
        method: s.method.to_string(),
        same_origin: s.same_origin,
        preflight_because,
        legs,
        readable_headers: readable,
    })
}
