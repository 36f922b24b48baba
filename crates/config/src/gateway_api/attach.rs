//! Attaching routes to listeners: one vService per (Gateway, port), the
//! rules every attached route generates on it (one per match and
//! hostname), in the Gateway API's precedence, with the CORS policy of the
//! rule, else of the route, else of the Gateway.

use super::cors::{attached, Attachment};
use super::gateway::{Gateway, Listener};
use super::precedence::{key, Key};
use super::route::{ParentRef, Route, RouteRule};
use super::walk::Ctx;
use super::{Imported, NoteKind, Source};
use crate::{Direct, Forward, GatewayApi, Match, Rule, VService};
use std::collections::BTreeMap;

/// The vService of one (Gateway, port) being built: listeners on one port
/// share it.
pub(super) struct Slot {
    vs: VService,
    rules: Vec<(Key, Rule, Source)>,
    source: Source,
    gateway: (String, String),
    port: u16,
    /// One of its listeners has no hostname: it serves any host.
    any_host: bool,
}

/// Gateways named only in the listener table (`gatewayApi.listeners`),
/// not in the manifests: one HTTP listener each.
pub(super) fn implicit_gateways(routes: &[Route], gateways: &mut Vec<Gateway>, cfg: &GatewayApi) {
    for r in routes {
        for p in &r.parents {
            let key = format!("{}/{}", p.namespace, p.name);
            let known = gateways
                .iter()
                .any(|g| g.namespace == p.namespace && g.name == p.name);
            if !known && cfg.listeners.contains_key(&key) {
                gateways.push(Gateway {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    listeners: vec![Listener {
                        name: "http".into(),
                        port: 0,
                        hostname: None,
                        tls: None,
                        same_namespace_only: false,
                        source: Source {
                            manifest: r.manifest,
                            doc: r.doc,
                            path: p.path.clone(),
                        },
                    }],
                });
            }
        }
    }
}

/// The slot of listener `l` of `g`, created on first use. Its address is
/// the listener table's entry for the listener, else for the Gateway, else
/// `bindAddress:port`.
fn slot_of(cfg: &GatewayApi, g: &Gateway, l: &Listener, slots: &mut Vec<Slot>) -> usize {
    if let Some(i) = slots
        .iter()
        .position(|s| s.gateway.0 == g.namespace && s.gateway.1 == g.name && s.port == l.port)
    {
        return i;
    }
    let listen = cfg
        .listeners
        .get(&format!("{}/{}/{}", g.namespace, g.name, l.name))
        .or_else(|| cfg.listeners.get(&format!("{}/{}", g.namespace, g.name)))
        .cloned()
        .unwrap_or_else(|| format!("{}:{}", cfg.bind_address, l.port));
    slots.push(Slot {
        vs: VService {
            name: format!("{}/{}:{}", g.namespace, g.name, l.port),
            listen,
            tls: l.tls.clone(),
            ..VService::default()
        },
        rules: Vec::new(),
        source: l.source.clone(),
        gateway: (g.namespace.clone(), g.name.clone()),
        port: l.port,
        any_host: false,
    });
    slots.len() - 1
}

/// A slot for every listener, with the listeners' hostnames; a vService
/// serves any host if one of its listeners does.
pub(super) fn listener_slots(gateways: &[Gateway], cfg: &GatewayApi) -> Vec<Slot> {
    let mut slots: Vec<Slot> = Vec::new();
    for g in gateways {
        for l in &g.listeners {
            let i = slot_of(cfg, g, l, &mut slots);
            match &l.hostname {
                Some(h) if !slots[i].vs.hostnames.contains(h) => {
                    slots[i].vs.hostnames.push(h.clone());
                }
                Some(_) => {}
                None => slots[i].any_host = true,
            }
        }
    }
    // A vService serves any host if one of its listeners does.
    for slot in &mut slots {
        if slot.any_host {
            slot.vs.hostnames.clear();
        }
    }
    slots
}

