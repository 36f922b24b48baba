//! Route compiler refusals as typed values with stable IDs.
//!
//! Like the policy engine's [`ErrorId`](corsgate_policy::ErrorId), every
//! refusal has an ID users can search for; unlike it, the route compiler
//! knows the loaded configuration's [`Sources`], so each error leaves here
//! already located (file, line, column, snippet).

use corsgate_config::{ConfigError, Sources};
use std::fmt;

/// Stable IDs of route compiler refusals (docs/configuration.md lists them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteErrorId {
    /// The configuration has no vService.
    NoVServices,
    /// Two vServices with one name.
    DuplicateVService,
    /// Two vServices on one listen address.
    DuplicateListen,
    /// A listen address that is not `ip:port`.
    InvalidListen,
    /// A header or idle timeout of 0 or over a day.
    InvalidTimeout,
    /// A reference to a policy that does not exist.
    UnknownPolicy,
    /// A reference to a policy that exists but was refused.
    RefusedPolicy,
    /// A host name or host pattern that is not one.
    InvalidHost,
    /// A path (condition, `pathCors` prefix or replacement) that is not an
    /// absolute request path.
    InvalidPath,
    /// A path condition without exactly one of exact, prefix, regex.
    InvalidPathMatch,
    /// A regex that does not compile.
    InvalidRegex,
    /// A method condition that is not one method token.
    InvalidMethod,
    /// A header name that is not a token.
    InvalidHeaderName,
    /// A header value with characters a header cannot carry.
    InvalidHeaderValue,
    /// A header condition with both `value` and `regex`.
    ConflictingMatch,
    /// A query condition without a parameter name.
    InvalidQuery,
    /// A rule without exactly one of forward, direct, redirect.
    RuleAction,
    /// A forward action without upstreams.
    NoUpstream,
    /// An upstream that is not an `http://host:port` URL.
    InvalidUpstream,
    /// A direct status outside 200-599.
    InvalidStatus,
    /// A redirect status other than 301, 302, 303, 307, 308.
    InvalidRedirectStatus,
    /// A fixed redirect location that is not a header value.
    InvalidLocation,
    /// A fixed location together with computed parts.
    RedirectConflict,
    /// A redirect that replaces nothing: back to the same URL.
    RedirectLoop,
    /// A redirect scheme other than http or https.
    InvalidScheme,
    /// Port 0.
    InvalidPort,
    /// A path replacement without exactly one of full, prefix, or a prefix
    /// replacement without a prefix condition to replace.
    InvalidPathRewrite,
    /// An `upgrades` entry that is not a protocol token, or `h2c`, which
    /// is never tunnelled.
    InvalidUpgrade,
    /// A connection or stream limit of zero or past its bound.
    InvalidLimit,
}

impl RouteErrorId {
    /// The stable ID users see and search for.
    pub const fn as_str(self) -> &'static str {
        use RouteErrorId::*;
        match self {
            NoVServices => "no-vservices",
            DuplicateVService => "duplicate-vservice",
            DuplicateListen => "duplicate-listen",
            InvalidListen => "invalid-listen",
            InvalidTimeout => "invalid-timeout",
            UnknownPolicy => "unknown-policy",
            RefusedPolicy => "refused-policy",
            InvalidHost => "invalid-host",
            InvalidPath => "invalid-path",
            InvalidPathMatch => "invalid-path-match",
            InvalidRegex => "invalid-regex",
            InvalidMethod => "invalid-method",
            InvalidHeaderName => "invalid-header-name",
            InvalidHeaderValue => "invalid-header-value",
            ConflictingMatch => "conflicting-match",
            InvalidQuery => "invalid-query",
            RuleAction => "rule-action",
            NoUpstream => "no-upstream",
            InvalidUpstream => "invalid-upstream",
            InvalidStatus => "invalid-status",
            InvalidRedirectStatus => "invalid-redirect-status",
            InvalidLocation => "invalid-location",
            RedirectConflict => "redirect-conflict",
            RedirectLoop => "redirect-loop",
            InvalidScheme => "invalid-scheme",
            InvalidPort => "invalid-port",
            InvalidPathRewrite => "invalid-path-rewrite",
            InvalidUpgrade => "invalid-upgrade",
            InvalidLimit => "invalid-limit",
        }
    }

    /// Every ID, for documentation tests.
    pub const ALL: [RouteErrorId; 29] = {
        use RouteErrorId::*;
        [
            NoVServices,
            DuplicateVService,
            DuplicateListen,
            InvalidListen,
            InvalidTimeout,
            UnknownPolicy,
            RefusedPolicy,
            InvalidHost,
            InvalidPath,
            InvalidPathMatch,
            InvalidRegex,
            InvalidMethod,
            InvalidHeaderName,
            InvalidHeaderValue,
            ConflictingMatch,
            InvalidQuery,
            RuleAction,
            NoUpstream,
            InvalidUpstream,
            InvalidStatus,
            InvalidRedirectStatus,
            InvalidLocation,
            RedirectConflict,
            RedirectLoop,
            InvalidScheme,
            InvalidPort,
            InvalidPathRewrite,
            InvalidUpgrade,
            InvalidLimit,
        ]
    };
}

impl fmt::Display for RouteErrorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every refusal found so far, located as it is found.
pub(crate) struct Errors<'a> {
    sources: &'a Sources,
    pub(crate) out: Vec<ConfigError>,
}

impl<'a> Errors<'a> {
    pub(crate) fn new(sources: &'a Sources) -> Self {
        Errors {
            sources,
            out: Vec::new(),
        }
    }

    /// Refuse the value at document path `at`.
    pub(crate) fn push(
        &mut self,
        at: impl Into<String>,
        id: RouteErrorId,
        reason: impl Into<String>,
    ) {
        self.out
            .push(self.sources.error(at.into(), id.as_str(), reason.into()));
    }
}
