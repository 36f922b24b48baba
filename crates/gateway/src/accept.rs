//! Accepting connections and serving them: the front for plain-text
//! HTTP/1.1, hyper for everything else (HTTP/2, requests the front hands
//! over, TLS), each connection in a task of its own, with the listener's
//! limits. Every request, whichever server read it, goes to the
//! [`pipeline`](crate::pipeline).

use crate::front::{self, Ended, Prefixed};
use crate::generation::State;
use crate::request::ClientRequest;
use crate::{Body, Reply};
use http::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

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
    /// Not an `async fn` wrapping [`crate::pipeline::handle`]: its future is the handler's
    /// own, one layer (and one copy of the request) fewer per request.
    fn call(
        &self,
        req: ClientRequest,
        writes_heads: bool,
    ) -> impl Future<Output = Reply> + Send + '_ {
        crate::pipeline::handle(
            self.state.load_full(),
            self.slot,
            req,
            crate::pipeline::Peer {
                ip: &self.peer_ip,
                tls: self.tls,
            },
            writes_heads,
        )
    }

    /// Answer a request hyper read, as an `http::Response`.
    async fn answer(self, req: ClientRequest) -> Response<Body> {
        self.call(req, false).await.into_response()
    }
}

/// How long the listener waits after an `accept` that failed for want of
/// resources (file descriptors, memory), doubling up to [`BACKOFF_MAX`]:
/// retrying at once would spin a core on the same error.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per this much time for repeated accept failures.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(5);

/// An accept error that concerns one connection only (the client went
/// away before it was accepted): the next accept may succeed at once.
fn per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted)
}

