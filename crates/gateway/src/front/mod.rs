//! corsgate's own HTTP/1.1 server for the requests most traffic is made of:
//! plain-text HTTP/1.1 requests without a body.
//!
//! Why it exists: hyper's server side (request parse, dispatch, response
//! encode) was the largest user-space cost per request after the kernel,
//! larger than routing and the CORS decision together (see
//! `docs/performance.md`). This front parses the head with `httparse` (the
//! parser hyper uses too), runs the same handler in the connection's task,
//! and writes the response head and body straight from the handler's
//! `Response`, with no map changes and one write per response.
//!
//! It deliberately serves a narrow request shape and hands everything else
//! to hyper, on the same connection, from the first byte it did not serve:
//! a request with `Content-Length` or `Transfer-Encoding` (so no request
//! body is ever framed here, and request smuggling stays hyper's
//! well-reviewed code), `Upgrade`, `Expect`, `CONNECT`, HTTP/1.0, the
//! HTTP/2 preface, or a head with more than [`corsgate_http1::MAX_REQUEST_FIELDS`] fields. From
//! then on hyper serves the connection until it closes. What hyper would
//! refuse with an answer of its own, without CORS — a head `httparse`
//! rejects, or one over [`ClientLimits::max_head`] — the front refuses
//! itself, through the pipeline, so with CORS ([`parse`]). TLS connections
//! are the front's too unless ALPN chooses h2.
//!
//! [`parse`] reads heads, [`write`] writes responses; this module runs the
//! connection: timeouts, pipelining, stop, and the hand-over.

use crate::client_error::BadRequest;
use crate::request::ClientRequest;
use crate::Reply;
use bytes::{Bytes, BytesMut};
use http::Method;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio_util::io::poll_read_buf;

mod parse;
mod write;

use parse::{drain_oversized, parse, Head, NameCache, Parsed};
use write::{write_preflight, write_response, write_upstream};

/// Room for the request line beyond `limits.maxHeaderBytes` in the head
/// buffer: a longer head is answered 431 (or 414) by the gateway itself.
pub(crate) const REQUEST_LINE_ROOM: usize = 16 * 1024;
/// How long a client may take (`limits.headerTimeoutMs`,
/// `limits.idleTimeoutMs`): past either, the connection is closed without
/// an answer, as nginx and hyper do; and how large its head may be.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientLimits {
    /// From a head's first byte to its last.
    pub(crate) header: Duration,
    /// From a response (or the accept) to the next request's first byte.
    pub(crate) idle: Duration,
    /// Most bytes of a request head (request line and fields) buffered:
    /// `limits.maxHeaderBytes` plus [`REQUEST_LINE_ROOM`]. A longer head
    /// is never handed to hyper (whose own 431 would carry no CORS): the
    /// front answers it.
    pub(crate) max_head: usize,
}

/// When the connection is due to be closed if nothing happens.
///
/// One timer serves the connection's whole life. It is set at the accept and
/// moved only when it fires early: a busy connection records when each
/// response went out (a clock read), and the timer, on firing, works out
/// the real deadline from that and sleeps again. So a request costs no timer
/// update; only a head that arrives in pieces may pull the timer earlier.
struct Deadlines {
    timeouts: ClientLimits,
    /// When the last response was written, or the connection accepted.
    idle_since: Instant,
    /// When the head being read began to arrive, while it is incomplete.
    head_since: Option<Instant>,
    /// Where the timer is set.
    armed: Instant,
}

impl Deadlines {
    fn new(timeouts: ClientLimits) -> Self {
        let now = Instant::now();
        Deadlines {
            timeouts,
            idle_since: now,
            head_since: None,
            armed: now + timeouts.idle,
        }
    }

    /// The deadline the connection's state calls for.
    fn due(&self) -> Instant {
        match self.head_since {
            Some(t) => t + self.timeouts.header,
            None => self.idle_since + self.timeouts.idle,
        }
    }
}

/// What ended a wait for the client other than its bytes.
enum Wake {
    /// The gateway is stopping.
    Stop,
    /// The connection's timer fired.
    Timer,
}

/// How [`serve`] finished with a connection.
pub(crate) enum Ended {
    /// The connection is done: the client closed it or asked to, an I/O
    /// error, a response that could not be framed, or a stop.
    Closed,
    /// A request the front does not serve arrived: hyper takes the
    /// connection over, starting with these buffered, unserved bytes.
    HandOff(Bytes),
}

/// What the front reads next: a request to serve, one refused from its
/// head alone (malformed or oversized), answered and then closed, or the
/// end of the connection. One enum rather than a `Result` of one: the value
/// is moved out of [`Reading::next`] once per request, and a nested enum
/// costs more to build and move on that path.
// A short-lived value on the stack, like `Parsed`.
#[allow(clippy::large_enum_variant)]
enum Next {
    Request(Head),
    Refused(ClientRequest),
    /// A head past [`ClientLimits::max_head`]: read on for its `Origin`
    /// ([`drain_oversized`]), then refused.
    Oversized,
    Ended(Ended),
}

