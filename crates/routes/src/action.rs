//! What a rule does: forward, answer directly, or redirect.

use crate::path::PathChange;
use crate::redirect::RedirectTarget;
use http::HeaderMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What a rule does.
#[derive(Debug)]
pub enum Action {
    /// Forward to upstreams, round robin.
    Forward {
        /// Upstream base URLs (`http://host:port`), without a trailing slash.
        upstreams: Vec<String>,
        /// Next upstream index.
        next: AtomicUsize,
        /// Connect timeout.
        connect_timeout: std::time::Duration,
        /// Time to response headers.
        timeout: std::time::Duration,
        /// HTTP/2 (h2c) to the upstreams.
        http2: bool,
        /// `Host` sent upstream instead of the client's.
        rewrite_host: Option<http::HeaderValue>,
        /// Path change before forwarding.
        rewrite_path: Option<PathChange>,
        /// Protocols a client may upgrade to (`Upgrade`), lower case.
        upgrades: Vec<String>,
        /// How `X-Forwarded-*` are written.
        forwarded_headers: corsgate_config::ForwardedHeaders,
        /// Most connections kept open per upstream between requests (0:
        /// none, every request on a new connection).
        max_idle: usize,
    },
    /// Answer directly.
    Direct {
        /// Status.
        status: http::StatusCode,
        /// Headers, precomputed.
        headers: HeaderMap,
        /// Body.
        body: bytes::Bytes,
    },
    /// Redirect.
    Redirect {
        /// Status.
        status: http::StatusCode,
        /// Where to.
        target: RedirectTarget,
    },
}

impl Action {
    /// The upstream to use for the next forwarded request.
    pub fn pick_upstream(&self) -> Option<&str> {
        match self {
            Action::Forward {
                upstreams, next, ..
            } => {
                let i = next.fetch_add(1, Ordering::Relaxed) % upstreams.len().max(1);
                upstreams.get(i).map(String::as_str)
            }
            _ => None,
        }
    }
}