/// Repeated accept failures, logged at most once per [`ACCEPT_LOG_EVERY`].
struct AcceptErrors {
    backoff: Duration,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl AcceptErrors {
    /// Count, maybe log, and say how long to wait.
    fn failed(&mut self, e: &std::io::Error, vservice: &str) -> Duration {
        let now = Instant::now();
        if self.last_log.is_none_or(|t| now - t >= ACCEPT_LOG_EVERY) {
            tracing::warn!(
                vservice,
                error = %e,
                suppressed = self.suppressed,
                backoff_ms = self.backoff.as_millis() as u64,
                "accept failed; backing off"
            );
            self.last_log = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        wait
    }
}

/// The listener's hyper builder, kept in step with its limits.
struct Hyper {
    builder: auto::Builder<TokioExecutor>,
    limits: Option<corsgate_config::Limits>,
}

impl Hyper {
    fn new() -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // hyper applies its timeouts only with a timer.
        builder.http1().timer(hyper_util::rt::TokioTimer::new());
        builder.http2().timer(hyper_util::rt::TokioTimer::new());
        Hyper {
            builder,
            limits: None,
        }
    }

    /// The builder for connections under `limits`.
    fn for_limits(&mut self, limits: &corsgate_config::Limits) -> &auto::Builder<TokioExecutor> {
        if self.limits.as_ref() != Some(limits) {
            let buffer = read_buffer_for(limits.max_header_bytes);
            self.builder
                .http1()
                .max_buf_size(buffer)
                .header_read_timeout(Duration::from_millis(limits.header_timeout_ms));
            self.builder
                .http2()
                .max_concurrent_streams(limits.http2_max_concurrent_streams)
                .max_pending_accept_reset_streams(limits.http2_max_pending_resets)
                // Streams the gateway itself resets for protocol errors.
                .max_local_error_reset_streams(1024)
                .max_header_list_size(u32::try_from(buffer).unwrap_or(u32::MAX));
            self.limits = Some(limits.clone());
        }
        &self.builder
    }
}

/// Accept and serve connections on `listener` until `stop` says so, then
/// stop accepting, let connections finish within the drain deadline it
/// carries, and drop those still busy after it.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    slot: usize,
    state: State,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    // The connections' tasks: counted for `maxConnections`, awaited at the
    // drain and aborted after its deadline. A set, not a tracker with a
    // kill signal in every task: the signal was polled on every wake-up of
    // every connection (callgrind: ~180 instructions per request).
    let mut connections = JoinSet::new();
    let mut hyper = Hyper::new();
    let mut errors = AcceptErrors {
        backoff: BACKOFF_MIN,
        last_log: None,
        suppressed: 0,
    };
    let drain = loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => break stop.borrow().unwrap_or_default(),
        };
        // The connection's settings come from the generation current when
        // it is accepted; each request reads the generation anew.
        let generation = state.load();
        let Some(Some(current)) = generation.slots.get(slot) else {
            continue;
        };
        let (stream, peer) = match accepted {
            Ok(x) => {
                errors.backoff = BACKOFF_MIN;
                x
            }
            Err(e) if per_connection(&e) => continue,
            Err(e) => {
                current.stats.accept_error();
                let wait = errors.failed(&e, &current.vservice.name);
                drop(generation);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = stop.changed() => break stop.borrow().unwrap_or_default(),
                }
            }
        };
        let limits = &current.vservice.limits;
        // Reap the connections that ended, so that `len` counts live ones.
        while connections.try_join_next().is_some() {}
        if connections.len() >= limits.max_connections {
            // Refused before a byte is read: closing costs one syscall.
            current.stats.connection_refused();
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let timeouts = front::ClientLimits {
            header: Duration::from_millis(limits.header_timeout_ms),
            idle: Duration::from_millis(limits.idle_timeout_ms),
            max_head: limits.max_header_bytes + front::REQUEST_LINE_ROOM,
        };
        let builder = hyper.for_limits(limits).clone();
        let acceptor = current.acceptor.clone();
        let handler = Handler {
            state: state.clone(),
            slot,
            peer_ip: peer.ip().to_string().into(),
            tls: acceptor.is_some(),
        };
        drop(generation);
        let stop = stop.clone();
        connections.spawn(serve_connection(
            stream, acceptor, handler, builder, timeouts, stop,
        ));
    };
    drop(listener);
    let finished = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(drain, finished).await.is_err() {
        tracing::warn!(slot, "drain deadline passed; closing busy connections");
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// Serve one accepted connection: TLS first if the listener has it; then
/// the front for HTTP/1.1, handing over to hyper for what it does not
/// serve, or hyper from the start for HTTP/2 (ALPN `h2`).
///
/// A connection task's future is as large as the largest state it can be
/// in, and it holds that memory for as long as the connection is open,
/// idle or not. So the large parts are boxed when they are reached: the
/// TLS path here (rustls's state, and the handshake in a box freed when it
/// completes), the front once the first byte has arrived, and hyper's
/// connection after a hand-over (`serve_http`). An HTTP/2 connection over
/// TLS then holds no room for the front. Measured with `size_of_val`
/// (release build): the task's future was 18,936 bytes for every
/// connection; a plaintext one's is 1,184, plus the front's 4,888 in its
/// own box once the client has sent a byte (docs/performance.md, "Idle TLS
/// connections").
async fn serve_connection(
    stream: TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    handler: Handler,
    builder: auto::Builder<TokioExecutor>,
    timeouts: front::ClientLimits,
    stop: watch::Receiver<Option<Duration>>,
) {
    match acceptor {
        None => serve_http(stream, handler, builder, timeouts, stop).await,
        Some(acceptor) => {
            Box::pin(serve_tls(
                stream, acceptor, handler, builder, timeouts, stop,
            ))
            .await
        }
    }
}

/// [`serve_connection`] over TLS.
async fn serve_tls(
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    handler: Handler,
    builder: auto::Builder<TokioExecutor>,
    timeouts: front::ClientLimits,
    stop: watch::Receiver<Option<Duration>>,
) {
    // The handshake is bounded by the header timeout: a client that stalls
    // it holds nothing longer than one that stalls its first request.
    // The handshake's state in a box of its own, freed when it completes.
    let handshake = Box::pin(tokio::time::timeout(
        timeouts.header,
        acceptor.accept(stream),
    ));
    let tls = match handshake.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
        let io = TokioIo::new(tls);
        let h = handler.clone();
        crate::conn::serve(io, &builder, move |r| h.clone().answer(r), timeouts, &stop).await;
        return;
    }
    serve_http(tls, handler, builder, timeouts, stop).await;
}

