//! A semantic diff between two configurations: per policy, what was added
//! to or removed from each list and which settings changed; and which rules
//! (and vService, host and path bindings) now select another policy.

use crate::{Config, Rule};
use corsgate_policy::PolicySpec;
use serde::Serialize;
use std::collections::BTreeMap;

/// One changed field of a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// The field (`allowOrigins`, `allowCredentials`, `maxAge`).
    pub field: &'static str,
    /// Entries added (lists).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<String>,
    /// Entries removed (lists).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// Old value (settings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// New value (settings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// How a policy changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum PolicyChange {
    /// New policy.
    Added {
        /// Name.
        name: String,
    },
    /// Policy gone.
    Removed {
        /// Name.
        name: String,
    },
    /// Same name, different content.
    Changed {
        /// Name.
        name: String,
        /// The fields that differ.
        fields: Vec<FieldChange>,
    },
}

/// A binding that now selects another policy (or none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BindingChange {
    /// Where (`vservice api`, `vservice api rule partner`, `vservice api
    /// path /admin`, `vservice api host a.example`, `global`).
    pub at: String,
    /// Policy before.
    pub from: Option<String>,
    /// Policy after.
    pub to: Option<String>,
}

/// The whole diff.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConfigDiff {
    /// Policy changes, by name.
    pub policies: Vec<PolicyChange>,
    /// Binding changes.
    pub bindings: Vec<BindingChange>,
}

impl ConfigDiff {
    /// No semantic change.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty() && self.bindings.is_empty()
    }
}

fn list(field: &'static str, a: &[String], b: &[String], fold: bool) -> Option<FieldChange> {
    let has = |v: &[String], x: &String| {
        v.iter().any(|y| {
            if fold {
                y.eq_ignore_ascii_case(x)
            } else {
                y == x
            }
        })
    };
    let added: Vec<String> = b.iter().filter(|x| !has(a, x)).cloned().collect();
    let removed: Vec<String> = a.iter().filter(|x| !has(b, x)).cloned().collect();
    (!added.is_empty() || !removed.is_empty()).then_some(FieldChange {
        field,
        added,
        removed,
        from: None,
        to: None,
    })
}

fn setting(field: &'static str, a: String, b: String) -> Option<FieldChange> {
    (a != b).then_some(FieldChange {
        field,
        added: Vec::new(),
        removed: Vec::new(),
        from: Some(a),
        to: Some(b),
    })
}

