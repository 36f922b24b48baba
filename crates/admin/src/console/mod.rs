//! The console: a web UI served by the admin listener under `/ui/`.
//!
//! The pages are plain ES modules and one stylesheet, built into the binary
//! ([`assets`]), so `corsgate run` serves them with no Node.js, CDN or
//! network. They talk to the same `/api/v1/…` endpoints as every other
//! client; the only differences are how the browser authenticates and
//! what protects it:
//!
//! - sign-in posts a token to `POST /ui/login`; the answer sets a session
//!   cookie (`HttpOnly; SameSite=Strict; Path=/`, and `Secure` when the
//!   listener has TLS) whose id maps, server side, to the token's name and
//!   role ([`session`]). The token is never put in a URL, in
//!   `localStorage` or in a log;
//! - a call authenticated by the cookie that is not `GET`/`HEAD` must carry
//!   the session's CSRF token in `X-CSRF-Token` and an `Origin` equal to the
//!   listener's own, else 403 before anything is routed;
//! - roles are enforced by the API on every call, whatever the page shows;
//! - every answer carries a strict `Content-Security-Policy` (no inline
//!   script or style, no `eval`), `X-Content-Type-Options: nosniff`,
//!   `Referrer-Policy: no-referrer` and `frame-ancestors 'none'`.

pub(crate) mod api;
mod assets;
pub mod session;

use crate::{error, reply, AdminState, Resp, Token};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{json, Value};
use session::{same_str, Sessions};
use std::sync::Arc;
use std::time::Instant;

/// The session cookie's name.
pub const COOKIE: &str = "corsgate_session";

/// The header a console page echoes its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The console's Content-Security-Policy.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// A request for `explain`, as the console's form sends it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainInput {
    /// The page's origin.
    pub origin: String,
    /// The method.
    pub method: String,
    /// The URL fetched.
    pub url: String,
    /// Headers the script sets, as `[name, value]` pairs.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// `credentials: 'include'`.
    #[serde(default)]
    pub credentials: bool,
}

/// Explains a request against a loaded configuration (the gateway's
/// `explain` engine, which this crate does not depend on): the same JSON
/// as `corsgate explain --json`, or why it could not be made.
pub type Explainer =
    Arc<dyn Fn(&corsgate_config::Loaded, &ExplainInput) -> Result<Value, String> + Send + Sync>;

/// The console's state inside [`AdminState`].
#[derive(Default)]
pub struct Console {
    /// Signed-in browsers.
    pub sessions: Sessions,
    /// The explain engine, when the gateway provides it.
    pub explain: Option<Explainer>,
}