/// A connection's stream, as far as waiting for its first bytes goes.
trait FirstBytes {
    /// Whether request bytes may already be waiting that the socket's
    /// readiness will not announce: rustls may have decrypted a request
    /// that arrived with the handshake's last flight.
    fn buffered(&mut self) -> bool;
    /// The TCP socket underneath.
    fn socket(&self) -> &TcpStream;
}

impl FirstBytes for TcpStream {
    fn buffered(&mut self) -> bool {
        false
    }

    fn socket(&self) -> &TcpStream {
        self
    }
}

impl FirstBytes for tokio_rustls::server::TlsStream<TcpStream> {
    fn buffered(&mut self) -> bool {
        // With no new records this only reports what is decrypted already;
        // an error is left to the read that follows.
        self.get_mut()
            .1
            .process_new_packets()
            .map_or(true, |state| state.plaintext_bytes_to_read() > 0)
    }

    fn socket(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// Wait, holding no front, until the client may have sent something, as
/// nginx allocates nothing for a connection before its first byte: the
/// front's 4,888 bytes (its future, in a box) are not held by a connection
/// that never sends. `false` if the idle timeout passes or the gateway
/// stops first; the connection is then closed without an answer, as the
/// front closes an idle one. Over TLS the byte seen is a record's, which
/// need not carry request bytes; the front, started then, applies its own
/// timeouts.
async fn first_bytes<IO: FirstBytes>(
    io: &mut IO,
    idle: Duration,
    stop: &watch::Receiver<Option<Duration>>,
) -> bool {
    if io.buffered() {
        return true;
    }
    let mut stop = stop.clone();
    if !matches!(stop.has_changed(), Ok(false)) {
        return false;
    }
    // `peek`, not `readable`: a new socket is reported readable before
    // any byte arrives (tokio allows such wake-ups), and a peek waits for
    // a byte, or the end of the stream, without taking it.
    let mut byte = [0u8; 1];
    tokio::select! {
        _ = io.socket().peek(&mut byte) => true,
        _ = tokio::time::sleep(idle) => false,
        _ = stop.changed() => false,
    }
}

/// Serve an HTTP/1.1 (or unknown: the front hands an HTTP/2 preface over)
/// connection with the front, then hyper if it hands over.
async fn serve_http<IO>(
    mut stream: IO,
    handler: Handler,
    builder: auto::Builder<TokioExecutor>,
    timeouts: front::ClientLimits,
    stop: watch::Receiver<Option<Duration>>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + FirstBytes + Unpin + Send + 'static,
{
    if !first_bytes(&mut stream, timeouts.idle, &stop).await {
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
        return;
    }
    // Boxed, once per connection: awaited in place, the 4,888-byte front
    // made this function's future 10,392 bytes (measured with
    // `size_of_val`, release build), all of it held by every connection.
    let front = Box::pin(front::serve(
        &mut stream,
        |req| handler.call(req, true),
        &stop,
        timeouts,
    ));
    let ended = front.await;
    match ended {
        Ok(Ended::HandOff(read)) => {
            let io = TokioIo::new(Prefixed::new(read, stream));
            let h = handler.clone();
            // Boxed: see `serve_connection`.
            Box::pin(crate::conn::serve(
                io,
                &builder,
                move |r| h.clone().answer(r),
                timeouts,
                &stop,
            ))
            .await;
        }
        Ok(Ended::Closed) => {
            // A FIN after the last response, as hyper sends.
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
        }
        Err(e) => tracing::debug!(error = %e, "connection ended with an error"),
    }
}
