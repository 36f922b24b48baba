//! The rule index: routing looks only at the rules whose path condition
//! can match the request's path, in rule order, so that first-match
//! semantics are those of a linear scan at the cost of a few lookups.

use crate::rule::{CompiledRule, PathCond};
use std::collections::HashMap;

/// Paths to rule lists, built once. Up to [`FEW_PATHS`] keys are compared
/// in a list (a length check rejects most at once), which is cheaper than
/// hashing the path; more go in a hash map, so thousands of rules cost one
/// hash per lookup. The keys come from the configuration and never change
/// after compilation, so a request's path is only looked up, never
/// inserted: a fast hash (foldhash, randomly seeded) gives an attacker
/// nothing to collide with, where SipHash cost ~190 instructions a lookup.
#[derive(Debug, Default)]
pub(crate) struct PathMap {
    pub(crate) few: Vec<(String, Vec<usize>)>,
    pub(crate) many: HashMap<String, Vec<usize>, foldhash::fast::RandomState>,
}

/// Most keys a [`PathMap`] compares in a list.
pub(crate) const FEW_PATHS: usize = 8;

impl PathMap {
    fn push(&mut self, path: String, rule: usize) {
        if let Some((_, rules)) = self.few.iter_mut().find(|(p, _)| *p == path) {
            rules.push(rule);
        } else if let Some(rules) = self.many.get_mut(&path) {
            rules.push(rule);
        } else if self.many.is_empty() && self.few.len() < FEW_PATHS {
            self.few.push((path, vec![rule]));
        } else {
            // Past the list's size everything moves to the map.
            self.many.extend(self.few.drain(..));
            self.many.insert(path, vec![rule]);
        }
    }

    fn get(&self, path: &str) -> Option<&Vec<usize>> {
        if self.many.is_empty() {
            self.few.iter().find(|(p, _)| p == path).map(|(_, r)| r)
        } else {
            self.many.get(path)
        }
    }

    fn is_empty(&self) -> bool {
        self.few.is_empty() && self.many.is_empty()
    }
}

/// An index of rules by path condition, so that routing looks at the rules
/// that can match the request's path instead of scanning them all.
///
/// Exact paths are one lookup in a [`PathMap`]; prefixes are one lookup per segment
/// boundary of the request path; rules with a regex path or no path
/// condition are always candidates. Candidates are visited in rule order,
/// so first-match semantics are exactly those of a linear scan.
#[derive(Debug, Default)]
pub(crate) struct RuleIndex {
    exact: PathMap,
    pub(crate) prefix: PathMap,
    always: Vec<usize>,
    total: usize,
}

/// Paths deeper than this fall back to a linear scan (never seen in practice).
const MAX_INDEXED_DEPTH: usize = 30;

impl RuleIndex {
    pub(crate) fn build(rules: &[CompiledRule]) -> Self {
        let mut idx = RuleIndex {
            total: rules.len(),
            ..RuleIndex::default()
        };
        for (i, r) in rules.iter().enumerate() {
            match &r.path {
                Some(PathCond::Exact(p)) => idx.exact.push(p.clone(), i),
                Some(PathCond::Prefix(p)) if !p.trim_end_matches('/').is_empty() => {
                    idx.prefix.push(p.trim_end_matches('/').to_owned(), i)
                }
                _ => idx.always.push(i),
            }
        }
        idx
    }

