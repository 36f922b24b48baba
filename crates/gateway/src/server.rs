//! Listeners and the per-request pipeline.
//!
//! Order of work per request (R26): route and select the policy (R16, R17);
//! answer a preflight from the policy (R18-R20) before anything else; for
//! any other request queue the CORS completion, then forward or answer, then
//! complete whatever response results (R21-R25).

use crate::proxy::{self, UpstreamClient};
use crate::router::{self, Action, CompiledVService, RequestFacts};
use crate::Body;
use corsgate_config::Loaded;
use corsgate_policy::{ActualOutcome, Evaluation, PreflightOutcome, Refusal};
use http::header::HOST;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The CORS decision for the access log; formatting happens only when the
/// log line is actually written.
#[derive(Clone, Copy)]
enum CorsDecision {
    NoPolicy,
    Shadow,
    NotCors,
    Allowed,
    Refused(Refusal),
    PreflightAllowed,
    PreflightRefused(Refusal),
}

impl std::fmt::Display for CorsDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CorsDecision::NoPolicy => f.write_str("no_policy"),
            CorsDecision::Shadow => f.write_str("shadow"),
            CorsDecision::NotCors => f.write_str("not_cors"),
            CorsDecision::Allowed => f.write_str("allowed"),
            CorsDecision::Refused(r) => write!(f, "refused:{}", r.as_str()),
            CorsDecision::PreflightAllowed => f.write_str("preflight_allowed"),
            CorsDecision::PreflightRefused(r) => write!(f, "preflight_refused:{}", r.as_str()),
        }
    }
}

/// One access-log line's fields.
struct AccessLog<'a> {
    vs: &'a CompiledVService,
    rule: &'a str,
    method: &'a http::Method,
    path: &'a str,
    started: Instant,
}

impl AccessLog<'_> {
    fn write(&self, status: http::StatusCode, upstream: Option<Duration>, cors: CorsDecision) {
        tracing::info!(
            target: "corsgate::access",
            vservice = %self.vs.name,
            rule = self.rule,
            method = %self.method,
            path = self.path,
            status = status.as_u16(),
            upstream_ms = upstream.map(|d| d.as_secs_f64() * 1000.0),
            total_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            cors = %cors,
        );
    }
}

struct Shared {
    vservice: CompiledVService,
    clients: HashMap<(Duration, bool), UpstreamClient>,
}

/// A running gateway: its bound addresses, and a handle to stop it.
pub struct Running {
    /// `(vService name, bound address)` in configuration order.
    pub addrs: Vec<(String, SocketAddr)>,
    stop: watch::Sender<Option<Duration>>,
    tasks: JoinSet<()>,
}

impl Running {
    /// The bound address of a vService by name.
    pub fn addr(&self, vservice: &str) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|(n, _)| n == vservice)
            .map(|(_, a)| *a)
    }

    /// Stop accepting connections at once, let in-flight requests finish,
    /// and close idle connections; connections still busy after `drain`
    /// are dropped.
    pub async fn shutdown_within(mut self, drain: Duration) {
        let _ = self.stop.send(Some(drain));
        while self.tasks.join_next().await.is_some() {}
    }

    /// [`Running::shutdown_within`] with a 30 s drain deadline.
    pub async fn shutdown(self) {
        self.shutdown_within(Duration::from_secs(30)).await;
    }

    /// Wait until every listener has stopped (they run until `shutdown`).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Bind every vService's listener and start serving.
pub async fn start(loaded: &Loaded) -> std::io::Result<Running> {
    let compiled = router::compile(&loaded.config, &loaded.policies);
    let (stop, stop_rx) = watch::channel(None);
    let mut tasks = JoinSet::new();
    let mut addrs = Vec::new();
    for vs in compiled {
        let acceptor = match &vs.tls {
            Some(t) => Some(
                crate::tls::acceptor(t)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            ),
            None => None,
        };
        let listener = TcpListener::bind(&vs.listen).await?;
        let addr = listener.local_addr()?;
        addrs.push((vs.name.clone(), addr));
        let mut clients = HashMap::new();
        for rule in &vs.rules {
            if let Action::Forward {
                connect_timeout,
                http2,
                ..
            } = &rule.action
            {
                clients
                    .entry((*connect_timeout, *http2))
                    .or_insert_with(|| proxy::client(*connect_timeout, *http2));
            }
        }
        let shared = Arc::new(Shared {
            vservice: vs,
            clients,
        });
        tasks.spawn(accept_loop(listener, acceptor, shared, stop_rx.clone()));
    }
    Ok(Running { addrs, stop, tasks })
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper answers on its own (without CORS) past its buffer; keep it well
    // above our header limit so that our 431, completed with CORS, wins.
    builder
        .http1()
        .max_buf_size(shared.vservice.limits.max_header_bytes.max(8192) * 2 + 16 * 1024);
    let drain = loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = stop.changed() => break stop.borrow().unwrap_or_default(),
        };
        let _ = stream.set_nodelay(true);
        let svc_shared = shared.clone();
        let tls = acceptor.is_some();
        let svc = service_fn(move |req| {
            let shared = svc_shared.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(&shared, req, peer, tls).await) }
        });
        match &acceptor {
            None => {
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                // The handshake runs in the connection's task so a slow
                // client cannot stall the accept loop.
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(
                        Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %peer, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
        }
    };
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(vservice = %shared.vservice.name, "drain deadline passed; closing busy connections");
    }
}

