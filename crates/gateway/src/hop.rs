//! Hop-by-hop fields (RFC 9110 §7.6.1): which fields belong to one
//! connection and are never forwarded, in either direction, on either
//! upstream path.

use corsgate_policy::RequestFields;
use http::header::{HeaderMap, HeaderName, CONNECTION, UPGRADE};

/// The hop-by-hop fields of RFC 9110 §7.6.1 (`Connection`,
/// `Proxy-Connection`, `Keep-Alive`, `TE`, `Transfer-Encoding`, `Upgrade`)
/// and the proxy authentication pair, lower case. `Trailer` is end-to-end:
/// it declares the trailer fields, which hyper's server only sends when
/// declared.
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

/// Is `name` one of the [`HOP_BY_HOP`] fields?
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// [`is_hop_by_hop`] for a name as received, in any case.
pub(crate) fn is_hop_by_hop_name(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
}

/// The comma-separated tokens of every `Connection` line, trimmed.
pub(crate) fn connection_tokens<H: RequestFields + ?Sized>(
    headers: &H,
) -> impl Iterator<Item = &str> {
    headers
        .values(&CONNECTION)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Does a `Connection` field of `headers` name the field `name`?
pub(crate) fn named_by_connection<H: RequestFields + ?Sized>(headers: &H, name: &str) -> bool {
    connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(name))
}

/// Is this an HTTP/1.1 protocol upgrade request (WebSocket and friends)?
pub(crate) fn is_upgrade<H: RequestFields + ?Sized>(headers: &H) -> bool {
    headers.has(&UPGRADE) && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

/// Remove every hop-by-hop field: those `Connection` names, then the fixed
/// set of [`is_hop_by_hop`].
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = connection_tokens(headers)
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
    use http::HeaderValue;

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
    fn upgrade_needs_both_fields() {
        let table = [
            (
                &[("upgrade", "websocket"), ("connection", "Upgrade")][..],
                true,
            ),
            (
                &[
                    ("upgrade", "websocket"),
                    ("connection", "keep-alive, upgrade"),
                ][..],
                true,
            ),
            (&[("upgrade", "websocket")][..], false),
            (&[("connection", "upgrade")][..], false),
        ];
        for (fields, want) in table {
            let mut h = HeaderMap::new();
            for (n, v) in fields {
                h.append(*n, HeaderValue::from_static(v));
            }
            assert_eq!(is_upgrade(&h), want, "{fields:?}");
        }
    }
}
