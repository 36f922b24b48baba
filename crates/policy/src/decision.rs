//! Per-request decisions (R7-R12, R18-R24, R27-R29 in `docs/rules.md`).
//!
//! [`Policy::evaluate`] classifies a request and returns either the complete
//! preflight answer (the gateway sends it and never forwards the request),
//! or a [`Completion`] that the proxy applies with [`Policy::complete`] to
//! whatever response it ends up sending — the backend's or its own error.

use crate::fields::RequestFields;
use crate::matcher::MatchedBy;
use crate::origin::{request_origin_and_value, InvalidOrigin, RequestOrigin};
use crate::policy::{AllowList, Expose, Policy};
use crate::spec::{Mode, PreflightValidation, UpstreamCorsHeaders};
use crate::token::{is_safelisted_response_header, is_token, list_items, trim_ows};
use crate::vary::merge_vary_origin;
use http::header::ORIGIN;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use std::fmt;
use std::sync::Arc;

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

/// What goes into `Access-Control-Allow-Origin` for an allowed origin.
#[derive(Clone, Copy)]
enum Acao {
    /// A literal `*` (R11).
    Star,
    /// The request's own Origin value (R10).
    Echo,
    /// `null`, under `allowNullOrigin`.
    Null,
}
static TRUE: HeaderValue = HeaderValue::from_static("true");

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

/// A preflight that passed validation: what its answer is built from.
struct Checked<'r> {
    /// The `Access-Control-Allow-Origin` value.
    acao: HeaderValue,
    /// The requested method, trimmed.
    acrm: &'r [u8],
    matched: MatchedBy,
    /// What the browser will refuse in the answer, if anything.
    browser_blocks: Option<Refusal>,
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
    allowed: Option<AllowedFields>,
}

/// What an allowed preflight's answer adds to its policy's template.
#[derive(Debug)]
struct AllowedFields {
    template: Arc<PreflightTemplate>,
    /// `Access-Control-Allow-Origin`.
    origin: HeaderValue,
    /// The echoes of `allowMethods: *` and `allowHeaders: *`. Boxed: rare,
    /// and an answer is moved through several layers of a server.
    echoes: Option<Box<Echoes>>,
    /// `Access-Control-Allow-Private-Network: true`.
    private_network: bool,
}

/// An allowed preflight's answer fields that echo the request.
#[derive(Debug)]
struct Echoes {
    /// `Access-Control-Allow-Methods` echoing the request (`allowMethods: *`).
    methods: Option<HeaderValue>,
    /// `Access-Control-Allow-Headers` echoing the request (`allowHeaders: *`).
    headers: Option<HeaderValue>,
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

fn line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// What to do to the response of an actual request.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The ACAO value when the origin is allowed.
    allow_origin: Option<HeaderValue>,
    /// Why.
    pub outcome: ActualOutcome,
}

impl Completion {
    /// The ACAO value that will be written, if any.
    pub fn allow_origin(&self) -> Option<&HeaderValue> {
        self.allow_origin.as_ref()
    }
}

/// A [`Completion`] for a server that copies an upstream's fields through
/// as lines instead of building a map: it leaves out the upstream fields
/// [`CompletionLines::replaces`] names and then writes these. The result is
/// the same fields [`Policy::complete`] leaves in a map.
#[derive(Debug, Clone)]
pub struct CompletionLines {
    allow_origin: Option<HeaderValue>,
    credentials: bool,
    expose: Option<HeaderValue>,
}

impl CompletionLines {
    /// Whether the upstream field `name` (any case) is left out: the CORS
    /// fields corsgate owns (R23), and `Vary`, which
    /// [`CompletionLines::write`] writes merged (R24).
    pub fn replaces(name: &[u8]) -> bool {
        name.eq_ignore_ascii_case(b"vary")
            || (name.len() > 15
                && name[..15].eq_ignore_ascii_case(b"access-control-")
                && CORS_RESPONSE_HEADERS
                    .iter()
                    .any(|n| n.as_str().as_bytes().eq_ignore_ascii_case(name)))
    }

