//! The request pipeline: what the gateway does with each request, in
//! named stages (R26 fixes their order):
//!
//! 1. **normalise** ([`normalise`]): the path and host the request is
//!    routed and forwarded by, or a client error before anything else looks
//!    at it;
//! 2. **select**: the rule and the CORS policy in scope (R16, R17);
//! 3. **CORS before**: a scoped preflight is answered here and never
//!    forwarded (R18-R20); otherwise the completion is queued;
//! 4. **act** ([`act`]): forward, answer directly, or redirect;
//! 5. **CORS after**: whatever response results, the upstream's or the
//!    gateway's own, is completed (R21-R25);
//! 6. **record** ([`record`]): metrics and the access log.
//!
//! A request refused by the first stage still goes through stages 2, 5 and
//! 6, selected as a request for `/` on the vService: its 400 (or 413, 431,
//! 501) carries CORS, so a page can read the status.

mod act;
pub(crate) mod normalise;
mod record;

use crate::generation::Generation;
use crate::request::ClientRequest;
use crate::router::RequestFacts;
use crate::upstream::{self, Answer};
use crate::Reply;
use corsgate_policy::{ActualOutcome, Evaluation, PreflightOutcome, RequestFields};
use record::{AccessLog, CorsDecision};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

/// What the pipeline knows of the client's connection.
#[derive(Clone, Copy)]
pub(crate) struct Peer<'a> {
    /// The client's IP address, formatted once per connection.
    pub(crate) ip: &'a str,
    /// Whether it connected over TLS.
    pub(crate) tls: bool,
}

/// Answer `req`. `writes_heads`: the caller writes response heads itself
/// (the front), so an upstream response may come back as read
/// ([`Reply::Upstream`]) rather than as an `http::Response`.
pub(crate) async fn handle(
    generation: Arc<Generation>,
    slot: usize,
    req: ClientRequest,
    peer: Peer<'_>,
    writes_heads: bool,
) -> Reply {
    let Some(Some(slot)) = generation.slots.get(slot) else {
        // The listener is being retired by a reload.
        return Reply::Response(upstream::gateway_response(
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

    // 1. Normalise.
    let (path, authority, refused) =
        match normalise::request(&req, &uri, vs.paths.encoded_slashes, &vs.limits) {
            Ok(t) => (t.path, t.authority, None),
            Err(bad) => (Cow::Borrowed("/"), None, Some(bad)),
        };
    let host = authority
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .map_or("", normalise::routing_host);

    // 2. Select.
    let fields = req.fields();
    let preflight = refused.is_none() && corsgate_policy::is_preflight(&method, &fields);
    let facts = RequestFacts {
        method: &method,
        host,
        path: &path,
        query: uri.query(),
        headers: &fields,
        preflight,
    };
    let selection = if refused.is_none() {
        vs.select(&facts)
    } else {
        // No rule acts on a refused request; its policy is the one in
        // scope for `/`.
        let mut s = vs.select(&facts);
        s.rule = None;
        s
    };
    let rule_name = selection.rule.map_or("-", |r| r.name.as_str());
    let log = AccessLog {
        vs,
        rule: rule_name,
        method: &method,
        path: &path,
        started,
    };

    // 3. CORS before (R18, R26): a scoped preflight is answered here.
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
        let active = evaluation.as_ref().and_then(crate::shadow::verdict);
        shadow.compare(&vs.listen, &facts, active, origin.as_bytes());
    }
    let mut completion = None;
    let mut decision = CorsDecision::NoPolicy;
    if let Some(evaluation) = evaluation {
        match evaluation {
            Evaluation::Preflight(answer) => {
                let decision = match answer.outcome {
                    PreflightOutcome::Allowed(_) => match answer.browser_blocks {
                        None => CorsDecision::PreflightAllowed,
                        Some(r) => CorsDecision::PreflightBlocked(r),
                    },
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
                log.write(answer.status, None, decision, None);
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

    // 4. Act.
    let (answer, upstream_time, refused) = match refused {
        Some(bad) => (act::refusal(bad), None, Some(bad)),
        None => {
            let request = act::Request {
                req,
                path: &path,
                query: uri.query(),
                authority: authority.as_ref(),
                peer,
            };
            act::run(&generation, vs, selection.rule, request).await
        }
    };

    // 6. Record: metrics and the access log for the response sent, however
    // it is sent.
    let record = |status: http::StatusCode| {
        if let Some(bad) = refused {
            slot.stats.client_error(bad);
        }
        slot.stats.record(
            selection.rule.map(|r| r.index),
            status.as_u16(),
            selection.policy,
            decision.outcome(),
            refused_origin.as_ref().map(http::HeaderValue::as_bytes),
            upstream_time,
        );
        log.write(status, upstream_time, decision, refused);
    };

    // 5. CORS after. An upstream response the front writes itself is
    // passed on as read, its CORS completion written as lines, when nothing
    // needs its fields in a map (a rule's response-header edits, or a
    // completion that depends on the whole response).
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
