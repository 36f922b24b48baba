//! Listeners and the per-request pipeline.
//!
//! Order of work per request (R26): route and select the policy (R16, R17);
//! answer a preflight from the policy (R18-R20) before anything else; for
//! any other request queue the CORS completion, then forward or answer, then
//! complete whatever response results (R21-R25).

use crate::front::{self, Ended, Prefixed};
use crate::proxy::{self, Answer, UpstreamClient};
use crate::request::{ClientRequest, Fields};
use crate::router::{self, Action, CompiledVService, RequestFacts};
use crate::{Body, Reply, RequestBody};
use arc_swap::ArcSwap;
use corsgate_config::Loaded;
use corsgate_policy::{ActualOutcome, Evaluation, PreflightOutcome, Refusal, RequestFields};
use http::header::HOST;
use http::{Request, Response};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Upstream clients by (connect timeout, HTTP/2). Looked up on every
/// forwarded request, so hashed with foldhash rather than SipHash.
type Clients = HashMap<(Duration, bool), Arc<UpstreamClient>, foldhash::fast::RandomState>;

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

impl CorsDecision {
    fn outcome(self) -> crate::metrics::Outcome {
        use crate::metrics::Outcome;
        match self {
            CorsDecision::NoPolicy | CorsDecision::Shadow | CorsDecision::NotCors => {
                Outcome::Uncounted
            }
            CorsDecision::Allowed => Outcome::Allowed,
            CorsDecision::Refused(r) => Outcome::Refused(r),
            CorsDecision::PreflightAllowed => Outcome::PreflightAllowed,
            CorsDecision::PreflightRefused(r) => Outcome::PreflightRefused(r),
        }
    }

    fn refused(self) -> bool {
        matches!(
            self,
            CorsDecision::Refused(_) | CorsDecision::PreflightRefused(_)
        )
    }
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
    /// When the request arrived; read only if access logging is on.
    started: Option<Instant>,
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
            total_ms = self.started.map(|s| s.elapsed().as_secs_f64() * 1000.0),
            cors = %cors,
        );
    }
}

/// What one listener serves in one configuration generation.
struct Slot {
    vservice: CompiledVService,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    stats: crate::metrics::VServiceMetrics,
}

/// One applied configuration, swapped whole on reload. A request loads the
/// generation once when it arrives and uses it until its response head is
/// ready, so it never mixes two configurations; requests in flight during a
/// reload finish on the generation they started with.
struct Generation {
    /// Indexed by listener slot; `None` for listeners being retired.
    slots: Vec<Option<Slot>>,
    /// Upstream clients by (connect timeout, HTTP/2), shared by every
    /// vService and carried over between generations so that reloads keep
    /// the pooled connections.
    clients: Clients,
    /// A candidate configuration evaluated beside this one (shared by
    /// every generation: installing one does not reload).
    shadow: crate::shadow::ShadowHandle,
}

type State = Arc<ArcSwap<Generation>>;

/// A bound listener.
struct Listener {
    slot: usize,
    listen: String,
    name: String,
    addr: SocketAddr,
    stop: watch::Sender<Option<Duration>>,
    task: JoinHandle<()>,
}

/// Why a reload was refused. The running configuration stays in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The route compiler refused the configuration.
    #[error("{0}")]
    Routes(corsgate_config::ConfigErrors),
    /// A new listener could not be bound.
    #[error("vService {vservice}: cannot listen on {listen}: {source}")]
    Bind {
        /// vService.
        vservice: String,
        /// Address.
        listen: String,
        /// Why.
        source: std::io::Error,
    },
    /// TLS material could not be loaded.
    #[error("vService {vservice}: {source}")]
    Tls {
        /// vService.
        vservice: String,
        /// Why.
        source: crate::tls::TlsError,
    },
}

impl From<ReloadError> for std::io::Error {
    fn from(e: ReloadError) -> Self {
        match e {
            ReloadError::Bind { source, .. } => source,
            e @ (ReloadError::Tls { .. } | ReloadError::Routes(_)) => {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
            }
        }
    }
}