fn policy_fields(a: &PolicySpec, b: &PolicySpec) -> Vec<FieldChange> {
    let max_age = |p: &PolicySpec| p.max_age.map_or_else(|| "unset".into(), |m| m.to_string());
    [
        list("allowOrigins", &a.allow_origins, &b.allow_origins, false),
        list(
            "allowOriginRegexes",
            &a.allow_origin_regexes,
            &b.allow_origin_regexes,
            false,
        ),
        list("allowMethods", &a.allow_methods, &b.allow_methods, false),
        list("allowHeaders", &a.allow_headers, &b.allow_headers, true),
        list("exposeHeaders", &a.expose_headers, &b.expose_headers, true),
        setting(
            "allowCredentials",
            a.allow_credentials.to_string(),
            b.allow_credentials.to_string(),
        ),
        setting("maxAge", max_age(a), max_age(b)),
        setting(
            "allowNullOrigin",
            a.allow_null_origin.to_string(),
            b.allow_null_origin.to_string(),
        ),
        setting(
            "unsafeAllowAnyOriginWithCredentials",
            a.unsafe_allow_any_origin_with_credentials.to_string(),
            b.unsafe_allow_any_origin_with_credentials.to_string(),
        ),
        setting(
            "allowPrivateNetwork",
            a.allow_private_network.to_string(),
            b.allow_private_network.to_string(),
        ),
        setting(
            "preflightValidation",
            a.preflight_validation.to_string(),
            b.preflight_validation.to_string(),
        ),
        setting(
            "preflightRejectStatus",
            u16::from(a.preflight_reject_status).to_string(),
            u16::from(b.preflight_reject_status).to_string(),
        ),
        setting(
            "upstreamCorsHeaders",
            format!("{:?}", a.upstream_cors_headers).to_ascii_lowercase(),
            format!("{:?}", b.upstream_cors_headers).to_ascii_lowercase(),
        ),
        setting(
            "mode",
            format!("{:?}", a.mode).to_ascii_lowercase(),
            format!("{:?}", b.mode).to_ascii_lowercase(),
        ),
        list("tests.allow", &a.tests.allow, &b.tests.allow, false),
        list("tests.deny", &a.tests.deny, &b.tests.deny, false),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Every place a policy is bound, keyed by a readable location.
fn bindings(c: &Config) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    out.insert("global".to_owned(), c.cors.clone());
    for vs in &c.vservices {
        let at = format!("vservice {}", vs.name);
        out.insert(at.clone(), vs.cors.clone());
        for (h, p) in &vs.host_cors {
            out.insert(format!("{at} host {h}"), Some(p.clone()));
        }
        for pc in &vs.path_cors {
            out.insert(format!("{at} path {}", pc.prefix), Some(pc.cors.clone()));
        }
        for (i, r) in vs.rules.iter().enumerate() {
            out.insert(format!("{at} rule {}", rule_name(i, r)), r.cors.clone());
        }
    }
    out
}

fn rule_name(i: usize, r: &Rule) -> String {
    r.name.clone().unwrap_or_else(|| format!("rule-{i}"))
}

/// The semantic diff from `old` to `new`.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let mut d = ConfigDiff::default();
    for (name, a) in &old.policies {
        match new.policies.get(name) {
            None => d
                .policies
                .push(PolicyChange::Removed { name: name.clone() }),
            Some(b) => {
                let fields = policy_fields(a, b);
                if !fields.is_empty() {
                    d.policies.push(PolicyChange::Changed {
                        name: name.clone(),
                        fields,
                    });
                }
            }
        }
    }
    for name in new.policies.keys() {
        if !old.policies.contains_key(name) {
            d.policies.push(PolicyChange::Added { name: name.clone() });
        }
    }
    let (a, b) = (bindings(old), bindings(new));
    for (at, from) in &a {
        let to = b.get(at).cloned().flatten();
        if *from != to {
            d.bindings.push(BindingChange {
                at: at.clone(),
                from: from.clone(),
                to,
            });
        }
    }
    for (at, to) in &b {
        if !a.contains_key(at) && to.is_some() {
            d.bindings.push(BindingChange {
                at: at.clone(),
                from: None,
                to: to.clone(),
            });
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        serde_yaml_ng::from_str(yaml).expect("test config")
    }

    #[test]
    fn an_added_origin_and_a_credentials_flip_are_named() {
        let old = config(
            "policies:\n  p:\n    allowOrigins: [https://a.example]\n    maxAge: 60\nvservices:\n  - { name: api, listen: \"127.0.0.1:0\", cors: p, rules: [{ name: r, cors: p, direct: { status: 200 } }] }\n",
        );
        let new = config(
            "policies:\n  p:\n    allowOrigins: [https://a.example, https://b.example]\n    allowCredentials: true\n    maxAge: 60\n  q:\n    allowOrigins: [https://q.example]\nvservices:\n  - { name: api, listen: \"127.0.0.1:0\", cors: p, rules: [{ name: r, cors: q, direct: { status: 200 } }] }\n",
        );
        let d = diff(&old, &new);
        assert_eq!(
            d.policies,
            [
                PolicyChange::Changed {
                    name: "p".into(),
                    fields: vec![
                        FieldChange {
                            field: "allowOrigins",
                            added: vec!["https://b.example".into()],
                            removed: vec![],
                            from: None,
                            to: None
                        },
                        FieldChange {
                            field: "allowCredentials",
                            added: vec![],
                            removed: vec![],
                            from: Some("false".into()),
                            to: Some("true".into())
                        },
                    ]
                },
                PolicyChange::Added { name: "q".into() },
            ]
        );
        assert_eq!(
            d.bindings,
            [BindingChange {
                at: "vservice api rule r".into(),
                from: Some("p".into()),
                to: Some("q".into())
            }]
        );
        assert!(diff(&new, &new).is_empty());
    }
}
