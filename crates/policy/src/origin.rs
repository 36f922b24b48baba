//! Parsing the request's `Origin` field (rule R9 in `docs/rules.md`).
//!
//! Browsers only ever send one canonical serialized origin (Fetch
//! `serialized-origin`): lower-case `http`/`https` scheme, lower-case host,
//! no default port, no path. Anything else comes from a non-browser client,
//! where CORS headers are useless, or from an attack (two `Origin` lines, a
//! comma-joined list a reflecting gateway would copy, parser differentials).
//! So corsgate accepts exactly the canonical form and classifies everything
//! else as [`InvalidOrigin`], which no policy entry ever matches — not even `*`.
//!
//! Parsing borrows from the header value and never allocates.

use crate::fields::RequestFields;
use http::header::{HeaderValue, ORIGIN};
use std::fmt;

/// The longest `Origin` value corsgate will look at. A DNS name is at most
/// 253 bytes; scheme, brackets and port add fewer than 20. Anything longer is
/// not something a browser sends.
pub const MAX_ORIGIN_LEN: usize = 512;

/// The two schemes a CORS origin can have that corsgate matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// `http`
    Http,
    /// `https`
    Https,
}

impl Scheme {
    /// The port a URL serializer omits for this scheme.
    pub const fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// The scheme as written in an origin.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A canonical serialized origin, borrowed from the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SerializedOrigin<'a> {
    /// The whole value, exactly as received (and, being canonical, exactly as
    /// a configured entry is stored after canonicalisation).
    pub raw: &'a str,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Lower-case DNS name, IPv4 address or bracketed IPv6 address.
    pub host: &'a str,
    /// The effective port: the explicit one, or the scheme's default.
    pub port: u16,
}

/// What the request's `Origin` field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestOrigin<'a> {
    /// No `Origin` field, or an empty one: not a CORS request (R7).
    Absent,
    /// The opaque origin `null` (sandboxed frames, `file:`, cross-origin
    /// redirects). Anyone can produce it; allowed only explicitly (P4).
    Null,
    /// A canonical origin.
    Valid(SerializedOrigin<'a>),
    /// Anything else; never matched by any entry.
    Invalid(InvalidOrigin),
}

/// Why an `Origin` value is not a canonical serialized origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvalidOrigin {
    /// More than one `Origin` field line.
    MultipleFieldLines,
    /// Longer than [`MAX_ORIGIN_LEN`].
    TooLong,
    /// Bytes outside ASCII (browsers send IDNs as punycode).
    NonAscii,
    /// Whitespace inside the value.
    Whitespace,
    /// A comma: a list of origins, which a reflecting gateway would copy.
    Comma,
    /// A scheme other than `http` or `https`, or no `://`.
    UnsupportedScheme,
    /// Upper-case letters in scheme or host.
    UpperCase,
    /// A trailing `/`.
    TrailingSlash,
    /// A path after the authority.
    Path,
    /// A `?` query or `#` fragment.
    QueryOrFragment,
    /// `user@` userinfo.
    Userinfo,
    /// No host at all.
    EmptyHost,
    /// An empty DNS label (`a..b`, a leading or trailing dot).
    EmptyLabel,
    /// A character that cannot appear in a serialized host.
    HostCharacter,
    /// A malformed bracketed IPv6 address.
    Ipv6,
    /// A port that is not 1-5 digits, has a leading zero or exceeds 65535.
    Port,
    /// The scheme's default port written out (`https://a.com:443`).
    DefaultPort,
}

impl InvalidOrigin {
    /// A stable label for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            InvalidOrigin::MultipleFieldLines => "multiple_field_lines",
            InvalidOrigin::TooLong => "too_long",
            InvalidOrigin::NonAscii => "non_ascii",
            InvalidOrigin::Whitespace => "whitespace",
            InvalidOrigin::Comma => "comma",
            InvalidOrigin::UnsupportedScheme => "unsupported_scheme",
            InvalidOrigin::UpperCase => "upper_case",
            InvalidOrigin::TrailingSlash => "trailing_slash",
            InvalidOrigin::Path => "path",
            InvalidOrigin::QueryOrFragment => "query_or_fragment",
            InvalidOrigin::Userinfo => "userinfo",
            InvalidOrigin::EmptyHost => "empty_host",
            InvalidOrigin::EmptyLabel => "empty_label",
            InvalidOrigin::HostCharacter => "host_character",
            InvalidOrigin::Ipv6 => "ipv6",
            InvalidOrigin::Port => "port",
            InvalidOrigin::DefaultPort => "default_port",
        }
    }
}

