//! # corsgate-policy
//!
//! corsgate's CORS policy engine: pure (no I/O, no async), compiled once at
//! load time, deciding every request with a few hash lookups.
//!
//! **Rule numbers.** Its behaviour is specified as rules R1-R30, and the
//! docs and comments of this crate cite them by number: "(R23)" means row
//! R23 of the rule table `docs/rules.md` at the repository root (anchor
//! `docs/rules.md#r23`). F-numbers (browser facts from the Fetch standard)
//! and P-numbers (security pitfalls) are defined on the same page. The
//! tests in `tests/rules.rs` are named after the rules they prove
//! (`r23_…`).
//!
//! ```
//! use corsgate_policy::{Evaluation, Policy, PolicySpec};
//! use http::{HeaderMap, HeaderValue, Method};
//!
//! let spec: PolicySpec = serde_json::from_str(r#"{
//!     "allowOrigins": ["https://app.example.com"],
//!     "allowMethods": ["GET", "PUT"],
//!     "allowHeaders": ["Authorization"],
//!     "allowCredentials": true
//! }"#).unwrap();
//! let policy = Policy::compile(&spec).unwrap().policy;
//!
//! let mut req = HeaderMap::new();
//! req.insert("origin", HeaderValue::from_static("https://app.example.com"));
//! req.insert("access-control-request-method", HeaderValue::from_static("PUT"));
//! let Evaluation::Preflight(answer) = policy.evaluate(&Method::OPTIONS, &req) else { panic!() };
//! assert_eq!(answer.status, 200);
//! assert_eq!(answer.headers()["access-control-allow-methods"], "GET, PUT");
//!
//! // An actual request: forward it, then complete whatever response comes back.
//! req.remove("access-control-request-method");
//! let Evaluation::Actual(completion) = policy.evaluate(&Method::PUT, &req) else { panic!() };
//! let mut response = HeaderMap::new();
//! response.insert("access-control-allow-origin", HeaderValue::from_static("*")); // upstream's own
//! policy.complete(&completion, &mut response);
//! assert_eq!(response.get_all("access-control-allow-origin").iter().count(), 1);
//! assert_eq!(response["access-control-allow-origin"], "https://app.example.com");
//! assert_eq!(response["vary"], "Origin");
//! ```
//!
//! ## Decision table
//!
//! | request | origin | answer |
//! |---|---|---|
//! | no `Origin` (R7) | — | forward; strip upstream `Access-Control-*` (R23); merge `Vary: Origin` (R24) |
//! | `OPTIONS` + `Origin` + ACRM (R8) | allowed (R10-R15), ACRM/ACRH tokens (R12) | **200** from the gateway: ACAO, ACAC iff credentials, ACAM, ACAH, ACEH, ACMA (5 if unset), ACAPN iff opted in and asked; `Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers` (R19) |
//! | same | not allowed, invalid (R9), `null` not allowed, bad ACRM/ACRH, or `strict` refusal | `preflightRejectStatus` (200) from the gateway, **no** `Access-Control-*`, same `Vary` (R20); never forwarded (R18) |
//! | any other request | allowed | forward; strip upstream CORS headers; ACAO (`*` for a `*` policy without credentials, else the request's Origin), ACAC iff credentials, ACEH; `Vary: Origin` (R21-R24) |
//! | same | not allowed / invalid / `null` | forward (CORS protects responses, not requests: R22); strip; `Vary: Origin` |
//! | policy `mode: shadow` (R29) | any | forward, change nothing; [`Evaluation::Shadow`] says what enforcement would have done |
//!
//! ACAM, ACAH, ACMA and ACAPN never appear on actual responses (R21). Every
//! `Access-Control-*` header appears at most once (R27).
//!
//! ## Shape
//!
//! - [`PolicySpec`]: the Gateway API `HTTPCORSFilter` vocabulary plus
//!   corsgate's extensions, serde-deserialisable with camelCase names.
//! - [`Policy::compile`]: validation (R3, R5) and lints (R6), all reported at
//!   once, then an immutable [`Policy`] with every header value precomputed.
//! - [`Policy::evaluate`]: per request, returns an [`Evaluation`]. It reads
//!   the request's fields through [`RequestFields`], implemented for an
//!   `http::HeaderMap` and for a plain list of `(name, value)` lines, so a
//!   server that parses requests itself need not build a map.
//! - [`PreflightResponse::headers`] gives a preflight's answer as a map;
//!   [`PreflightResponse::write_fields`] writes the same fields as HTTP/1.1
//!   lines from a template encoded at compile time.
//! - [`Policy::complete`]: applies a [`Completion`] to any response.
//!   [`Policy::completion_lines`] gives the same completion as field lines
//!   ([`CompletionLines`]) for a server that passes an upstream's fields
//!   through without a map.
//! - [`Policy::explain_origin`] and [`Policy::preflight_problems`]: the
//!   structured "why" behind a decision, computed only when asked for.

#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod canary;
mod compile;
mod decision;
mod error;
mod explain;
mod fields;
mod lint;
mod matcher;
mod origin;
mod policy;
mod selftest;
mod spec;
mod token;
mod vary;

pub use compile::{Compiled, Rejected, CHROMIUM_MAX_AGE_CAP, DEFAULT_MAX_AGE, FIREFOX_MAX_AGE_CAP};
pub use decision::{
    is_preflight, ActualOutcome, Completion, CompletionLines, Evaluation, PreflightOutcome,
    PreflightResponse, Refusal, ShadowOutcome, ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK,
    ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK, CORS_RESPONSE_HEADERS, PREFLIGHT_VARY,
};
pub use error::{ErrorId, FieldPath, PolicyError};
pub use explain::{NearMiss, OriginExplanation, OriginVerdict, RequestProblem};
pub use fields::RequestFields;
pub use lint::{Lint, LintId, Severity};
pub use matcher::{parse_entry, EntryError, MatchedBy, OriginEntry};
pub use origin::{
    parse_origin, parse_origin_bytes, request_origin, InvalidOrigin, RequestOrigin, Scheme,
    SerializedOrigin, MAX_ORIGIN_LEN,
};
pub use policy::Policy;
pub use selftest::TestFailure;
pub use spec::{
    BadRejectStatus, Mode, PolicySpec, PolicyTests, PreflightValidation, RejectStatus,
    UpstreamCorsHeaders,
};
pub use token::{is_forbidden_request_header, is_safelisted_method, is_safelisted_request_header};
pub use token::{is_token, list_items};
pub use vary::{merge_vary, merge_vary_origin};