    /// Visit candidate rule indices for `path` in ascending order until `f`
    /// returns true; returns that index.
    pub(crate) fn first(&self, path: &str, mut f: impl FnMut(usize) -> bool) -> Option<usize> {
        let mut lists: [&[usize]; MAX_INDEXED_DEPTH + 2] = [&[]; MAX_INDEXED_DEPTH + 2];
        let mut n = 0;
        lists[n] = &self.always;
        n += 1;
        if let Some(v) = (!self.exact.is_empty())
            .then(|| self.exact.get(path))
            .flatten()
        {
            lists[n] = v;
            n += 1;
        }
        if !self.prefix.is_empty() {
            // Every segment-boundary prefix of the path, and the path itself.
            let ends = path
                .match_indices('/')
                .map(|(i, _)| i)
                .filter(|&i| i > 0)
                .chain(std::iter::once(path.len()));
            for end in ends {
                if n == lists.len() {
                    // Too deep to index: scan every rule in order.
                    return (0..self.total).find(|&i| f(i));
                }
                if let Some(v) = self.prefix.get(&path[..end]) {
                    lists[n] = v;
                    n += 1;
                }
            }
        }
        let lists = &mut lists[..n];
        loop {
            // k-way merge: the smallest head among the candidate lists.
            let (li, &i) = lists
                .iter()
                .enumerate()
                .filter_map(|(li, l)| l.first().map(|i| (li, i)))
                .min_by_key(|(_, i)| **i)?;
            lists[li] = &lists[li][1..];
            // The same rule can only sit in one list, so no duplicates.
            if f(i) {
                return Some(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vservice::RequestFacts;
    use http::{HeaderMap, Method};

    /// The index must pick exactly the rule a linear scan would, with few
    /// paths (compared in a list) and with many (hashed).
    #[test]
    fn rule_index_agrees_with_a_linear_scan() {
        for padding in [0, FEW_PATHS + 2] {
            index_agrees_with_a_linear_scan(padding);
        }
    }

    fn index_agrees_with_a_linear_scan(padding: usize) {
        let mut yaml = String::from(
            "policies: {}\nvservices:\n  - name: v\n    listen: 127.0.0.1:0\n    rules:\n",
        );
        let mut paths: Vec<String> = ["/a", "/a/b", "/a/b/c", "/b", "/", "/a/bc", "/x/y"]
            .map(String::from)
            .to_vec();
        paths.extend((0..padding).map(|i| format!("/pad/{i}")));
        for (i, p) in paths.iter().enumerate() {
            yaml.push_str(&format!("      - {{ match: {{ path: {{ prefix: \"{p}\" }}, methods: [GET] }}, direct: {{ status: {} }} }}\n", 200 + i));
            yaml.push_str(&format!(
                "      - {{ match: {{ path: {{ exact: \"{p}\" }} }}, direct: {{ status: {} }} }}\n",
                300 + i
            ));
        }
        yaml.push_str(
            "      - { match: { path: { regex: \"/a/[0-9]+\" } }, direct: { status: 400 } }\n",
        );
        yaml.push_str("      - { match: { headers: [{ name: x-v }] }, direct: { status: 401 } }\n");
        let loaded = corsgate_config::load_str(&yaml, None).unwrap();
        let vs = &crate::compile(&loaded).unwrap()[0];
        assert_eq!(vs.index.prefix.many.is_empty(), padding == 0);
        let empty = HeaderMap::new();
        let mut with_header = HeaderMap::new();
        with_header.insert("x-v", http::HeaderValue::from_static("1"));
        for path in [
            "/",
            "/a",
            "/a/",
            "/a/b",
            "/a/b/c/d",
            "/a/bc",
            "/a/12",
            "/ab",
            "/b/x",
            "/x/y",
            "/x",
            "/zzz",
            "/pad/1",
            "/pad/11/x",
            "/pad",
        ] {
            for method in [Method::GET, Method::POST] {
                for headers in [&empty, &with_header] {
                    let facts = RequestFacts {
                        method: &method,
                        host: "h",
                        path,
                        query: None,
                        headers,
                        preflight: false,
                    };
                    let linear = vs.rules.iter().position(|r| r.matches(&facts));
                    let indexed = vs.select(&facts).rule.map(|r| r as *const _);
                    assert_eq!(
                        indexed,
                        linear.map(|i| &vs.rules[i] as *const _),
                        "{method} {path}"
                    );
                }
            }
        }
    }
}
