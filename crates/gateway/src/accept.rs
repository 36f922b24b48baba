//! Accepting connections and serving them: the front for plain-text
//! HTTP/1.1, hyper for everything else (HTTP/2, requests the front hands
//! over, TLS), each connection in a task of its own, with the listener's
//! limits. Every request, whichever server read it, goes to the
//! [`pipeline`](crate::pipeline).

use crate::front::{self, Ended, Prefixed};
use crate::request::ClientRequest;
use crate::runtime::State;
use crate::{Body, Reply, RequestBody};
use http::{Request, Response};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

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
        crate::pipeline::handle(
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

pub(crate) async fn accept_loop(
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
