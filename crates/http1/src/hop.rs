//! Hop-by-hop fields (RFC 9110 §7.6.1): the fields that belong to one
//! connection and are never forwarded, in either direction.

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The hop-by-hop fields of RFC 9110 §7.6.1 (`Connection`,
/// `Proxy-Connection`, `Keep-Alive`, `TE`, `Transfer-Encoding`, `Upgrade`)
/// and the proxy authentication pair, lower case. `Trailer` is end-to-end:
/// it declares the trailer fields, which a server sends only when declared.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
    "keep-alive",
    "proxy-connection",
];

/// Is `name` one of the fixed hop-by-hop fields?
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// [`is_hop_by_hop`] for a name as received, in any case.
pub fn is_hop_by_hop_name(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
}

/// The comma-separated tokens of every `Connection` line, trimmed.
pub fn connection_tokens<'a>(
    connection: impl IntoIterator<Item = &'a HeaderValue>,
) -> impl Iterator<Item = &'a str> {
    connection
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Does one of these `Connection` lines name `token` (a field name, or
/// `close`, `upgrade`), in any case?
pub fn names_token<'a>(connection: impl IntoIterator<Item = &'a HeaderValue>, token: &str) -> bool {
    connection_tokens(connection).any(|t| t.eq_ignore_ascii_case(token))
}

/// Remove every hop-by-hop field: those `Connection` names, then the
/// fixed set of [`is_hop_by_hop`].
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = connection_tokens(headers.get_all(http::header::CONNECTION))
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    let fixed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n))
        .cloned()
        .collect();
    for n in fixed {
        headers.remove(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fields in, and the names left after stripping.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);

    #[test]
    fn stripping_keeps_end_to_end_fields_only() {
        let table: &[Case<'_>] = &[
            (
                &[("accept", "*/*"), ("trailer", "x-sum")],
                &["accept", "trailer"],
            ),
            (
                &[
                    ("connection", "keep-alive, X-Hop"),
                    ("x-hop", "1"),
                    ("keep-alive", "timeout=5"),
                    ("te", "trailers"),
                    ("transfer-encoding", "chunked"),
                    ("upgrade", "websocket"),
                    ("proxy-connection", "keep-alive"),
                    ("proxy-authorization", "Basic x"),
                    ("proxy-authenticate", "Basic"),
                    ("x-keep", "2"),
                ],
                &["x-keep"],
            ),
            (&[("connection", "close")], &[]),
        ];
        for (fields, kept) in table {
            let mut h = HeaderMap::new();
            for (n, v) in *fields {
                h.append(*n, HeaderValue::from_static(v));
            }
            strip_hop_by_hop(&mut h);
            let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
            left.sort_unstable();
            assert_eq!(left, *kept, "{fields:?}");
        }
    }

    #[test]
    fn tokens_are_found_in_any_line_and_case() {
        let lines = [
            HeaderValue::from_static("keep-alive"),
            HeaderValue::from_static(" X-Hop , Upgrade"),
        ];
        assert!(names_token(&lines, "upgrade"));
        assert!(names_token(&lines, "x-hop"));
        assert!(!names_token(&lines, "close"));
        assert!(is_hop_by_hop_name(b"Proxy-Connection") && !is_hop_by_hop_name(b"trailer"));
    }
}
