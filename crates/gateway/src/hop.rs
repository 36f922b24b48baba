//! Hop-by-hop fields (RFC 9110 §7.6.1) on the gateway's requests, whichever
//! server read them; the fixed set and the stripping are corsgate-http1's.

use corsgate_policy::RequestFields;
use http::header::{CONNECTION, UPGRADE};

pub(crate) use corsgate_http1::{is_hop_by_hop, strip_hop_by_hop};

/// Does a `Connection` field of `headers` name the field `name`?
pub(crate) fn named_by_connection<H: RequestFields + ?Sized>(headers: &H, name: &str) -> bool {
    corsgate_http1::names_token(headers.values(&CONNECTION), name)
}

/// Is this an HTTP/1.1 protocol upgrade request (WebSocket and friends)?
pub(crate) fn is_upgrade<H: RequestFields + ?Sized>(headers: &H) -> bool {
    headers.has(&UPGRADE) && corsgate_http1::names_token(headers.values(&CONNECTION), "upgrade")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

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