    /// Append the completion's field lines (`name: value\r\n`): ACAO, ACAC
    /// and ACEH when the origin is allowed (R21, R27), then `Vary` made of
    /// the upstream's `vary` values with `Origin` merged in as
    /// [`merge_vary_origin`] merges it.
    pub fn write<'v>(&self, vary: impl Iterator<Item = &'v [u8]> + Clone, out: &mut Vec<u8>) {
        if let Some(acao) = &self.allow_origin {
            line(out, ACCESS_CONTROL_ALLOW_ORIGIN.as_str(), acao.as_bytes());
            if self.credentials {
                line(out, ACCESS_CONTROL_ALLOW_CREDENTIALS.as_str(), b"true");
            }
            if let Some(v) = &self.expose {
                line(out, ACCESS_CONTROL_EXPOSE_HEADERS.as_str(), v.as_bytes());
            }
        }
        crate::vary::write_vary_origin(vary, out);
    }

    /// The same completion applied to a response's map: what
    /// [`Policy::complete`] does for the policies that have lines.
    pub fn apply(&self, response: &mut HeaderMap) {
        strip_cors_fields(response);
        write_cors_fields(
            response,
            self.allow_origin.as_ref(),
            self.credentials,
            self.expose.as_ref(),
        );
    }
}

/// Remove every CORS field corsgate owns (R23). One linear pass over the
/// (few) response names is cheaper than seven hash lookups when, as usual,
/// the upstream sent none.
fn strip_cors_fields(response: &mut HeaderMap) {
    if response.keys().any(|k| CORS_RESPONSE_HEADERS.contains(k)) {
        for name in &CORS_RESPONSE_HEADERS {
            response.remove(name);
        }
    }
}

