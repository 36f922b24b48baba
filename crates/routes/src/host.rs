//! Host names and host patterns (`api.example.com`, `*.example.com`).

/// A compiled host condition: an exact name or a `*.` suffix, compared
/// without regard to ASCII case.
#[derive(Debug, Clone)]
pub(crate) enum HostPattern {
    Exact(String),
    Suffix(String),
}

/// Is `h` a host name: dot-separated labels of letters, digits, `-` and
/// `_`, or a bracketed IPv6 literal? A pattern with a port, a path or a
/// space could never equal a request's host, so such a condition would
/// silently match nothing.
pub(crate) fn is_host_name(h: &str) -> bool {
    if let Some(v6) = h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl HostPattern {
    /// The pattern for `p`, or `None` when `p` is neither a host name nor
    /// `*.` and a host name.
    pub(crate) fn parse(p: &str) -> Option<Self> {
        let p = p.to_ascii_lowercase();
        match p.strip_prefix("*.") {
            Some(s) if is_host_name(s) => Some(HostPattern::Suffix(format!(".{s}"))),
            None if is_host_name(&p) => Some(HostPattern::Exact(p)),
            _ => None,
        }
    }

    pub(crate) fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h.eq_ignore_ascii_case(host),
            HostPattern::Suffix(s) => {
                host.len() > s.len()
                    && host.as_bytes()[host.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        let p = |s| HostPattern::parse(s).unwrap();
        assert!(p("*.example.com").matches("a.example.com"));
        assert!(!p("*.example.com").matches("example.com"));
        assert!(p("API.example.com").matches("api.example.com"));
        assert!(p("[::1]").matches("[::1]"));
    }

    #[test]
    fn what_is_not_a_host_is_refused() {
        for bad in [
            "",
            "*",
            "a.*.b",
            "api.example.com:8080",
            "api.example.com/x",
            "a b",
            "a..b",
            "example.com.",
            "*.",
            "[nope]",
        ] {
            assert!(HostPattern::parse(bad).is_none(), "{bad:?}");
        }
    }
}
