//! A compiled vService and policy selection (R16): which rule handles a
//! request, and which CORS binding is the most specific.

use crate::host::HostPattern;
use crate::index::RuleIndex;
use crate::path::prefix_matches;
use crate::rule::CompiledRule;
use corsgate_policy::{Policy, RequestFields};
use http::{HeaderMap, Method};
use std::sync::Arc;

/// A compiled vService.
#[derive(Debug)]
pub struct CompiledVService {
    /// Name.
    pub name: String,
    /// Listen address as configured.
    pub listen: String,
    pub(crate) hostnames: Vec<HostPattern>,
    pub(crate) cors: Option<Arc<Policy>>,
    pub(crate) cors_is_global: bool,
    pub(crate) host_cors: Vec<(HostPattern, Arc<Policy>)>,
    pub(crate) path_cors: Vec<(String, Arc<Policy>)>,
    /// Rules in order.
    pub rules: Vec<CompiledRule>,
    pub(crate) index: RuleIndex,
    /// Request size, time and connection limits.
    pub limits: corsgate_config::Limits,
    /// How paths are normalised.
    pub paths: corsgate_config::Paths,
    /// TLS material, if the vService terminates TLS.
    pub tls: Option<corsgate_config::Tls>,
}

/// The request facts the router looks at. The fields are any
/// [`RequestFields`]: an `http::HeaderMap`, or the list corsgate's HTTP/1.1
/// front reads.
pub struct RequestFacts<'a, H: RequestFields + ?Sized = HeaderMap> {
    /// Method.
    pub method: &'a Method,
    /// Host without port, lower case.
    pub host: &'a str,
    /// Path.
    pub path: &'a str,
    /// Raw query, if any.
    pub query: Option<&'a str>,
    /// Header fields.
    pub headers: &'a H,
    /// Is this a CORS preflight (R8)?
    pub preflight: bool,
}

/// The router's answer.
pub struct Selection<'a> {
    /// The matched rule, if any.
    pub rule: Option<&'a CompiledRule>,
    /// The CORS policy in scope, if any.
    pub policy: Option<&'a Arc<Policy>>,
    /// Which binding chose it (R16).
    pub binding: Binding<'a>,
    /// Is the host served by this vService at all?
    pub host_served: bool,
}

/// Which binding selected the policy (R16: the most specific applies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding<'a> {
    /// The matched rule's `cors`.
    Rule,
    /// The longest matching `pathCors` prefix.
    Path(&'a str),
    /// A `hostCors` entry.
    Host,
    /// The vService's `cors`.
    VService,
    /// The configuration's global `cors`.
    Global,
    /// No policy: CORS is not applied.
    None,
}

impl std::fmt::Display for Binding<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Binding::Rule => f.write_str("bound to the matched rule"),
            Binding::Path(p) => write!(f, "bound to path prefix {p} (pathCors)"),
            Binding::Host => f.write_str("bound to the request host (hostCors)"),
            Binding::VService => f.write_str("bound to the vService"),
            Binding::Global => f.write_str("the global policy (top-level cors)"),
            Binding::None => f.write_str("no policy is bound at any level"),
        }
    }
}

impl CompiledVService {
    /// Does this vService serve `host` (no `hostnames`: every host)?
    pub fn serves_host(&self, host: &str) -> bool {
        self.hostnames.is_empty() || self.hostnames.iter().any(|h| h.matches(host))
    }

    /// Route a request and select its CORS policy.
    pub fn select<H: RequestFields + ?Sized>(&self, r: &RequestFacts<'_, H>) -> Selection<'_> {
        let host_served = self.serves_host(r.host);
        let rule = if host_served {
            self.index
                .first(r.path, |i| self.rules[i].matches(r))
                .map(|i| &self.rules[i])
        } else {
            None
        };
        let (policy, binding) = if let Some(p) = rule.and_then(|rule| rule.cors.as_ref()) {
            (Some(p), Binding::Rule)
        } else if let Some((prefix, p)) = self
            .path_cors
            .iter()
            .filter(|(p, _)| prefix_matches(p, r.path))
            .max_by_key(|(p, _)| p.len())
        {
            (Some(p), Binding::Path(prefix.as_str()))
        } else if let Some((_, p)) = self.host_cors.iter().find(|(h, _)| h.matches(r.host)) {
            (Some(p), Binding::Host)
        } else if let Some(p) = &self.cors {
            let b = if self.cors_is_global {
                Binding::Global
            } else {
                Binding::VService
            };
            (Some(p), b)
        } else {
            (None, Binding::None)
        };
        Selection {
            rule,
            policy,
            binding,
            host_served,
        }
    }
}
