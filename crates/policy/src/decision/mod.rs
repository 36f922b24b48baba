//! Per-request decisions (R7-R12, R18-R24, R27-R29 in `docs/rules.md`).
//!
//! [`Policy::evaluate`] classifies a request and returns either the complete
//! preflight answer (the gateway sends it and never forwards the request),
//! or a [`Completion`] that the proxy applies with [`Policy::complete`] to
//! whatever response it ends up sending — the backend's or its own error.
//!
//! One concept a file: `outcome.rs` (refusals and outcomes),
//! `origin_decision.rs` (the origin half shared by both kinds of request),
//! `preflight.rs` and `answer.rs` (deciding and answering a preflight),
//! `actual.rs` (deciding an actual request and completing its response).

mod actual;
mod answer;
mod origin_decision;
mod outcome;
mod preflight;

pub use actual::{Completion, CompletionLines};
pub use answer::PreflightResponse;
pub(crate) use answer::{preflight_template, PreflightTemplate};
pub use outcome::{ActualOutcome, PreflightOutcome, Refusal};

use crate::fields::RequestFields;
use crate::policy::Policy;
use crate::spec::Mode;
use crate::token::trim_ows;
use http::header::ORIGIN;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_METHOD,
};
use http::{HeaderName, HeaderValue, Method};

/// `Access-Control-Request-Private-Network` (PNA, F13).
pub const ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-request-private-network");
/// `Access-Control-Allow-Private-Network` (PNA, F13).
pub const ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-allow-private-network");

/// The `Vary` of every preflight answer (R24).
pub const PREFLIGHT_VARY: &str =
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

/// Every response field corsgate owns on a CORS-scoped route (R23).
pub const CORS_RESPONSE_HEADERS: [HeaderName; 7] = [
    ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_ALLOW_CREDENTIALS,
    ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK,
];

static STAR: HeaderValue = HeaderValue::from_static("*");
static TRUE: HeaderValue = HeaderValue::from_static("true");

/// One HTTP/1.1 field line, `name: value\r\n`.
#[inline]
fn line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// What to do with a request on a CORS-scoped route.
#[derive(Debug)]
pub enum Evaluation {
    /// Answer with this and never forward the request (R18).
    Preflight(PreflightResponse),
    /// Forward (or generate an error), then apply with [`Policy::complete`].
    Actual(Completion),
    /// The policy is in shadow mode (R29): forward and change nothing; the
    /// outcome is what enforcement would have done, for counting.
    Shadow(ShadowOutcome),
}

/// What a shadow policy would have done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShadowOutcome {
    /// A preflight.
    Preflight(PreflightOutcome),
    /// An actual request.
    Actual(ActualOutcome),
}

/// Is this request a CORS preflight (R8)? `OPTIONS` exactly, a non-empty
/// `Origin`, and a non-empty `Access-Control-Request-Method`.
pub fn is_preflight<H: RequestFields + ?Sized>(method: &Method, headers: &H) -> bool {
    *method == Method::OPTIONS
        && headers
            .first_value(&ORIGIN)
            .is_some_and(|v| !v.as_bytes().is_empty())
        && headers
            .values(&ACCESS_CONTROL_REQUEST_METHOD)
            .any(|v| !trim_ows(v.as_bytes()).is_empty())
}

impl Policy {
    /// Classify and decide one request (see the crate-level decision table).
    pub fn evaluate<H: RequestFields + ?Sized>(&self, method: &Method, headers: &H) -> Evaluation {
        self.evaluate_classified(is_preflight(method, headers), headers)
    }

    /// [`Policy::evaluate`] for a caller that has already classified the
    /// request with [`is_preflight`] (the router needs that answer too, R17),
    /// so the classification is not done twice per request.
    pub fn evaluate_classified<H: RequestFields + ?Sized>(
        &self,
        preflight: bool,
        headers: &H,
    ) -> Evaluation {
        match (self.mode, preflight) {
            (Mode::Enforce, true) => Evaluation::Preflight(self.preflight(headers)),
            (Mode::Enforce, false) => Evaluation::Actual(self.actual(headers)),
            (Mode::Shadow, true) => {
                Evaluation::Shadow(ShadowOutcome::Preflight(self.preflight(headers).outcome))
            }
            (Mode::Shadow, false) => {
                Evaluation::Shadow(ShadowOutcome::Actual(self.actual(headers).outcome))
            }
        }
    }
}
