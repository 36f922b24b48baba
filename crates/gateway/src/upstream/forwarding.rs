//! What the gateway tells the upstream about the client: `Host`,
//! `X-Forwarded-For`, `X-Forwarded-Host` and `X-Forwarded-Proto`, written
//! here for both upstream paths (corsgate's exchange writes lines, hyper's
//! client a map), so the two can never disagree.
//!
//! A client's own `X-Forwarded-Host` and `X-Forwarded-Proto` are never
//! passed on: the gateway knows the answers and a client could lie (a
//! backend building absolute URLs from them would build them for the
//! attacker's host). `X-Forwarded-For` is appended to, as nginx's
//! `$proxy_add_x_forwarded_for` does; its earlier entries are the client's
//! word and are documented as such. A rule's `forwardedHeaders` chooses
//! otherwise: `replace` (the peer only) or `off` (none of the three, the
//! client's `X-Forwarded-For` dropped too).

use corsgate_config::ForwardedHeaders;
use corsgate_policy::RequestFields;
use http::header::{HeaderMap, HeaderName, HeaderValue, HOST};

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// What the forwarding fields say about the client side.
pub(crate) struct Forwarded<'a> {
    /// The client's IP address, formatted.
    pub peer_ip: &'a str,
    /// The validated host and port it asked for (its `Host`, or the
    /// authority of an absolute-form or HTTP/2 request).
    pub host: Option<HeaderValue>,
    /// A `Host` to send upstream instead (URL rewrite); `X-Forwarded-Host`
    /// still carries the client's.
    pub upstream_host: Option<HeaderValue>,
    /// A changed request target (path and query): normalised or rewritten.
    pub target: Option<http::uri::PathAndQuery>,
    /// Whether it connected over TLS.
    pub tls: bool,
    /// Whether the upstream client speaks HTTP/2.
    pub http2: bool,
    /// Which `X-Forwarded-*` fields to write, and how.
    pub mode: ForwardedHeaders,
}

/// Is `name` a field the gateway writes itself, so the client's is never
/// forwarded as sent?
pub(crate) fn written_by_gateway(name: &HeaderName) -> bool {
    name == HOST || name == X_FORWARDED_FOR || name == X_FORWARDED_HOST || name == X_FORWARDED_PROTO
}

impl Forwarded<'_> {
    /// `http` or `https`: what `X-Forwarded-Proto` says.
    pub(crate) fn proto(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The `Host` to send: the rewrite, else the client's; `None`: the
    /// upstream's own authority.
    pub(crate) fn upstream_host(&self) -> Option<&HeaderValue> {
        self.upstream_host.as_ref().or(self.host.as_ref())
    }

    /// Append the forwarding fields after `Host` as HTTP/1.1 lines (the
    /// exchange's request head): `X-Forwarded-For` (the client's earlier
    /// lines, folded, then the peer), `X-Forwarded-Host` (when the client
    /// named a host), `X-Forwarded-Proto`.
    pub(crate) fn write_lines<H: RequestFields + ?Sized>(&self, client: &H, out: &mut Vec<u8>) {
        if self.mode == ForwardedHeaders::Off {
            return;
        }
        out.extend_from_slice(b"x-forwarded-for: ");
        self.write_for(client, out);
        out.extend_from_slice(b"\r\n");
        if let Some(h) = &self.host {
            out.extend_from_slice(b"x-forwarded-host: ");
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"x-forwarded-proto: ");
        out.extend_from_slice(self.proto().as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// The `X-Forwarded-For` value: every earlier line of the client's,
    /// folded in order, then the peer.
    fn write_for<H: RequestFields + ?Sized>(&self, client: &H, out: &mut Vec<u8>) {
        let prior = match self.mode {
            ForwardedHeaders::Append => Some(client.values(&X_FORWARDED_FOR)),
            ForwardedHeaders::Replace | ForwardedHeaders::Off => None,
        };
        for prior in prior.into_iter().flatten() {
            out.extend_from_slice(prior.as_bytes());
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(self.peer_ip.as_bytes());
    }

    /// Replace the client's forwarding fields in `headers` (hyper's
    /// client's request) with the gateway's; `authority` (the upstream's)
    /// is the `Host` when the client named none (HTTP/1.0).
    pub(crate) fn write_map(&self, headers: &mut HeaderMap, authority: &str) {
        let mut xff = Vec::new();
        self.write_for(&*headers, &mut xff);
        for name in [&X_FORWARDED_FOR, &X_FORWARDED_HOST, &X_FORWARDED_PROTO] {
            headers.remove(name);
        }
        match self.upstream_host() {
            Some(h) => {
                headers.insert(HOST, h.clone());
            }
            None => {
                if let Ok(v) = HeaderValue::from_str(authority) {
                    headers.insert(HOST, v);
                }
            }
        }
        if self.mode == ForwardedHeaders::Off {
            return;
        }
        // Built from valid field values and an IP address.
        if let Ok(v) = HeaderValue::from_bytes(&xff) {
            headers.insert(&X_FORWARDED_FOR, v);
        }
        if let Some(h) = &self.host {
            headers.insert(&X_FORWARDED_HOST, h.clone());
        }
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(self.proto()));
    }
}
