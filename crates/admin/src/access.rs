//! What every API request passes before its handler, in order: who it is
//! (a bearer token, or the console's session cookie), whether its role
//! allows the request, and its body, read within the limits. Each refusal
//! is an answer of its own (401, 403, 408, 413, 400), counted and, where
//! it says something about a token, audited.

use crate::{console, denials, error, required_role, with_store, AdminState, Resp, Token};
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;
use std::sync::Arc;

/// The token the request authenticates with: the bearer header, else the
/// console's session. 401 without either. A token's first use in this
/// process is audited (`token.used`).
pub(crate) async fn who(
    state: &Arc<AdminState>,
    req: &Request<Incoming>,
    path: &str,
) -> Result<Token, Resp> {
    let session = match crate::authenticate(state, req) {
        Some(_) => None,
        None => console::session_token(state, req).map_err(|r| *r)?,
    };
    let Some(token) = crate::authenticate(state, req).or(session.as_ref()) else {
        state
            .denials
            .unauthenticated(&format!("{} {}", req.method(), path));
        let mut r = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return Err(r);
    };
    let token = token.clone();
    let first_use = state
        .used
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(token.name.clone());
    if first_use {
        let name = token.name.clone();
        let detail = json!({ "first": format!("{} {}", req.method(), path) });
        let _ = with_store(state, move |s, _| {
            s.record(&name, "token.used", None, &detail)
        })
        .await;
    }
    Ok(token)
}

/// 403 when the token's role is below what the request needs; the first
/// denial of a token per window is audited (`token.denied`), the others
/// counted.
pub(crate) async fn authorise(
    state: &Arc<AdminState>,
    token: &Token,
    method: &Method,
    path: &str,
) -> Result<(), Resp> {
    if token.role >= required_role(method, path) {
        return Ok(());
    }
    let what = format!("{method} {path}");
    if let Some(audit) = state.denials.forbidden(&token.name, &what) {
        let detail = json!({
            "denied": what,
            "role": format!("{:?}", token.role).to_lowercase(),
            "window_secs": denials::WINDOW.as_secs(),
            "previous_window_denials": audit.previous_window,
        });
        let name = token.name.clone();
        let _ = with_store(state, move |s, _| {
            s.record(&name, "token.denied", None, &detail)
        })
        .await;
    }
    Err(error(
        StatusCode::FORBIDDEN,
        "this token's role does not allow this request",
    ))
}

/// A POST's body, whole: 413 over `maxBodyBytes`, 408 when it does not
/// arrive within the idle timeout (and the connection is closed), 400 when
/// it cannot be read. Other methods have none.
pub(crate) async fn read_body(
    state: &Arc<AdminState>,
    req: Request<Incoming>,
) -> Result<Bytes, Resp> {
    if req.method() != Method::POST {
        return Ok(Bytes::new());
    }
    let body = Limited::new(req.into_body(), state.max_body).collect();
    let Ok(body) = tokio::time::timeout(state.limits.idle_timeout, body).await else {
        let mut r = error(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "the request body did not arrive within {} ms",
                state.limits.idle_timeout.as_millis()
            ),
        );
        r.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return Err(r);
    };
    match body {
        Ok(b) => Ok(b.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body over {} bytes", state.max_body),
            ))
        }
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("cannot read the body: {e}"),
        )),
    }
}

/// After a change: the version gauge follows a version made (on a shared
/// store, the version this instance serves, which a failing instance does
/// not move), and a refused change is counted.
pub(crate) async fn after_change(state: &Arc<AdminState>, resp: &Resp) {
    let Some(m) = state.metrics.as_ref() else {
        return;
    };
    if resp.status() == StatusCode::CREATED {
        let serving = match &state.fleet {
            Some(f) => f.serving(),
            None => with_store(state, |s, _| s.active_id().ok().flatten())
                .await
                .ok()
                .flatten(),
        };
        if let Some(v) = serving {
            m.set_version(v);
        }
    } else if resp.extensions().get::<crate::replies::Refused>().is_some() {
        m.refused();
    }
}