impl fmt::Display for InvalidOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            InvalidOrigin::MultipleFieldLines => "more than one Origin field line",
            InvalidOrigin::TooLong => "longer than any origin a browser sends",
            InvalidOrigin::NonAscii => "contains non-ASCII bytes (browsers send punycode)",
            InvalidOrigin::Whitespace => "contains whitespace",
            InvalidOrigin::Comma => "contains a comma (a list is not an origin)",
            InvalidOrigin::UnsupportedScheme => "scheme is not http:// or https://",
            InvalidOrigin::UpperCase => "not lower case (browsers send lower case)",
            InvalidOrigin::TrailingSlash => "has a trailing slash",
            InvalidOrigin::Path => "has a path",
            InvalidOrigin::QueryOrFragment => "has a query or fragment",
            InvalidOrigin::Userinfo => "has userinfo (user@)",
            InvalidOrigin::EmptyHost => "has no host",
            InvalidOrigin::EmptyLabel => "has an empty DNS label",
            InvalidOrigin::HostCharacter => "host contains a character browsers never send",
            InvalidOrigin::Ipv6 => "malformed IPv6 address",
            InvalidOrigin::Port => "port is not a canonical number in 0-65535",
            InvalidOrigin::DefaultPort => "writes the scheme's default port (browsers omit it)",
        };
        f.write_str(text)
    }
}

/// Classify the request's `Origin` field(s) (R7, R9).
pub fn request_origin<H: RequestFields + ?Sized>(headers: &H) -> RequestOrigin<'_> {
    request_origin_and_value(headers).0
}

/// Classify the `Origin` field(s) and return the single field value too, so
/// the decision can echo it without a second header lookup.
pub(crate) fn request_origin_and_value<H: RequestFields + ?Sized>(
    headers: &H,
) -> (RequestOrigin<'_>, Option<&HeaderValue>) {
    let mut lines = headers.values(&ORIGIN);
    let Some(first) = lines.next() else {
        return (RequestOrigin::Absent, None);
    };
    if lines.next().is_some() {
        return (
            RequestOrigin::Invalid(InvalidOrigin::MultipleFieldLines),
            None,
        );
    }
    (parse_origin_bytes(first.as_bytes()), Some(first))
}

/// Classify one `Origin` value. An empty value is [`RequestOrigin::Absent`].
pub fn parse_origin_bytes(bytes: &[u8]) -> RequestOrigin<'_> {
    if bytes.is_empty() {
        return RequestOrigin::Absent;
    }
    if bytes.len() > MAX_ORIGIN_LEN {
        return RequestOrigin::Invalid(InvalidOrigin::TooLong);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) if s.is_ascii() => parse_origin(s),
        _ => RequestOrigin::Invalid(InvalidOrigin::NonAscii),
    }
}

/// Classify one `Origin` value given as text.
pub fn parse_origin(s: &str) -> RequestOrigin<'_> {
    match parse_inner(s) {
        Ok(Some(o)) => RequestOrigin::Valid(o),
        Ok(None) => RequestOrigin::Null,
        Err(e) => RequestOrigin::Invalid(e),
    }
}

fn parse_inner(s: &str) -> Result<Option<SerializedOrigin<'_>>, InvalidOrigin> {
    if s.is_empty() {
        return Err(InvalidOrigin::EmptyHost);
    }
    if s.len() > MAX_ORIGIN_LEN {
        return Err(InvalidOrigin::TooLong);
    }
    if s == "null" {
        return Ok(None);
    }
    let b = s.as_bytes();
    let (scheme, start) = if b.starts_with(b"https://") {
        (Scheme::Https, 8)
    } else if b.starts_with(b"http://") {
        (Scheme::Http, 7)
    } else {
        return Err(classify_bad_scheme(b));
    };
    // One pass over the authority: host, then an optional port.
    let (host_end, port_start) = if b.get(start) == Some(&b'[') {
        let close = b[start..]
            .iter()
            .position(|&c| c == b']')
            .ok_or(InvalidOrigin::Ipv6)?
            + start;
        validate_ipv6(&b[start + 1..close])?;
        match b.get(close + 1) {
            None => (close + 1, None),
            Some(b':') => (close + 1, Some(close + 2)),
            Some(&c) => return Err(classify_byte(c, InvalidOrigin::Ipv6, b, close + 1)),
        }
    } else {
        let mut label_len = 0usize;
        let mut i = start;
        let mut port_start = None;
        while i < b.len() {
            match b[i] {
                b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => label_len += 1,
                b'.' => {
                    if label_len == 0 {
                        return Err(first_problem(b, i, InvalidOrigin::EmptyLabel));
                    }
                    label_len = 0;
                }
                b':' => {
                    port_start = Some(i + 1);
                    break;
                }
                c => return Err(classify_byte(c, InvalidOrigin::HostCharacter, b, i)),
            }
            i += 1;
        }
        if i == start {
            return Err(first_problem(b, i, InvalidOrigin::EmptyHost));
        }
        if label_len == 0 {
            return Err(first_problem(b, i, InvalidOrigin::EmptyLabel));
        }
        (i, port_start)
    };
    let port = match port_start {
        None => scheme.default_port(),
        Some(p) => {
            if let Some(i) = b[p..].iter().position(|c| !c.is_ascii_digit()) {
                return Err(classify_byte(b[p + i], InvalidOrigin::Port, b, p + i));
            }
            let port = parse_port(&s[p..]).ok_or(InvalidOrigin::Port)?;
            if port == scheme.default_port() {
                return Err(InvalidOrigin::DefaultPort);
            }
            port
        }
    };
    Ok(Some(SerializedOrigin {
        raw: s,
        scheme,
        host: &s[start..host_end],
        port,
    }))
}

