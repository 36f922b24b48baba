//! HTTP token grammar and the small fixed lists from Fetch that the engine
//! and the lints need (browser facts F9 and F12 in `docs/rules.md`).

/// `tchar` per RFC 9110 §5.6.2.
pub(crate) const fn is_tchar(c: u8) -> bool {
    matches!(c,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
        | b'^' | b'_' | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// `is_tchar` as a table: one load per byte on the preflight path.
const TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = is_tchar(c as u8);
        c += 1;
    }
    t
};

/// A non-empty RFC 9110 token.
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&c| TCHAR[usize::from(c)])
}

/// Trim HTTP optional whitespace (space, tab).
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&c| c != b' ' && c != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&c| c != b' ' && c != b'\t')
        .map_or(start, |e| e + 1);
    &s[start..end]
}

/// Iterate the non-empty, OWS-trimmed items of a comma-separated list
/// (RFC 9110 §5.6.1). Public because the gateway reads its connection-level
/// lists (`Connection`, `TE`) the same way.
pub fn list_items(s: &[u8]) -> impl Iterator<Item = &[u8]> {
    s.split(|&c| c == b',')
        .map(trim_ows)
        .filter(|i| !i.is_empty())
}

/// Methods the Gateway API accepts in `allowMethods` (`HTTPMethodWithWildcard`).
pub(crate) const GATEWAY_API_METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*",
];

/// CORS-safelisted methods (Fetch): always allowed, byte-exact.
pub fn is_safelisted_method(m: &[u8]) -> bool {
    matches!(m, b"GET" | b"HEAD" | b"POST")
}

/// Fetch's forbidden request-header names (F12), lower case. Scripts cannot
/// set them, so listing them in `allowHeaders` has no effect.
const FORBIDDEN_REQUEST_HEADERS: [&str; 21] = [
    "accept-charset",
    "accept-encoding",
    "access-control-request-headers",
    "access-control-request-method",
    "connection",
    "content-length",
    "cookie",
    "cookie2",
    "date",
    "dnt",
    "expect",
    "host",
    "keep-alive",
    "origin",
    "referer",
    "set-cookie",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "via",
];

/// Is `name` (any case) a forbidden request-header name?
pub fn is_forbidden_request_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    FORBIDDEN_REQUEST_HEADERS.contains(&lower.as_str())
        || lower.starts_with("proxy-")
        || lower.starts_with("sec-")
}

/// Is `(name, value)` a CORS-safelisted request header (Fetch)? `name`
/// is lower case. Such headers never cause a preflight.
pub fn is_safelisted_request_header(name: &str, value: &str) -> bool {
    if value.len() > 128 {
        return false;
    }
    let unsafe_byte = |b: u8| {
        (b < 0x20 && b != b'\t')
            || matches!(
                b,
                b'"' | b'('
                    | b')'
                    | b':'
                    | b'<'
                    | b'>'
                    | b'?'
                    | b'@'
                    | b'['
                    | b'\\'
                    | b']'
                    | b'{'
                    | b'}'
                    | 0x7f
            )
    };
    match name {
        "accept" => !value.bytes().any(unsafe_byte),
        "accept-language" | "content-language" => value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" *,-.;=".contains(&b)),
        "content-type" => {
            if value.bytes().any(unsafe_byte) {
                return false;
            }
            let essence = value
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            matches!(
                essence.as_str(),
                "application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain"
            )
        }
        "range" => value
            .strip_prefix("bytes=")
            .and_then(|r| r.split_once('-'))
            .is_some_and(|(a, b)| {
                !a.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            }),
        _ => false,
    }
}

/// CORS-safelisted response-header names (F9): always readable, never
/// worth enumerating in `Access-Control-Expose-Headers`.
pub(crate) fn is_safelisted_response_header(lower: &str) -> bool {
    matches!(
        lower,
        "cache-control"
            | "content-language"
            | "content-length"
            | "content-type"
            | "expires"
            | "last-modified"
            | "pragma"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_token(b"PATCH"));
        assert!(is_token(b"x-custom_1"));
        assert!(!is_token(b""));
        assert!(!is_token(b"PUT, DELETE"));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a\r\nb"));
        assert!(!is_token("é".as_bytes()));
    }

    #[test]
    fn lists_trim_and_drop_empty_items() {
        let items: Vec<&[u8]> = list_items(b" a ,b,, \tc\t,").collect();
        assert_eq!(items, vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(list_items(b" , ").count(), 0);
    }

    #[test]
    fn f12_forbidden_headers() {
        for h in [
            "Origin",
            "cookie",
            "Sec-Fetch-Mode",
            "Proxy-Authorization",
            "HOST",
        ] {
            assert!(is_forbidden_request_header(h), "{h}");
        }
        for h in ["Authorization", "Content-Type", "X-Request-ID"] {
            assert!(!is_forbidden_request_header(h), "{h}");
        }
    }
}
