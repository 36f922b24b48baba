//! What a decision found: why an origin or a preflight was refused
//! ([`Refusal`]), and the outcomes of preflights and actual requests. Each
//! has a stable label, because metrics and logs count by it (R30).

use crate::matcher::MatchedBy;
use crate::origin::InvalidOrigin;
use std::fmt;

/// Why a request's origin was not granted CORS access, or a preflight was
/// refused. Cheap to copy; a stable label feeds metrics (R30).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// A canonical origin that no entry matches.
    OriginNotAllowed,
    /// A non-canonical `Origin` value (R9).
    OriginInvalid(InvalidOrigin),
    /// `Origin: null`, not explicitly allowed (P4).
    NullOrigin,
    /// ACRM is not a single method token (R12a).
    InvalidRequestMethod,
    /// ACRH holds a non-token item (R12b).
    InvalidRequestHeaders,
    /// Strict validation: the method is not in `allowMethods` (R19).
    MethodNotAllowed,
    /// Strict validation: a header is not in `allowHeaders` (R19).
    HeaderNotAllowed,
}

impl Refusal {
    /// Every reason's label, in [`Refusal::index`] order: the metrics
    /// create one series per policy and label from this list.
    pub const LABELS: [&'static str; 7] = [
        "origin_not_allowed",
        "origin_invalid",
        "origin_null",
        "invalid_request_method",
        "invalid_request_headers",
        "method_not_allowed",
        "header_not_allowed",
    ];

    /// This reason's position in [`Refusal::LABELS`].
    pub const fn index(self) -> usize {
        match self {
            Refusal::OriginNotAllowed => 0,
            Refusal::OriginInvalid(_) => 1,
            Refusal::NullOrigin => 2,
            Refusal::InvalidRequestMethod => 3,
            Refusal::InvalidRequestHeaders => 4,
            Refusal::MethodNotAllowed => 5,
            Refusal::HeaderNotAllowed => 6,
        }
    }

    /// The metrics label.
    pub const fn as_str(self) -> &'static str {
        Refusal::LABELS[self.index()]
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::OriginNotAllowed => f.write_str("origin is not in the allow-list"),
            Refusal::OriginInvalid(why) => write!(f, "Origin is not canonical: {why}"),
            Refusal::NullOrigin => f.write_str("origin `null` is not explicitly allowed"),
            Refusal::InvalidRequestMethod => {
                f.write_str("Access-Control-Request-Method is not a single method token")
            }
            Refusal::InvalidRequestHeaders => {
                f.write_str("Access-Control-Request-Headers is not a list of header names")
            }
            Refusal::MethodNotAllowed => f.write_str("requested method is not in allowMethods"),
            Refusal::HeaderNotAllowed => f.write_str("a requested header is not in allowHeaders"),
        }
    }
}

/// The outcome of a preflight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreflightOutcome {
    /// Answered with the policy's headers (R19).
    Allowed(MatchedBy),
    /// Answered without any `Access-Control-*` header (R20).
    Refused(Refusal),
}

impl PreflightOutcome {
    /// The metrics label (R30).
    pub const fn label(&self) -> &'static str {
        match self {
            PreflightOutcome::Allowed(_) => "preflight_allowed",
            PreflightOutcome::Refused(_) => "preflight_rejected",
        }
    }
}

/// The outcome of an actual (non-preflight) request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActualOutcome {
    /// No `Origin`: not a CORS request (R7).
    NotCors,
    /// The response gets ACAO (and ACAC/ACEH).
    Allowed(MatchedBy),
    /// The response gets no `Access-Control-*` header.
    Refused(Refusal),
}

impl ActualOutcome {
    /// The metrics label (R30).
    pub const fn label(&self) -> &'static str {
        match self {
            ActualOutcome::NotCors => "not_cors",
            ActualOutcome::Allowed(_) => "actual_allowed",
            ActualOutcome::Refused(_) => "actual_not_allowed",
        }
    }
}

#[cfg(test)]
mod refusal_tests {
    use super::*;

    /// The labels list and the per-reason label agree.
    #[test]
    fn labels_follow_index() {
        let all = [
            Refusal::OriginNotAllowed,
            Refusal::OriginInvalid(InvalidOrigin::TooLong),
            Refusal::NullOrigin,
            Refusal::InvalidRequestMethod,
            Refusal::InvalidRequestHeaders,
            Refusal::MethodNotAllowed,
            Refusal::HeaderNotAllowed,
        ];
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert_eq!(Refusal::LABELS[i], r.as_str());
        }
    }
}