/// What a reload changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// vServices on listeners that were already bound (served by the new
    /// configuration from the next request on).
    pub kept: Vec<String>,
    /// vServices on newly bound listeners.
    pub added: Vec<String>,
    /// vServices whose listeners were closed (in-flight requests drained).
    pub removed: Vec<String>,
}

/// A running gateway: its bound addresses, and handles to reload or stop it.
pub struct Running {
    /// `(vService name, bound address)` in configuration order.
    pub addrs: Vec<(String, SocketAddr)>,
    state: State,
    listeners: Vec<Listener>,
    next_slot: usize,
    metrics: Arc<crate::metrics::Metrics>,
    shadow: crate::shadow::ShadowHandle,
}

impl Running {
    /// The bound address of a vService by name.
    pub fn addr(&self, vservice: &str) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|(n, _)| n == vservice)
            .map(|(_, a)| *a)
    }

    /// Apply a new, already validated configuration atomically.
    ///
    /// Listeners whose `listen` address is unchanged stay bound (no
    /// connection is dropped); new addresses are bound *before* anything is
    /// swapped, so a failure (address in use, unreadable certificate)
    /// leaves the running configuration untouched. Then every listener
    /// switches to the new generation with one atomic pointer swap, and
    /// listeners no longer configured stop accepting and drain.
    pub async fn reload(&mut self, loaded: &Loaded) -> Result<ReloadReport, ReloadError> {
        let result = self.apply(loaded).await;
        self.metrics.reloaded(result.is_ok());
        result
    }

    /// Install, read and remove a shadow candidate.
    pub fn shadow(&self) -> crate::shadow::ShadowHandle {
        self.shadow.clone()
    }

    /// The process's metrics (Prometheus text with `render`).
    pub fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        self.metrics.clone()
    }

    async fn apply(&mut self, loaded: &Loaded) -> Result<ReloadReport, ReloadError> {
        let compiled = router::compile(loaded).map_err(ReloadError::Routes)?;
        let old = self.state.load_full();
        let mut report = ReloadReport::default();
        let mut slots: Vec<Option<Slot>> = Vec::new();
        let mut fresh: Vec<(usize, TcpListener, String, String)> = Vec::new();
        let mut keep = std::collections::HashSet::new();
        let mut next_slot = self.next_slot;
        for vs in compiled {
            let acceptor = tls_acceptor(&vs).map_err(|source| ReloadError::Tls {
                vservice: vs.name.clone(),
                source,
            })?;
            let slot = match self.listeners.iter().find(|l| l.listen == vs.listen) {
                Some(l) => {
                    keep.insert(l.slot);
                    report.kept.push(vs.name.clone());
                    l.slot
                }
                None => {
                    let listener = TcpListener::bind(&vs.listen).await.map_err(|source| {
                        ReloadError::Bind {
                            vservice: vs.name.clone(),
                            listen: vs.listen.clone(),
                            source,
                        }
                    })?;
                    let slot = next_slot;
                    next_slot += 1;
                    report.added.push(vs.name.clone());
                    fresh.push((slot, listener, vs.name.clone(), vs.listen.clone()));
                    slot
                }
            };
            if slots.len() <= slot {
                slots.resize_with(slot + 1, || None);
            }
            let stats = self.metrics.for_vservice(&vs, &loaded.policies);
            slots[slot] = Some(Slot {
                vservice: vs,
                acceptor,
                stats,
            });
        }
        let clients = clients_for(&slots, Some(&old.clients));
        // Nothing can fail from here on.
        self.next_slot = next_slot;
        self.state.store(Arc::new(Generation {
            slots,
            clients,
            shadow: self.shadow.clone(),
        }));
        let (stay, go): (Vec<_>, Vec<_>) = std::mem::take(&mut self.listeners)
            .into_iter()
            .partition(|l| keep.contains(&l.slot));
        self.listeners = stay;
        for l in go {
            report.removed.push(l.name.clone());
            let _ = l.stop.send(Some(Duration::from_secs(30)));
            // The listener drains on its own task; nothing waits for it here.
            drop(l.task);
        }
        for (slot, listener, name, listen) in fresh {
            self.spawn_listener(slot, listener, name, listen);
        }
        // Names of kept listeners follow the new configuration.
        let current = self.state.load();
        for l in &mut self.listeners {
            if let Some(Some(slot)) = current.slots.get(l.slot) {
                l.name = slot.vservice.name.clone();
            }
        }
        self.refresh_addrs();
        Ok(report)
    }

    fn spawn_listener(&mut self, slot: usize, listener: TcpListener, name: String, listen: String) {
        let addr = listener.local_addr().unwrap_or_else(|_| {
            // A bound TCP listener always has a local address.
            SocketAddr::from(([0, 0, 0, 0], 0))
        });
        let (stop, stop_rx) = watch::channel(None);
        let task = tokio::spawn(accept_loop(listener, slot, self.state.clone(), stop_rx));
        self.listeners.push(Listener {
            slot,
            listen,
            name,
            addr,
            stop,
            task,
        });
    }

    fn refresh_addrs(&mut self) {
        self.listeners.sort_by_key(|l| l.slot);
        self.addrs = self
            .listeners
            .iter()
            .map(|l| (l.name.clone(), l.addr))
            .collect();
    }

    /// Stop accepting connections at once, let in-flight requests finish,
    /// and close idle connections; connections still busy after `drain`
    /// are dropped.
    pub async fn shutdown_within(self, drain: Duration) {
        for l in &self.listeners {
            let _ = l.stop.send(Some(drain));
        }
        for l in self.listeners {
            let _ = l.task.await;
        }
    }

    /// [`Running::shutdown_within`] with a 30 s drain deadline.
    pub async fn shutdown(self) {
        self.shutdown_within(Duration::from_secs(30)).await;
    }

    /// Wait until every listener has stopped (they run until `shutdown`).
    pub async fn wait(self) {
        for l in self.listeners {
            let _ = l.task.await;
        }
    }
}

