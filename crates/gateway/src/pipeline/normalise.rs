//! The normalise stage: the path and host a request is routed by, and the
//! checks that refuse a request before any rule or policy looks at it.
//!
//! Why it comes first: a rule such as `prefix: /internal → 403` means
//! nothing if `/x/../internal/`, `//internal/` or `/%69nternal/` reach the
//! backend as `/internal/` while the router compared raw bytes. So the
//! path is normalised as RFC 3986 §6 and nginx do, the normalised path is
//! the one routed *and* forwarded, and what cannot be normalised without
//! guessing (an encoded slash, a `..` above the root, a broken escape) is a
//! 400. The same holds for the host: RFC 9112 §3.2 makes a missing,
//! repeated or invalid `Host` a 400, and an absolute-form target's
//! authority the host (§3.2.2). docs/security.md compares each choice with
//! nginx and Envoy.

pub(crate) use crate::client_error::BadRequest;
use crate::request::{ClientRequest, Fields, HeadFacts};
use corsgate_config::{EncodedSlashes, Limits, Paths, Semicolons};
use corsgate_http1::{list_items, valid_host, HostLines};
use corsgate_policy::RequestFields;
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderName, HeaderValue, Version};
use std::borrow::Cow;

/// What a request is routed and forwarded by.
pub(crate) struct Target<'r> {
    /// The normalised path (borrowed from the request when it was
    /// already normal, which is the common case).
    pub(crate) path: Cow<'r, str>,
    /// The host and port asked for: an absolute-form target's or HTTP/2's
    /// authority, else `Host`. Sent upstream as `Host` (unless a rewrite
    /// replaces it) and as `X-Forwarded-Host`. `None` only for HTTP/1.0
    /// without `Host`.
    pub(crate) authority: Option<HeaderValue>,
}

/// Check and normalise `req`: its path, its host, its framing and its
/// declared sizes.
pub(crate) fn request<'u>(
    req: &ClientRequest,
    uri: &'u http::Uri,
    paths: &Paths,
    limits: &Limits,
) -> Result<Target<'u>, BadRequest> {
    if let Some(bad) = req.refusal() {
        return Err(bad);
    }
    let Scan {
        bytes,
        host,
        hosts,
        host_valid,
        coded,
        length,
    } = match req.head_facts() {
        Some(facts) => Scan::from_facts(req.fields(), facts),
        None => Scan::of(req.fields()),
    };
    if hosts > 1 {
        return Err(BadRequest::RepeatedHost);
    }
    let authority = authority(req, host, host_valid)?;
    if coded {
        transfer_coding(&req.fields())?;
    }
    if bytes > limits.max_header_bytes {
        return Err(BadRequest::HeaderTooLarge);
    }
    let declared = length
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return Err(BadRequest::BodyTooLarge);
    }
    let path = path(uri.path(), paths)?;
    Ok(Target { path, authority })
}

/// What this stage reads of the fields, in one pass over them.
#[derive(Default)]
struct Scan<'r> {
    /// The fields' size as `maxHeaderBytes` counts it: name, value and
    /// four bytes (`: ` and CRLF) a line.
    bytes: usize,
    host: Option<&'r HeaderValue>,
    hosts: u32,
    /// Whether `host` is known to be valid (`None`: not checked yet).
    host_valid: Option<bool>,
    /// Whether any `Transfer-Encoding` line is present.
    coded: bool,
    /// The first `Content-Length` line.
    length: Option<&'r HeaderValue>,
}

impl<'r> Scan<'r> {
    /// One loop per representation rather than one through an iterator
    /// that picks it at every step: this runs on every request.
    #[inline]
    fn of(fields: Fields<'r>) -> Self {
        let mut s = Scan::default();
        match fields {
            Fields::List(l) => l.iter().for_each(|(n, v)| s.add(n, v)),
            Fields::Map(m) => m.iter().for_each(|(n, v)| s.add(n, v)),
        }
        s
    }

    /// What the front's parser already found: a head it serves has no
    /// `Transfer-Encoding` or `Content-Length` (those go to hyper).
    #[inline]
    fn from_facts(fields: Fields<'r>, facts: HeadFacts) -> Self {
        let (host, hosts, host_valid) = match (facts.host, fields) {
            (HostLines::One { index, valid }, Fields::List(l)) => {
                (l.get(index).map(|(_, v)| v), 1, Some(valid))
            }
            (HostLines::Repeated, _) => (None, 2, None),
            _ => (None, 0, None),
        };
        Scan {
            bytes: facts.field_bytes,
            host,
            hosts,
            host_valid,
            coded: false,
            length: None,
        }
    }