/// Read what the client sent into `buf`. Before its first bytes a
/// connection has no read buffer: they are read on the stack and copied,
/// so that an idle connection, which may never send anything, holds no
/// buffer (docs/performance.md, "Idle TLS connections"). The stack array
/// is small: a longer first head takes one more read.
fn poll_read_some<IO: AsyncRead + Unpin>(
    cx: &mut Context<'_>,
    io: &mut IO,
    buf: &mut BytesMut,
    first: bool,
) -> Poll<io::Result<usize>> {
    if first {
        let mut start = [0u8; 512];
        let mut read = ReadBuf::new(&mut start);
        ready!(Pin::new(io).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        if n > 0 {
            // The capacity a busy connection settles on, as before the
            // first byte was waited for without a buffer.
            buf.reserve(8 * 1024);
            buf.extend_from_slice(read.filled());
        }
        return Poll::Ready(Ok(n));
    }
    poll_read_buf(Pin::new(io), cx, buf)
}

/// Serve requests on `io` until the connection ends or a request needs
/// hyper. `service` is the gateway's handler; `stop` fires on shutdown,
/// after which the request in progress finishes with `Connection: close`.
pub(crate) async fn serve<IO, F, Fut>(
    io: &mut IO,
    mut service: F,
    stop: &watch::Receiver<Option<Duration>>,
    limits: ClientLimits,
) -> io::Result<Ended>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(ClientRequest) -> Fut,
    Fut: Future<Output = Reply>,
{
    // No buffer until the client sends something: an idle connection holds
    // none (see `poll_read_some`); the response buffer grows on first use.
    let mut reading = Reading {
        buf: BytesMut::new(),
        sent_nothing_yet: true,
        names: NameCache::default(),
        clock: Deadlines::new(limits),
    };
    let mut out: Vec<u8> = Vec::new();
    // One wait for the stop, registered once for the connection's life
    // rather than once per request. It is polled only while the connection
    // is idle, and the connection ends as soon as it completes, so it is
    // never polled again after that.
    let mut stop_watch = stop.clone();
    let stopped = pin!(async move {
        let _ = stop_watch.changed().await;
    });
    let timer = pin!(tokio::time::sleep_until(reading.clock.armed.into()));
    let mut waits = Waits {
        stop,
        stopped,
        timer,
        stop_registered: false,
        timer_registered: false,
    };
    loop {
        let next = std::future::poll_fn(|cx| reading.poll_next(cx, io, &mut waits)).await?;
        let (request, close, trailers) = match next {
            Next::Request(head) => (head.request, head.close, head.trailers),
            Next::Refused(request) => (request, true, false),
            Next::Oversized => {
                let since = reading.clock.head_since.unwrap_or_else(Instant::now);
                let (reason, origins) =
                    drain_oversized(io, &mut reading.buf, since + limits.header).await?;
                (ClientRequest::refused(reason, origins), true, false)
            }
            Next::Ended(ended) => return Ok(ended),
        };
        let head_only = request.method() == Method::HEAD;
        let mut handler = pin!(service(request));
        let called = std::future::poll_fn(|cx| {
            poll_call(cx, io, &mut reading.buf, limits, handler.as_mut())
        });
        let Some(response) = called.await? else {
            return Ok(Ended::Closed);
        };
        let stopping = !matches!(stop.has_changed(), Ok(false));
        let keep = !close && !stopping;
        let reusable = match response {
            Reply::Response(response) => {
                write_response(io, &mut out, response, head_only, trailers, keep).await?
            }
            Reply::Preflight(answer) => {
                write_preflight(&mut out, &answer, keep);
                io.write_all(&out).await?;
                true
            }
            Reply::Upstream(response, cors) => {
                write_upstream(io, &mut out, response, cors, head_only, trailers, keep).await?
            }
        };
        if !reusable || !keep {
            return Ok(Ended::Closed);
        }
        reading.clock.idle_since = Instant::now();
    }
}

/// The reading side of a connection: what the client sent and not yet
/// served, the names of its previous request, and its deadlines.
struct Reading {
    buf: BytesMut,
    sent_nothing_yet: bool,
    names: NameCache,
    clock: Deadlines,
}

/// What a connection waits on besides its client: the gateway's stop and
/// the connection's one timer.
///
/// Both keep the waker of their last poll, and a connection task's waker
/// does not change: each is polled once to register it (the timer again
/// after it is moved), then checked by reading its state, a fraction of a
/// poll's cost, on every later wait.
struct Waits<'a, S> {
    stop: &'a watch::Receiver<Option<Duration>>,
    stopped: Pin<&'a mut S>,
    timer: Pin<&'a mut tokio::time::Sleep>,
    stop_registered: bool,
    timer_registered: bool,
}

