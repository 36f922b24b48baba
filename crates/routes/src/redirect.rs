//! Redirect targets: a fixed `Location`, or the request's URL with parts
//! replaced (the Gateway API's `RequestRedirect`).

use crate::path::PathChange;

/// Where a redirect goes.
#[derive(Debug)]
pub enum RedirectTarget {
    /// A fixed `Location`.
    Fixed(http::HeaderValue),
    /// The request's URL with parts replaced.
    Computed {
        /// Scheme, else the request's.
        scheme: Option<String>,
        /// Host name, else the request's.
        hostname: Option<String>,
        /// Port, else the request's (or the scheme's default when the
        /// scheme changes).
        port: Option<u16>,
        /// Path change, else the request's path.
        path: Option<PathChange>,
    },
}

impl RedirectTarget {
    /// The `Location` for a request to `host_header` (`host[:port]`) with
    /// `path` and `query`, received over TLS or not.
    pub fn location(
        &self,
        tls: bool,
        host_header: &str,
        path: &str,
        query: Option<&str>,
    ) -> Option<http::HeaderValue> {
        let RedirectTarget::Computed {
            scheme,
            hostname,
            port,
            path: change,
        } = self
        else {
            let RedirectTarget::Fixed(v) = self else {
                return None;
            };
            return Some(v.clone());
        };
        let request_scheme = if tls { "https" } else { "http" };
        let scheme = scheme.as_deref().unwrap_or(request_scheme);
        let (req_host, req_port) = split_host_port(host_header);
        let host = hostname.as_deref().unwrap_or(req_host);
        let port = match (port, scheme == request_scheme) {
            (Some(p), _) => Some(*p),
            (None, true) => req_port,
            (None, false) => None,
        };
        let default = if scheme == "https" { 443 } else { 80 };
        let mut loc = format!("{scheme}://{host}");
        if let Some(p) = port.filter(|p| *p != default) {
            loc.push_str(&format!(":{p}"));
        }
        match change {
            Some(c) => loc.push_str(&c.apply(path)),
            None => loc.push_str(path),
        }
        if let Some(q) = query {
            loc.push('?');
            loc.push_str(q);
        }
        http::HeaderValue::from_str(&loc).ok()
    }
}

fn split_host_port(h: &str) -> (&str, Option<u16>) {
    let (host, port) = match h.rfind(':') {
        Some(i) if !h[i..].contains(']') => (&h[..i], h[i + 1..].parse().ok()),
        _ => (h, None),
    };
    (host, port)
}