    #[inline(always)]
    fn add(&mut self, name: &HeaderName, value: &'r HeaderValue) {
        self.bytes += name.as_str().len() + value.len() + 4;
        if name == HOST {
            self.hosts += 1;
            self.host = Some(value);
        } else if name == TRANSFER_ENCODING {
            self.coded = true;
        } else if name == CONTENT_LENGTH && self.length.is_none() {
            self.length = Some(value);
        }
    }
}

/// The request's host and port (RFC 9112 §3.2, RFC 9113 §8.3.1), from its
/// target's authority and its one `Host` line, if any.
fn authority(
    req: &ClientRequest,
    host: Option<&HeaderValue>,
    host_valid: Option<bool>,
) -> Result<Option<HeaderValue>, BadRequest> {
    let from_target = match req.uri().authority() {
        Some(a) => {
            if !valid_host(a.as_str().as_bytes()) {
                return Err(BadRequest::InvalidHost);
            }
            // A validated authority is always a valid field value.
            HeaderValue::from_str(a.as_str()).ok()
        }
        None => None,
    };
    if let Some(h) = host {
        if !host_valid.unwrap_or_else(|| valid_host(h.as_bytes())) {
            return Err(BadRequest::InvalidHost);
        }
    }
    match (from_target, host) {
        // HTTP/2 sends both only when they agree; HTTP/1.1's absolute form
        // makes the target's authority win over `Host` (§3.2.2).
        (Some(a), Some(h)) if req.version() == Version::HTTP_2 => {
            if a.as_bytes().eq_ignore_ascii_case(h.as_bytes()) {
                Ok(Some(a))
            } else {
                Err(BadRequest::AuthorityMismatch)
            }
        }
        (Some(a), _) => Ok(Some(a)),
        (None, Some(h)) => Ok(Some(h.clone())),
        (None, None) if req.version() == Version::HTTP_11 => Err(BadRequest::MissingHost),
        (None, None) => Ok(None),
    }
}

/// The host part of a validated authority, without the port or a trailing
/// dot (`Example.com.:8080` → `Example.com`): what hostnames and rules
/// match, case-insensitively.
pub(crate) fn routing_host(authority: &str) -> &str {
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host.strip_suffix('.').unwrap_or(host)
}

/// Only `Transfer-Encoding: chunked` is implemented; any other coding
/// (`gzip, chunked`) would be dropped by the gateway and corrupt the body,
/// so it is a 501 (RFC 9112 §6.1, nginx).
fn transfer_coding<H: RequestFields + ?Sized>(fields: &H) -> Result<(), BadRequest> {
    let mut codings = fields
        .values(&TRANSFER_ENCODING)
        .flat_map(|v| list_items(v.as_bytes()));
    match (codings.next(), codings.next()) {
        (None, _) => Ok(()),
        (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => Ok(()),
        _ => Err(BadRequest::TransferCoding),
    }
}

/// Normalise a request path (RFC 3986 §6.2.2, §5.2.4):
/// - `%XX` of an unreserved character is decoded (`%69` → `i`), any other
///   escape is kept with upper-case hex (`%c3` → `%C3`);
/// - `.` segments are removed, and `..` removes the segment before it; a
///   `..` with nothing before it is refused;
/// - repeated slashes are merged (`//a` → `/a`), as nginx's
///   `merge_slashes` does;
/// - `%2F`, `%5C` and `\` are refused, or kept unchanged inside their
///   segment, as `paths.encodedSlashes` says; `%00` and broken escapes
///   are refused;
/// - `;` is refused or kept, as `paths.semicolons` says.
///
/// `*` (the asterisk form of `OPTIONS *`) is left alone. A path that is
/// already normal is returned borrowed, after one scan.
pub(crate) fn path<'r>(raw: &'r str, paths: &Paths) -> Result<Cow<'r, str>, BadRequest> {
    let slashes = paths.encoded_slashes;
    let params = paths.semicolons == Semicolons::Reject;
    if raw == "*" {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(BadRequest::PathNotAbsolute);
    }
    if is_normal(bytes) {
        return Ok(Cow::Borrowed(raw));
    }
    if params && bytes.contains(&b';') {
        return Err(BadRequest::PathParameter);
    }
    // Decode into one buffer, then resolve its segments.
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).and_then(|&b| hex(b)),
                    bytes.get(i + 2).and_then(|&b| hex(b)),
                ) else {
                    return Err(BadRequest::BadEscape);
                };
                let c = h << 4 | l;
                match c {
                    0 => return Err(BadRequest::EncodedNul),
                    b'/' | b'\\' if slashes == EncodedSlashes::Reject => {
                        return Err(BadRequest::EncodedSlash)
                    }
                    c if is_unreserved(c) => decoded.push(c),
                    c => {
                        decoded.push(b'%');
                        decoded.push(HEX[usize::from(c >> 4)]);
                        decoded.push(HEX[usize::from(c & 15)]);
                    }
                }
                i += 3;
            }
            b'\\' if slashes == EncodedSlashes::Reject => return Err(BadRequest::EncodedSlash),
            b => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let mut out: Vec<u8> = Vec::with_capacity(decoded.len());
    // `decoded` starts with `/`; each segment is what follows a slash.
    let segments: Vec<&[u8]> = decoded[1..].split(|&b| b == b'/').collect();
    let last = segments.len() - 1;
    for (n, seg) in segments.iter().enumerate() {
        match *seg {
            b"." | b"" => {
                // A trailing `.` or empty segment keeps the trailing slash.
                if n == last && !out.ends_with(b"/") {
                    out.push(b'/');
                }
            }
            b".." => {
                if out.is_empty() {
                    return Err(BadRequest::AboveRoot);
                }
                let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(cut);
                if n == last {
                    out.push(b'/');
                }
            }
            seg => {
                out.push(b'/');
                out.extend_from_slice(seg);
            }
        }
    }
    if out.is_empty() {
        out.push(b'/');
    }
    // Only ASCII went in (the target was a valid URI), and decoding yields
    // only unreserved ASCII, so the result is UTF-8.
    Ok(Cow::Owned(
        String::from_utf8(out).map_err(|_| BadRequest::BadEscape)?,
    ))
}