/// Why a value that does not start with `http://` or `https://` is invalid.
/// Only runs on the refusal path.
fn classify_bad_scheme(b: &[u8]) -> InvalidOrigin {
    if !b.is_ascii() {
        return InvalidOrigin::NonAscii;
    }
    if b.iter()
        .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return InvalidOrigin::Whitespace;
    }
    if b.contains(&b',') {
        return InvalidOrigin::Comma;
    }
    let lower = b.get(..8).map(<[u8]>::to_ascii_lowercase);
    let upper_scheme = lower
        .as_deref()
        .is_some_and(|p| p.starts_with(b"https://") || p.starts_with(b"http://"));
    if upper_scheme {
        InvalidOrigin::UpperCase
    } else {
        InvalidOrigin::UnsupportedScheme
    }
}

/// Classify an unexpected byte at `at`; `fallback` when nothing more
/// specific applies.
fn classify_byte(c: u8, fallback: InvalidOrigin, b: &[u8], at: usize) -> InvalidOrigin {
    match c {
        0x80..=0xff => InvalidOrigin::NonAscii,
        b' ' | b'\t' | 0..=0x1f | 0x7f => InvalidOrigin::Whitespace,
        b',' => InvalidOrigin::Comma,
        b'@' => InvalidOrigin::Userinfo,
        b'?' | b'#' => InvalidOrigin::QueryOrFragment,
        b'/' if at + 1 == b.len() => InvalidOrigin::TrailingSlash,
        b'/' => InvalidOrigin::Path,
        b'A'..=b'Z' if fallback == InvalidOrigin::HostCharacter => InvalidOrigin::UpperCase,
        _ => fallback,
    }
}

/// A structural problem at `at` (empty host or label): report a more
/// telling byte-level problem later in the value if there is one, so that
/// `https://.evil.test@x` says "userinfo", not "empty label".
fn first_problem(b: &[u8], at: usize, structural: InvalidOrigin) -> InvalidOrigin {
    b[at..]
        .iter()
        .enumerate()
        .find(|(_, c)| !matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b':'))
        .map_or(structural, |(i, &c)| {
            classify_byte(c, structural, b, at + i)
        })
}

fn validate_ipv6(inner: &[u8]) -> Result<(), InvalidOrigin> {
    if inner.is_empty() || !inner.contains(&b':') {
        return Err(InvalidOrigin::Ipv6);
    }
    for &c in inner {
        match c {
            b'0'..=b'9' | b'a'..=b'f' | b':' | b'.' => {}
            b'A'..=b'F' => return Err(InvalidOrigin::UpperCase),
            _ => return Err(InvalidOrigin::Ipv6),
        }
    }
    Ok(())
}

