//! The "why" behind decisions, computed only on request (for `explain`,
//! logs and diagnostics), so the per-request path stays cheap. Rule and
//! browser-fact numbers (R9, F5) are rows of `docs/rules.md`.

use crate::matcher::{MatchedBy, OriginEntry};
use crate::origin::{parse_origin, RequestOrigin, SerializedOrigin};
use crate::policy::{AllowList, Policy};
use std::fmt;

/// What the policy makes of one origin value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginVerdict {
    /// No origin: not a CORS request.
    NotCors,
    /// Allowed; `acao` is what the gateway writes.
    Allowed {
        /// Which source matched.
        by: MatchedBy,
        /// The configuration text that matched.
        entry: String,
        /// The `Access-Control-Allow-Origin` value.
        acao: String,
    },
    /// Not canonical; never matched (R9).
    Invalid(crate::origin::InvalidOrigin),
    /// `null` without an explicit allowance.
    NullNotAllowed,
    /// A canonical origin that no entry matches.
    NotAllowed,
}

/// A configured entry the origin almost matched, and how it differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NearMiss {
    /// The entry as configured (`allowOrigins[i] "…"`).
    pub entry: String,
    /// How the origin differs from it.
    pub reason: String,
}

/// The full explanation of an origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginExplanation {
    /// The origin as given.
    pub origin: String,
    /// The verdict.
    pub verdict: OriginVerdict,
    /// Entries it nearly matched (only when not allowed).
    pub near_misses: Vec<NearMiss>,
}

/// Something the browser will refuse in a preflighted request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestProblem {
    /// The method is not in `allowMethods` (and not safelisted).
    MethodNotAllowed {
        /// The method as the browser sends it.
        method: String,
        /// The entry that differs only by case, if any.
        case_variant: Option<String>,
    },
    /// A request header is not in `allowHeaders`.
    HeaderNotAllowed {
        /// The lower-cased name.
        name: String,
    },
    /// The request is credentialed but the policy does not allow credentials.
    CredentialsNotAllowed,
}

impl fmt::Display for RequestProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestProblem::MethodNotAllowed {
                method,
                case_variant: Some(v),
            } => write!(
                f,
                "method `{method}` is not in allowMethods (`{v}` is, but methods are \
                 case-sensitive)"
            ),
            RequestProblem::MethodNotAllowed { method, .. } => {
                write!(f, "method `{method}` is not in allowMethods")
            }
            RequestProblem::HeaderNotAllowed { name } => {
                write!(f, "`{name}` is not in allowHeaders")
            }
            RequestProblem::CredentialsNotAllowed => f.write_str(
                "credentialed request but the policy does not allow credentials \
                 (no Access-Control-Allow-Credentials: true)",
            ),
        }
    }
}

impl Policy {
    /// Explain what the policy makes of an `Origin` value, with near misses.
    pub fn explain_origin(&self, origin: &str) -> OriginExplanation {
        let parsed = parse_origin(origin);
        let verdict = match parsed {
            RequestOrigin::Absent => OriginVerdict::NotCors,
            RequestOrigin::Invalid(why) => OriginVerdict::Invalid(why),
            RequestOrigin::Null | RequestOrigin::Valid(_) => {
                let mut h = http::HeaderMap::new();
                match http::HeaderValue::from_str(origin) {
                    Ok(v) => {
                        h.insert(http::header::ORIGIN, v);
                    }
                    Err(_) => {
                        return OriginExplanation {
                            origin: origin.to_owned(),
                            verdict: OriginVerdict::Invalid(crate::InvalidOrigin::NonAscii),
                            near_misses: Vec::new(),
                        }
                    }
                }
                let completion = self.actual(&h);
                match completion.outcome {
                    crate::ActualOutcome::Allowed(by) => OriginVerdict::Allowed {
                        by,
                        entry: self.describe_match(by),
                        acao: completion
                            .allow_origin()
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned(),
                    },
                    crate::ActualOutcome::Refused(crate::Refusal::NullOrigin) => {
                        OriginVerdict::NullNotAllowed
                    }
                    _ => OriginVerdict::NotAllowed,
                }
            }
        };
        let near_misses = match (&verdict, parsed) {
            (OriginVerdict::NotAllowed, RequestOrigin::Valid(o)) => self.near_misses(&o),
            (OriginVerdict::Invalid(_), _) => self.canonical_hint(origin),
            _ => Vec::new(),
        };
        OriginExplanation {
            origin: origin.to_owned(),
            verdict,
            near_misses,
        }
    }