/// No escape, backslash, empty, `.` or `..` segment: nothing to change.
fn is_normal(bytes: &[u8]) -> bool {
    // Runs on every request: one pass, and only the bytes that can start
    // something to normalise are looked at closely.
    let mut prev = b'/';
    for i in 1..bytes.len() {
        let b = bytes[i];
        if SPECIAL[usize::from(b)] {
            match b {
                b'%' | b'\\' | b';' => return false,
                b'/' if prev == b'/' => return false,
                // `.` or `..` as a whole segment.
                b'.' if prev == b'/' => match (bytes.get(i + 1), bytes.get(i + 2)) {
                    (None | Some(b'/'), _) => return false,
                    (Some(b'.'), None | Some(b'/')) => return false,
                    _ => {}
                },
                _ => {}
            }
        }
        prev = b;
    }
    true
}

/// The bytes [`is_normal`] looks at closely.
static SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'%' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'/' as usize] = true;
    t[b'.' as usize] = true;
    t[b';' as usize] = true;
    t
};

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §2.3.
fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path form of the bypass probes, and the usual shapes.
    #[test]
    fn paths_normalise_as_rfc_3986_and_nginx() {
        use BadRequest::*;
        use EncodedSlashes::{Keep, Reject};
        let table: &[(&str, EncodedSlashes, Result<&str, BadRequest>)] = &[
            ("/", Reject, Ok("/")),
            ("/api/hello", Reject, Ok("/api/hello")),
            ("/api/hello/", Reject, Ok("/api/hello/")),
            ("/a.b/c..d/.e", Reject, Ok("/a.b/c..d/.e")),
            ("*", Reject, Ok("*")),
            (
                "/x/../internal/secret.txt",
                Reject,
                Ok("/internal/secret.txt"),
            ),
            ("//internal/secret.txt", Reject, Ok("/internal/secret.txt")),
            ("/%69nternal/secret.txt", Reject, Ok("/internal/secret.txt")),
            ("/./internal/secret.txt", Reject, Ok("/internal/secret.txt")),
            (
                "/x/%2e%2e/internal/secret.txt",
                Reject,
                Ok("/internal/secret.txt"),
            ),
            ("/x/%2E./internal", Reject, Ok("/internal")),
            ("/%73ecure/x", Reject, Ok("/secure/x")),
            ("/api/../secure/x", Reject, Ok("/secure/x")),
            ("/a/b/..", Reject, Ok("/a/")),
            ("/a/b/.", Reject, Ok("/a/b/")),
            ("/a//b///c", Reject, Ok("/a/b/c")),
            ("/a/%7euser", Reject, Ok("/a/~user")),
            ("/caf%c3%a9", Reject, Ok("/caf%C3%A9")),
            ("/q%3fnot-a-query", Reject, Ok("/q%3Fnot-a-query")),
            ("/internal%2fsecret.txt", Reject, Err(EncodedSlash)),
            ("/internal%2Fsecret.txt", Reject, Err(EncodedSlash)),
            ("/internal%5csecret.txt", Reject, Err(EncodedSlash)),
            ("/internal\\secret.txt", Reject, Err(EncodedSlash)),
            ("/internal%2fsecret.txt", Keep, Ok("/internal%2Fsecret.txt")),
            ("/internal\\secret.txt", Keep, Ok("/internal\\secret.txt")),
            ("/..", Reject, Err(AboveRoot)),
            ("/../internal", Reject, Err(AboveRoot)),
            ("/a/../../internal", Reject, Err(AboveRoot)),
            ("/%2e%2e/internal", Reject, Err(AboveRoot)),
            ("/a%zz", Reject, Err(BadEscape)),
            ("/a%4", Reject, Err(BadEscape)),
            ("/a%", Reject, Err(BadEscape)),
            ("/a%00b", Reject, Err(EncodedNul)),
            ("a/b", Reject, Err(PathNotAbsolute)),
        ];
        for (raw, slashes, want) in table {
            let paths = Paths {
                encoded_slashes: *slashes,
                ..Paths::default()
            };
            let got = path(raw, &paths);
            assert_eq!(
                got.as_deref().map_err(|e| *e),
                want.as_ref().map(|s| *s).map_err(|e| *e),
                "{raw} ({slashes:?})"
            );
        }
    }

    /// `;` starts a path parameter that Java servlet containers drop from
    /// the segment before routing: refused by default, kept when asked.
    #[test]
    fn semicolons_are_refused_unless_kept() {
        use BadRequest::PathParameter;
        use Semicolons::{Keep, Reject};
        let table: &[(&str, Semicolons, Result<&str, BadRequest>)] = &[
            ("/public/..;/internal/secret", Reject, Err(PathParameter)),
            ("/internal;x/secret", Reject, Err(PathParameter)),
            ("/a;jsessionid=1", Reject, Err(PathParameter)),
            ("/a%3Bb", Reject, Ok("/a%3Bb")),
            (
                "/public/..;/internal/secret",
                Keep,
                Ok("/public/..;/internal/secret"),
            ),
            ("/a;v=1/./b", Keep, Ok("/a;v=1/b")),
            ("/a;v=1/b", Keep, Ok("/a;v=1/b")),
        ];
        for (raw, semicolons, want) in table {
            let paths = Paths {
                semicolons: *semicolons,
                ..Paths::default()
            };
            let got = path(raw, &paths);
            assert_eq!(
                got.as_deref().map_err(|e| *e),
                want.as_ref().map(|s| *s).map_err(|e| *e),
                "{raw} ({semicolons:?})"
            );
        }
    }

    #[test]
    fn a_normal_path_is_borrowed() {
        for p in ["/", "/api/hello", "/a.b/..c/d.", "/x/y/"] {
            assert!(
                matches!(path(p, &Paths::default()), Ok(Cow::Borrowed(_))),
                "{p}"
            );
        }
    }

    /// A normalised path is a fixed point: normalising it again changes
    /// nothing, so the backend (or a second gateway) sees the same path.
    #[test]
    fn normalising_twice_changes_nothing() {
        let samples = [
            "/x/../internal/secret.txt",
            "//a//b/./c/..",
            "/%61/%62%2e/%63%2E%2E/",
            "/caf%c3%a9/./x",
        ];
        let keep = Paths {
            encoded_slashes: EncodedSlashes::Keep,
            ..Paths::default()
        };
        for raw in samples {
            let once = path(raw, &keep).unwrap().into_owned();
            let twice = path(&once, &keep).unwrap();
            assert_eq!(once, twice, "{raw}");
        }
    }

    /// The host part routed by (valid `Host` values are tabled in
    /// corsgate-http1's `host.rs`).
    #[test]
    fn routing_hosts() {
        assert_eq!(routing_host("Example.com.:8080"), "Example.com");
        assert_eq!(routing_host("[::1]:8443"), "[::1]");
        assert_eq!(routing_host("a.test"), "a.test");
    }
}