/// What routes are attached with: the Gateways, the policy attachments,
/// the listener table.
pub(super) struct Parents<'a> {
    pub(super) gateways: &'a [Gateway],
    pub(super) attachments: &'a [Attachment],
    pub(super) cfg: &'a GatewayApi,
}

/// Attach every route to the listeners its parentRefs name; a parent that
/// names no known Gateway is refused, one no listener accepts is a note.
pub(super) fn attach_routes(
    routes: &[Route],
    parents: &Parents<'_>,
    slots: &mut Vec<Slot>,
    out: &mut Imported,
) {
    for route in routes {
        for p in &route.parents {
            let mut c = Ctx {
                manifest: route.manifest,
                doc: route.doc,
                out: &mut *out,
            };
            let Some(g) = parents
                .gateways
                .iter()
                .find(|g| g.namespace == p.namespace && g.name == p.name)
            else {
                c.error(
                    &p.path,
                    format!(
                        "parentRef names Gateway {}/{}, which is neither in the manifests nor in gatewayApi.listeners",
                        p.namespace, p.name
                    ),
                );
                continue;
            };
            if !attach_parent(route, p, g, parents, slots) {
                c.note(
                    &p.path,
                    NoteKind::Unsupported,
                    "no listener of the Gateway accepts this route (sectionName, port, hostnames or allowedRoutes)".into(),
                );
            }
        }
    }
}

/// Attach `route` to the listeners of `g` that parentRef `p` selects and
/// that accept it; false if none does.
fn attach_parent(
    route: &Route,
    p: &ParentRef,
    g: &Gateway,
    parents: &Parents<'_>,
    slots: &mut Vec<Slot>,
) -> bool {
    let mut attached = false;
    for l in &g.listeners {
        if p.section.as_ref().is_some_and(|s| *s != l.name) || p.port.is_some_and(|pt| pt != l.port)
        {
            continue;
        }
        if l.same_namespace_only && route.namespace != g.namespace {
            continue;
        }
        let hosts = listener_hosts(l, route);
        if hosts.is_empty() {
            continue;
        }
        attached = true;
        let i = slot_of(parents.cfg, g, l, slots);
        let route_policy = attached_policy(parents.attachments, route);
        for (ri, r) in route.rules.iter().enumerate() {
            for (mi, (m, mpath)) in r.matches.iter().enumerate() {
                for h in &hosts {
                    let rule = native_rule(route, r, ri, mi, m, h.as_deref(), &route_policy);
                    let k = key(h.as_deref(), &rule.matches, route, ri, mi);
                    let src = Source {
                        manifest: route.manifest,
                        doc: route.doc,
                        path: mpath.clone(),
                    };
                    slots[i].rules.push((k, rule, src));
                }
            }
        }
    }
    attached
}

/// The policy attached to the route itself (an HTTPRoute `targetRef`).
fn attached_policy(attachments: &[Attachment], route: &Route) -> Option<String> {
    attached(attachments, "HTTPRoute", &route.namespace, &route.name)
}

/// The hosts a route serves on a listener: `None` for any host; empty when
/// none of the route's hostnames falls under the listener's.
fn listener_hosts(l: &Listener, route: &Route) -> Vec<Option<String>> {
    match (&l.hostname, route.hostnames.is_empty()) {
        (None, true) => vec![None],
        (None, false) => route.hostnames.iter().cloned().map(Some).collect(),
        (Some(lh), true) => vec![Some(lh.clone())],
        (Some(lh), false) => route
            .hostnames
            .iter()
            .filter_map(|rh| intersect(rh, lh))
            .map(Some)
            .collect(),
    }
}