/// Write ACAO, ACAC and ACEH when the origin is allowed (R21, R27), then
/// merge `Vary: Origin` (R24).
fn write_cors_fields(
    response: &mut HeaderMap,
    allow_origin: Option<&HeaderValue>,
    credentials: bool,
    expose: Option<&HeaderValue>,
) {
    if let Some(acao) = allow_origin {
        response.insert(ACCESS_CONTROL_ALLOW_ORIGIN, acao.clone());
        if credentials {
            response.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE.clone());
        }
        if let Some(v) = expose {
            response.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
    }
    merge_vary_origin(response);
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

    /// Match a classified origin against the policy (R9-R15): which entry
    /// allows it, or why none does. This is the whole per-request origin
    /// decision without header access; `explain`, policy tests and
    /// benchmarks use it directly.
    pub fn match_origin(&self, origin: RequestOrigin<'_>) -> Result<MatchedBy, Refusal> {
        self.origin_match(origin).map(|(m, _)| m)
    }

    fn origin_match(&self, origin: RequestOrigin<'_>) -> Result<(MatchedBy, Acao), Refusal> {
        match origin {
            RequestOrigin::Absent => Err(Refusal::OriginNotAllowed),
            RequestOrigin::Invalid(why) => Err(Refusal::OriginInvalid(why)),
            RequestOrigin::Null => {
                if self.matcher.is_any() && !self.credentials {
                    Ok((MatchedBy::AnyOrigin, Acao::Star))
                } else if self.matcher.allows_null() {
                    Ok((MatchedBy::NullOrigin, Acao::Null))
                } else {
                    Err(Refusal::NullOrigin)
                }
            }
            // R11: `*` without credentials answers `*`; with the R5 opt-in it
            // echoes the (canonical, single) origin.
            RequestOrigin::Valid(_) if self.matcher.is_any() => Ok((
                MatchedBy::AnyOrigin,
                if self.credentials {
                    Acao::Echo
                } else {
                    Acao::Star
                },
            )),
            RequestOrigin::Valid(o) => self
                .matcher
                .find(&o)
                .map(|m| (m, Acao::Echo))
                .ok_or(Refusal::OriginNotAllowed),
        }
    }

    /// Decide the origin: the ACAO value to write, or why there is none.
    fn origin_decision(
        &self,
        origin: RequestOrigin<'_>,
        raw: Option<&HeaderValue>,
    ) -> Result<(HeaderValue, MatchedBy), Refusal> {
        let (matched, acao) = self.origin_match(origin)?;
        let value = match acao {
            Acao::Star => STAR.clone(),
            Acao::Null => HeaderValue::from_static("null"),
            // A valid origin always comes with its single raw value.
            Acao::Echo => raw.cloned().ok_or(Refusal::OriginNotAllowed)?,
        };
        Ok((value, matched))
    }

    /// The decision for a request whose single `Origin` line is exactly a
    /// configured exact origin: the common case, answered with one lookup
    /// and no parse (see [`OriginMatcher::find_exact`]). `None` means "take
    /// the full path", never "refused".
    ///
    /// [`OriginMatcher::find_exact`]: crate::matcher::OriginMatcher::find_exact
    fn exact_origin<H: RequestFields + ?Sized>(
        &self,
        headers: &H,
    ) -> Option<(HeaderValue, MatchedBy)> {
        if self.matcher.is_any() {
            return None;
        }
        let mut lines = headers.values(&ORIGIN);
        let first = lines.next()?;
        if lines.next().is_some() {
            return None;
        }
        let matched = self.matcher.find_exact(first.as_bytes())?;
        Some((first.clone(), matched))
    }

    /// Decide an actual request (R21-R24, R28). Never blocks the request.
    pub fn actual<H: RequestFields + ?Sized>(&self, headers: &H) -> Completion {
        if let Some((v, m)) = self.exact_origin(headers) {
            return Completion {
                allow_origin: Some(v),
                outcome: ActualOutcome::Allowed(m),
            };
        }
        let (origin, raw) = request_origin_and_value(headers);
        if origin == RequestOrigin::Absent {
            return Completion {
                allow_origin: None,
                outcome: ActualOutcome::NotCors,
            };
        }
        match self.origin_decision(origin, raw) {
            Ok((v, m)) => Completion {
                allow_origin: Some(v),
                outcome: ActualOutcome::Allowed(m),
            },
            Err(r) => Completion {
                allow_origin: None,
                outcome: ActualOutcome::Refused(r),
            },
        }
    }

    /// Complete a response on a CORS-scoped route: strip upstream CORS
    /// headers (R23), write ACAO/ACAC/ACEH once each when allowed (R21,
    /// R27), and merge `Vary: Origin` (R24). Works the same for backend
    /// responses and the gateway's own errors (R25).
    pub fn complete(&self, completion: &Completion, response: &mut HeaderMap) {
        if self.upstream == UpstreamCorsHeaders::Preserve {
            if completion.allow_origin.is_some() {
                // Envoy semantics: an allowed origin overrides what it owns.
                response.remove(ACCESS_CONTROL_ALLOW_ORIGIN);
                response.remove(ACCESS_CONTROL_ALLOW_CREDENTIALS);
                response.remove(ACCESS_CONTROL_EXPOSE_HEADERS);
            }
        } else {
            strip_cors_fields(response);
        }
        let enumerated;
        let expose = match &self.expose {
            Expose::None => None,
            Expose::List(v) => Some(v),
            Expose::Star => Some(&STAR),
            Expose::Enumerate => {
                enumerated = completion
                    .allow_origin
                    .as_ref()
                    .and_then(|_| enumerate_exposable(response));
                enumerated.as_ref()
            }
        };
        write_cors_fields(
            response,
            completion.allow_origin.as_ref(),
            self.credentials,
            expose,
        );
    }

    /// The completion as lines (see [`CompletionLines`]). It is given back
    /// when it depends on the whole response and must be applied to a map
    /// with [`Policy::complete`]: `upstreamCorsHeaders: preserve` keeps
    /// some upstream fields, and `exposeHeaders: ["*"]` with credentials
    /// enumerates the response's names.
    pub fn completion_lines(&self, completion: Completion) -> Result<CompletionLines, Completion> {
        if self.upstream == UpstreamCorsHeaders::Preserve {
            return Err(completion);
        }
        let allowed = completion.allow_origin.is_some();
        let expose = match &self.expose {
            Expose::None => None,
            Expose::List(v) => Some(v.clone()),
            Expose::Star => Some(STAR.clone()),
            Expose::Enumerate if allowed => return Err(completion),
            Expose::Enumerate => None,
        };
        Ok(CompletionLines {
            allow_origin: completion.allow_origin,
            credentials: self.credentials,
            expose,
        })
    }

    /// Decide a preflight (R18-R20). The request must satisfy
    /// [`is_preflight`]; the answer is complete and is never forwarded.
    pub fn preflight<H: RequestFields + ?Sized>(&self, headers: &H) -> PreflightResponse {
        match self.preflight_check(headers) {
            Ok(Checked {
                acao,
                acrm,
                matched,
                browser_blocks,
            }) => PreflightResponse {
                status: StatusCode::OK,
                outcome: PreflightOutcome::Allowed(matched),
                browser_blocks,
                allowed: Some(self.preflight_answer(headers, acao, acrm)),
            },
            // R20: no Access-Control-* field at all, only Vary.
            Err(r) => PreflightResponse {
                status: self.reject_status.status(),
                outcome: PreflightOutcome::Refused(r),
                browser_blocks: None,
                allowed: None,
            },
        }
    }

    /// Validate a preflight (R12, R13, R19): the ACAO value, the requested
    /// method, what matched and what the browser will block in the answer
    /// (a method or header that `allowMethods` or `allowHeaders` does not
    /// cover, which `preflightValidation: strict` refuses instead and
    /// `explain` reports as [`crate::RequestProblem`]), or why it is refused.
    fn preflight_check<'r, H: RequestFields + ?Sized>(
        &self,
        req: &'r H,
    ) -> Result<Checked<'r>, Refusal> {
        let (acao, matched) = match self.exact_origin(req) {
            Some(hit) => hit,
            None => {
                let (origin, raw) = request_origin_and_value(req);
                self.origin_decision(origin, raw)?
            }
        };

        // R12a: exactly one ACRM line holding one method token.
        let mut acrm_lines = req.values(&ACCESS_CONTROL_REQUEST_METHOD);
        let acrm = acrm_lines
            .next()
            .map(|v| trim_ows(v.as_bytes()))
            .unwrap_or_default();
        if acrm_lines.next().is_some() || !is_token(acrm) {
            return Err(Refusal::InvalidRequestMethod);
        }
        // R12b: every ACRH item must be a token. The same pass notes
        // whether `allowHeaders` covers them all (R19, or the browser's
        // verdict under `preflightValidation: browser`): one scan of the
        // request's fields, not two.
        let mut headers_covered = true;
        for line in req.values(&ACCESS_CONTROL_REQUEST_HEADERS) {
            for h in list_items(line.as_bytes()) {
                if !is_token(h) {
                    return Err(Refusal::InvalidRequestHeaders);
                }
                headers_covered = headers_covered && self.header_allowed(h);
            }
        }
        let blocks = if !self.method_allowed(acrm) {
            Some(Refusal::MethodNotAllowed)
        } else if !headers_covered {
            Some(Refusal::HeaderNotAllowed)
        } else {
            None
        };
        match (self.validation, blocks) {
            // Strict validation refuses what the browser would block.
            (PreflightValidation::Strict, Some(r)) => Err(r),
            (PreflightValidation::Strict, None) => Ok(Checked {
                acao,
                acrm,
                matched,
                browser_blocks: None,
            }),
            (_, browser_blocks) => Ok(Checked {
                acao,
                acrm,
                matched,
                browser_blocks,
            }),
        }
    }

    /// The allowed preflight's per-request fields (see
    /// [`PreflightResponse`]): its ACAO and the echoes.
    fn preflight_answer<H: RequestFields + ?Sized>(
        &self,
        req: &H,
        acao: HeaderValue,
        acrm: &[u8],
    ) -> AllowedFields {
        AllowedFields {
            template: Arc::clone(&self.preflight_template),
            origin: acao,
            echoes: match (&self.methods, &self.headers) {
                (AllowList::Echo, _) | (_, AllowList::Echo) => Some(Box::new(Echoes {
                    // A token is always a valid header value.
                    methods: match &self.methods {
                        AllowList::Echo => HeaderValue::from_bytes(acrm).ok(),
                        _ => None,
                    },
                    headers: match &self.headers {
                        AllowList::Echo => echo_request_headers(req),
                        _ => None,
                    },
                })),
                _ => None,
            },
            private_network: self.private_network
                && req
                    .first_value(&ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK)
                    .is_some_and(|v| v.as_bytes() == b"true"),
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

/// R12b: the ACRH items lower-cased, de-duplicated in request order and
/// joined with `", "`; `None` when there are none.
fn echo_request_headers<H: RequestFields + ?Sized>(req: &H) -> Option<HeaderValue> {
    let mut names: Vec<String> = Vec::new();
    for line in req.values(&ACCESS_CONTROL_REQUEST_HEADERS) {
        for item in list_items(line.as_bytes()) {
            let lower = String::from_utf8_lossy(item).to_ascii_lowercase();
            if !names.contains(&lower) {
                names.push(lower);
            }
        }
    }
    if names.is_empty() {
        return None;
    }
    HeaderValue::from_str(&names.join(", ")).ok()
}

/// R12c: the response's own header names that a script could want to read:
/// lower-cased, de-duplicated, without `Set-Cookie`, safelisted names,
/// `Access-Control-*` and `Vary`.
fn enumerate_exposable(response: &HeaderMap) -> Option<HeaderValue> {
    let mut out = String::new();
    for name in response.keys() {
        let n = name.as_str();
        if n == "set-cookie"
            || n == "set-cookie2"
            || n == "vary"
            || n.starts_with("access-control-")
            || is_safelisted_response_header(n)
        {
            continue;
        }
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(n);
    }
    if out.is_empty() {
        None
    } else {
        HeaderValue::from_str(&out).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::request_origin_and_value;

    fn policy(json: &str) -> Policy {
        let spec: crate::spec::PolicySpec = serde_json::from_str(json).expect("spec");
        Policy::compile(&spec).expect("compiles").policy
    }

    /// The exact-origin shortcut must never change a decision: for every
    /// input it either answers exactly what the full parse and match
    /// answer, or steps aside.
    #[test]
    fn exact_origin_shortcut_agrees_with_the_full_path() {
        let p = policy(
            r#"{"allowOrigins": ["https://app.example.com", "http://localhost:8080",
                "https://*.tenants.example.com"], "allowMethods": ["GET"]}"#,
        );
        let inputs: &[&[&str]] = &[
            &["https://app.example.com"],
            &["http://localhost:8080"],
            &["https://a.tenants.example.com"],
            &["https://APP.example.com"],
            &["https://app.example.com:443"],
            &["https://app.example.com/"],
            &["https://app.example.com."],
            &[" https://app.example.com"],
            &["https://app.example.com", "https://app.example.com"],
            &["http://localhost:8080", "https://evil.test"],
            &["null"],
            &["https://evil.test"],
            &[],
        ];
        for lines in inputs {
            let mut h = HeaderMap::new();
            for l in *lines {
                h.append(ORIGIN, HeaderValue::from_static(l));
            }
            let (origin, raw) = request_origin_and_value(&h);
            let full = p.origin_decision(origin, raw).ok();
            if let Some(fast) = p.exact_origin(&h) {
                assert_eq!(Some(fast), full, "{lines:?}");
            }
            let expect_fast = lines.len() == 1
                && (lines[0] == "https://app.example.com" || lines[0] == "http://localhost:8080");
            assert_eq!(p.exact_origin(&h).is_some(), expect_fast, "{lines:?}");
        }
    }
}