fn tls_acceptor(
    vs: &CompiledVService,
) -> Result<Option<tokio_rustls::TlsAcceptor>, crate::tls::TlsError> {
    vs.tls.as_ref().map(crate::tls::acceptor).transpose()
}

/// The upstream clients a generation needs, reusing the previous
/// generation's (and so their pooled connections) where the settings match.
fn clients_for(slots: &[Option<Slot>], previous: Option<&Clients>) -> Clients {
    let mut clients = Clients::default();
    for slot in slots.iter().flatten() {
        for rule in &slot.vservice.rules {
            if let Action::Forward {
                connect_timeout,
                http2,
                ..
            } = &rule.action
            {
                let key = (*connect_timeout, *http2);
                clients.entry(key).or_insert_with(|| {
                    previous
                        .and_then(|p| p.get(&key).cloned())
                        .unwrap_or_else(|| Arc::new(proxy::client(*connect_timeout, *http2)))
                });
            }
        }
    }
    clients
}

/// Bind every vService's listener and start serving.
pub async fn start(loaded: &Loaded) -> std::io::Result<Running> {
    let mut running = Running {
        addrs: Vec::new(),
        state: Arc::new(ArcSwap::from_pointee(Generation {
            slots: Vec::new(),
            clients: Clients::default(),
            shadow: crate::shadow::ShadowHandle::default(),
        })),
        listeners: Vec::new(),
        next_slot: 0,
        metrics: crate::metrics::Metrics::new(),
        shadow: crate::shadow::ShadowHandle::default(),
    };
    running.reload(loaded).await?;
    Ok(running)
}

/// hyper's HTTP/1 read buffer for a header limit: hyper answers on its own
/// (without CORS) past its buffer, so keep it well above our limit so that
/// our 431, completed with CORS, wins.
fn read_buffer_for(max_header_bytes: usize) -> usize {
    max_header_bytes.max(8192) * 2 + 16 * 1024
}

/// One connection's handler: the gateway's pipeline for every request on
/// it, whichever HTTP server read the request.
#[derive(Clone)]
struct Handler {
    state: State,
    slot: usize,
    /// Formatted once per connection for X-Forwarded-For.
    peer_ip: Arc<str>,
    tls: bool,
}

