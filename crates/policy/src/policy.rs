//! The compiled policy: everything a request needs, computed once at load
//! time and immutable afterwards, so it can be shared behind an `Arc` and
//! swapped atomically on reload. Rule numbers are rows of `docs/rules.md`.

use crate::matcher::{MatchedBy, OriginEntry, OriginMatcher};
use crate::spec::{Mode, PolicySpec, PreflightValidation, RejectStatus, UpstreamCorsHeaders};
use http::HeaderValue;

/// How an `Access-Control-Allow-Methods`/`-Headers` value is produced.
#[derive(Debug)]
pub(crate) enum AllowList {
    /// Empty list: the header is not sent (R2).
    None,
    /// A configured list: a precomputed value, plus the items for strict
    /// validation and explanations (methods verbatim, headers lower-cased).
    List {
        value: HeaderValue,
        items: Vec<Box<str>>,
    },
    /// `*`: echo the request's ACRM/ACRH (R12a, R12b).
    Echo,
}

/// How `Access-Control-Expose-Headers` is produced (R12c).
#[derive(Debug)]
pub(crate) enum Expose {
    /// Not sent.
    None,
    /// A configured list, precomputed.
    List(HeaderValue),
    /// `*` without credentials: a literal `*`.
    Star,
    /// `*` with credentials: enumerate the response's own header names.
    Enumerate,
}

/// A validated, compiled CORS policy.
///
/// Build it with [`Policy::compile`]; decide requests with
/// [`Policy::evaluate`] (see the crate documentation for the decision table).
#[derive(Debug)]
pub struct Policy {
    pub(crate) spec: PolicySpec,
    pub(crate) entries: Vec<(usize, OriginEntry)>,
    pub(crate) matcher: OriginMatcher,
    pub(crate) credentials: bool,
    pub(crate) methods: AllowList,
    pub(crate) headers: AllowList,
    pub(crate) expose: Expose,
    pub(crate) max_age: HeaderValue,
    pub(crate) private_network: bool,
    pub(crate) validation: PreflightValidation,
    pub(crate) reject_status: RejectStatus,
    pub(crate) upstream: UpstreamCorsHeaders,
    pub(crate) mode: Mode,
    /// The request-independent fields of an allowed preflight's answer.
    pub(crate) preflight_template: std::sync::Arc<crate::decision::PreflightTemplate>,
}

impl Policy {
    /// The specification this policy was compiled from.
    pub fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    /// Enforce or shadow (R29).
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Does the policy send `Access-Control-Allow-Credentials: true`?
    pub fn allows_credentials(&self) -> bool {
        self.credentials
    }

    /// What upstream `Access-Control-*` headers become (R23).
    pub fn upstream_cors_headers(&self) -> UpstreamCorsHeaders {
        self.upstream
    }

    /// The canonical `allowOrigins` entries with their indices.
    pub fn origin_entries(&self) -> impl Iterator<Item = (usize, &OriginEntry)> {
        self.entries.iter().map(|(i, e)| (*i, e))
    }

    /// The configuration text behind a match, for logs and explanations.
    pub fn describe_match(&self, m: MatchedBy) -> String {
        let origins = &self.spec.allow_origins;
        let regexes = &self.spec.allow_origin_regexes;
        match m {
            MatchedBy::AnyOrigin => "allowOrigins: *".to_owned(),
            MatchedBy::Exact(i) | MatchedBy::Subdomain(i) | MatchedBy::AnyHost(i) => {
                format!(
                    "allowOrigins[{i}] {:?}",
                    origins.get(i).map_or("", |s| s.as_str())
                )
            }
            MatchedBy::Regex(i) => format!(
                "allowOriginRegexes[{i}] {:?}",
                regexes.get(i).map_or("", |s| s.as_str())
            ),
            MatchedBy::NullOrigin => "allowNullOrigin: true".to_owned(),
        }
    }

    /// Is `method` (a request's ACRM) covered by `allowMethods`? The
    /// CORS-safelisted `GET`, `HEAD`, `POST` always are; comparison is
    /// byte-exact, as in browsers (F5).
    #[inline]
    pub fn method_allowed(&self, method: &[u8]) -> bool {
        if crate::token::is_safelisted_method(method) {
            return true;
        }
        match &self.methods {
            AllowList::None => false,
            AllowList::Echo => true,
            AllowList::List { items, .. } => items.iter().any(|m| m.as_bytes() == method),
        }
    }

    /// Is request header `name` (any case) covered by `allowHeaders`?
    ///
    /// The items are lower-cased at compile time and browsers send
    /// `Access-Control-Request-Headers` lower-cased (Fetch's "CORS-unsafe
    /// request-header names" are byte-lowercased), so an exact comparison
    /// settles the common case; the case-insensitive one runs only for an
    /// item of the same length that is not byte-equal. This runs for every
    /// item of every preflight (callgrind: the byte-wise case-insensitive
    /// loop alone was ~300 instructions of a two-header preflight).
    #[inline]
    pub fn header_allowed(&self, name: &[u8]) -> bool {
        match &self.headers {
            AllowList::None => false,
            AllowList::Echo => true,
            AllowList::List { items, .. } => items.iter().any(|h| {
                let h = h.as_bytes();
                h.len() == name.len() && (h == name || h.eq_ignore_ascii_case(name))
            }),
        }
    }
}
