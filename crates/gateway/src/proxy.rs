//! Forwarding a request to an upstream with hyper's pooled client.
//!
//! Bodies stream in both directions; nothing is buffered whole.

use crate::hop::is_upgrade;
use crate::hop::strip_hop_by_hop;
use crate::request::ClientRequest;
use crate::{Body, BoxError, RequestBody};
use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, HOST};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// A pooled upstream client. Request bodies are the client's stream,
/// wrapped in a size limit.
pub(crate) enum UpstreamClient {
    /// HTTP/1.1: corsgate's own pool (see `pool`).
    Http1(crate::pool::Http1Pool),
    /// h2c: hyper-util's client, which multiplexes over one connection.
    Http2(Box<Client<HttpConnector, Body>>),
}

/// Build a client with a connect timeout, speaking HTTP/1.1 or h2c.
pub(crate) fn client(connect_timeout: Duration, http2: bool) -> UpstreamClient {
    if !http2 {
        return UpstreamClient::Http1(crate::pool::Http1Pool::new(connect_timeout));
    }
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    UpstreamClient::Http2(Box::new(
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_only(true)
            .build(http),
    ))
}

/// A plain-text response made by the gateway.
pub(crate) fn gateway_response(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// An empty body. Boxing it allocates nothing (it has no size), unlike an
/// empty [`full`] body: preflight answers and redirects are made often.
pub(crate) fn empty() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A complete body.
pub(crate) fn full(b: Bytes) -> Body {
    Full::new(b).map_err(|never| match never {}).boxed()
}

/// What the `X-Forwarded-*` headers say about the client side.
pub(crate) struct Forwarded<'a> {
    /// The client's IP address, formatted.
    pub peer_ip: &'a str,
    /// The `Host` it asked for (for HTTP/2, its authority), port included.
    pub host: Option<HeaderValue>,
    /// A `Host` to send upstream instead (URL rewrite); `X-Forwarded-Host`
    /// still carries the client's.
    pub upstream_host: Option<HeaderValue>,
    /// A rewritten request target (path and query).
    pub target: Option<http::uri::PathAndQuery>,
    /// Whether it connected over TLS.
    pub tls: bool,
    /// Whether the upstream client speaks HTTP/2.
    pub http2: bool,
}

impl Forwarded<'_> {
    /// `http` or `https`: what `X-Forwarded-Proto` says.
    fn proto(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
}

/// What forwarding produced.
pub(crate) enum Answer {
    /// A response with its fields in a map: hyper's client's, or the
    /// gateway's own 502/504.
    Response(Response<Body>),
    /// An upstream response as corsgate's exchange read it (fields not yet
    /// in a map).
    Upstream(crate::exchange::UpstreamResponse),
}

impl Answer {
    /// The answer as an `http::Response`.
    pub(crate) fn into_response(self) -> Response<Body> {
        match self {
            Answer::Response(r) => r,
            Answer::Upstream(u) => match u.into_http() {
                Ok(r) => r.map(BodyExt::boxed),
                Err(e) => {
                    tracing::warn!(error = %e, "upstream response cannot be represented");
                    gateway_response(StatusCode::BAD_GATEWAY, "upstream unavailable\n")
                }
            },
        }
    }
}

/// Forward `req` to `upstream` (`http://host:port`). Returns the upstream's
/// response, or the gateway's own 502/504.
pub(crate) async fn forward(
    client: &UpstreamClient,
    upstream: &str,
    timeout: Duration,
    req: ClientRequest,
    max_body: u64,
    fwd: Forwarded<'_>,
) -> (Answer, Option<Duration>) {
    let upgrade = is_upgrade(&req.fields());
    let authority = upstream.strip_prefix("http://").unwrap_or(upstream);
    if let UpstreamClient::Http1(pool) = client {
        if crate::exchange::eligible(req.method(), req.body_is_empty(), upgrade) {
            return forward_direct(pool, upstream, authority, timeout, &req, &fwd).await;
        }
    }
    // Bodies, upgrades and HTTP/2 go through hyper's client. Boxed: its
    // future is large, and would otherwise be moved with every request's.
    let (resp, elapsed) = Box::pin(forward_hyper(
        client,
        upstream,
        authority,
        timeout,
        req.into_http(),
        max_body,
        fwd,
        upgrade,
    ))
    .await;
    (Answer::Response(resp), elapsed)
}

/// [`forward`] with corsgate's own exchange (see `exchange`).
async fn forward_direct(
    pool: &crate::pool::Http1Pool,
    upstream: &str,
    authority: &str,
    timeout: Duration,
    req: &ClientRequest,
    fwd: &Forwarded<'_>,
) -> (Answer, Option<Duration>) {
    let target = fwd.target.as_ref().map_or_else(
        || req.uri().path_and_query().map_or("/", |p| p.as_str()),
        |t| t.as_str(),
    );
    let head = crate::exchange::RequestHead {
        method: req.method(),
        target,
        headers: req.fields(),
        host: fwd.upstream_host.as_ref().or(fwd.host.as_ref()),
        forwarded_host: fwd.host.as_ref(),
        peer_ip: fwd.peer_ip,
        proto: fwd.proto(),
    };
    let idle = pool.direct_idle(authority);
    let started = std::time::Instant::now();
    // The exchange keeps its own timer per upstream connection (cheaper
    // than a timer per request); it ends with `Timeout` at the deadline.
    let sent = crate::exchange::exchange(
        &idle,
        authority,
        pool.connect_timeout(),
        &head,
        started + timeout,
    );
    match sent.await {
        Ok(resp) => (Answer::Upstream(resp), Some(started.elapsed())),
        Err(crate::exchange::ExchangeError::Timeout) => {
            let (resp, elapsed) = upstream_failed(upstream, None, started);
            (Answer::Response(resp), elapsed)
        }
        Err(e) => {
            let (resp, elapsed) = upstream_failed(upstream, Some(&e), started);
            (Answer::Response(resp), elapsed)
        }
    }
}

