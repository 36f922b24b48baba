//! The record stage: what a request came to, for the access log and the
//! metrics.

use super::normalise::BadRequest;
use crate::router::CompiledVService;
use corsgate_policy::{Policy, Refusal};
use http::HeaderValue;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The CORS decision for the access log; formatting happens only when the
/// log line is actually written.
#[derive(Clone, Copy)]
pub(super) enum CorsDecision {
    NoPolicy,
    Shadow,
    NotCors,
    Allowed,
    Refused(Refusal),
    PreflightAllowed,
    PreflightRefused(Refusal),
    /// Answered with the policy's headers, but the browser will refuse it.
    PreflightBlocked(Refusal),
}

impl CorsDecision {
    pub(super) fn outcome(self) -> crate::metrics::Outcome {
        use crate::metrics::Outcome;
        match self {
            CorsDecision::NoPolicy | CorsDecision::Shadow | CorsDecision::NotCors => {
                Outcome::Uncounted
            }
            CorsDecision::Allowed => Outcome::Allowed,
            CorsDecision::Refused(r) => Outcome::Refused(r),
            CorsDecision::PreflightAllowed => Outcome::PreflightAllowed,
            CorsDecision::PreflightRefused(r) => Outcome::PreflightRefused(r),
            CorsDecision::PreflightBlocked(r) => Outcome::PreflightBlocked(r),
        }
    }

    pub(super) fn refused(self) -> bool {
        matches!(
            self,
            CorsDecision::Refused(_) | CorsDecision::PreflightRefused(_)
        )
    }
}

impl std::fmt::Display for CorsDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CorsDecision::NoPolicy => f.write_str("no_policy"),
            CorsDecision::Shadow => f.write_str("shadow"),
            CorsDecision::NotCors => f.write_str("not_cors"),
            CorsDecision::Allowed => f.write_str("allowed"),
            CorsDecision::Refused(r) => write!(f, "refused:{}", r.as_str()),
            CorsDecision::PreflightAllowed => f.write_str("preflight_allowed"),
            CorsDecision::PreflightRefused(r) => write!(f, "preflight_refused:{}", r.as_str()),
            CorsDecision::PreflightBlocked(r) => write!(f, "preflight_blocked:{}", r.as_str()),
        }
    }
}

/// One access-log line's fields.
pub(super) struct AccessLog<'a> {
    pub(super) vs: &'a CompiledVService,
    pub(super) rule: &'a str,
    pub(super) method: &'a http::Method,
    pub(super) path: &'a str,
    /// When the request arrived; read only if access logging is on.
    pub(super) started: Option<Instant>,
}

impl AccessLog<'_> {
    pub(super) fn write(
        &self,
        status: http::StatusCode,
        upstream: Option<Duration>,
        cors: CorsDecision,
        refused: Option<BadRequest>,
    ) {
        tracing::info!(
            target: "corsgate::access",
            vservice = %self.vs.name,
            rule = self.rule,
            method = %self.method,
            path = self.path,
            status = status.as_u16(),
            upstream_ms = upstream.map(|d| d.as_secs_f64() * 1000.0),
            total_ms = self.started.map(|s| s.elapsed().as_secs_f64() * 1000.0),
            cors = %cors,
            client_error = refused.map(BadRequest::label),
        );
    }
}

/// What a request came to, recorded once its response status is known: in
/// the metrics and in the access log.
pub(super) struct Record<'a> {
    pub(super) stats: &'a crate::metrics::VServiceMetrics,
    /// The matched rule's index among the vService's rules.
    pub(super) rule: Option<usize>,
    pub(super) policy: Option<&'a Arc<Policy>>,
    pub(super) decision: CorsDecision,
    /// The origin, kept only when the policy refused it: the metrics name
    /// the top refused origins. A shared buffer, not a copy.
    pub(super) refused_origin: Option<HeaderValue>,
    pub(super) upstream: Option<Duration>,
    /// The client error the request was refused for, if any.
    pub(super) client_error: Option<BadRequest>,
    pub(super) log: AccessLog<'a>,
}

impl Record<'_> {
    pub(super) fn write(&self, status: http::StatusCode) {
        if let Some(bad) = self.client_error {
            self.stats.client_error(bad);
        }
        self.stats.record(
            self.rule,
            status.as_u16(),
            self.policy,
            self.decision.outcome(),
            self.refused_origin.as_ref().map(HeaderValue::as_bytes),
            self.upstream,
        );
        self.log
            .write(status, self.upstream, self.decision, self.client_error);
    }
}