/// A canonical decimal port: 1-5 digits, no leading zero (except `0`),
/// at most 65535.
fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if p.len() > 1 && p.starts_with('0') {
        return None;
    }
    p.parse::<u16>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(s: &str) -> InvalidOrigin {
        match parse_origin(s) {
            RequestOrigin::Invalid(e) => e,
            other => panic!("{s:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn r9_canonical_origins_parse_with_effective_port() {
        let cases = [
            ("https://a.test", Scheme::Https, "a.test", 443),
            ("http://a.test", Scheme::Http, "a.test", 80),
            ("https://a.test:8443", Scheme::Https, "a.test", 8443),
            ("http://127.0.0.1:3000", Scheme::Http, "127.0.0.1", 3000),
            ("http://[::1]:8080", Scheme::Http, "[::1]", 8080),
            ("https://[2001:db8::1]", Scheme::Https, "[2001:db8::1]", 443),
            (
                "https://xn--bcher-kva.example",
                Scheme::Https,
                "xn--bcher-kva.example",
                443,
            ),
            (
                "https://my_app.example.com",
                Scheme::Https,
                "my_app.example.com",
                443,
            ),
            ("http://localhost:0", Scheme::Http, "localhost", 0),
        ];
        for (s, scheme, host, port) in cases {
            match parse_origin(s) {
                RequestOrigin::Valid(o) => {
                    assert_eq!(
                        (o.scheme, o.host, o.port, o.raw),
                        (scheme, host, port, s),
                        "{s}"
                    )
                }
                other => panic!("{s}: {other:?}"),
            }
        }
    }

    #[test]
    fn r9_non_canonical_origins_are_invalid_with_reason() {
        let cases = [
            ("https://A.test", InvalidOrigin::UpperCase),
            ("HTTPS://a.test", InvalidOrigin::UpperCase),
            ("https://a.test:443", InvalidOrigin::DefaultPort),
            ("http://a.test:80", InvalidOrigin::DefaultPort),
            ("https://a.test/", InvalidOrigin::TrailingSlash),
            ("https://a.test/x", InvalidOrigin::Path),
            ("https://a.test?x", InvalidOrigin::QueryOrFragment),
            ("https://a.test#x", InvalidOrigin::QueryOrFragment),
            ("https://u@a.test", InvalidOrigin::Userinfo),
            ("https://a.test, https://b.test", InvalidOrigin::Comma),
            ("https://a.test,https://b.test", InvalidOrigin::Comma),
            ("https://a .test", InvalidOrigin::Whitespace),
            ("https://a.test\t", InvalidOrigin::Whitespace),
            ("ftp://a.test", InvalidOrigin::UnsupportedScheme),
            ("a.test", InvalidOrigin::UnsupportedScheme),
            ("https:/a.test", InvalidOrigin::UnsupportedScheme),
            ("https://", InvalidOrigin::EmptyHost),
            ("https://:8080", InvalidOrigin::EmptyHost),
            ("https://a..test", InvalidOrigin::EmptyLabel),
            ("https://a.test.", InvalidOrigin::EmptyLabel),
            ("https://.a.test", InvalidOrigin::EmptyLabel),
            ("https://a.test:", InvalidOrigin::Port),
            ("https://a.test:08080", InvalidOrigin::Port),
            ("https://a.test:65536", InvalidOrigin::Port),
            ("https://a.test:123456", InvalidOrigin::Port),
            ("https://a.test:8a", InvalidOrigin::Port),
            ("https://a:b:c", InvalidOrigin::Port),
            ("https://a%2e.test", InvalidOrigin::HostCharacter),
            ("https://[::1", InvalidOrigin::Ipv6),
            ("https://[]", InvalidOrigin::Ipv6),
            ("https://[::1]x", InvalidOrigin::Ipv6),
            ("https://[::G]", InvalidOrigin::Ipv6),
            ("https://[::A]", InvalidOrigin::UpperCase),
            ("https://bücher.example", InvalidOrigin::NonAscii),
            ("nulL", InvalidOrigin::UnsupportedScheme),
            ("null ", InvalidOrigin::Whitespace),
        ];
        for (s, want) in cases {
            assert_eq!(inv(s), want, "{s:?}");
        }
        let long = format!("https://{}.test", "a".repeat(MAX_ORIGIN_LEN));
        assert_eq!(inv(&long), InvalidOrigin::TooLong);
    }

    #[test]
    fn r7_absent_and_empty_origin_are_not_cors() {
        let mut h = http::HeaderMap::new();
        assert_eq!(request_origin(&h), RequestOrigin::Absent);
        h.insert(ORIGIN, http::HeaderValue::from_static(""));
        assert_eq!(request_origin(&h), RequestOrigin::Absent);
    }

    #[test]
    fn r9_two_origin_lines_are_invalid() {
        let mut h = http::HeaderMap::new();
        h.append(ORIGIN, http::HeaderValue::from_static("https://a.test"));
        h.append(ORIGIN, http::HeaderValue::from_static("https://a.test"));
        assert_eq!(
            request_origin(&h),
            RequestOrigin::Invalid(InvalidOrigin::MultipleFieldLines)
        );
    }

    #[test]
    fn r9_null_is_its_own_class_and_obs_text_is_invalid() {
        assert_eq!(parse_origin("null"), RequestOrigin::Null);
        assert_eq!(
            parse_origin_bytes(b"https://\xffa.test"),
            RequestOrigin::Invalid(InvalidOrigin::NonAscii)
        );
    }
}
