//! A compiled rule: its conditions, policy, action and header changes, and
//! how a request is matched against it (R17 for preflights).

use crate::action::Action;
use crate::headers::HeaderChanges;
use crate::host::HostPattern;
use crate::path::prefix_matches;
use crate::vservice::RequestFacts;
use corsgate_policy::{Policy, RequestFields};
use http::header::{ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD};
use http::{HeaderName, Method};
use regex::Regex;
use std::sync::Arc;

#[derive(Debug)]
pub(crate) enum PathCond {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

#[derive(Debug)]
pub(crate) enum HeaderCond {
    Present(HeaderName),
    Equals(HeaderName, String),
    Regex(HeaderName, Regex),
}

#[derive(Debug)]
pub(crate) struct QueryCond {
    pub(crate) name: String,
    pub(crate) value: Option<String>,
    pub(crate) regex: Option<Regex>,
}

/// A compiled rule.
#[derive(Debug)]
pub struct CompiledRule {
    /// Position in the vService's rules.
    pub index: usize,
    /// Name for logs.
    pub name: String,
    pub(crate) hosts: Vec<HostPattern>,
    pub(crate) path: Option<PathCond>,
    pub(crate) methods: Vec<Method>,
    pub(crate) headers: Vec<HeaderCond>,
    pub(crate) query: Vec<QueryCond>,
    /// The rule's own policy.
    pub cors: Option<Arc<Policy>>,
    /// What to do.
    pub action: Action,
    /// Request header changes before forwarding.
    pub request_headers: HeaderChanges,
    /// Response header changes, before CORS completion.
    pub response_headers: HeaderChanges,
}

fn query_has(query: Option<&str>, q: &QueryCond) -> bool {
    query.is_some_and(|qs| {
        qs.split('&').any(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            k == q.name
                && q.value.as_deref().is_none_or(|want| want == v)
                && q.regex.as_ref().is_none_or(|re| re.is_match(v))
        })
    })
}

impl CompiledRule {
    pub(crate) fn matches<H: RequestFields + ?Sized>(&self, r: &RequestFacts<'_, H>) -> bool {
        if !self.hosts.is_empty() && !self.hosts.iter().any(|h| h.matches(r.host)) {
            return false;
        }
        match &self.path {
            None => {}
            Some(PathCond::Exact(p)) if p != r.path => return false,
            Some(PathCond::Prefix(p)) if !prefix_matches(p, r.path) => return false,
            Some(PathCond::Regex(re)) if !re.is_match(r.path) => return false,
            Some(_) => {}
        }
        if !self.methods.is_empty() {
            // R17: a preflight is matched as the request it announces.
            let ok = if r.preflight {
                let acrm = r
                    .headers
                    .first_value(&ACCESS_CONTROL_REQUEST_METHOD)
                    .map(|v| v.as_bytes())
                    .unwrap_or_default();
                self.methods.iter().any(|m| m.as_str().as_bytes() == acrm)
            } else {
                self.methods.contains(r.method)
            };
            if !ok {
                return false;
            }
        }
        for h in &self.headers {
            let ok = if r.preflight {
                match h {
                    HeaderCond::Present(name) => acrh_names(r.headers)
                        .any(|n| n.eq_ignore_ascii_case(name.as_str().as_bytes())),
                    // The preflight cannot carry the value: "could match".
                    HeaderCond::Equals(..) | HeaderCond::Regex(..) => true,
                }
            } else {
                match h {
                    HeaderCond::Present(name) => r.headers.has(name),
                    HeaderCond::Equals(name, v) => {
                        r.headers.values(name).any(|x| x.as_bytes() == v.as_bytes())
                    }
                    HeaderCond::Regex(name, re) => r
                        .headers
                        .values(name)
                        .any(|x| x.to_str().is_ok_and(|s| re.is_match(s))),
                }
            };
            if !ok {
                return false;
            }
        }
        self.query.iter().all(|q| query_has(r.query, q))
    }
}

fn acrh_names<H: RequestFields + ?Sized>(headers: &H) -> impl Iterator<Item = &[u8]> {
    headers
        .values(&ACCESS_CONTROL_REQUEST_HEADERS)
        .flat_map(|v| v.as_bytes().split(|&c| c == b','))
        .map(|n| n.trim_ascii())
        .filter(|n| !n.is_empty())
}
