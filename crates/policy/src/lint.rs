//! Security lints with stable IDs and severities (R6 in `docs/rules.md`;
//! the table of lints is in `docs/cors.md`).
//!
//! A lint warns; one of severity [`Severity::Error`] also refuses the policy,
//! except `L-CRED-ANY`, which records an explicit opt-in.

use crate::error::FieldPath;
use std::fmt;

/// How loud a lint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing; no risk.
    Info,
    /// Probably a mistake or a risk.
    Warn,
    /// Unsafe; refuses the policy (except `L-CRED-ANY`).
    Error,
}

impl Severity {
    /// `info`, `warn` or `error`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stable lint IDs (R6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LintId {
    /// Any origin with credentials under the explicit opt-in.
    CredAny,
    /// A wildcard directly over a public suffix.
    PublicSuffix,
    /// An unescaped `.` in an origin regex.
    RegexDot,
    /// A regex or wildcard that matches an attacker canary.
    RegexCanary,
    /// An `http://` origin allowed together with credentials.
    HttpOriginCreds,
    /// `maxAge` above Chromium's 7200 s cap.
    MaxAgeChromium,
    /// `maxAge` above every browser's cap (86400 s).
    MaxAgeAll,
    /// `CONNECT`/`TRACE` in `allowMethods`.
    NoopMethod,
    /// A forbidden request header in `allowHeaders`.
    NoopHeader,
    /// `OPTIONS` in `allowMethods`.
    NoopOptions,
    /// No origin source at all.
    Empty,
    /// An empty methods/headers/expose list.
    EmptyList,
    /// `*` methods or headers with credentials.
    WildcardCreds,
    /// `(?i)` in an origin regex.
    RegexCase,
    /// `exposeHeaders: ["*"]` with credentials.
    ExposeStarCreds,
    /// `allowNullOrigin: true`.
    Null,
    /// Rules a preflight cannot tell apart select different policies (raised
    /// by the routing layer, R17).
    PreflightAmbiguous,
    /// The admin API listens beyond loopback without TLS, so bearer tokens
    /// cross the network in clear (raised by the configuration layer).
    AdminPlaintext,
}

impl LintId {
    /// All IDs, for documentation and tests.
    pub const ALL: [LintId; 18] = [
        LintId::CredAny,
        LintId::PublicSuffix,
        LintId::RegexDot,
        LintId::RegexCanary,
        LintId::HttpOriginCreds,
        LintId::MaxAgeChromium,
        LintId::MaxAgeAll,
        LintId::NoopMethod,
        LintId::NoopHeader,
        LintId::NoopOptions,
        LintId::Empty,
        LintId::EmptyList,
        LintId::WildcardCreds,
        LintId::RegexCase,
        LintId::ExposeStarCreds,
        LintId::Null,
        LintId::PreflightAmbiguous,
        LintId::AdminPlaintext,
    ];

    /// The stable ID.
    pub const fn as_str(self) -> &'static str {
        match self {
            LintId::CredAny => "L-CRED-ANY",
            LintId::PublicSuffix => "L-PUBLIC-SUFFIX",
            LintId::RegexDot => "L-REGEX-DOT",
            LintId::RegexCanary => "L-REGEX-CANARY",
            LintId::HttpOriginCreds => "L-HTTP-ORIGIN-CREDS",
            LintId::MaxAgeChromium => "L-MAXAGE-CHROMIUM",
            LintId::MaxAgeAll => "L-MAXAGE-ALL",
            LintId::NoopMethod => "L-NOOP-METHOD",
            LintId::NoopHeader => "L-NOOP-HEADER",
            LintId::NoopOptions => "L-NOOP-OPTIONS",
            LintId::Empty => "L-EMPTY",
            LintId::EmptyList => "L-EMPTY-LIST",
            LintId::WildcardCreds => "L-WILDCARD-CREDS",
            LintId::RegexCase => "L-REGEX-CASE",
            LintId::ExposeStarCreds => "L-EXPOSE-STAR-CREDS",
            LintId::Null => "L-NULL",
            LintId::PreflightAmbiguous => "L-PREFLIGHT-AMBIGUOUS",
            LintId::AdminPlaintext => "L-ADMIN-PLAINTEXT",
        }
    }
}

impl fmt::Display for LintId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding about a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lint {
    /// Stable ID.
    pub id: LintId,
    /// Severity (for `L-NULL` it depends on credentials).
    pub severity: Severity,
    /// The field (and index) it is about.
    pub at: FieldPath,
    /// What is wrong.
    pub message: String,
    /// A one-line fix.
    pub fix: String,
}

impl Lint {
    /// Does this lint refuse the policy?
    pub fn refuses(&self) -> bool {
        self.severity == Severity::Error && self.id != LintId::CredAny
    }
}

impl fmt::Display for Lint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] at {}: {} (fix: {})",
            self.id, self.severity, self.at, self.message, self.fix
        )
    }
}
