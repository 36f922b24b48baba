//! What a configuration change takes away from browsers.
//!
//! Browsers cache a successful preflight for the `Access-Control-Max-Age` it
//! carried (Chromium caps it at 7200 s), so removing an origin, a method or
//! a header, or turning credentials off, does not reach a browser that
//! cached the old answer until that time has passed. A reload that tightens
//! a policy says so, with the time.

use crate::Config;
use corsgate_policy::PolicySpec;
use std::fmt;

/// Chromium's cap on a preflight cache entry, in seconds. Firefox allows up
/// to 86400; corsgate reports Chromium's, the most common browser's, and
/// documents the difference.
pub const BROWSER_MAX_AGE_CAP: u64 = corsgate_policy::CHROMIUM_MAX_AGE_CAP.unsigned_abs();

/// One way a policy got narrower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tightening {
    /// Policy name.
    pub policy: String,
    /// What was taken away (`origin https://a.example removed`).
    pub what: String,
    /// How long browsers may keep using the old preflight answer:
    /// `min(old maxAge, 7200)` seconds.
    pub browser_cache_secs: u64,
}

impl fmt::Display for Tightening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "policy {}: {}; browsers may keep the old preflight result for up to {} s",
            self.policy, self.what, self.browser_cache_secs
        )
    }
}

fn cache_secs(old: &PolicySpec) -> u64 {
    old.max_age
        .unwrap_or(corsgate_policy::DEFAULT_MAX_AGE)
        .max(0)
        .unsigned_abs()
        .min(BROWSER_MAX_AGE_CAP)
}

/// Every tightening from `old` to `new`, policy by policy (by name). A
/// policy that disappears counts as tightening everything it allowed.
pub fn tightenings(old: &Config, new: &Config) -> Vec<Tightening> {
    let mut out = Vec::new();
    for (name, before) in &old.policies {
        let secs = cache_secs(before);
        let mut push = |what: String| {
            out.push(Tightening {
                policy: name.clone(),
                what,
                browser_cache_secs: secs,
            })
        };
        let Some(after) = new.policies.get(name) else {
            push("policy removed".into());
            continue;
        };
        let removed = |a: &[String], b: &[String], fold: bool| -> Vec<String> {
            a.iter()
                .filter(|x| {
                    !b.iter().any(|y| {
                        if fold {
                            x.eq_ignore_ascii_case(y)
                        } else {
                            x == &y
                        }
                    })
                })
                .cloned()
                .collect()
        };
        for o in removed(&before.allow_origins, &after.allow_origins, false) {
            push(format!("origin {o} removed"));
        }
        for o in removed(
            &before.allow_origin_regexes,
            &after.allow_origin_regexes,
            false,
        ) {
            push(format!("origin regex {o} removed"));
        }
        for m in removed(&before.allow_methods, &after.allow_methods, false) {
            push(format!("method {m} removed"));
        }
        for h in removed(&before.allow_headers, &after.allow_headers, true) {
            push(format!("header {h} removed"));
        }
        if before.allow_credentials && !after.allow_credentials {
            push("credentials turned off".into());
        }
        if before.allow_private_network && !after.allow_private_network {
            push("private network access turned off".into());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        serde_yaml_ng::from_str(yaml).expect("test config parses")
    }

    #[test]
    fn narrowing_is_reported_with_the_browser_cache_time() {
        let old = config(
            "policies:\n  p:\n    allowOrigins: [https://a.example, https://b.example]\n    allowMethods: [GET, PUT]\n    allowHeaders: [X-One]\n    allowCredentials: true\n    maxAge: 86400\n  q:\n    allowOrigins: [https://q.example]\n",
        );
        let new = config(
            "policies:\n  p:\n    allowOrigins: [https://a.example]\n    allowMethods: [GET]\n    allowHeaders: [x-one]\n    maxAge: 60\n",
        );
        let t = tightenings(&old, &new);
        let whats: Vec<_> = t
            .iter()
            .map(|t| (t.policy.as_str(), t.what.as_str()))
            .collect();
        assert_eq!(
            whats,
            [
                ("p", "origin https://b.example removed"),
                ("p", "method PUT removed"),
                ("p", "credentials turned off"),
                ("q", "policy removed"),
            ]
        );
        // The old answer was cached with maxAge 86400, capped at 7200; q
        // had no maxAge, so browsers used the 5 s default.
        assert_eq!(t[0].browser_cache_secs, 7200);
        assert_eq!(t[3].browser_cache_secs, 5);
    }

    #[test]
    fn widening_is_not_tightening() {
        let old = config("policies:\n  p:\n    allowOrigins: [https://a.example]\n");
        let new = config(
            "policies:\n  p:\n    allowOrigins: [https://a.example, https://b.example]\n    allowCredentials: true\n",
        );
        assert!(tightenings(&old, &new).is_empty());
    }
}
