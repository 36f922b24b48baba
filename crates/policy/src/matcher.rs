//! Origin entries compiled once into an immutable matcher (R4, R10-R15 in
//! `docs/rules.md`).
//!
//! Per request the cost is: one hash lookup for exact entries (independent
//! of how many there are), one hash lookup per DNS label of the request host
//! for subdomain patterns, a short scan of bare-host `scheme://*` entries,
//! and one pass of a single multi-pattern automaton over all regexes.

use crate::origin::{Scheme, SerializedOrigin};
use regex_automata::{meta, Anchored, Input};
use std::collections::HashMap;
use std::sync::OnceLock;

/// An `allowOrigins` entry after canonicalisation (R4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginEntry {
    /// `*`: every valid origin (R11).
    Any,
    /// `scheme://host[:port]`, stored canonical (`https://a.test`).
    Exact {
        /// Canonical serialization: lower case, default port removed.
        canonical: String,
        /// Scheme.
        scheme: Scheme,
        /// Lower-case host.
        host: String,
        /// Effective port.
        port: u16,
    },
    /// `scheme://*.suffix[:port]` (R14).
    Subdomain {
        /// Scheme.
        scheme: Scheme,
        /// Lower-case suffix without the leading `*.`.
        suffix: String,
        /// Effective port.
        port: u16,
    },
    /// `scheme://*[:port]` (R15).
    AnyHost {
        /// Scheme.
        scheme: Scheme,
        /// Effective port.
        port: u16,
    },
}

impl OriginEntry {
    /// The canonical text of the entry.
    pub fn canonical(&self) -> String {
        fn port_suffix(scheme: Scheme, port: u16) -> String {
            if port == scheme.default_port() {
                String::new()
            } else {
                format!(":{port}")
            }
        }
        match self {
            OriginEntry::Any => "*".to_owned(),
            OriginEntry::Exact { canonical, .. } => canonical.clone(),
            OriginEntry::Subdomain {
                scheme,
                suffix,
                port,
            } => format!("{scheme}://*.{suffix}{}", port_suffix(*scheme, *port)),
            OriginEntry::AnyHost { scheme, port } => {
                format!("{scheme}://*{}", port_suffix(*scheme, *port))
            }
        }
    }

    /// Scheme of the entry, if it has one.
    pub fn scheme(&self) -> Option<Scheme> {
        match self {
            OriginEntry::Any => None,
            OriginEntry::Exact { scheme, .. }
            | OriginEntry::Subdomain { scheme, .. }
            | OriginEntry::AnyHost { scheme, .. } => Some(*scheme),
        }
    }
}

/// The Gateway API `CORSOrigin` pattern, verbatim from `shared_types.go`.
const CORS_ORIGIN_PATTERN: &str =
    r"(^\*$)|(^(http(s)?):\/\/(((\*\.)?([a-zA-Z0-9\-]+\.)*[a-zA-Z0-9-]+|\*)(:([0-9]{1,5}))?)$)";

fn cors_origin_regex() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    // The pattern is a constant that the tests compile; failure is impossible.
    RE.get_or_init(|| regex::Regex::new(CORS_ORIGIN_PATTERN).expect("constant CORSOrigin pattern"))
}

/// Why an `allowOrigins` entry is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryError {
    /// Outside the `CORSOrigin` pattern.
    Pattern,
    /// Port 0 or above 65535.
    Port,
}

