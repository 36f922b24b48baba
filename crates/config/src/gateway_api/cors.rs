//! CORS in Gateway API manifests: the `CORS` filter of a rule, policies
//! attached with `targetRefs` (to a Gateway or an HTTPRoute), and the notes
//! on where corsgate's CORS semantics differ from the Gateway API text.
//! Every policy is a [`PolicySpec`] under a generated name, with the
//! manifest place it came from, so the policy compiler's errors point
//! into the manifest.

use super::filters::RuleId;
use super::walk::{arr, obj, string, Ctx};
use super::{Imported, Note, NoteKind};
use corsgate_policy::PolicySpec;
use serde_json::{Map, Value};

/// A CORS policy attached with `targetRefs`.
pub(super) struct Attachment {
    pub(super) kind: String,
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) policy: String,
}

/// A CORS body read as a native policy.
fn policy_spec(c: &mut Ctx<'_>, v: &Value, path: &str) -> Option<PolicySpec> {
    match serde_json::from_value::<PolicySpec>(v.clone()) {
        Ok(spec) => Some(spec),
        Err(e) => {
            c.error(path, format!("not a CORS filter: {e}"));
            None
        }
    }
}

/// Add a generated policy and where it came from.
fn register(c: &mut Ctx<'_>, pname: &str, at: &str, spec: PolicySpec) {
    c.out
        .provenance
        .push((format!("policies.{pname}"), c.src(at)));
    c.out.policies.insert(pname.to_owned(), spec);
}

/// A rule's `CORS` filter: the policy `httproute:namespace/name:ruleN`, or
/// `None` (with an error) when the body is not a policy.
pub(super) fn route_rule_policy(
    c: &mut Ctx<'_>,
    body: &Value,
    bat: &str,
    id: &RuleId<'_>,
) -> Option<String> {
    let spec = policy_spec(c, body, bat)?;
    let pname = format!("httproute:{}/{}:rule{}", id.namespace, id.name, id.index);
    register(c, &pname, bat, spec);
    Some(pname)
}

/// A policy document (any kind with `targetRefs` that carries a CORS
/// policy): the policy, named `KIND:namespace/name`, and what it targets.
pub(super) fn attachment(
    c: &mut Ctx<'_>,
    doc: &Map<String, Value>,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Vec<Attachment> {
    let spec = obj(doc.get("spec")).cloned().unwrap_or_default();
    let (cors, at) = match (obj(spec.get("traffic")), spec.get("cors")) {
        (Some(t), _) if t.contains_key("cors") => {
            c.extra(t, "spec.traffic", &["cors"]);
            (t.get("cors"), "spec.traffic.cors")
        }
        (_, Some(c)) => (Some(c), "spec.cors"),
        _ => (None, ""),
    };
    c.extra(&spec, "spec", &["targetRefs", "traffic", "cors"]);
    let Some(cors) = cors else {
        c.note(
            "spec",
            NoteKind::Unsupported,
            format!("{kind} without a CORS policy: nothing corsgate implements"),
        );
        return Vec::new();
    };
    let Some(policy) = policy_spec(c, cors, at) else {
        return Vec::new();
    };
    let pname = format!("{}:{namespace}/{name}", kind.to_ascii_lowercase());
    register(c, &pname, at, policy);
    let mut out = Vec::new();
    for (i, t) in arr(spec.get("targetRefs")).iter().enumerate() {
        let tat = format!("spec.targetRefs[{i}]");
        let Some(t) = t.as_object() else { continue };
        c.extra(t, &tat, &["group", "kind", "name"]);
        let tk = string(t.get("kind")).unwrap_or_default();
        if tk != "Gateway" && tk != "HTTPRoute" {
            c.note(
                &tat,
                NoteKind::Unsupported,
                format!("targetRef kind {tk:?} is not implemented; only Gateway and HTTPRoute"),
            );
            continue;
        }
        out.push(Attachment {
            kind: tk,
            namespace: namespace.to_owned(),
            name: string(t.get("name")).unwrap_or_default(),
            policy: pname.clone(),
        });
    }
    if out.is_empty() {
        c.note(
            "spec.targetRefs",
            NoteKind::Unsupported,
            "the policy targets nothing corsgate imports".into(),
        );
    }
    out
}

/// The policy attached to `kind` `namespace/name`, if any.
pub(super) fn attached(
    attachments: &[Attachment],
    kind: &str,
    namespace: &str,
    name: &str,
) -> Option<String> {
    attachments
        .iter()
        .find(|a| a.kind == kind && a.namespace == namespace && a.name == name)
        .map(|a| a.policy.clone())
}

/// Where corsgate's semantics differ from the Gateway API text, once per
/// imported policy: a manifest written for another implementation behaves
/// differently here, and the import says so rather than leaving it to be
/// found in production.
pub(super) fn compat_notes(out: &mut Imported) {
    let policies: Vec<(String, PolicySpec)> = out
        .policies
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (name, spec) in policies {
        let Some(src) = out
            .provenance
            .iter()
            .find(|(p, _)| *p == format!("policies.{name}"))
            .map(|(_, s)| s.clone())
        else {
            continue;
        };
        let mut compat = |message: String| {
            out.notes.push(Note {
                source: src.clone(),
                kind: NoteKind::Compat,
                message,
            })
        };
        if spec.allow_credentials
            && spec
                .allow_origins
                .iter()
                .any(|o| o == "*" || o.ends_with("://*") || o.contains("://*:"))
        {
            compat("`*` with allowCredentials: the Gateway API reflects any origin; corsgate refuses this \
                    unless the policy sets unsafeAllowAnyOriginWithCredentials: true (R5)"
                .into());
        }
        compat("every response on the route carries `Vary: Origin`, also refused and no-Origin ones (R24); \
                the Gateway API text does not require it"
            .into());
        compat("Access-Control-* headers set by the backend are removed and replaced by the policy's (R23)".into());
        compat("only OPTIONS with Origin and Access-Control-Request-Method is a preflight (R8): an OPTIONS \
                without it, like the seed page's curl example, is forwarded to the backend and completed \
                like any request, without Allow-Methods or Max-Age"
            .into());
        compat("a preflight from an origin that is not allowed gets 200 without any CORS headers (R20; \
                preflightRejectStatus: 403 or 204 changes the status), not the reflected origin some \
                implementations (and the seed page's second example) show"
            .into());
    }
}
