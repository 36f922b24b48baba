//! Precedence of generated rules, as the Gateway API orders them
//! (HTTPRoute `rules` documentation): across every route attached to a
//! listener, matches are ordered by hostname specificity (exact, then
//! longer wildcard), then exact path, then longest prefix, then a method
//! match, then the number of header matches, then the number of query
//! matches; ties go to the oldest route (`metadata.creationTimestamp`),
//! then `namespace/name` alphabetically, then rule and match order.
//!
//! The native configuration is first-match in order, so sorting by this
//! key is how the Gateway API's order is kept.

use super::route::Route;
use crate::{Match, PathMatch};

/// Precedence key of one generated rule (smaller sorts first).
pub(super) type Key = (u8, i64, u8, i64, u8, i64, i64, String, String, usize, usize);

/// The key of a rule generated for `host` from match `mi` of rule `ri`.
pub(super) fn key(host: Option<&str>, m: &Match, route: &Route, ri: usize, mi: usize) -> Key {
    let len = |s: &str| -i64::try_from(s.len()).unwrap_or(i64::MAX);
    let (hk, hl) = match host {
        Some(h) if h.starts_with("*.") => (1, len(h)),
        Some(h) => (0, len(h)),
        None => (2, 0),
    };
    let (pk, pl) = match &m.path {
        Some(PathMatch { exact: Some(p), .. }) => (0, len(p)),
        Some(PathMatch {
            prefix: Some(p), ..
        }) => (1, len(p)),
        _ => (2, 0),
    };
    let count = |n: usize| -i64::try_from(n).unwrap_or(i64::MAX);
    (
        hk,
        hl,
        pk,
        pl,
        u8::from(m.methods.is_empty()),
        count(m.headers.len()),
        count(m.query.len()),
        route.created.clone(),
        format!("{}/{}", route.namespace, route.name),
        ri,
        mi,
    )
}