/// Parse and canonicalise one `allowOrigins` entry (R3, R4).
pub fn parse_entry(text: &str) -> Result<OriginEntry, EntryError> {
    if !cors_origin_regex().is_match(text) {
        return Err(EntryError::Pattern);
    }
    if text == "*" {
        return Ok(OriginEntry::Any);
    }
    // The pattern guarantees `http(s)://` in lower case and an ASCII authority.
    let (scheme, rest) = match text.strip_prefix("https://") {
        Some(rest) => (Scheme::Https, rest),
        None => (
            Scheme::Http,
            text.strip_prefix("http://").ok_or(EntryError::Pattern)?,
        ),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => {
            // The pattern allows leading zeros ("08080"); canonicalise them.
            let n: u32 = p.parse().map_err(|_| EntryError::Port)?;
            if n == 0 || n > 65535 {
                return Err(EntryError::Port);
            }
            (h, n as u16)
        }
        None => (rest, scheme.default_port()),
    };
    let host = host.to_ascii_lowercase();
    if host == "*" {
        return Ok(OriginEntry::AnyHost { scheme, port });
    }
    if let Some(suffix) = host.strip_prefix("*.") {
        return Ok(OriginEntry::Subdomain {
            scheme,
            suffix: suffix.to_owned(),
            port,
        });
    }
    let canonical = if port == scheme.default_port() {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}:{port}")
    };
    Ok(OriginEntry::Exact {
        canonical,
        scheme,
        host,
        port,
    })
}

/// Which configured source allowed an origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchedBy {
    /// `allowOrigins: ["*"]`.
    AnyOrigin,
    /// An exact entry; the index is into `allowOrigins`.
    Exact(usize),
    /// A `*.suffix` entry; index into `allowOrigins`.
    Subdomain(usize),
    /// A `scheme://*` entry; index into `allowOrigins`.
    AnyHost(usize),
    /// A regex; index into `allowOriginRegexes`.
    Regex(usize),
    /// `allowNullOrigin: true`.
    NullOrigin,
}

/// The compiled matcher over all origin sources of one policy.
/// Maps keyed by configuration text. Only configuration inserts keys; a
/// request can only cause lookups, which cannot be flooded, so a fast
/// seeded hasher is safe here.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug)]
pub(crate) struct OriginMatcher {
    any: bool,
    /// Keyed by bytes so that a request's raw `Origin` value is looked up
    /// without a UTF-8 check first.
    exact: FastMap<Box<[u8]>, usize>,
    subdomains: FastMap<Box<str>, Vec<(Scheme, u16, usize)>>,
    any_host: Vec<(Scheme, u16, usize)>,
    regexes: Option<meta::Regex>,
    allow_null: bool,
}

impl OriginMatcher {
    /// Build from canonical entries (with their `allowOrigins` indices) and
    /// an already compiled regex automaton.
    pub(crate) fn new(
        entries: &[(usize, OriginEntry)],
        regexes: Option<meta::Regex>,
        allow_null: bool,
    ) -> Self {
        let mut m = OriginMatcher {
            any: false,
            exact: FastMap::default(),
            subdomains: FastMap::default(),
            any_host: Vec::new(),
            regexes,
            allow_null,
        };
        for (index, entry) in entries {
            match entry {
                OriginEntry::Any => m.any = true,
                OriginEntry::Exact { canonical, .. } => {
                    m.exact.entry(canonical.as_bytes().into()).or_insert(*index);
                }
                OriginEntry::Subdomain {
                    scheme,
                    suffix,
                    port,
                } => m
                    .subdomains
                    .entry(suffix.as_str().into())
                    .or_default()
                    .push((*scheme, *port, *index)),
                OriginEntry::AnyHost { scheme, port } => m.any_host.push((*scheme, *port, *index)),
            }
        }
        m
    }

    /// Is `*` configured?
    pub(crate) fn is_any(&self) -> bool {
        self.any
    }

    /// Is `null` explicitly allowed?
    pub(crate) fn allows_null(&self) -> bool {
        self.allow_null
    }

    /// Match the request's raw `Origin` text against the exact entries
    /// only. Exact entries are canonical (R9), so a request origin equal to
    /// one is valid and parses to itself: the caller may skip the parse.
    pub(crate) fn find_exact(&self, raw: &[u8]) -> Option<MatchedBy> {
        self.exact.get(raw).map(|&i| MatchedBy::Exact(i))
    }

