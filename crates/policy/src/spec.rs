//! The policy as users write it: the Kubernetes Gateway API `HTTPCORSFilter`
//! vocabulary (R1 in `docs/rules.md`) plus corsgate's extensions (the
//! "Extensions" table there), with the Gateway API's
//! camelCase field names so a filter copied from an `HTTPRoute` deserialises
//! unchanged.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One CORS policy, before compilation.
///
/// Defaults follow the Gateway API CRD (R2): no credentials, `maxAge` 5 when
/// unset, empty lists mean "header not sent".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySpec {
    /// Allowed origins: `*`, `scheme://host[:port]`, `scheme://*.suffix[:port]`
    /// or `scheme://*[:port]` (the Gateway API `CORSOrigin` syntax).
    #[serde(default)]
    pub allow_origins: Vec<String>,
    /// Methods written to `Access-Control-Allow-Methods`, verbatim; `*` echoes
    /// the requested method.
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// Request header names written (lower-cased) to
    /// `Access-Control-Allow-Headers`; `*` echoes the requested names.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response header names written to `Access-Control-Expose-Headers`.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// `Access-Control-Max-Age` in seconds; 5 when unset. Minimum 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
    /// Send `Access-Control-Allow-Credentials: true`.
    #[serde(default)]
    pub allow_credentials: bool,

    /// corsgate: anchored origin regexes (R13), ORed with `allowOrigins`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origin_regexes: Vec<String>,
    /// corsgate: allow `Origin: null` explicitly (P4).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_null_origin: bool,
    /// corsgate: the R5 opt-in that lets `*` (or `scheme://*`) go with
    /// credentials, reflecting any origin. Refused without it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unsafe_allow_any_origin_with_credentials: bool,
    /// corsgate: answer Private Network Access preflights (R19).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_private_network: bool,
    /// corsgate: whether the gateway itself checks the requested method and
    /// headers (R19).
    #[serde(default)]
    pub preflight_validation: PreflightValidation,
    /// corsgate: status of a refused preflight (R20).
    #[serde(default)]
    pub preflight_reject_status: RejectStatus,
    /// corsgate: what happens to `Access-Control-*` headers set by the
    /// upstream (R23).
    #[serde(default)]
    pub upstream_cors_headers: UpstreamCorsHeaders,
    /// corsgate: enforce or only evaluate and count (R29).
    #[serde(default)]
    pub mode: Mode,
    /// corsgate: origins the policy must allow and must refuse, checked on
    /// every load and reload; a failing test refuses the configuration.
    #[serde(default, skip_serializing_if = "PolicyTests::is_empty")]
    pub tests: PolicyTests,
}

/// A policy's own tests: the cheapest guard against a pattern that
/// silently never matches (a typo in a regex, `*.example.com` expected to
/// cover `example.com`) or one that matches too much.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyTests {
    /// Origins that must be allowed, exactly as a browser sends them.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Origins that must be refused.
    #[serde(default)]
    pub deny: Vec<String>,
}

impl PolicyTests {
    /// No tests.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Does the gateway check ACRM/ACRH against the policy's lists?
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PreflightValidation {
    /// Answer with the configured lists and let the browser refuse (what the
    /// Gateway API, Envoy and agentgateway do). The answer depends only on
    /// the origin.
    #[default]
    Browser,
    /// Refuse (R20) a preflight whose method or headers the policy does not
    /// allow.
    Strict,
}

/// Status code of a refused preflight: 200 (default), 204 or 403.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum RejectStatus {
    /// 200 OK without CORS headers.
    #[default]
    Ok,
    /// 204 No Content without CORS headers.
    NoContent,
    /// 403 Forbidden without CORS headers: explicit, per Fetch.
    Forbidden,
}

impl RejectStatus {
    /// The HTTP status.
    pub fn status(self) -> http::StatusCode {
        match self {
            RejectStatus::Ok => http::StatusCode::OK,
            RejectStatus::NoContent => http::StatusCode::NO_CONTENT,
            RejectStatus::Forbidden => http::StatusCode::FORBIDDEN,
        }
    }
}

/// The value is not one of the allowed reject statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("preflightRejectStatus must be 200, 204 or 403, not {0}")]
pub struct BadRejectStatus(pub u16);

impl TryFrom<u16> for RejectStatus {
    type Error = BadRejectStatus;
    fn try_from(v: u16) -> Result<Self, Self::Error> {
        match v {
            200 => Ok(RejectStatus::Ok),
            204 => Ok(RejectStatus::NoContent),
            403 => Ok(RejectStatus::Forbidden),
            other => Err(BadRejectStatus(other)),
        }
    }
}

impl From<RejectStatus> for u16 {
    fn from(v: RejectStatus) -> u16 {
        v.status().as_u16()
    }
}

/// What to do with `Access-Control-*` headers the upstream sets.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamCorsHeaders {
    /// Strip them on every response, then write corsgate's own (R23).
    #[default]
    Override,
    /// Envoy's behaviour, for migrations: override only when the origin is
    /// allowed, otherwise pass the upstream's headers through.
    Preserve,
}

/// Enforce the policy, or only evaluate and count it (R29).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Answer preflights and complete responses.
    #[default]
    Enforce,
    /// Change nothing; report what enforcement would have done.
    Shadow,
}

impl fmt::Display for PreflightValidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PreflightValidation::Browser => "browser",
            PreflightValidation::Strict => "strict",
        })
    }
}

impl schemars::JsonSchema for RejectStatus {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RejectStatus".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Status code of a refused preflight: 200 (default), 204 or 403.",
            "type": "integer",
            "enum": [200, 204, 403]
        })
    }
}
