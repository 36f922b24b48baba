//! A policy's own tests (`tests: { allow: [...], deny: [...] }`), run at
//! load time against the compiled matcher, so they test exactly what
//! requests will meet.

use crate::explain::OriginVerdict;
use crate::policy::Policy;
use std::fmt;

/// One failed policy test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestFailure {
    /// Where, relative to the policy (`tests.allow[1]`).
    pub at: String,
    /// The origin tested.
    pub origin: String,
    /// What happened instead, with near misses when an allow test failed.
    pub reason: String,
}

impl fmt::Display for TestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "policy test {}: {:?} {}",
            self.at, self.origin, self.reason
        )
    }
}

impl Policy {
    /// Run the policy's tests; empty when they all pass.
    pub fn run_tests(&self) -> Vec<TestFailure> {
        let mut failures = Vec::new();
        for (i, origin) in self.spec.tests.allow.iter().enumerate() {
            let e = self.explain_origin(origin);
            let reason = match &e.verdict {
                OriginVerdict::Allowed { .. } => continue,
                OriginVerdict::NotCors => "is empty, not an origin".to_owned(),
                OriginVerdict::Invalid(why) => format!("is not a valid origin ({why})"),
                OriginVerdict::NullNotAllowed => {
                    "must be allowed but `null` is refused (allowNullOrigin is off)".to_owned()
                }
                OriginVerdict::NotAllowed => {
                    let mut r = "must be allowed but no entry matches it".to_owned();
                    for m in &e.near_misses {
                        r.push_str(&format!("; near miss: {} {}", m.entry, m.reason));
                    }
                    r
                }
            };
            failures.push(TestFailure {
                at: format!("tests.allow[{i}]"),
                origin: origin.clone(),
                reason,
            });
        }
        for (i, origin) in self.spec.tests.deny.iter().enumerate() {
            if let OriginVerdict::Allowed { entry, .. } = self.explain_origin(origin).verdict {
                failures.push(TestFailure {
                    at: format!("tests.deny[{i}]"),
                    origin: origin.clone(),
                    reason: format!("must be refused but is allowed by {entry}"),
                });
            }
        }
        failures
    }
}
