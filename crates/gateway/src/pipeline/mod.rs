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
mod cors;
pub(crate) mod normalise;
mod record;

use crate::generation::Generation;
use crate::request::ClientRequest;
use crate::router::{CompiledVService, RequestFacts, Selection};
use crate::upstream;
use crate::Reply;
use cors::Before;
use corsgate_policy::RequestFields;
use record::{AccessLog, Record};
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
    let (path, authority, client_error) =
        match normalise::request(&req, &uri, &vs.paths, &vs.limits) {
            Ok(t) => (t.path, t.authority, None),
            Err(bad) => (Cow::Borrowed("/"), None, Some(bad)),
        };
    let host = authority
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .map_or("", normalise::routing_host);

    // 2. Select.
    let fields = req.fields();
    let facts = RequestFacts {
        method: &method,
        host,
        path: &path,
        query: uri.query(),
        headers: &fields,
        preflight: client_error.is_none() && corsgate_policy::is_preflight(&method, &fields),
    };
    let selection = select(vs, &facts, client_error.is_some());
    let log = AccessLog {
        vs,
        rule: selection.rule.map_or("-", |r| r.name.as_str()),
        method: &method,
        path: &path,
        started,
    };
    let mut record = Record {
        stats: &slot.stats,
        rule: selection.rule.map(|r| r.index),
        policy: selection.policy,
        decision: record::CorsDecision::NoPolicy,
        refused_origin: None,
        upstream: None,
        client_error,
        log,
    };

    // 3. CORS before (R18, R26): a scoped preflight is answered here.
    let completion = match cors::before(&generation, vs, &selection, &facts) {
        Before::Answered(answer, decision) => {
            record.decision = decision;
            record.refused_origin = refused_origin(&record, &fields);
            record.write(answer.status);
            return Reply::Preflight(answer);
        }
        Before::Act(completion, decision) => {
            record.decision = decision;
            record.refused_origin = refused_origin(&record, &fields);
            completion
        }
    };

    // 4. Act.
    let answer = match client_error {
        Some(bad) => act::refusal(bad),
        None => {
            let request = act::Request {
                req,
                path: &path,
                query: uri.query(),
                authority: authority.as_ref(),
                peer,
            };
            let (answer, upstream_time, body_error) =
                act::run(&generation, vs, selection.rule, request).await;
            record.upstream = upstream_time;
            record.client_error = body_error;
            answer
        }
    };

    // 5. CORS after, and 6. record, however the response is sent.
    cors::after(answer, writes_heads, &selection, completion, &record)
}

/// Stage 2: the rule and the CORS policy in scope (R16, R17). No rule acts
/// on a request refused by the normalise stage; its policy is the one in
/// scope for `/`.
#[inline]
fn select<'v, H: RequestFields + ?Sized>(
    vs: &'v CompiledVService,
    facts: &RequestFacts<'_, H>,
    refused: bool,
) -> Selection<'v> {
    let mut selection = vs.select(facts);
    if refused {
        selection.rule = None;
    }
    selection
}

/// The origin a refused request named, for the metrics' top refused
/// origins; nothing for any other request.
#[inline]
fn refused_origin<H: RequestFields + ?Sized>(
    record: &Record<'_>,
    fields: &H,
) -> Option<http::HeaderValue> {
    if record.decision.refused() {
        fields.first_value(&http::header::ORIGIN).cloned()
    } else {
        None
    }
}
