//! Deciding a preflight (R12, R13, R18-R20): validate the origin and the
//! requested method and headers, then build the answer from the policy's
//! template plus what varies per request. The answer is complete and is
//! never forwarded.

use super::answer::{AllowedFields, Echoes};
use super::{PreflightOutcome, PreflightResponse, Refusal, ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK};
use crate::fields::RequestFields;
use crate::matcher::MatchedBy;
use crate::origin::request_origin_and_value;
use crate::policy::{AllowList, Policy};
use crate::spec::PreflightValidation;
use crate::token::{is_token, list_items, trim_ows};
use http::header::{ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD};
use http::{HeaderValue, StatusCode};
use std::sync::Arc;

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

impl Policy {
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