/// Does `path` belong to the console (pages, assets, sign-in)?
pub(crate) fn is_console(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// Add the console's security headers (kept if already set).
pub(crate) fn harden(h: &mut HeaderMap) {
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in set {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
}

/// The value of cookie `name` in the request, if any.
pub(crate) fn cookie<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Is the request's `Origin` this listener's own (scheme and `Host`)? A
/// state-changing call from a page needs it: browsers send `Origin` on
/// every non-`GET` fetch and form post, so another site's page is told
/// apart even if it somehow had the cookie.
pub(crate) fn same_origin(h: &HeaderMap, tls: bool) -> bool {
    let (Some(origin), Some(host)) = (
        h.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        h.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    let scheme = if tls { "https" } else { "http" };
    origin.eq_ignore_ascii_case(&format!("{scheme}://{host}"))
}

/// Why a cookie-authenticated call is refused before routing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Forgery {
    /// `Origin` missing or another site's.
    Origin,
    /// `X-CSRF-Token` missing or not the session's.
    Csrf,
}

/// The CSRF rule for a call authenticated by a session: reads pass;
/// anything else needs the same origin and the session's CSRF token.
pub(crate) fn check_forgery(
    method: &Method,
    h: &HeaderMap,
    tls: bool,
    csrf: &str,
) -> Result<(), Forgery> {
    if method == Method::GET || method == Method::HEAD {
        return Ok(());
    }
    if !same_origin(h, tls) {
        return Err(Forgery::Origin);
    }
    match h.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        Some(t) if same_str(t, csrf) => Ok(()),
        _ => Err(Forgery::Csrf),
    }
}

/// The token behind the request's session cookie, if it has a live one;
/// `Err` (403) for a cookie-authenticated call that fails the CSRF rule.
pub(crate) fn session_token(
    state: &AdminState,
    req: &Request<Incoming>,
) -> Result<Option<Token>, Box<Resp>> {
    let Some(id) = cookie(req.headers(), COOKIE) else {
        return Ok(None);
    };
    let Some(s) = state.console.sessions.get(id, Instant::now()) else {
        return Ok(None);
    };
    match check_forgery(req.method(), req.headers(), state.tls.is_some(), &s.csrf) {
        Ok(()) => Ok(Some(s.token)),
        Err(why) => {
            state.denials.forbidden(
                &s.token.name,
                &format!("{} {} ({why:?} check)", req.method(), req.uri().path()),
            );
            Err(Box::new(error(
                StatusCode::FORBIDDEN,
                match why {
                    Forgery::Origin => {
                        "a console call that changes state must come from the console's own origin"
                    }
                    Forgery::Csrf => {
                        "a console call that changes state needs the session's X-CSRF-Token"
                    }
                },
            )))
        }
    }
}

fn session_cookie(id: &str, tls: bool, max_age: u64) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    let v = format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

fn role_name(t: &Token) -> String {
    format!("{:?}", t.role).to_lowercase()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    token: String,
}

/// Serve a console path: an asset, or sign-in, sign-out and the session.
pub(crate) async fn serve(state: Arc<AdminState>, req: Request<Incoming>) -> Resp {
    let mut r = route(&state, req).await;
    harden(r.headers_mut());
    r
}

async fn route(state: &Arc<AdminState>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_owned();
    let tls = state.tls.is_some();
    match (req.method().clone(), path.as_str()) {
        (Method::POST, "/ui/login") => {
            if !same_origin(req.headers(), tls) {
                return error(
                    StatusCode::FORBIDDEN,
                    "sign-in must come from the console's own origin",
                );
            }
            let body = Limited::new(req.into_body(), 4096).collect();
            let body = match tokio::time::timeout(state.limits.idle_timeout, body).await {
                Ok(Ok(b)) => b.to_bytes(),
                _ => return error(StatusCode::BAD_REQUEST, "cannot read the sign-in body"),
            };
            login(state, &body)
        }
        (Method::POST, "/ui/logout") => {
            if let Some(id) = cookie(req.headers(), COOKIE) {
                if let Some(s) = state.console.sessions.get(id, Instant::now()) {
                    if check_forgery(req.method(), req.headers(), tls, &s.csrf).is_err() {
                        return error(
                            StatusCode::FORBIDDEN,
                            "sign-out needs the session's X-CSRF-Token",
                        );
                    }
                }
                state.console.sessions.close(id);
            }
            let mut r = reply(StatusCode::OK, &json!({ "signedIn": false }));
            r.headers_mut()
                .insert(header::SET_COOKIE, session_cookie("", tls, 0));
            r
        }
        (Method::GET, "/ui/session") => {
            let s = cookie(req.headers(), COOKIE)
                .and_then(|id| state.console.sessions.get(id, Instant::now()));
            match s {
                // `shadowing`: whether a candidate is installed, so that the
                // Shadow page asks for its report only when there is one
                // (a 404 would be a failed load in the browser's console).
                Some(s) => reply(
                    StatusCode::OK,
                    &json!({
                        "signedIn": true, "name": s.token.name, "role": role_name(&s.token),
                        "csrf": s.csrf, "tls": tls,
                        "shadowing": state.shadow.as_ref().is_some_and(|sh| sh.content().is_some()),
                    }),
                ),
                // 200, not 401: a page asking whether it is signed in is not
                // a failed request (and logs no error in the browser).
                None => reply(StatusCode::OK, &json!({ "signedIn": false })),
            }
        }
        (Method::GET | Method::HEAD, p) => assets::serve(p, req.headers()),
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "the console's pages are read with GET",
        ),
    }
}