impl<S: Future> Waits<'_, S> {
    /// Ready when the gateway stops (only if `idle`: a request half read
    /// is completed and answered first) or the timer fires.
    fn poll_wake(&mut self, cx: &mut Context<'_>, idle: bool) -> Poll<Wake> {
        if idle {
            if !self.stop_registered {
                self.stop_registered = true;
                if self.stopped.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Stop);
                }
            } else if !matches!(self.stop.has_changed(), Ok(false)) {
                return Poll::Ready(Wake::Stop);
            }
        }
        if !self.timer_registered {
            self.timer_registered = true;
            if self.timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wake::Timer);
            }
        } else if self.timer.is_elapsed() {
            return Poll::Ready(Wake::Timer);
        }
        Poll::Pending
    }

    /// Move the timer to `at`.
    fn rearm(&mut self, at: Instant) {
        self.timer.as_mut().reset(at.into());
        self.timer_registered = false;
    }
}

impl Reading {
    /// Read until the next request head is complete or refused, or the
    /// connection ends ([`Next::Ended`]: closed, timed out, stopped, or
    /// handed to hyper).
    ///
    /// A poll function rather than an `async fn`, as is [`poll_call`]: an
    /// `async fn` called once per request is a future of its own nested in
    /// the connection's, built, polled through and moved out of on every
    /// request (callgrind: about 430 instructions of a preflight's ~10,000).
    /// Polled from `serve` through `poll_fn`, the read loop costs what it
    /// did written inline there.
    fn poll_next<IO: AsyncRead + Unpin, S: Future>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut IO,
        waits: &mut Waits<'_, S>,
    ) -> Poll<io::Result<Next>> {
        let limits = self.clock.timeouts;
        loop {
            if !self.buf.is_empty() {
                match parse(&mut self.buf, &mut self.names) {
                    Parsed::Complete(head) => {
                        self.clock.head_since = None;
                        return Poll::Ready(Ok(Next::Request(head)));
                    }
                    Parsed::Foreign => {
                        let rest = std::mem::take(&mut self.buf).freeze();
                        return Poll::Ready(Ok(Next::Ended(Ended::HandOff(rest))));
                    }
                    Parsed::Bad(origins) => {
                        let refused = ClientRequest::refused(BadRequest::Malformed, origins);
                        return Poll::Ready(Ok(Next::Refused(refused)));
                    }
                    Parsed::Partial if self.buf.len() >= limits.max_head => {
                        return Poll::Ready(Ok(Next::Oversized));
                    }
                    Parsed::Partial => {
                        if self.clock.head_since.is_none() {
                            // A head arriving in pieces: the header timeout
                            // runs from now, and may be due before the
                            // timer.
                            self.clock.head_since = Some(Instant::now());
                            if self.clock.due() < self.clock.armed {
                                self.clock.armed = self.clock.due();
                                waits.rearm(self.clock.armed);
                            }
                        }
                    }
                }
            }
            if !self.sent_nothing_yet {
                self.buf.reserve(4 * 1024);
            }
            let idle = self.buf.is_empty();
            // The client's bytes first, then the stop and the timer.
            match poll_read_some(cx, io, &mut self.buf, self.sent_nothing_yet) {
                // The client closed; a partial head is dropped, as hyper
                // does.
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(Next::Ended(Ended::Closed))),
                Poll::Ready(Ok(_)) => {
                    self.sent_nothing_yet = false;
                    continue;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
            match ready!(waits.poll_wake(cx, idle)) {
                Wake::Stop => return Poll::Ready(Ok(Next::Ended(Ended::Closed))),
                Wake::Timer => {
                    let due = self.clock.due();
                    if Instant::now() >= due {
                        let waited = if idle { "idle" } else { "header" };
                        tracing::debug!(timeout = waited, "client timed out; closing");
                        return Poll::Ready(Ok(Next::Ended(Ended::Closed)));
                    }
                    self.clock.armed = due;
                    waits.rearm(due);
                }
            }
        }
    }
}

/// Wait for the handler's reply. While the handler works (waiting for the
/// upstream), a client that closes its connection abandons the request:
/// the handler is dropped, which drops the upstream exchange too, as hyper
/// and nginx do (`None`). Bytes that arrive meanwhile are the next
/// pipelined request; they are kept in `buf`, up to a head's worth.
fn poll_call<IO: AsyncRead + Unpin>(
    cx: &mut Context<'_>,
    io: &mut IO,
    buf: &mut BytesMut,
    limits: ClientLimits,
    mut handler: Pin<&mut impl Future<Output = Reply>>,
) -> Poll<io::Result<Option<Reply>>> {
    loop {
        if let Poll::Ready(reply) = handler.as_mut().poll(cx) {
            return Poll::Ready(Ok(Some(reply)));
        }
        buf.reserve(1024);
        if buf.len() >= limits.max_head {
            return Poll::Pending;
        }
        match ready!(poll_read_buf(Pin::new(&mut *io), cx, buf)) {
            Ok(0) => return Poll::Ready(Ok(None)),
            Ok(_) => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

/// An I/O object that first yields `prefix`, then reads from `inner`:
/// how hyper receives a connection the front has already read from.
pub(crate) struct Prefixed<IO> {
    prefix: Bytes,
    inner: IO,
}

impl<IO> Prefixed<IO> {
    pub(crate) fn new(prefix: Bytes, inner: IO) -> Self {
        Prefixed { prefix, inner }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
