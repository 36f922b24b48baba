//! The request pipeline: what the gateway does with each request, in
//! named stages (R26 fixes their order):
//!
//! 1. **normalise** ([`normalise`]): the path and `Host` the request is
//!    routed and forwarded by, or a 400 before anything else looks at it;
//! 2. **select**: the rule and the CORS policy in scope (R16, R17);
//! 3. **CORS before** ([`cors`]): a scoped preflight is answered here and
//!    never forwarded (R18-R20); otherwise the completion is queued;
//! 4. **act** ([`act`]): forward, answer directly, or redirect;
//! 5. **CORS after**: whatever response results, the upstream's or the
//!    gateway's own, is completed (R21-R25);
//! 6. **record** ([`record`]): metrics and the access log.

mod record;

use crate::proxy::{self, Answer};
use crate::request::{ClientRequest, Fields};
use crate::router::{Action, RequestFacts};
use crate::runtime::Generation;
use crate::Reply;
use corsgate_policy::{ActualOutcome, Evaluation, PreflightOutcome, RequestFields};
use http::header::HOST;
use http::Response;
use record::{AccessLog, CorsDecision};
use std::sync::Arc;
use std::time::Instant;

/// The request's `Host`, or for HTTP/2 its URI authority, as a header value
/// (shared with the request, not copied).
fn request_host(req: &ClientRequest) -> Option<http::HeaderValue> {
    req.fields().first_value(&HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
    })
}

/// The host part of a `Host` value, without the port. Routing compares it
/// case-insensitively, so it is not lower-cased (which would copy it).
fn host_without_port(value: &str) -> &str {
    if value.starts_with('[') {
        value.split_inclusive(']').next().unwrap_or("")
    } else {
        value.split(':').next().unwrap_or("")
    }
}