impl Handler {
    /// Answer `req`. `writes_heads`: the caller writes response heads itself
    /// (the front), so an upstream response may come back as read
    /// ([`Reply::Upstream`]) rather than as an `http::Response`.
    ///
    /// Not an `async fn` wrapping [`handle`]: its future is the handler's
    /// own, one layer (and one copy of the request) fewer per request.
    fn call(
        &self,
        req: ClientRequest,
        writes_heads: bool,
    ) -> impl Future<Output = Reply> + Send + '_ {
        handle(
            self.state.load_full(),
            self.slot,
            req,
            &self.peer_ip,
            self.tls,
            writes_heads,
        )
    }

    /// The handler as a hyper service.
    fn service(
        self,
    ) -> impl hyper::service::Service<
        Request<hyper::body::Incoming>,
        Response = Response<Body>,
        Error = std::convert::Infallible,
        Future = impl Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send,
    > + Clone {
        service_fn(move |req: Request<hyper::body::Incoming>| {
            let handler = self.clone();
            async move {
                Ok::<_, std::convert::Infallible>(
                    handler
                        .call(
                            ClientRequest::from_map(req.map(RequestBody::Incoming)),
                            false,
                        )
                        .await
                        .into_response(),
                )
            }
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    slot: usize,
    state: State,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    // Every connection's task holds a watcher of `graceful` for its whole
    // life (hyper's connections are watched through it, and the front's
    // hold it until they end or hand over), so the drain below waits for
    // both kinds.
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let mut buffer = 0;
    let mut header_timeout = Duration::ZERO;
    // hyper applies its header read timeout only with a timer.
    builder.http1().timer(hyper_util::rt::TokioTimer::new());
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
        // The connection's settings come from the generation current when
        // it is accepted; each request reads the generation anew.
        let (acceptor, timeouts) = {
            let generation = state.load();
            let Some(Some(current)) = generation.slots.get(slot) else {
                continue;
            };
            let limits = &current.vservice.limits;
            let wanted = read_buffer_for(limits.max_header_bytes);
            if wanted != buffer {
                buffer = wanted;
                builder.http1().max_buf_size(buffer);
            }
            let timeouts = front::ClientTimeouts {
                header: Duration::from_millis(limits.header_timeout_ms),
                idle: Duration::from_millis(limits.idle_timeout_ms),
            };
            if timeouts.header != header_timeout {
                header_timeout = timeouts.header;
                builder.http1().header_read_timeout(header_timeout);
            }
            (current.acceptor.clone(), timeouts)
        };
        let handler = Handler {
            state: state.clone(),
            slot,
            peer_ip: peer.ip().to_string().into(),
            tls: acceptor.is_some(),
        };
        let builder = builder.clone();
        let watcher = graceful.watcher();
        match acceptor {
            None => {
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut stream = stream;
                    let ended =
                        front::serve(&mut stream, |req| handler.call(req, true), &stop, timeouts)
                            .await;
                    match ended {
                        Ok(Ended::HandOff(read)) => {
                            let io = TokioIo::new(Prefixed::new(read, stream));
                            let conn = builder
                                .serve_connection_with_upgrades(io, handler.service())
                                .into_owned();
                            if let Err(e) = watcher.watch(conn).await {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        }
                        Ok(Ended::Closed) => {
                            // A FIN after the last response, as hyper sends.
                            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
                        }
                        Err(e) => tracing::debug!(error = %e, "connection ended with an error"),
                    }
                });
            }
            Some(acceptor) => {
                let mut stop = stop.clone();
                // The handshake runs in the connection's task so a slow
                // client cannot stall the accept loop.
                tokio::spawn(async move {
                    let mut stream = match tokio::time::timeout(
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
                    // hyper-util reads the first bytes to choose HTTP/1 or
                    // HTTP/2 without a timer, and hyper's header timeout
                    // starts only after that: a client that completes the
                    // handshake and then says nothing would keep the
                    // connection. The first bytes are read here, within the
                    // idle timeout (or until the gateway stops), then handed
                    // over with the rest of the stream.
                    let mut first = bytes::BytesMut::with_capacity(4096);
                    let read = tokio::time::timeout(
                        timeouts.idle,
                        tokio::io::AsyncReadExt::read_buf(&mut stream, &mut first),
                    );
                    tokio::select! {
                        r = read => match r {
                            Ok(Ok(n)) if n > 0 => {}
                            _ => return,
                        },
                        _ = stop.changed() => return,
                    }
                    let io = TokioIo::new(Prefixed::new(first.freeze(), stream));
                    let conn = builder
                        .serve_connection_with_upgrades(io, handler.service())
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
        tracing::warn!(slot, "drain deadline passed; closing busy connections");
    }
}

/// The request's `Host`, or for HTTP/2 its URI authority, as a header value
/// (shared with the request, not copied).
fn request_host(req: &ClientRequest) -> Option<http::HeaderValue> {
    req.fields().first_value(&HOST).cloned().or_else(|| {
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
    generation: Arc<Generation>,
    slot: usize,
    req: ClientRequest,
    peer_ip: &str,
    tls: bool,
    writes_heads: bool,
) -> Reply {
    let Some(Some(slot)) = generation.slots.get(slot) else {
        // The listener is being retired by a reload.
        return Reply::Response(proxy::gateway_response(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "listener closing\n",
        ));
    };
    // The clock is read only when the access log will be written.
    let started =
        tracing::enabled!(target: "corsgate::access", tracing::Level::INFO).then(Instant::now);
    let vs = &slot.vservice;
    let method = req.method().clone();
    // A shared handle on the request target (no copy): the request itself
    // moves to the upstream.
    let uri = req.uri().clone();
    let path = uri.path();
    let host_value = request_host(&req);
    let host = host_without_port(
        host_value
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let fields = req.fields();
    let preflight = corsgate_policy::is_preflight(&method, &fields);
    let selection = vs.select(&RequestFacts {
        method: &method,
        host,
        path,
        query: req.uri().query(),
        headers: &fields,
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
        path,
        started,
    };
    let evaluation = selection
        .policy
        .map(|p| p.evaluate_classified(preflight, &fields));
    // The shadow is checked first: it is rarely installed, and the Origin
    // lookup is then skipped.
    if let Some((shadow, origin)) = generation
        .shadow
        .0
        .load()
        .as_ref()
        .and_then(|s| Some((s, fields.first_value(&http::header::ORIGIN)?)))
    {
        let facts = RequestFacts {
            method: &method,
            host,
            path,
            query: req.uri().query(),
            headers: &fields,
            preflight,
        };
        let active = evaluation.as_ref().and_then(crate::shadow::verdict);
        shadow.compare(&vs.listen, &facts, active, origin.as_bytes());
    }
    if let Some(evaluation) = evaluation {
        match evaluation {
            Evaluation::Preflight(answer) => {
                let decision = match answer.outcome {
                    PreflightOutcome::Allowed(_) => CorsDecision::PreflightAllowed,
                    PreflightOutcome::Refused(r) => CorsDecision::PreflightRefused(r),
                };
                // The origin names a refused request in the metrics only.
                let origin = decision
                    .refused()
                    .then(|| fields.first_value(&http::header::ORIGIN))
                    .flatten();
                slot.stats.record(
                    selection.rule.map(|r| r.index),
                    answer.status.as_u16(),
                    selection.policy,
                    decision.outcome(),
                    origin.map(http::HeaderValue::as_bytes),
                    None,
                );
                log.write(answer.status, None, decision);
                return Reply::Preflight(answer);
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

    // Kept (a shared buffer, not a copy) only to name a refused origin in
    // the metrics.
    let refused_origin = if decision.refused() {
        fields.first_value(&http::header::ORIGIN).cloned()
    } else {
        None
    };
    let too_big = if header_bytes(fields) > vs.limits.max_header_bytes {
        Some((
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request header fields too large\n",
        ))
    } else if declared_length(fields).is_some_and(|n| n > vs.limits.max_body_bytes) {
        Some((
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large\n",
        ))
    } else {
        None
    };
    let (answer, upstream_time) = match (too_big, selection.rule) {
        (Some((status, text)), _) => (
            Answer::Response(proxy::gateway_response(status, text)),
            None,
        ),
        (None, None) => (
            Answer::Response(proxy::gateway_response(
                http::StatusCode::NOT_FOUND,
                "no route\n",
            )),
            None,
        ),
        (None, Some(rule)) => match &rule.action {
            Action::Forward {
                connect_timeout,
                timeout,
                http2,
                rewrite_host,
                rewrite_path,
                ..
            } => match (
                rule.action.pick_upstream(),
                generation.clients.get(&(*connect_timeout, *http2)),
            ) {
                (Some(upstream), Some(client)) => {
                    let max_body = vs.limits.max_body_bytes;
                    let req = if rule.request_headers.is_empty() {
                        req
                    } else {
                        // Edited fields live in a map.
                        let mut req = req.into_http();
                        rule.request_headers.apply(req.headers_mut());
                        ClientRequest::from_map(req)
                    };
                    let target = rewrite_path.as_ref().and_then(|change| {
                        let mut t = change.apply(path);
                        if let Some(q) = req.uri().query() {
                            t.push('?');
                            t.push_str(q);
                        }
                        http::uri::PathAndQuery::try_from(t).ok()
                    });
                    let fwd = proxy::Forwarded {
                        peer_ip,
                        host: host_value.clone(),
                        upstream_host: rewrite_host.clone(),
                        target,
                        tls,
                        http2: *http2,
                    };
                    proxy::forward(client, upstream, *timeout, req, max_body, fwd).await
                }
                _ => (
                    Answer::Response(proxy::gateway_response(
                        http::StatusCode::BAD_GATEWAY,
                        "no upstream\n",
                    )),
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
                (Answer::Response(r), None)
            }
            Action::Redirect { status, target } => {
                let host_header = host_value
                    .as_ref()
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                match target.location(tls, host_header, path, req.uri().query()) {
                    Some(location) => {
                        let mut r = Response::new(proxy::empty());
                        *r.status_mut() = *status;
                        r.headers_mut().insert(http::header::LOCATION, location);
                        (Answer::Response(r), None)
                    }
                    None => (
                        Answer::Response(proxy::gateway_response(
                            http::StatusCode::BAD_REQUEST,
                            "cannot build the redirect target\n",
                        )),
                        None,
                    ),
                }
            }
        },
    };
    // Metrics and the access log for the response sent, however it is sent.
    let record = |status: http::StatusCode| {
        slot.stats.record(
            selection.rule.map(|r| r.index),
            status.as_u16(),
            selection.policy,
            decision.outcome(),
            refused_origin.as_ref().map(http::HeaderValue::as_bytes),
            upstream_time,
        );
        log.write(status, upstream_time, decision);
    };
    // An upstream response the front writes itself is passed on as read,
    // its CORS completion written as lines, when nothing needs its fields in
    // a map (a rule's response-header edits, or a completion that depends on
    // the whole response).
    let answer = match answer {
        Answer::Upstream(up)
            if writes_heads && selection.rule.is_none_or(|r| r.response_headers.is_empty()) =>
        {
            let lines = match (selection.policy, completion.take()) {
                (Some(policy), Some(c)) => policy.completion_lines(c).map(Some),
                // No policy, or a shadow one: the response is not changed.
                _ => Ok(None),
            };
            match lines {
                Ok(cors) => {
                    record(up.status);
                    return Reply::Upstream(up, cors);
                }
                Err(c) => {
                    completion = Some(c);
                    Answer::Upstream(up)
                }
            }
        }
        other => other,
    };
    let mut resp = answer.into_response();
    if let Some(rule) = selection.rule {
        if !rule.response_headers.is_empty() && !resp.status().is_informational() {
            rule.response_headers.apply(resp.headers_mut());
        }
    }
    // R23-R25: complete whatever response we send, ours or the upstream's;
    // 1xx (a 101 switching protocols) is left alone (R27).
    if let (Some(policy), Some(c), false) = (
        selection.policy,
        &completion,
        resp.status().is_informational(),
    ) {
        policy.complete(c, resp.headers_mut());
    }
    record(resp.status());
    Reply::Response(resp)
}

/// Bytes of request header names and values, as the limit counts them.
fn header_bytes(headers: Fields<'_>) -> usize {
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.as_bytes().len() + 4)
        .sum()
}

fn declared_length(headers: Fields<'_>) -> Option<u64> {
    headers
        .first_value(&http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}
