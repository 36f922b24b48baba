//! The browser's side before anything is sent: which of the script's
//! headers it sends, whether the request is same-origin, why it needs a
//! preflight, and the fields of the preflight and the actual request.

use super::{BrowserRequest, ExplainError};
use corsgate_policy::{
    is_forbidden_request_header, is_safelisted_method, is_safelisted_request_header,
};
use http::header::{ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use std::fmt::Write as _;

/// A script's request as the browser sees it.
pub(super) struct ScriptRequest<'a> {
    pub(super) req: &'a BrowserRequest,
    pub(super) method: Method,
    /// The URL's host, lower case.
    pub(super) host: String,
    /// The `Host` field the browser sends.
    authority: String,
    /// The headers the script sets that the browser sends.
    script_headers: HeaderMap,
    /// The non-safelisted header names, sorted, de-duplicated: what
    /// `Access-Control-Request-Headers` lists.
    pub(super) unsafe_names: Vec<String>,
    /// Headers the browser would not send, said after the reasons.
    pub(super) notes: Vec<String>,
    /// Same-origin requests do not use CORS at all.
    pub(super) same_origin: bool,
    /// The method is CORS-safelisted (GET, HEAD, POST).
    pub(super) simple_method: bool,
    /// Why a preflight is sent (empty for a simple or same-origin request).
    pub(super) preflight_because: Vec<String>,
}

impl<'a> ScriptRequest<'a> {
    /// Read the script's headers and classify the request; an invalid
    /// header name or value is an error.
    pub(super) fn new(
        req: &'a BrowserRequest,
        method: Method,
        host: String,
    ) -> Result<Self, ExplainError> {
        let url_origin = format!(
            "{}://{}",
            req.url.scheme_str().unwrap_or("http"),
            req.url.authority().map_or("", |a| a.as_str())
        );
        let mut script_headers = HeaderMap::new();
        let mut notes = Vec::new();
        let mut unsafe_names = Vec::new();
        for (k, v) in &req.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| ExplainError::BadHeader(k.clone()))?;
            if is_forbidden_request_header(name.as_str()) {
                notes.push(format!(
                    "(`{name}` is a forbidden request header: browsers do not let scripts set it, so it is not sent)"
                ));
                continue;
            }
            let value = HeaderValue::from_str(v).map_err(|_| ExplainError::BadHeader(k.clone()))?;
            if !is_safelisted_request_header(name.as_str(), v) {
                unsafe_names.push(name.as_str().to_owned());
            }
            script_headers.append(name, value);
        }
        unsafe_names.sort();
        unsafe_names.dedup();
        let authority = req
            .url
            .authority()
            .map_or(host.clone(), |a| a.as_str().to_owned());
        let same_origin = url_origin.eq_ignore_ascii_case(&req.origin);
        let simple_method = is_safelisted_method(method.as_str().as_bytes());
        let mut preflight_because = Vec::new();
        if !simple_method {
            preflight_because.push(format!(
                "method {method} is not CORS-safelisted (GET, HEAD, POST)"
            ));
        }
        for n in &unsafe_names {
            preflight_because.push(format!("header `{n}` is not CORS-safelisted"));
        }
        Ok(ScriptRequest {
            req,
            method,
            host,
            authority,
            script_headers,
            unsafe_names,
            notes,
            same_origin,
            simple_method,
            preflight_because,
        })
    }

    /// A cross-origin request that is not simple is preceded by a
    /// preflight.
    pub(super) fn needs_preflight(&self) -> bool {
        !self.same_origin && !self.preflight_because.is_empty()
    }

    fn host_value(&self) -> Result<HeaderValue, ExplainError> {
        HeaderValue::from_str(&self.authority).map_err(|_| ExplainError::BadHeader("host".into()))
    }

    fn origin_value(&self) -> Result<HeaderValue, ExplainError> {
        HeaderValue::from_str(&self.req.origin)
            .map_err(|_| ExplainError::BadHeader("origin".into()))
    }

    /// The preflight's fields: `Host`, `Origin`, the requested method and
    /// the non-safelisted header names.
    pub(super) fn preflight_headers(&self) -> Result<HeaderMap, ExplainError> {
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, self.host_value()?);
        h.insert(ORIGIN, self.origin_value()?);
        h.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_str(self.method.as_str())
                .map_err(|_| ExplainError::BadMethod(self.req.method.clone()))?,
        );
        if !self.unsafe_names.is_empty() {
            h.insert(
                ACCESS_CONTROL_REQUEST_HEADERS,
                HeaderValue::from_str(&self.unsafe_names.join(",")).map_err(|_| {
                    ExplainError::BadHeader("access-control-request-headers".into())
                })?,
            );
        }
        Ok(h)
    }

    /// The actual request's fields: the script's, `Host`, and `Origin`
    /// (sent same-origin too, except on GET and HEAD).
    pub(super) fn actual_headers(&self) -> Result<HeaderMap, ExplainError> {
        let mut h = self.script_headers.clone();
        h.insert(http::header::HOST, self.host_value()?);
        let sends_origin = !self.same_origin || !matches!(self.method.as_str(), "GET" | "HEAD");
        if sends_origin {
            h.insert(ORIGIN, self.origin_value()?);
        }
        Ok(h)
    }

    /// The request in one line, as the explanation starts.
    pub(super) fn describe(&self) -> String {
        let req = self.req;
        let mut request = format!(
            "{} {} from origin {}, credentials {}",
            self.method,
            req.url,
            req.origin,
            if req.credentials { "include" } else { "omit" }
        );
        if !req.headers.is_empty() {
            let names: Vec<_> = req
                .headers
                .iter()
                .map(|(k, _)| k.to_ascii_lowercase())
                .collect();
            let _ = write!(request, ", headers {}", names.join(", "));
        }
        request
    }
}
