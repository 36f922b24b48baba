//! One leg (one request the browser sends), run as the server runs it:
//! the vService and rule the router selects on the normalised path, the
//! policy's decision, and what corsgate answers: itself (a preflight, a
//! direct response, a redirect, a 404), or on a forwarded response.

use super::{Answer, Leg, Verdict};
use crate::router::{Action, CompiledRule, CompiledVService, RequestFacts, Selection};
use corsgate_policy::{is_preflight, Completion, Evaluation, Policy};
use http::{HeaderMap, Method, Uri};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A header map as `(name, value)` text pairs, in order.
pub(super) fn pairs(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// The vService a URL reaches: the one listening on its port, else the
/// one serving its host, else the only one.
pub(super) fn pick_vservice<'a>(
    vservices: &'a [CompiledVService],
    url: &Uri,
    host: &str,
) -> Option<&'a CompiledVService> {
    let port = url
        .port_u16()
        .unwrap_or(if url.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    let on_port: Vec<_> = vservices
        .iter()
        .filter(|v| v.listen.rsplit(':').next().and_then(|p| p.parse().ok()) == Some(port))
        .collect();
    let candidates = if on_port.is_empty() {
        vservices.iter().collect()
    } else {
        on_port
    };
    candidates
        .iter()
        .find(|v| v.serves_host(host))
        .or_else(|| (candidates.len() == 1).then(|| &candidates[0]))
        .copied()
}

/// The configured name of a compiled policy (the vService holds the
/// policy itself, not its name).
fn policy_name(policies: &BTreeMap<String, Arc<Policy>>, p: &Arc<Policy>) -> Option<String> {
    policies
        .iter()
        .find(|(_, q)| Arc::ptr_eq(p, q))
        .map(|(n, _)| n.clone())
}

/// What corsgate does with one request, as the server would: the leg (its
/// verdict still to be judged), the policy in scope and the response
/// fields.
pub(super) fn run_leg(
    vs: &CompiledVService,
    policies: &BTreeMap<String, Arc<Policy>>,
    method: &Method,
    host: &str,
    url: &Uri,
    headers: &HeaderMap,
) -> (Leg, Option<Arc<Policy>>, HeaderMap) {
    let preflight = is_preflight(method, headers);
    // Routed as the gateway routes: on the normalised path (checked by
    // `explain` before any leg is run).
    let path = crate::pipeline::normalise::path(url.path(), &vs.paths)
        .unwrap_or(std::borrow::Cow::Borrowed("/"));
    let sel = vs.select(&RequestFacts {
        method,
        host,
        path: &path,
        query: url.query(),
        headers,
        preflight,
    });
    let mut leg = new_leg(vs, policies, &sel, preflight, method, url, headers);
    let evaluation = sel
        .policy
        .map(|p| p.evaluate_classified(preflight, headers));
    let mut completion = None;
    match evaluation {
        Some(Evaluation::Preflight(answer)) => {
            let headers = answer.headers();
            leg.answer = Answer::Gateway {
                status: answer.status.as_u16(),
                headers: pairs(&headers),
            };
            return (leg, sel.policy.cloned(), headers);
        }
        Some(Evaluation::Actual(c)) => completion = Some(c),
        Some(Evaluation::Shadow(_)) | None => {}
    }
    let target = RuleTarget {
        host,
        url,
        path: &path,
        headers,
    };
    let (answer, out) = forwarded_or_answered(&sel, completion.as_ref(), &target);
    leg.answer = answer;
    (leg, sel.policy.cloned(), out)
}

/// The leg as routed, before its answer and verdict are known.
fn new_leg(
    vs: &CompiledVService,
    policies: &BTreeMap<String, Arc<Policy>>,
    sel: &Selection<'_>,
    preflight: bool,
    method: &Method,
    url: &Uri,
    headers: &HeaderMap,
) -> Leg {
    Leg {
        kind: if preflight { "preflight" } else { "actual" },
        method: method.to_string(),
        target: url
            .path_and_query()
            .map_or_else(|| "/".into(), |p| p.as_str().to_owned()),
        request_headers: pairs(headers),
        vservice: vs.name.clone(),
        rule: sel.rule.map(|r| r.name.clone()),
        policy: sel.policy.and_then(|p| policy_name(policies, p)),
        binding: sel.binding.to_string(),
        answer: Answer::Gateway {
            status: 0,
            headers: Vec::new(),
        },
        verdict: Verdict::Allowed,
    }
}

/// The request as the rule's action sees it.
struct RuleTarget<'a> {
    host: &'a str,
    url: &'a Uri,
    /// The normalised path.
    path: &'a str,
    headers: &'a HeaderMap,
}

/// A request that is not a preflight answered by the policy: the rule's
/// action, its response header changes, then the policy's completion.
fn forwarded_or_answered(
    sel: &Selection<'_>,
    completion: Option<&Completion>,
    t: &RuleTarget<'_>,
) -> (Answer, HeaderMap) {
    let (status, upstream, mut out) = rule_action(sel.rule, t);
    if let Some(rule) = sel.rule {
        rule.response_headers.apply(&mut out);
    }
    if let (Some(p), Some(c)) = (sel.policy, completion) {
        p.complete(c, &mut out);
    }
    let answer = match (status, upstream) {
        (Some(status), _) => Answer::Gateway {
            status,
            headers: pairs(&out),
        },
        (None, Some(u)) => Answer::Upstream {
            upstream: u,
            headers: pairs(&out),
        },
        (None, None) => Answer::Gateway {
            status: 502,
            headers: pairs(&out),
        },
    };
    (answer, out)
}

/// What the rule's action does: the status corsgate answers with itself,
/// or the upstream it forwards to (neither: 502), and the fields it writes.
fn rule_action(
    rule: Option<&CompiledRule>,
    t: &RuleTarget<'_>,
) -> (Option<u16>, Option<String>, HeaderMap) {
    let mut out = HeaderMap::new();
    let mut status = None;
    let mut upstream = None;
    match rule.map(|r| &r.action) {
        None => status = Some(404),
        Some(Action::Forward { upstreams, .. }) => upstream = upstreams.first().cloned(),
        Some(Action::Direct {
            status: s, headers, ..
        }) => {
            status = Some(s.as_u16());
            out = headers.clone();
        }
        Some(Action::Redirect { status: s, target }) => {
            let host_header = t
                .headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(t.host);
            if let Some(l) = target.location(
                t.url.scheme_str() == Some("https"),
                host_header,
                t.path,
                t.url.query(),
            ) {
                out.insert(http::header::LOCATION, l);
            }
            status = Some(s.as_u16());
        }
    }
    (status, upstream, out)
}
