//! Reading manifest text: the documentation shortcodes copied pages carry,
//! the YAML documents, and the guess whether a file is manifests at all.
//! Kept apart from the import so that the loader can tell manifests from a
//! native configuration without walking any object.

use super::LineMessages;
use serde_json::Value;

/// Documentation snippets of the seed page (Hugo `reuse` shortcodes) and
/// what they render to on agentgateway's site, so that manifests copied
/// from it load as they stand.
const SNIPPETS: [(&str, &str); 3] = [
    ("agw-docs/snippets/namespace.md", "agentgateway-system"),
    ("agw-docs/snippets/trafficpolicy.md", "AgentgatewayPolicy"),
    (
        "agw-docs/snippets/trafficpolicy-apiversion.md",
        "agentgateway.dev/v1alpha1",
    ),
];

/// Replace the known `{{< reuse "…" >}}` documentation shortcodes; report
/// each (notes), and refuse unknown ones (errors).
pub fn expand_snippets(text: &str) -> (String, LineMessages, LineMessages) {
    let mut out = String::with_capacity(text.len());
    let mut notes = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        let mut done = String::new();
        while let Some(start) = rest.find("{{<") {
            let Some(len) = rest[start..].find(">}}") else {
                break;
            };
            let inner = rest[start + 3..start + len].trim();
            let name = inner
                .strip_prefix("reuse")
                .map(|r| r.trim().trim_matches('"'))
                .unwrap_or(inner);
            done.push_str(&rest[..start]);
            match SNIPPETS.iter().find(|(k, _)| *k == name) {
                Some((_, v)) => {
                    done.push_str(v);
                    notes.push((
                        i + 1,
                        format!("documentation snippet {name:?} read as {v:?}"),
                    ));
                }
                None => {
                    errors.push((
                        i + 1,
                        format!(
                            "unknown documentation shortcode {:?}",
                            &rest[start..start + len + 3]
                        ),
                    ));
                    done.push('~');
                }
            }
            rest = &rest[start + len + 3..];
        }
        done.push_str(rest);
        out.push_str(&done);
    }
    (out, notes, errors)
}

/// The documents of a manifest text (empty documents skipped, indexes
/// kept).
pub fn documents(text: &str) -> Result<Vec<Value>, serde_yaml_ng::Error> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for d in serde_yaml_ng::Deserializer::from_str(text) {
        docs.push(Value::deserialize(d)?);
    }
    Ok(docs)
}

/// Does this text look like Kubernetes manifests rather than a native
/// configuration?
pub fn looks_like_manifests(text: &str) -> bool {
    let (text, _, _) = expand_snippets(text);
    documents(&text)
        .ok()
        .and_then(|d| d.into_iter().find(|v| !v.is_null()))
        .is_some_and(|v| v.get("apiVersion").is_some() && v.get("kind").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_documentation_snippets_are_substituted_and_others_refused() {
        let (t, notes, errors) = expand_snippets(
            "namespace: {{< reuse \"agw-docs/snippets/namespace.md\" >}}\nkind: {{< other >}}\n",
        );
        assert_eq!(t, "namespace: agentgateway-system\nkind: ~\n");
        assert_eq!(notes.len(), 1);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, 2);
    }
}
