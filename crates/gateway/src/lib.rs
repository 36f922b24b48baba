//! # corsgate-gateway
//!
//! The data plane: one listener per vService (HTTP/1.1 and h2c), the traffic
//! rules engine ([`router`]), the reverse proxy, and CORS applied to every
//! response (R18-R26): preflights on a CORS-scoped route are answered here
//! and never forwarded; every other response — the backend's or the
//! gateway's own 404/502/504 — is completed by the policy in scope.

#![deny(missing_docs)]

pub mod explain;
pub mod metrics;
pub mod router;
pub mod shadow;

mod accept;
mod client_error;
mod conn;
mod front;
mod generation;
mod hop;
mod pipeline;
mod request;
mod runtime;
pub mod tls;
mod upstream;

pub use runtime::{start, ReloadError, ReloadReport, Running, LISTEN_BACKLOG};

/// The response body type of every gateway response.
pub type Body = http_body_util::combinators::BoxBody<bytes::Bytes, BoxError>;
/// What the handler answers: a response, or a preflight answered at the
/// gateway, kept as the policy's answer so that a server writing its own
/// responses (the HTTP/1.1 front) encodes it without building a map.
pub(crate) enum Reply {
    /// Any response.
    Response(http::Response<Body>),
    /// A preflight's answer: its status and fields, an empty body.
    Preflight(corsgate_policy::PreflightResponse),
    /// An upstream's response as corsgate's exchange read it, and the CORS
    /// completion to write with it (`None`: passed on unchanged). Only for a
    /// server that writes its own heads (the handler is told).
    Upstream(
        upstream::exchange::UpstreamResponse,
        Option<corsgate_policy::CompletionLines>,
    ),
}

impl Reply {
    /// The reply as an `http::Response`.
    pub(crate) fn into_response(self) -> http::Response<Body> {
        match self {
            Reply::Response(r) => r,
            Reply::Preflight(answer) => {
                let mut r = http::Response::new(upstream::empty());
                *r.status_mut() = answer.status;
                *r.headers_mut() = answer.headers();
                r
            }
            Reply::Upstream(response, cors) => {
                let mut r = upstream::Answer::Upstream(response).into_response();
                if let Some(lines) = cors {
                    lines.apply(r.headers_mut());
                }
                r
            }
        }
    }
}

/// A client request's body: hyper's stream, or none for the requests
/// corsgate's own HTTP/1.1 front reads (it serves bodiless requests only).
pub(crate) enum RequestBody {
    /// Read by hyper's server.
    Incoming(hyper::body::Incoming),
    /// No body.
    Empty,
}

impl http_body::Body for RequestBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Incoming(b) => std::pin::Pin::new(b).poll_frame(cx),
            RequestBody::Empty => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Incoming(b) => b.is_end_stream(),
            RequestBody::Empty => true,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            RequestBody::Incoming(b) => b.size_hint(),
            RequestBody::Empty => http_body::SizeHint::with_exact(0),
        }
    }
}

/// Errors carried by bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