/// The gateway's own answer when the upstream failed (502, with the error
/// logged) or did not answer within the timeout (504, `error` is `None`).
fn upstream_failed(
    upstream: &str,
    error: Option<&dyn std::fmt::Display>,
    started: std::time::Instant,
) -> (Response<Body>, Option<Duration>) {
    let resp = match error {
        Some(e) => {
            tracing::warn!(upstream, error = %e, "upstream request failed");
            gateway_response(StatusCode::BAD_GATEWAY, "upstream unavailable\n")
        }
        None => gateway_response(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n"),
    };
    (resp, Some(started.elapsed()))
}

/// [`forward`] with hyper's client.
#[allow(clippy::too_many_arguments)]
async fn forward_hyper(
    client: &UpstreamClient,
    upstream: &str,
    authority: &str,
    timeout: Duration,
    req: Request<RequestBody>,
    max_body: u64,
    fwd: Forwarded<'_>,
    upgrade: bool,
) -> (Response<Body>, Option<Duration>) {
    let scheme = fwd.proto();
    let Forwarded {
        peer_ip,
        host,
        upstream_host,
        target,
        http2,
        ..
    } = fwd;
    let mut req = req;
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let upgrade_value = req.headers().get(http::header::UPGRADE).cloned();
    // Stream the body through, failing the upload past the limit (a
    // declared Content-Length over it was already answered with 413).
    let mut req = req.map(|b| {
        http_body_util::Limited::new(b, usize::try_from(max_body).unwrap_or(usize::MAX)).boxed()
    });
    let path_and_query = target.unwrap_or_else(|| {
        req.uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"))
    });
    // HTTP/1.1 upstreams get origin-form (`/path?q`); h2c needs the full URI.
    let uri = match client {
        UpstreamClient::Http1(_) => Some(Uri::from(path_and_query)),
        UpstreamClient::Http2(_) => format!("{upstream}{path_and_query}").parse::<Uri>().ok(),
    };
    let Some(uri) = uri else {
        return (
            gateway_response(StatusCode::BAD_REQUEST, "bad request target\n"),
            None,
        );
    };

    *req.uri_mut() = uri;
    *req.version_mut() = if http2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    if let Some(u) = &upgrade_value {
        // An upgrade keeps exactly its Upgrade and Connection: upgrade.
        headers.insert(http::header::UPGRADE, u.clone());
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
    // Host is preserved: the upstream sees what the client asked for, and
    // X-Forwarded-Host says the same.
    if let Some(h) = host {
        headers.insert(HOST, upstream_host.unwrap_or_else(|| h.clone()));
        headers.insert("x-forwarded-host", h);
    } else if let Some(u) = upstream_host {
        headers.insert(HOST, u);
    }
    let mut xff = Vec::new();
    crate::exchange::forwarded_for(headers, peer_ip, &mut xff);
    if let Ok(v) = HeaderValue::from_bytes(&xff) {
        headers.insert(&crate::exchange::X_FORWARDED_FOR, v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(scheme));

    let started = std::time::Instant::now();
    let sent = async {
        match client {
            UpstreamClient::Http1(pool) => pool.send(authority, req).await.map_err(BoxError::from),
            UpstreamClient::Http2(c) => c.request(req).await.map_err(BoxError::from),
        }
    };
    match tokio::time::timeout(timeout, sent).await {
        Ok(Ok(mut resp)) => {
            let elapsed = started.elapsed();
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                if let Some(client_side) = client_upgrade {
                    let upstream_side = hyper::upgrade::on(&mut resp);
                    tokio::spawn(tunnel(client_side, upstream_side));
                    let (parts, _) = resp.into_parts();
                    return (Response::from_parts(parts, empty()), Some(elapsed));
                }
            }
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            // The upstream's protocol version is hop-by-hop too: an HTTP/1.0
            // (or HTTP/2) upstream must not turn the client's status line
            // into HTTP/1.0 (hyper frames the client's connection itself).
            parts.version = Version::HTTP_11;
            let body = body.map_err(|e| -> BoxError { Box::new(e) }).boxed();
            (Response::from_parts(parts, body), Some(elapsed))
        }
        Ok(Err(e)) => upstream_failed(upstream, Some(&e), started),
        Err(_) => upstream_failed(upstream, None, started),
    }
}

/// Copy bytes both ways between an upgraded client connection and the
/// upgraded upstream connection until either side closes.
async fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let mut client = hyper_util::rt::TokioIo::new(client);
    let mut upstream = hyper_util::rt::TokioIo::new(upstream);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(error = %e, "tunnel closed with an error");
    }
}