/// The request's `Host`, or for HTTP/2 its URI authority, as a header value
/// (shared with the request, not copied).
fn request_host(req: &Request<Incoming>) -> Option<http::HeaderValue> {
    req.headers().get(HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
    })
}

/// The host part of a `Host` value, without the port. Routing compares it
/// case-insensitively, so it is not lower-cased (which would copy it).
fn host_without_port(value: &str) -> &str {
    if value.starts_with('[') {
        value.split_inclusive(']').next().unwrap_or("")
    } else {
        value.split(':').next().unwrap_or("")
    }
}

async fn handle(
    shared: &Shared,
    req: Request<Incoming>,
    peer: SocketAddr,
    tls: bool,
) -> Response<Body> {
    let started = Instant::now();
    let vs = &shared.vservice;
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let host_value = request_host(&req);
    let host = host_without_port(
        host_value
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let preflight = corsgate_policy::is_preflight(&method, req.headers());
    let selection = vs.select(&RequestFacts {
        method: &method,
        host,
        path: &path,
        query: req.uri().query(),
        headers: req.headers(),
        preflight,
    });
    let rule_name = selection.rule.map_or("-", |r| r.name.as_str());

    // R18, R26: a scoped preflight is answered here, before anything else.
    let mut completion = None;
    let mut decision = CorsDecision::NoPolicy;
    let log = AccessLog {
        vs,
        rule: rule_name,
        method: &method,
        path: &path,
        started,
    };
    if let Some(policy) = selection.policy {
        match policy.evaluate_classified(preflight, req.headers()) {
            Evaluation::Preflight(answer) => {
                let decision = match answer.outcome {
                    PreflightOutcome::Allowed(_) => CorsDecision::PreflightAllowed,
                    PreflightOutcome::Refused(r) => CorsDecision::PreflightRefused(r),
                };
                let mut resp = Response::new(proxy::full(bytes::Bytes::new()));
                *resp.status_mut() = answer.status;
                *resp.headers_mut() = answer.headers;
                log.write(resp.status(), None, decision);
                return resp;
            }
            Evaluation::Actual(c) => {
                decision = match c.outcome {
                    ActualOutcome::NotCors => CorsDecision::NotCors,
                    ActualOutcome::Allowed(_) => CorsDecision::Allowed,
                    ActualOutcome::Refused(r) => CorsDecision::Refused(r),
                };
                completion = Some(c);
            }
            Evaluation::Shadow(_) => decision = CorsDecision::Shadow,
        }
    }

    let too_big = if header_bytes(req.headers()) > vs.limits.max_header_bytes {
        Some((
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request header fields too large\n",
        ))
    } else if declared_length(req.headers()).is_some_and(|n| n > vs.limits.max_body_bytes) {
        Some((
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large\n",
        ))
    } else {
        None
    };
    let (mut resp, upstream_time) = match (too_big, selection.rule) {
        (Some((status, text)), _) => (proxy::gateway_response(status, text), None),
        (None, None) => (
            proxy::gateway_response(http::StatusCode::NOT_FOUND, "no route\n"),
            None,
        ),
        (None, Some(rule)) => match &rule.action {
            Action::Forward {
                connect_timeout,
                timeout,
                http2,
                ..
            } => match (
                rule.action.pick_upstream(),
                shared.clients.get(&(*connect_timeout, *http2)),
            ) {
                (Some(upstream), Some(client)) => {
                    let max_body = vs.limits.max_body_bytes;
                    let fwd = proxy::Forwarded {
                        peer,
                        host: host_value.clone(),
                        tls,
                        http2: *http2,
                    };
                    proxy::forward(client, upstream, *timeout, req, max_body, fwd).await
                }
                _ => (
                    proxy::gateway_response(http::StatusCode::BAD_GATEWAY, "no upstream\n"),
                    None,
                ),
            },
            Action::Direct {
                status,
                headers,
                body,
            } => {
                let mut r = Response::new(proxy::full(body.clone()));
                *r.status_mut() = *status;
                *r.headers_mut() = headers.clone();
                (r, None)
            }
            Action::Redirect { status, location } => {
                let mut r = Response::new(proxy::full(bytes::Bytes::new()));
                *r.status_mut() = *status;
                r.headers_mut()
                    .insert(http::header::LOCATION, location.clone());
                (r, None)
            }
        },
    };
    // R23-R25: complete whatever response we send, ours or the upstream's;
    // 1xx (a 101 switching protocols) is left alone (R27).
    if let (Some(policy), Some(c), false) = (
        selection.policy,
        &completion,
        resp.status().is_informational(),
    ) {
        policy.complete(c, resp.headers_mut());
    }
    log.write(resp.status(), upstream_time, decision);
    resp
}

/// Bytes of request header names and values, as the limit counts them.
fn header_bytes(headers: &http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.as_bytes().len() + 4)
        .sum()
}

fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}
