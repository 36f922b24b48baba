//! What the listener answers around the API itself: an oversized body
//! refused before it is read, the readiness probe, and `/metrics` with the
//! admin listener's own counters and the audit head beside the gateway's.

use crate::{error, reply, with_store, AdminState, Resp};
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::json;
use std::sync::Arc;

/// A body declared larger than the limit: refused before reading it (and
/// before authentication, which it says nothing about).
pub(crate) fn declared_too_large(state: &AdminState, req: &Request<Incoming>) -> Option<Resp> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    if declared <= state.max_body as u64 {
        return None;
    }
    let mut r = error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!(
            "request body of {declared} bytes is over {} bytes",
            state.max_body
        ),
    );
    r.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    Some(r)
}

/// `GET /ready`: 200 while the store verified at start-up, else 503 with
/// what was found (no token needed: probes have none; nothing secret).
pub(crate) fn ready(state: &AdminState) -> Resp {
    match &*state.integrity.lock().unwrap_or_else(|p| p.into_inner()) {
        None => reply(StatusCode::OK, &json!({ "ready": true })),
        Some(problem) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "ready": false, "store": problem }),
        ),
    }
}

/// `/metrics`: the gateway's metrics with the version gauge taken from the
/// store, then the admin listener's counters and the audit head.
pub(crate) async fn metrics(state: &Arc<AdminState>) -> Resp {
    let head = with_store(state, |s, _| {
        (s.active_id().ok().flatten(), s.head().ok().flatten())
    })
    .await
    .unwrap_or((None, None));
    let mut text = String::new();
    if let Some(m) = state.metrics.as_ref() {
        // On a shared store the active version is the fleet's; what this
        // instance serves is set by whatever applied it.
        if let (Some(v), None, None) = (
            head.0,
            &*state.integrity.lock().unwrap_or_else(|p| p.into_inner()),
            &state.fleet,
        ) {
            m.set_version(v);
        }
        text = m.render();
    }
    let eof = text.ends_with("# EOF\n");
    if eof {
        text.truncate(text.len() - "# EOF\n".len());
    }
    text.push_str(&state.denials.render());
    text.push_str(&crate::fleet::link_metrics(state));
    let (seq, hash) = head
        .1
        .unwrap_or((0, corsgate_store::audit::GENESIS.to_owned()));
    let intact = state
        .integrity
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_none();
    text.push_str(&format!(
        "# HELP corsgate_audit_head The audit chain head: keep it outside this host and check it with `corsgate audit verify --expect-head`.\n\
         # TYPE corsgate_audit_head info\n\
         corsgate_audit_head_info{{seq=\"{seq}\",hash=\"{hash}\"}} 1\n\
         # HELP corsgate_store_intact 1 when the store verified at start-up, 0 when tampering was found.\n\
         # TYPE corsgate_store_intact gauge\n\
         corsgate_store_intact {}\n",
        u8::from(intact)
    ));
    if eof {
        text.push_str("# EOF\n");
    }
    let mut r = Response::new(Full::new(Bytes::from(text)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}
