//! The upstream side: forwarding a request to an upstream and bringing its
//! answer back. Bodiless requests to HTTP/1.1 upstreams go through
//! corsgate's own exchange ([`exchange`]); bodies, upgrades and HTTP/2
//! upstreams through hyper's client ([`pool`] for HTTP/1.1). Both write the
//! same forwarding fields ([`forwarding`]) and apply the same response-head
//! limit. Bodies stream in both directions; nothing is buffered whole.

pub(crate) mod exchange;
pub(crate) mod forwarding;
pub(crate) mod pool;

use crate::client_error::BadRequest;
use crate::hop::strip_hop_by_hop;
use crate::request::ClientRequest;
use crate::upstream::forwarding::Forwarded;
use crate::{Body, BoxError, RequestBody};
use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A pooled upstream client. Request bodies are the client's stream,
/// wrapped in a size limit.
pub(crate) enum UpstreamClient {
    /// HTTP/1.1: corsgate's own pool (see `pool`).
    Http1(crate::upstream::pool::Http1Pool),
    /// h2c: hyper-util's client, which multiplexes over one connection.
    Http2(Box<Client<HttpConnector, Body>>),
}

/// Build a client with a connect timeout, speaking HTTP/1.1 or h2c,
/// keeping at most `max_idle` connections per upstream between requests.
/// hyper-util's HTTP/2 pool keeps one connection per upstream and sends
/// every stream over it, so for h2c any `max_idle` from 1 up keeps that one
/// connection; 0 disables its pool (a connection per request, closed when
/// the request is done).
pub(crate) fn client(connect_timeout: Duration, http2: bool, max_idle: usize) -> UpstreamClient {
    if !http2 {
        return UpstreamClient::Http1(crate::upstream::pool::Http1Pool::new(
            connect_timeout,
            max_idle,
        ));
    }
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    UpstreamClient::Http2(Box::new(
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(max_idle)
            .http2_only(true)
            // The same response-head limit as corsgate's own exchange.
            .http2_max_header_list_size(crate::upstream::exchange::MAX_HEAD_BYTES as u32)
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

/// What forwarding produced.
pub(crate) enum Answer {
    /// A response with its fields in a map: hyper's client's, or the
    /// gateway's own 502/504.
    Response(Response<Body>),
    /// An upstream response as corsgate's exchange read it (fields not yet
    /// in a map).
    Upstream(crate::upstream::exchange::UpstreamResponse),
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

/// The most request-body bytes a forwarded request may carry
/// (`limits.maxBodyBytes`).
pub(crate) struct BodyLimit(pub(crate) u64);

/// Forward `req` to `upstream` (`http://host:port`). Returns the upstream's
/// response, or the gateway's own 502/504; and a client error if the
/// request's body broke its framing or its limit on the way (then the
/// answer is the gateway's 400 or 413, not a 502). `upgrade`: the rule
/// allows the protocol the request asks to switch to.
pub(crate) async fn forward(
    client: &UpstreamClient,
    upstream: &str,
    timeout: Duration,
    req: ClientRequest,
    limit: BodyLimit,
    fwd: Forwarded<'_>,
    upgrade: bool,
) -> (Answer, Option<Duration>, Option<BadRequest>) {
    let authority = upstream.strip_prefix("http://").unwrap_or(upstream);
    if let UpstreamClient::Http1(pool) = client {
        if crate::upstream::exchange::eligible(req.method(), req.body_is_empty(), upgrade) {
            let (answer, elapsed) =
                forward_direct(pool, upstream, authority, timeout, &req, &fwd).await;
            return (answer, elapsed, None);
        }
    }
    // Bodies, upgrades and HTTP/2 go through hyper's client. Boxed: its
    // future is large, and would otherwise be moved with every request's.
    let (resp, elapsed, fault) = Box::pin(forward_hyper(
        client,
        upstream,
        authority,
        timeout,
        req.into_http(),
        limit,
        fwd,
        upgrade,
    ))
    .await;
    (Answer::Response(resp), elapsed, fault)
}

/// [`forward`] with corsgate's own exchange (see `exchange`).
async fn forward_direct(
    pool: &crate::upstream::pool::Http1Pool,
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
    let head = crate::upstream::exchange::RequestHead {
        method: req.method(),
        target,
        headers: req.fields(),
        forwarded: fwd,
    };
    let idle = pool.idle(authority);
    let started = std::time::Instant::now();
    // The exchange keeps its own timer per upstream connection (cheaper
    // than a timer per request); it ends with `Timeout` at the deadline.
    let sent = crate::upstream::exchange::exchange(
        &idle,
        authority,
        pool.connect_timeout(),
        &head,
        started + timeout,
    );
    match sent.await {
        Ok(resp) => (Answer::Upstream(resp), Some(started.elapsed())),
        Err(crate::upstream::exchange::ExchangeError::Timeout) => {
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
    limit: BodyLimit,
    fwd: Forwarded<'_>,
    upgrade: bool,
) -> (Response<Body>, Option<Duration>, Option<BadRequest>) {
    let mut req = req;
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let upgrade_value = upgrade
        .then(|| req.headers().get(http::header::UPGRADE).cloned())
        .flatten();
    // Stream the body through, failing the upload past the limit (a
    // declared Content-Length over it was already answered with 413); a
    // body that breaks its framing or the limit is the client's fault.
    let fault = Arc::new(OnceLock::new());
    let mut req = req.map(|b| {
        ClientBody {
            inner: b,
            remaining: limit.0,
            fault: fault.clone(),
        }
        .boxed()
    });
    let path_and_query = fwd.target.clone().unwrap_or_else(|| {
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
            None,
        );
    };

    *req.uri_mut() = uri;
    *req.version_mut() = if fwd.http2 {
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
    fwd.write_map(headers, authority);

    let started = std::time::Instant::now();
    let sent = async {
        match client {
            UpstreamClient::Http1(pool) => pool.send(authority, req).await.map_err(BoxError::from),
            UpstreamClient::Http2(c) => c.request(req).await.map_err(BoxError::from),
        }
    };
    let result = tokio::time::timeout(timeout, sent).await;
    if let Some(bad) = fault.get() {
        // The client's body failed, not the upstream: its error, not ours.
        tracing::debug!(reason = bad.label(), "request body refused");
        return (gateway_response(bad.status(), bad.text()), None, Some(*bad));
    }
    match result {
        Ok(Ok(resp)) => received(resp, client_upgrade, upstream, started.elapsed()),
        Ok(Err(e)) => {
            let (r, t) = upstream_failed(upstream, Some(&e), started);
            (r, t, None)
        }
        Err(_) => {
            let (r, t) = upstream_failed(upstream, None, started);
            (r, t, None)
        }
    }
}

/// An upstream response from hyper's client, made ready for the client:
/// an allowed upgrade's 101 opens the tunnel; a 101 nobody asked for, or a
/// head over the one upstream head limit, is a 502; hop-by-hop fields and
/// the upstream's protocol version are dropped.
fn received(
    mut resp: Response<hyper::body::Incoming>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    upstream: &str,
    elapsed: Duration,
) -> (Response<Body>, Option<Duration>, Option<BadRequest>) {
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_side) = client_upgrade {
            let upstream_side = hyper::upgrade::on(&mut resp);
            tokio::spawn(tunnel(client_side, upstream_side));
            let (parts, _) = resp.into_parts();
            return (Response::from_parts(parts, empty()), Some(elapsed), None);
        }
        // A 101 to a request that may not upgrade: the upstream
        // broke the protocol, and no tunnel is opened.
        tracing::warn!(
            upstream,
            "upstream switched protocols without an allowed upgrade"
        );
        return (
            gateway_response(StatusCode::BAD_GATEWAY, "upstream unavailable\n"),
            Some(elapsed),
            None,
        );
    }
    let (mut parts, body) = resp.into_parts();
    let fields = parts.headers.iter();
    if crate::upstream::exchange::fields_too_large(
        fields.map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
    ) {
        tracing::warn!(upstream, "upstream response head too large");
        return (
            gateway_response(StatusCode::BAD_GATEWAY, "upstream unavailable\n"),
            Some(elapsed),
            None,
        );
    }
    strip_hop_by_hop(&mut parts.headers);
    // The upstream's protocol version is hop-by-hop too: an HTTP/1.0
    // (or HTTP/2) upstream must not turn the client's status line
    // into HTTP/1.0 (hyper frames the client's connection itself).
    parts.version = Version::HTTP_11;
    let body = body.map_err(|e| -> BoxError { Box::new(e) }).boxed();
    (Response::from_parts(parts, body), Some(elapsed), None)
}

/// A client's request body on its way upstream: at most `remaining` more
/// bytes, and any error reading it (hyper's server found its chunked
/// framing broken, or it ended short of its `Content-Length`) recorded as
/// the client's fault, so the gateway answers 400 or 413 instead of
/// blaming the upstream with a 502.
struct ClientBody {
    inner: RequestBody,
    remaining: u64,
    fault: Arc<OnceLock<BadRequest>>,
}

impl http_body::Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match std::task::ready!(std::pin::Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > this.remaining {
                        let _ = this.fault.set(BadRequest::BodyTooLarge);
                        return std::task::Poll::Ready(Some(Err("request body too large".into())));
                    }
                    this.remaining -= n;
                }
                std::task::Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => {
                let _ = this.fault.set(BadRequest::BodyFraming);
                std::task::Poll::Ready(Some(Err(Box::new(e))))
            }
            None => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
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