/// The native rule for match `mi` of rule `ri` on host `h`: a redirect,
/// a forward, or, with no usable backend, the 500 the Gateway API asks for.
fn native_rule(
    route: &Route,
    r: &RouteRule,
    ri: usize,
    mi: usize,
    m: &Match,
    h: Option<&str>,
    route_policy: &Option<String>,
) -> Rule {
    let mut matches = m.clone();
    matches.hosts = h.iter().map(|h| (*h).to_owned()).collect();
    let mut rule = Rule {
        name: Some(format!(
            "{}/{}#{}.{mi}",
            route.namespace,
            route.name,
            r.name.clone().unwrap_or_else(|| ri.to_string())
        )),
        matches,
        cors: r.cors.clone().or_else(|| route_policy.clone()),
        request_headers: r.request_headers.clone(),
        response_headers: r.response_headers.clone(),
        ..Rule::default()
    };
    if let Some(rd) = &r.redirect {
        rule.redirect = Some(rd.clone());
    } else if r.upstreams.is_empty() {
        rule.direct = Some(Direct {
            status: 500,
            headers: BTreeMap::new(),
            body: if r.unresolved {
                "backend not resolved\n".into()
            } else {
                "no backend\n".into()
            },
        });
    } else {
        rule.forward = Some(forward(r));
    }
    rule
}

/// A forward to the rule's backends; an empty rewrite is no rewrite.
fn forward(r: &RouteRule) -> Forward {
    let mut f = Forward {
        upstreams: r.upstreams.clone(),
        connect_timeout_ms: 2000,
        timeout_ms: r.timeout_ms.unwrap_or(30_000),
        http2: false,
        rewrite: r.rewrite.clone(),
        upgrades: crate::model::default_upgrades(),
        forwarded_headers: Default::default(),
        max_idle_connections: crate::model::default_max_idle_connections(),
    };
    if f.rewrite
        .as_ref()
        .is_some_and(|rw| rw.hostname.is_none() && rw.path.is_none())
    {
        f.rewrite = None;
    }
    f
}

/// The vServices: rules in precedence order, the Gateway's attached
/// policy as the vService's, and each one's provenance.
pub(super) fn finish(slots: Vec<Slot>, attachments: &[Attachment], out: &mut Imported) {
    for (vi, mut slot) in slots.into_iter().enumerate() {
        slot.rules.sort_by(|a, b| a.0.cmp(&b.0));
        slot.vs.cors = attached(attachments, "Gateway", &slot.gateway.0, &slot.gateway.1);
        out.provenance
            .push((format!("vservices[{vi}]"), slot.source.clone()));
        for (ri, (_, rule, src)) in slot.rules.into_iter().enumerate() {
            out.provenance
                .push((format!("vservices[{vi}].rules[{ri}]"), src));
            slot.vs.rules.push(rule);
        }
        out.vservices.push(slot.vs);
    }
}

/// Does a route hostname fall under a listener hostname? Returns the
/// narrower of the two, as the Gateway API intersects them.
fn intersect(route: &str, listener: &str) -> Option<String> {
    let r = route.to_ascii_lowercase();
    let l = listener.to_ascii_lowercase();
    let covers = |pat: &str, host: &str| match pat.strip_prefix("*.") {
        Some(suffix) => host.ends_with(&format!(".{suffix}")) && host.len() > suffix.len() + 1,
        None => pat == host,
    };
    if r == l || covers(&l, &r) {
        Some(r)
    } else if covers(&r, &l) {
        Some(l)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_intersect_like_the_gateway_api() {
        assert_eq!(
            intersect("www.example.com", "*.example.com").as_deref(),
            Some("www.example.com")
        );
        assert_eq!(
            intersect("*.example.com", "www.example.com").as_deref(),
            Some("www.example.com")
        );
        assert_eq!(
            intersect("*.a.example.com", "*.example.com").as_deref(),
            Some("*.a.example.com")
        );
        assert_eq!(intersect("www.example.net", "*.example.com"), None);
        assert_eq!(intersect("example.com", "*.example.com"), None);
    }
}
