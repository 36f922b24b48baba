//! `Gateway` objects: their listeners (port, hostname, TLS, which
//! namespaces' routes they accept). Each listener remembers its manifest
//! place, so the vService generated for it points back there.

use super::walk::{arr, join, obj, string, Ctx};
use super::{NoteKind, Source};
use crate::{GatewayApi, Tls};
use serde_json::{Map, Value};

/// One listener of a Gateway, as far as corsgate implements it.
#[derive(Clone, Debug)]
pub(super) struct Listener {
    pub(super) name: String,
    pub(super) port: u16,
    pub(super) hostname: Option<String>,
    pub(super) tls: Option<Tls>,
    pub(super) same_namespace_only: bool,
    pub(super) source: Source,
}

/// A Gateway: its identity (routes name it in `parentRefs`) and listeners.
#[derive(Clone, Debug)]
pub(super) struct Gateway {
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) listeners: Vec<Listener>,
}

/// Read a `Gateway` document.
pub(super) fn gateway(
    c: &mut Ctx<'_>,
    doc: &Map<String, Value>,
    namespace: String,
    name: String,
    cfg: &GatewayApi,
) -> Gateway {
    let spec = obj(doc.get("spec")).cloned().unwrap_or_default();
    c.extra(&spec, "spec", &["gatewayClassName", "listeners"]);
    let mut listeners = Vec::new();
    for (i, l) in arr(spec.get("listeners")).iter().enumerate() {
        let at = format!("spec.listeners[{i}]");
        let Some(l) = l.as_object() else { continue };
        if let Some(l) = listener(c, l, i, &at, &namespace, cfg) {
            listeners.push(l);
        }
    }
    Gateway {
        namespace,
        name,
        listeners,
    }
}

/// One listener at `at`; `None` when it is refused or skipped (each with
/// its error or note).
fn listener(
    c: &mut Ctx<'_>,
    l: &Map<String, Value>,
    i: usize,
    at: &str,
    namespace: &str,
    cfg: &GatewayApi,
) -> Option<Listener> {
    c.extra(
        l,
        at,
        &[
            "name",
            "hostname",
            "port",
            "protocol",
            "tls",
            "allowedRoutes",
        ],
    );
    let lname = string(l.get("name")).unwrap_or_else(|| format!("listener-{i}"));
    let Some(port) = l
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
    else {
        c.error(at, "a listener needs a port".into());
        return None;
    };
    let protocol = string(l.get("protocol")).unwrap_or_else(|| "HTTP".into());
    let tls = match protocol.as_str() {
        "HTTP" => None,
        "HTTPS" => listener_tls(c, l, at, namespace, cfg),
        other => {
            c.note(
                at,
                NoteKind::Unsupported,
                format!("protocol {other} is not implemented; listener skipped"),
            );
            return None;
        }
    };
    let same_namespace_only = same_namespace_only(c, l, at);
    Some(Listener {
        name: lname,
        port,
        hostname: string(l.get("hostname")),
        tls,
        same_namespace_only,
        source: c.src(at),
    })
}

/// An HTTPS listener's certificate: the Gateway API names a Secret, which
/// corsgate cannot read, so `gatewayApi.certificates` maps it to files. A
/// reference without an entry is refused rather than served without TLS.
fn listener_tls(
    c: &mut Ctx<'_>,
    l: &Map<String, Value>,
    at: &str,
    namespace: &str,
    cfg: &GatewayApi,
) -> Option<Tls> {
    let tat = join(at, "tls");
    let t = obj(l.get("tls")).cloned().unwrap_or_default();
    c.extra(&t, &tat, &["mode", "certificateRefs"]);
    if string(t.get("mode")).is_some_and(|m| m != "Terminate") {
        c.error(&tat, "only tls.mode Terminate is implemented".into());
    }
    let refs = arr(t.get("certificateRefs"));
    let key = refs.first().map(|r| {
        format!(
            "{}/{}",
            string(r.get("namespace")).unwrap_or_else(|| namespace.to_owned()),
            string(r.get("name")).unwrap_or_default()
        )
    });
    let tls = match key.as_ref().and_then(|k| cfg.certificates.get(k)) {
        Some(files) => Some(files.clone()),
        None => {
            c.error(
                &tat,
                format!(
                    "certificateRef {} has no entry in gatewayApi.certificates",
                    key.unwrap_or_else(|| "(none)".into())
                ),
            );
            None
        }
    };
    if refs.len() > 1 {
        c.note(
            &tat,
            NoteKind::Unsupported,
            "only the first certificateRef is used".into(),
        );
    }
    tls
}

/// `allowedRoutes.namespaces.from`: `Same` (the Gateway API default) or
/// `All`; a selector is not implemented and is read as the narrower
/// `Same`, never as `All`.
fn same_namespace_only(c: &mut Ctx<'_>, l: &Map<String, Value>, at: &str) -> bool {
    let Some(a) = obj(l.get("allowedRoutes")) else {
        return true;
    };
    let aat = join(at, "allowedRoutes");
    c.extra(a, &aat, &["namespaces"]);
    let Some(from) = obj(a.get("namespaces")).and_then(|n| string(n.get("from"))) else {
        return true;
    };
    match from.as_str() {
        "Same" => true,
        "All" => false,
        other => {
            c.note(
                &aat,
                NoteKind::Unsupported,
                format!("namespaces.from {other} is not implemented; treated as Same"),
            );
            true
        }
    }
}
