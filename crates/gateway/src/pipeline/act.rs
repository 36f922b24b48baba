//! The act stage: what the matched rule does with the request — forward it,
//! answer it, or redirect it — and the gateway's own answers when no rule
//! can (404, 502, a refused request).

use super::normalise::BadRequest;
use super::Peer;
use crate::generation::Generation;
use crate::request::ClientRequest;
use crate::router::{Action, CompiledRule, CompiledVService};
use crate::upstream::forwarding::Forwarded;
use crate::upstream::{self, Answer};
use corsgate_http1::list_items;
use corsgate_policy::RequestFields;
use http::header::UPGRADE;
use http::{HeaderValue, Response, StatusCode};
use std::time::Duration;

/// A normalised request, ready to act on.
pub(super) struct Request<'a> {
    /// The request; it moves upstream when forwarded.
    pub(super) req: ClientRequest,
    /// The normalised path it was routed by.
    pub(super) path: &'a str,
    /// The raw query.
    pub(super) query: Option<&'a str>,
    /// The validated host and port asked for.
    pub(super) authority: Option<&'a HeaderValue>,
    /// The client's connection.
    pub(super) peer: Peer<'a>,
}

/// The gateway's answer to a request refused before routing.
pub(super) fn refusal(bad: BadRequest) -> Answer {
    Answer::Response(upstream::gateway_response(bad.status(), bad.text()))
}

/// Act on `r` as `rule` says; `None`: no rule matched (404). Returns the
/// answer, the upstream's time, and a client error found while forwarding
/// (a request body that broke its framing or its limit).
pub(super) async fn run(
    generation: &Generation,
    vs: &CompiledVService,
    rule: Option<&CompiledRule>,
    r: Request<'_>,
) -> (Answer, Option<Duration>, Option<BadRequest>) {
    let Some(rule) = rule else {
        return (
            Answer::Response(upstream::gateway_response(
                StatusCode::NOT_FOUND,
                "no route\n",
            )),
            None,
            None,
        );
    };
    match &rule.action {
        Action::Forward {
            connect_timeout,
            timeout,
            http2,
            rewrite_host,
            rewrite_path,
            upgrades,
            forwarded_headers,
            max_idle,
            ..
        } => {
            let (Some(upstream), Some(client)) = (
                rule.action.pick_upstream(),
                generation
                    .clients
                    .get(&(*connect_timeout, *http2, *max_idle)),
            ) else {
                return (
                    Answer::Response(upstream::gateway_response(
                        StatusCode::BAD_GATEWAY,
                        "no upstream\n",
                    )),
                    None,
                    None,
                );
            };
            let upgrade = crate::hop::is_upgrade(&r.req.fields())
                && upgrade_allowed(&r.req.fields(), upgrades);
            let req = if rule.request_headers.is_empty() {
                r.req
            } else {
                // Edited fields live in a map.
                let mut req = r.req.into_http();
                rule.request_headers.apply(req.headers_mut());
                ClientRequest::from_map(req)
            };
            let Ok(target) =
                upstream_target(rewrite_path.as_ref(), req.uri().path(), r.path, r.query)
            else {
                return (
                    Answer::Response(upstream::gateway_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "cannot build the upstream target\n",
                    )),
                    None,
                    None,
                );
            };
            let fwd = Forwarded {
                peer_ip: r.peer.ip,
                host: r.authority.cloned(),
                upstream_host: rewrite_host.clone(),
                target,
                tls: r.peer.tls,
                http2: *http2,
                mode: *forwarded_headers,
            };
            let limits = upstream::BodyLimit(vs.limits.max_body_bytes);
            upstream::forward(client, upstream, *timeout, req, limits, fwd, upgrade).await
        }
        Action::Direct {
            status,
            headers,
            body,
        } => {
            let mut resp = Response::new(upstream::full(body.clone()));
            *resp.status_mut() = *status;
            *resp.headers_mut() = headers.clone();
            (Answer::Response(resp), None, None)
        }
        Action::Redirect { status, target } => (redirect(*status, target, &r), None, None),
    }
}

/// The path and query to send upstream, when they differ from the
/// request's target: the path forwarded is the one routed (the normalised
/// path), changed by the rule's rewrite if it has one.
///
/// `Err`: the target cannot be built. Never the raw target instead: the
/// backend would then see a path other than the one routed. Unreachable
/// while normalised paths and compiled rewrites hold only path characters;
/// the caller answers 500 if that ever stops being true.
fn upstream_target(
    rewrite: Option<&crate::router::PathChange>,
    sent: &str,
    routed: &str,
    query: Option<&str>,
) -> Result<Option<http::uri::PathAndQuery>, http::uri::InvalidUri> {
    let mut t = match rewrite {
        Some(change) => change.apply(routed),
        None if sent != routed => routed.to_owned(),
        None => return Ok(None),
    };
    if let Some(q) = query {
        t.push('?');
        t.push_str(q);
    }
    http::uri::PathAndQuery::try_from(t).map(Some)
}

/// A redirect rule's answer: its status and `Location`, or a 400 when the
/// target cannot be built from this request.
fn redirect(status: StatusCode, target: &crate::router::RedirectTarget, r: &Request<'_>) -> Answer {
    let host = r.authority.and_then(|v| v.to_str().ok()).unwrap_or("");
    let resp = match target.location(r.peer.tls, host, r.path, r.query) {
        Some(location) => {
            let mut resp = Response::new(upstream::empty());
            *resp.status_mut() = status;
            resp.headers_mut().insert(http::header::LOCATION, location);
            resp
        }
        None => upstream::gateway_response(
            StatusCode::BAD_REQUEST,
            "cannot build the redirect target\n",
        ),
    };
    Answer::Response(resp)
}

/// Is every protocol the client asks to switch to (`Upgrade: websocket`,
/// `Upgrade: h2c`) one the rule allows? Versions after a `/` are not
/// compared (`websocket/13` is `websocket`). A request that may not
/// upgrade is forwarded as an ordinary request, without `Upgrade`.
fn upgrade_allowed<H: RequestFields + ?Sized>(fields: &H, allowed: &[String]) -> bool {
    let mut any = false;
    for value in fields.values(&UPGRADE) {
        for protocol in list_items(value.as_bytes()) {
            any = true;
            let name = protocol.split(|&b| b == b'/').next().unwrap_or_default();
            if !allowed
                .iter()
                .any(|a| a.as_bytes().eq_ignore_ascii_case(name))
            {
                return false;
            }
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    #[test]
    fn only_listed_protocols_upgrade() {
        let websocket = vec!["websocket".to_owned()];
        let table: &[(&[&str], &[String], bool)] = &[
            (&["websocket"], &websocket, true),
            (&["WebSocket"], &websocket, true),
            (&["websocket/13"], &websocket, true),
            (&["h2c"], &websocket, false),
            (&["websocket, h2c"], &websocket, false),
            (&["websocket", "h2c"], &websocket, false),
            (&["websocket"], &[], false),
            (&[], &websocket, false),
        ];
        for (values, allowed, want) in table {
            let mut h = HeaderMap::new();
            for v in *values {
                h.append(UPGRADE, v.parse().unwrap());
            }
            assert_eq!(
                upgrade_allowed(&h, allowed),
                *want,
                "{values:?} {allowed:?}"
            );
        }
    }
}
