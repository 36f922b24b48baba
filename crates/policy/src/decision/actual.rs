//! Actual (non-preflight) requests (R21-R25, R27, R28): decide the
//! origin, forward the request whatever the answer (CORS protects
//! responses, not requests: R22), then complete whatever response is sent
//! (the backend's or the gateway's own error), as a map or as field lines.

use super::{line, ActualOutcome, CORS_RESPONSE_HEADERS, STAR, TRUE};
use crate::fields::RequestFields;
use crate::origin::{request_origin_and_value, RequestOrigin};
use crate::policy::{Expose, Policy};
use crate::spec::UpstreamCorsHeaders;
use crate::token::is_safelisted_response_header;
use crate::vary::merge_vary_origin;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
};
use http::{HeaderMap, HeaderValue};

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

impl Policy {
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