    /// Match a canonical origin. `*` is checked by the caller, because what
    /// it means depends on credentials (R5, R11).
    pub(crate) fn find(&self, o: &SerializedOrigin<'_>) -> Option<MatchedBy> {
        if let Some(&i) = self.exact.get(o.raw.as_bytes()) {
            return Some(MatchedBy::Exact(i));
        }
        if !self.subdomains.is_empty() && !o.host.starts_with('[') {
            // Try every proper suffix that starts after a label boundary; a
            // non-empty label always precedes it because hosts have no empty
            // labels (R9), so the bare suffix itself is never tried (R14).
            let host = o.host.as_bytes();
            for (i, _) in host.iter().enumerate().filter(|(_, c)| **c == b'.') {
                let suffix = &o.host[i + 1..];
                if let Some(list) = self.subdomains.get(suffix) {
                    if let Some(&(_, _, idx)) =
                        list.iter().find(|(s, p, _)| *s == o.scheme && *p == o.port)
                    {
                        return Some(MatchedBy::Subdomain(idx));
                    }
                }
            }
        }
        if let Some(&(_, _, idx)) = self
            .any_host
            .iter()
            .find(|(s, p, _)| *s == o.scheme && *p == o.port)
        {
            return Some(MatchedBy::AnyHost(idx));
        }
        if let Some(re) = &self.regexes {
            let input = Input::new(o.raw).anchored(Anchored::Yes);
            if let Some(m) = re.search(&input) {
                return Some(MatchedBy::Regex(m.pattern().as_usize()));
            }
        }
        None
    }
}

/// Wrap a user regex so that it must match the whole origin (R13).
pub(crate) fn anchored(pattern: &str) -> String {
    let body = pattern.strip_prefix('^').unwrap_or(pattern);
    format!("^(?:{body})$")
}

/// Compile all regexes into one automaton. Each is anchored at both ends, so
/// the leftmost-first match (the default match kind) names the first
/// pattern that matches the whole origin.
pub(crate) fn compile_regex_set(patterns: &[String]) -> Result<meta::Regex, String> {
    let anchored: Vec<String> = patterns.iter().map(|p| anchored(p)).collect();
    meta::Regex::new_many(&anchored).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r3_cors_origin_pattern_compiles() {
        assert!(regex::Regex::new(CORS_ORIGIN_PATTERN).is_ok());
    }

    #[test]
    fn r4_entries_are_canonicalised() {
        let cases = [
            ("https://A.Example.COM", "https://a.example.com"),
            ("https://a.test:443", "https://a.test"),
            ("http://a.test:80", "http://a.test"),
            ("http://a.test:8080", "http://a.test:8080"),
            ("https://a.test:08443", "https://a.test:8443"),
            ("https://*.Bar.com", "https://*.bar.com"),
            ("https://*.bar.com:443", "https://*.bar.com"),
            ("http://*:8080", "http://*:8080"),
            ("https://*", "https://*"),
            ("*", "*"),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_entry(text).map(|e| e.canonical()),
                Ok(want.to_owned()),
                "{text}"
            );
        }
    }

    #[test]
    fn r3_entries_outside_the_cors_origin_pattern_are_refused() {
        let bad = [
            "null",
            "https://a.test/",
            "https://a.test/path",
            "https://u@a.test",
            "ftp://a.test",
            "HTTPS://a.test",
            "https://a.*.test",
            "https://*a.test",
            "https://**.a.test",
            "*.a.test",
            "https://a.test:123456",
            "https://a_b.test",
            "https://[::1]",
            " https://a.test",
            "",
        ];
        for text in bad {
            assert_eq!(parse_entry(text), Err(EntryError::Pattern), "{text:?}");
        }
        assert_eq!(parse_entry("https://a.test:0"), Err(EntryError::Port));
        assert_eq!(parse_entry("https://a.test:65536"), Err(EntryError::Port));
        assert_eq!(parse_entry("https://a.test:99999"), Err(EntryError::Port));
    }
}
