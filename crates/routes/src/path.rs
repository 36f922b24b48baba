//! Request paths: prefix conditions on segment boundaries, and the path
//! replacements of rewrites and redirects.

/// A path replacement, compiled.
#[derive(Debug, Clone)]
pub enum PathChange {
    /// Replace the whole path.
    Full(String),
    /// Replace the matched prefix `matched` with `with`.
    Prefix {
        /// The rule's prefix condition.
        matched: String,
        /// Its replacement.
        with: String,
    },
}

impl PathChange {
    /// The new path for `path` (which the rule matched). The compiler
    /// admits only replacements that are request paths themselves, so the
    /// result of a path the rule matched is one too.
    pub fn apply(&self, path: &str) -> String {
        match self {
            PathChange::Full(p) => p.clone(),
            PathChange::Prefix { matched, with } => {
                let rest = path
                    .get(matched.trim_end_matches('/').len()..)
                    .unwrap_or("");
                let with = with.trim_end_matches('/');
                match (with.is_empty(), rest.is_empty()) {
                    (true, true) => "/".to_owned(),
                    (true, false) => rest.to_owned(),
                    (false, _) => format!("{with}{rest}"),
                }
            }
        }
    }
}

/// Does `path` fall under `prefix` on a segment boundary?
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    let p = prefix.trim_end_matches('/');
    if p.is_empty() {
        return true;
    }
    path == p || (path.starts_with(p) && path.as_bytes().get(p.len()) == Some(&b'/'))
}

/// Why `p` is not an absolute request path (a path condition, a
/// `pathCors` prefix, a replacement), or `None` when it is one. A condition
/// that is not one never matches; a replacement that is not one cannot be
/// sent, and used to be dropped for the original path.
pub(crate) fn not_a_request_path(p: &str) -> Option<&'static str> {
    if !p.starts_with('/') {
        return Some("a path starts with /");
    }
    if p.contains(['?', '#']) {
        return Some("a path has no query or fragment");
    }
    match http::uri::PathAndQuery::try_from(p) {
        Ok(_) => None,
        Err(_) => Some("not a valid request path (spaces and control characters are percent-encoded in a path)"),
    }
}

/// Why a path condition (`exact`, `prefix`, a `pathCors` prefix) could
/// never match, or `None`: requests are routed on their normalised path
/// (RFC 3986 §6, docs/security.md), so a condition that is not in that form
/// would silently match nothing.
pub(crate) fn not_normal(p: &str) -> Option<String> {
    if p.contains("//") {
        return Some(format!(
            "{p:?} never matches: repeated slashes are merged before routing; write {:?}",
            merge_slashes(p)
        ));
    }
    if p.split('/').any(|s| s == "." || s == "..") {
        return Some(format!(
            "{p:?} never matches: dot segments are removed before routing; write the path they stand for"
        ));
    }
    let b = p.as_bytes();
    for i in 0..b.len() {
        if b[i] != b'%' {
            continue;
        }
        let (Some(&h), Some(&l)) = (b.get(i + 1), b.get(i + 2)) else {
            continue;
        };
        let (Some(hv), Some(lv)) = (hex(h), hex(l)) else {
            continue;
        };
        let c = hv << 4 | lv;
        if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
            return Some(format!(
                "{p:?} never matches: %{}{} is decoded to {:?} before routing; write it decoded",
                h as char, l as char, c as char
            ));
        }
        if h.is_ascii_lowercase() || l.is_ascii_lowercase() {
            return Some(format!(
                "{p:?} never matches: escapes are upper-cased before routing; write %{}{}",
                h.to_ascii_uppercase() as char,
                l.to_ascii_uppercase() as char
            ));
        }
    }
    None
}

fn merge_slashes(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        let cases = [
            ("/admin", "/admin", true),
            ("/admin", "/admin/x", true),
            ("/admin/", "/admin/x", true),
            ("/admin", "/administrator", false),
            ("/", "/anything", true),
            ("/a/b", "/a", false),
        ];
        for (prefix, path, want) in cases {
            assert_eq!(prefix_matches(prefix, path), want, "{prefix} {path}");
        }
    }

    #[test]
    fn request_paths() {
        let cases = [
            ("/", true),
            ("/a/b%20c", true),
            ("/a b", false),
            ("a/b", false),
            ("", false),
            ("/a?x=1", false),
            ("/a#f", false),
            ("/caf\u{e9}", true),
            ("/a\tb", false),
        ];
        for (p, ok) in cases {
            assert_eq!(not_a_request_path(p).is_none(), ok, "{p:?}");
        }
    }
}
