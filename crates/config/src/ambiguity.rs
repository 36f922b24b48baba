//! `L-PREFLIGHT-AMBIGUOUS`: rules whose preflights another rule answers.

use crate::{ConfigLint, Rule, VService};
use corsgate_policy::Lint;

/// `L-PREFLIGHT-AMBIGUOUS` (R17): a preflight cannot carry header *values*,
/// so a rule with a header value or regex condition "could match" every
/// preflight for its host, path, methods and query. A later rule with the
/// same host, path, method and query conditions but another policy then
/// never answers preflights: the earlier rule's policy does.
pub(crate) fn preflight_ambiguity(vi: usize, vs: &VService) -> Vec<ConfigLint> {
    let mut out = Vec::new();
    for (j, later) in vs.rules.iter().enumerate() {
        let shadowed_by = vs.rules[..j].iter().position(|earlier| {
            earlier.cors != later.cors
                && earlier
                    .matches
                    .headers
                    .iter()
                    .any(|h| h.value.is_some() || h.regex.is_some())
                && earlier.matches.hosts == later.matches.hosts
                && earlier.matches.path == later.matches.path
                && earlier.matches.methods == later.matches.methods
                && earlier.matches.query == later.matches.query
        });
        if let Some(i) = shadowed_by {
            let name = |r: &Rule| r.cors.clone().unwrap_or_else(|| "(inherited)".into());
            out.push(ConfigLint {
                path: format!("vservices[{vi}].rules[{j}]"),
                file: None,
                location: None,
                snippet: None,
                lint: Lint {
                    id: corsgate_policy::LintId::PreflightAmbiguous,
                    severity: corsgate_policy::Severity::Warn,
                    at: corsgate_policy::FieldPath {
                        field: "rules",
                        index: Some(j),
                    },
                    message: format!(
                        "preflights for this rule's requests are matched by rules[{i}] first \
                         (its header value conditions cannot be checked on a preflight), so \
                         policy {:?} answers them instead of {:?}",
                        name(&vs.rules[i]),
                        name(later)
                    ),
                    fix: "distinguish the rules by path, method or a header-presence condition, \
                          or give them the same policy"
                        .into(),
                },
            });
        }
    }
    out
}
