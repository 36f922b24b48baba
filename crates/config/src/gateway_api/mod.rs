//! Kubernetes Gateway API import: `Gateway`, `HTTPRoute` and CORS policy
//! attachments (`spec.traffic.cors` / `spec.cors` with `targetRefs`)
//! become vServices, rules and policies of the native configuration.
//!
//! Everything in a manifest is either imported or reported: every object
//! walked here names the fields it understands, and any other field is a
//! note ("not implemented"), never silently dropped. Each generated
//! vService, rule and policy remembers the manifest place it came from, so
//! errors and lints found later point into the manifest.
//!
//! Precedence follows the Gateway API (`precedence.rs`).
//!
//! The import is a walk in steps, one file each: the text
//! (`snippets.rs`), Gateways and their listeners (`gateway.rs`), HTTPRoutes
//! (`route.rs`, with `matches.rs` and `filters.rs`), CORS policies
//! (`cors.rs`), then attaching routes to listeners (`attach.rs`).

mod attach;
mod cors;
mod filters;
mod gateway;
mod matches;
mod precedence;
mod route;
mod snippets;
mod walk;

pub use snippets::{documents, expand_snippets, looks_like_manifests};

use crate::{GatewayApi, VService};
use attach::Parents;
use cors::Attachment;
use corsgate_policy::PolicySpec;
use gateway::Gateway;
use route::Route;
use serde_json::Value;
use std::collections::BTreeMap;
use walk::{obj, string, Ctx};

/// Where something came from: a manifest, a document in it, a path in the
/// document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// Index into the manifests given to [`import`].
    pub manifest: usize,
    /// Document index in the manifest.
    pub doc: usize,
    /// Path in the document (`spec.rules[0].filters[1]`).
    pub path: String,
}

/// How much a note matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteKind {
    /// Something in the manifest corsgate does not implement (ignored).
    Unsupported,
    /// Where corsgate's CORS semantics deliberately differ from the
    /// Gateway API text (docs/gateway-api.md).
    Compat,
    /// Informational (a substituted documentation snippet, a resolved
    /// reference).
    Info,
}

impl NoteKind {
    /// Label for output.
    pub fn as_str(self) -> &'static str {
        match self {
            NoteKind::Unsupported => "unsupported",
            NoteKind::Compat => "compat",
            NoteKind::Info => "info",
        }
    }
}

/// A note about the import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Where.
    pub source: Source,
    /// What kind.
    pub kind: NoteKind,
    /// What.
    pub message: String,
}

/// The result of an import.
#[derive(Debug, Default)]
pub struct Imported {
    /// Generated policies.
    pub policies: BTreeMap<String, PolicySpec>,
    /// Generated vServices.
    pub vservices: Vec<VService>,
    /// Notes.
    pub notes: Vec<Note>,
    /// Problems that refuse the configuration, with a stable ID where
    /// they have one.
    pub errors: Vec<(Source, Option<&'static str>, String)>,
    /// Native path (`vservices[0].rules[3]`, relative to the generated
    /// vServices; `policies.NAME`) → where it came from.
    pub provenance: Vec<(String, Source)>,
}

/// `(1-based line, message)` pairs.
pub type LineMessages = Vec<(usize, String)>;

/// Import Gateway API manifests: `(manifest index, document index,
/// document)` for every document of every manifest.
pub fn import(docs: &[(usize, usize, Value)], cfg: &GatewayApi) -> Imported {
    let mut out = Imported::default();
    let (mut gateways, routes, attachments) = read_documents(docs, cfg, &mut out);
    attach::implicit_gateways(&routes, &mut gateways, cfg);
    let mut slots = attach::listener_slots(&gateways, cfg);
    let parents = Parents {
        gateways: &gateways,
        attachments: &attachments,
        cfg,
    };
    attach::attach_routes(&routes, &parents, &mut slots, &mut out);
    attach::finish(slots, &attachments, &mut out);
    cors::compat_notes(&mut out);
    out
}

/// Every document read on its own: Gateways, HTTPRoutes and policy
/// attachments, each kept for the attaching step (which needs them all);
/// any other kind is a note.
fn read_documents(
    docs: &[(usize, usize, Value)],
    cfg: &GatewayApi,
    out: &mut Imported,
) -> (Vec<Gateway>, Vec<Route>, Vec<Attachment>) {
    let mut gateways: Vec<Gateway> = Vec::new();
    let mut routes: Vec<Route> = Vec::new();
    let mut attachments: Vec<Attachment> = Vec::new();
    for (manifest, doc, value) in docs {
        let mut c = Ctx {
            manifest: *manifest,
            doc: *doc,
            out: &mut *out,
        };
        let Some(o) = value.as_object() else {
            if !value.is_null() {
                c.error("", "a manifest document is a mapping".into());
            }
            continue;
        };
        let api = string(o.get("apiVersion")).unwrap_or_default();
        let kind = string(o.get("kind")).unwrap_or_default();
        let meta = obj(o.get("metadata")).cloned().unwrap_or_default();
        let name = string(meta.get("name")).unwrap_or_default();
        let namespace = string(meta.get("namespace")).unwrap_or_else(|| "default".into());
        c.extra(o, "", &["apiVersion", "kind", "metadata", "spec", "status"]);
        let gateway_api = api.starts_with("gateway.networking.k8s.io/");
        match kind.as_str() {
            "Gateway" if gateway_api => {
                gateways.push(gateway::gateway(&mut c, o, namespace, name, cfg))
            }
            "HTTPRoute" if gateway_api => {
                routes.push(route::route(&mut c, o, namespace, name, cfg))
            }
            _ if !gateway_api
                && obj(o.get("spec")).is_some_and(|s| s.contains_key("targetRefs")) =>
            {
                attachments.extend(cors::attachment(&mut c, o, &kind, &namespace, &name));
            }
            _ => c.note(
                "kind",
                NoteKind::Unsupported,
                format!("{api} {kind} is not a resource corsgate imports; ignored"),
            ),
        }
    }
    (gateways, routes, attachments)
}