fn login(state: &AdminState, body: &Bytes) -> Resp {
    let Ok(Login { token }) = serde_json::from_slice::<Login>(body) else {
        return error(StatusCode::BAD_REQUEST, "give {\"token\": \"…\"}");
    };
    let Some(t) = crate::token_for(state, token.trim()) else {
        state.denials.unauthenticated("POST /ui/login");
        return error(StatusCode::UNAUTHORIZED, "this token is not accepted");
    };
    let t = t.clone();
    match state.console.sessions.open(&t, Instant::now()) {
        Ok((id, csrf)) => {
            let mut r = reply(
                StatusCode::OK,
                &json!({ "signedIn": true, "name": t.name, "role": role_name(&t), "csrf": csrf, "tls": state.tls.is_some() }),
            );
            r.headers_mut().insert(
                header::SET_COOKIE,
                session_cookie(&id, state.tls.is_some(), session::SESSION_TTL.as_secs()),
            );
            r
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

/// A response body of `Full<Bytes>` with a content type.
pub(crate) fn bytes_reply(status: StatusCode, ctype: &'static str, body: Bytes) -> Resp {
    let mut r = Resp::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    type Case<'a> = (
        &'a Method,
        &'a [(&'a str, &'a str)],
        bool,
        Result<(), Forgery>,
    );

    #[test]
    fn forgery_table() {
        let host = ("host", "127.0.0.1:9901");
        let own = ("origin", "http://127.0.0.1:9901");
        let good = (CSRF_HEADER, "s3cret");
        let cases: &[Case] = &[
            (&Method::GET, &[], false, Ok(())),
            (&Method::HEAD, &[], false, Ok(())),
            (&Method::POST, &[host, own, good], false, Ok(())),
            (&Method::DELETE, &[host, own, good], false, Ok(())),
            (&Method::POST, &[host, good], false, Err(Forgery::Origin)),
            (
                &Method::POST,
                &[host, ("origin", "http://evil.example"), good],
                false,
                Err(Forgery::Origin),
            ),
            (
                &Method::POST,
                &[host, ("origin", "null"), good],
                false,
                Err(Forgery::Origin),
            ),
            (
                &Method::POST,
                &[host, own, good],
                true,
                Err(Forgery::Origin),
            ),
            (
                &Method::POST,
                &[host, ("origin", "https://127.0.0.1:9901"), good],
                true,
                Ok(()),
            ),
            (&Method::POST, &[host, own], false, Err(Forgery::Csrf)),
            (
                &Method::POST,
                &[host, own, (CSRF_HEADER, "s3cre")],
                false,
                Err(Forgery::Csrf),
            ),
            (&Method::POST, &[own, good], false, Err(Forgery::Origin)),
        ];
        for (i, (m, h, tls, want)) in cases.iter().enumerate() {
            assert_eq!(
                &check_forgery(m, &headers(h), *tls, "s3cret"),
                want,
                "case {i}"
            );
        }
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let h = headers(&[("cookie", "a=1; corsgate_session_x=2; corsgate_session=abc")]);
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(
            cookie(&headers(&[("cookie", "xcorsgate_session=1")]), COOKIE),
            None
        );
    }

    #[test]
    fn session_cookie_attributes() {
        let plain = session_cookie("id", false, 60);
        let plain = plain.to_str().unwrap();
        assert!(
            plain.contains("HttpOnly")
                && plain.contains("SameSite=Strict")
                && plain.contains("Path=/")
        );
        assert!(!plain.contains("Secure"));
        assert!(session_cookie("id", true, 60)
            .to_str()
            .unwrap()
            .ends_with("; Secure"));
    }

    #[test]
    fn hardened_headers() {
        let mut h = HeaderMap::new();
        harden(&mut h);
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert!(CSP.contains("frame-ancestors 'none'") && !CSP.contains("unsafe"));
    }
}