    fn near_misses(&self, o: &SerializedOrigin<'_>) -> Vec<NearMiss> {
        let mut out = Vec::new();
        for (i, e) in &self.entries {
            let entry = format!("allowOrigins[{i}] {:?}", self.spec.allow_origins[*i]);
            let scheme_port = |scheme: crate::Scheme, port: u16| {
                if scheme != o.scheme {
                    Some(format!(
                        "differs by scheme: allowed {scheme}, got {}",
                        o.scheme
                    ))
                } else if port != o.port {
                    Some(format!("differs by port: allowed {port}, got {}", o.port))
                } else {
                    None
                }
            };
            let reason = match e {
                OriginEntry::Any => None,
                OriginEntry::Exact {
                    scheme, host, port, ..
                } => {
                    if host == o.host {
                        scheme_port(*scheme, *port)
                    } else if o.host.ends_with(&format!(".{host}")) {
                        Some(format!(
                            "is a subdomain of {host}; an exact entry matches only that host \
                             (use {scheme}://*.{host})"
                        ))
                    } else {
                        None
                    }
                }
                OriginEntry::Subdomain {
                    scheme,
                    suffix,
                    port,
                } => {
                    if o.host == suffix {
                        Some(format!(
                            "`*.{suffix}` never matches the bare domain {suffix}; list \
                             {scheme}://{suffix} too"
                        ))
                    } else if o.host.ends_with(&format!(".{suffix}")) {
                        scheme_port(*scheme, *port)
                    } else if o.host.ends_with(suffix.as_str()) {
                        Some(format!(
                            "ends with `{suffix}` but not at a label boundary (`.{suffix}`)"
                        ))
                    } else {
                        None
                    }
                }
                OriginEntry::AnyHost { scheme, port } => scheme_port(*scheme, *port),
            };
            if let Some(reason) = reason {
                out.push(NearMiss { entry, reason });
            }
        }
        out
    }

    /// For a non-canonical origin: would its canonical form have matched?
    fn canonical_hint(&self, origin: &str) -> Vec<NearMiss> {
        let mut c = origin.trim().to_ascii_lowercase();
        if c.ends_with('/') {
            c.pop();
        }
        for (scheme, port) in [("https://", ":443"), ("http://", ":80")] {
            if c.starts_with(scheme) && c.ends_with(port) {
                c.truncate(c.len() - port.len());
            }
        }
        if c == origin {
            return Vec::new();
        }
        let mut h = http::HeaderMap::new();
        let Ok(v) = http::HeaderValue::from_str(&c) else {
            return Vec::new();
        };
        h.insert(http::header::ORIGIN, v);
        match self.actual(&h).outcome {
            crate::ActualOutcome::Allowed(by) => vec![NearMiss {
                entry: self.describe_match(by),
                reason: format!(
                    "would match if sent canonically as {c:?}; browsers always send the \
                     canonical form, so this request did not come from a browser"
                ),
            }],
            _ => Vec::new(),
        }
    }

    /// What a browser would refuse in a preflight for `method` with request
    /// headers `header_names`, given the policy's answer (F5, F6). Used by
    /// `explain`, and by `preflightValidation: strict` diagnostics.
    pub fn preflight_problems(
        &self,
        method: &str,
        header_names: &[&str],
        credentialed: bool,
    ) -> Vec<RequestProblem> {
        let mut out = Vec::new();
        if !self.method_allowed(method.as_bytes()) {
            let case_variant = match &self.methods {
                AllowList::List { items, .. } => items
                    .iter()
                    .find(|m| m.eq_ignore_ascii_case(method))
                    .map(|m| m.to_string()),
                _ => None,
            };
            out.push(RequestProblem::MethodNotAllowed {
                method: method.to_owned(),
                case_variant,
            });
        }
        for name in header_names {
            if !self.header_allowed(name.as_bytes()) {
                out.push(RequestProblem::HeaderNotAllowed {
                    name: name.to_ascii_lowercase(),
                });
            }
        }
        if credentialed && !self.credentials {
            out.push(RequestProblem::CredentialsNotAllowed);
        }
        out
    }
}