pub(crate) async fn handle(
    generation: Arc<Generation>,
    slot: usize,
    req: ClientRequest,
    peer_ip: &str,
    tls: bool,
    writes_heads: bool,
) -> Reply {
    let Some(Some(slot)) = generation.slots.get(slot) else {
        // The listener is being retired by a reload.
        return Reply::Response(proxy::gateway_response(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "listener closing\n",
        ));
    };
    // The clock is read only when the access log will be written.
    let started =
        tracing::enabled!(target: "corsgate::access", tracing::Level::INFO).then(Instant::now);
    let vs = &slot.vservice;
    let method = req.method().clone();
    // A shared handle on the request target (no copy): the request itself
    // moves to the upstream.
    let uri = req.uri().clone();
    let path = uri.path();
    let host_value = request_host(&req);
    let host = host_without_port(
        host_value
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let fields = req.fields();
    let preflight = corsgate_policy::is_preflight(&method, &fields);
    let selection = vs.select(&RequestFacts {
        method: &method,
        host,
        path,
        query: req.uri().query(),
        headers: &fields,
        preflight,
    });
    let rule_name = selection.rule.map_or("-", |r| r.name.as_str());

    // R18, R26: a scoped preflight is answered here, before anything else.
    let mut completion = None;
    let mut decision = CorsDecision::NoPolicy;
    let log = AccessLog {
        vs,
        rule: rule_name,
        method: &method,
        path,
        started,
    };
    let evaluation = selection
        .policy
        .map(|p| p.evaluate_classified(preflight, &fields));
    // The shadow is checked first: it is rarely installed, and the Origin
    // lookup is then skipped.
    if let Some((shadow, origin)) = generation
        .shadow
        .0
        .load()
        .as_ref()
        .and_then(|s| Some((s, fields.first_value(&http::header::ORIGIN)?)))
    {
        let facts = RequestFacts {
            method: &method,
            host,
            path,
            query: req.uri().query(),
            headers: &fields,
            preflight,
        };
        let active = evaluation.as_ref().and_then(crate::shadow::verdict);
        shadow.compare(&vs.listen, &facts, active, origin.as_bytes());
    }
    if let Some(evaluation) = evaluation {
        match evaluation {
            Evaluation::Preflight(answer) => {
                let decision = match answer.outcome {
                    PreflightOutcome::Allowed(_) => CorsDecision::PreflightAllowed,
                    PreflightOutcome::Refused(r) => CorsDecision::PreflightRefused(r),
                };
                // The origin names a refused request in the metrics only.
                let origin = decision
                    .refused()
                    .then(|| fields.first_value(&http::header::ORIGIN))
                    .flatten();
                slot.stats.record(
                    selection.rule.map(|r| r.index),
                    answer.status.as_u16(),
                    selection.policy,
                    decision.outcome(),
                    origin.map(http::HeaderValue::as_bytes),
                    None,
                );
                log.write(answer.status, None, decision);
                return Reply::Preflight(answer);
            }
            Evaluation::Actual(c) => {
                decision = match c.outcome {
                    ActualOutcome::NotCors => CorsDecision::NotCors,
                    ActualOutcome::Allowed(_) => CorsDecision::Allowed,
                    ActualOutcome::Refused(r) => CorsDecision::Refused(r),
                };
                completion = Some(c);
            }
            Evaluation::Shadow(_) => decision = CorsDecision::Shadow,
        }
    }

    // Kept (a shared buffer, not a copy) only to name a refused origin in
    // the metrics.
    let refused_origin = if decision.refused() {
        fields.first_value(&http::header::ORIGIN).cloned()
    } else {
        None
    };
    let too_big = if header_bytes(fields) > vs.limits.max_header_bytes {
        Some((
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request header fields too large\n",
        ))
    } else if declared_length(fields).is_some_and(|n| n > vs.limits.max_body_bytes) {
        Some((
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large\n",
        ))
    } else {
        None
    };
    let (answer, upstream_time) = match (too_big, selection.rule) {
        (Some((status, text)), _) => (
            Answer::Response(proxy::gateway_response(status, text)),
            None,
        ),
        (None, None) => (
            Answer::Response(proxy::gateway_response(
                http::StatusCode::NOT_FOUND,
                "no route\n",
            )),
            None,
        ),
        (None, Some(rule)) => match &rule.action {
            Action::Forward {
                connect_timeout,
                timeout,
                http2,
                rewrite_host,
                rewrite_path,
                ..
            } => match (
                rule.action.pick_upstream(),
                generation.clients.get(&(*connect_timeout, *http2)),
            ) {
                (Some(upstream), Some(client)) => {
                    let max_body = vs.limits.max_body_bytes;
                    let req = if rule.request_headers.is_empty() {
                        req
                    } else {
                        // Edited fields live in a map.
                        let mut req = req.into_http();
                        rule.request_headers.apply(req.headers_mut());
                        ClientRequest::from_map(req)
                    };
                    let target = rewrite_path.as_ref().and_then(|change| {
                        let mut t = change.apply(path);
                        if let Some(q) = req.uri().query() {
                            t.push('?');
                            t.push_str(q);
                        }
                        http::uri::PathAndQuery::try_from(t).ok()
                    });
                    let fwd = proxy::Forwarded {
                        peer_ip,
                        host: host_value.clone(),
                        upstream_host: rewrite_host.clone(),
                        target,
                        tls,
                        http2: *http2,
                    };
                    proxy::forward(client, upstream, *timeout, req, max_body, fwd).await
                }
                _ => (
                    Answer::Response(proxy::gateway_response(
                        http::StatusCode::BAD_GATEWAY,
                        "no upstream\n",
                    )),
                    None,
                ),
            },
            Action::Direct {
                status,
                headers,
                body,
            } => {
                let mut r = Response::new(proxy::full(body.clone()));
                *r.status_mut() = *status;
                *r.headers_mut() = headers.clone();
                (Answer::Response(r), None)
            }
            Action::Redirect { status, target } => {
                let host_header = host_value
                    .as_ref()
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                match target.location(tls, host_header, path, req.uri().query()) {
                    Some(location) => {
                        let mut r = Response::new(proxy::empty());
                        *r.status_mut() = *status;
                        r.headers_mut().insert(http::header::LOCATION, location);
                        (Answer::Response(r), None)
                    }
                    None => (
                        Answer::Response(proxy::gateway_response(
                            http::StatusCode::BAD_REQUEST,
                            "cannot build the redirect target\n",
                        )),
                        None,
                    ),
                }
            }
        },
    };
    // Metrics and the access log for the response sent, however it is sent.
    let record = |status: http::StatusCode| {
        slot.stats.record(
            selection.rule.map(|r| r.index),
            status.as_u16(),
            selection.policy,
            decision.outcome(),
            refused_origin.as_ref().map(http::HeaderValue::as_bytes),
            upstream_time,
        );
        log.write(status, upstream_time, decision);
    };
    // An upstream response the front writes itself is passed on as read,
    // its CORS completion written as lines, when nothing needs its fields in
    // a map (a rule's response-header edits, or a completion that depends on
    // the whole response).
    let answer = match answer {
        Answer::Upstream(up)
            if writes_heads && selection.rule.is_none_or(|r| r.response_headers.is_empty()) =>
        {
            let lines = match (selection.policy, completion.take()) {
                (Some(policy), Some(c)) => policy.completion_lines(c).map(Some),
                // No policy, or a shadow one: the response is not changed.
                _ => Ok(None),
            };
            match lines {
                Ok(cors) => {
                    record(up.status);
                    return Reply::Upstream(up, cors);
                }
                Err(c) => {
                    completion = Some(c);
                    Answer::Upstream(up)
                }
            }
        }
        other => other,
    };
    let mut resp = answer.into_response();
    if let Some(rule) = selection.rule {
        if !rule.response_headers.is_empty() && !resp.status().is_informational() {
            rule.response_headers.apply(resp.headers_mut());
        }
    }
    // R23-R25: complete whatever response we send, ours or the upstream's;
    // 1xx (a 101 switching protocols) is left alone (R27).
    if let (Some(policy), Some(c), false) = (
        selection.policy,
        &completion,
        resp.status().is_informational(),
    ) {
        policy.complete(c, resp.headers_mut());
    }
    record(resp.status());
    Reply::Response(resp)
}

/// Bytes of request header names and values, as the limit counts them.
fn header_bytes(headers: Fields<'_>) -> usize {
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.as_bytes().len() + 4)
        .sum()
}

fn declared_length(headers: Fields<'_>) -> Option<u64> {
    headers
        .first_value(&http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}
