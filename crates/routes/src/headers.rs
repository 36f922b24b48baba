//! Header changes of a rule (the Gateway API's `RequestHeaderModifier` and
//! `ResponseHeaderModifier`), with names and values parsed at load time.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Header changes, compiled.
#[derive(Debug, Default)]
pub struct HeaderChanges {
    pub(crate) set: Vec<(HeaderName, HeaderValue)>,
    pub(crate) add: Vec<(HeaderName, HeaderValue)>,
    pub(crate) remove: Vec<HeaderName>,
}

impl HeaderChanges {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Apply: remove, then set, then add (the Gateway API's order does not
    /// matter as long as a name appears in one list only, which is the
    /// Gateway API's own rule).
    pub fn apply(&self, headers: &mut HeaderMap) {
        for n in &self.remove {
            headers.remove(n);
        }
        for (n, v) in &self.set {
            headers.insert(n.clone(), v.clone());
        }
        for (n, v) in &self.add {
            headers.append(n.clone(), v.clone());
        }
    }
}
