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
//! HTTP/2 preface, or a head with more than [`MAX_FIELDS`] fields. From
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
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

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

/// What the front reads next: a request to serve, or one refused from its
/// head alone (malformed or oversized), answered and then closed.
// A short-lived value on the stack, like `Parsed`.
#[allow(clippy::large_enum_variant)]
enum Next {
    Request(Head),
    Refused(ClientRequest),
}

/// Read what the client sent into `buf`. Before its first bytes a
/// connection has no read buffer: they are read on the stack and copied,
/// so that an idle connection, which may never send anything, holds no
/// buffer (docs/performance.md, "Idle TLS connections"). The stack array
/// is part of every connection task's state, so it is kept small: a
/// longer first head takes one more read. Cancel-safe, as `read` is.
async fn read_some<IO: AsyncRead + Unpin>(
    io: &mut IO,
    buf: &mut BytesMut,
    first: bool,
) -> io::Result<usize> {
    if first {
        let mut start = [0u8; 512];
        let n = io.read(&mut start).await?;
        if n > 0 {
            // The capacity a busy connection settles on, as before the
            // first byte was waited for without a buffer.
            buf.reserve(8 * 1024);
            buf.extend_from_slice(&start[..n]);
        }
        return Ok(n);
    }
    io.read_buf(buf).await
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
    // none (see `read_some`); the response buffer grows on first use.
    let mut buf = BytesMut::new();
    let mut out: Vec<u8> = Vec::new();
    let mut sent_nothing_yet = true;
    let mut names = NameCache::default();
    // One wait for the stop, registered once for the connection's life
    // rather than once per request. It is polled only while the connection
    // is idle, and the connection ends as soon as it completes, so it is
    // never polled again after that.
    let mut stop_watch = stop.clone();
    let mut stopped = pin!(async move {
        let _ = stop_watch.changed().await;
    });
    let mut clock = Deadlines::new(limits);
    let mut timer = pin!(tokio::time::sleep_until(clock.armed.into()));
    // The stop wait and the timer keep the waker of their last poll, and a
    // connection task's waker does not change: each is polled once to
    // register it (the timer again after it is moved), then checked by
    // reading its state, a fraction of a poll's cost, on every later wait.
    let mut stop_registered = false;
    let mut timer_registered = false;
    loop {
        let next = loop {
            if !buf.is_empty() {
                match parse(&mut buf, &mut names) {
                    Parsed::Complete(head) => {
                        clock.head_since = None;
                        break Next::Request(head);
                    }
                    Parsed::Foreign => return Ok(Ended::HandOff(buf.freeze())),
                    Parsed::Bad(origins) => {
                        break Next::Refused(ClientRequest::refused(BadRequest::Malformed, origins))
                    }
                    Parsed::Partial if buf.len() >= limits.max_head => {
                        let deadline =
                            clock.head_since.unwrap_or_else(Instant::now) + limits.header;
                        let (reason, origins) = drain_oversized(io, &mut buf, deadline).await?;
                        break Next::Refused(ClientRequest::refused(reason, origins));
                    }
                    Parsed::Partial => {
                        if clock.head_since.is_none() {
                            // A head arriving in pieces: the header timeout
                            // runs from now, and may be due before the
                            // timer.
                            clock.head_since = Some(Instant::now());
                            if clock.due() < clock.armed {
                                clock.armed = clock.due();
                                timer.as_mut().reset(clock.armed.into());
                                timer_registered = false;
                            }
                        }
                    }
                }
            }
            if !sent_nothing_yet {
                buf.reserve(4 * 1024);
            }
            let idle = buf.is_empty();
            let woken = std::future::poll_fn(|cx| {
                // Only an idle connection closes on stop; a request half
                // read is completed and answered first.
                if idle {
                    if !stop_registered {
                        stop_registered = true;
                        if stopped.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Wake::Stop);
                        }
                    } else if !matches!(stop.has_changed(), Ok(false)) {
                        return Poll::Ready(Wake::Stop);
                    }
                }
                if !timer_registered {
                    timer_registered = true;
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wake::Timer);
                    }
                } else if timer.is_elapsed() {
                    return Poll::Ready(Wake::Timer);
                }
                Poll::Pending
            });
            let n = tokio::select! {
                biased;
                n = read_some(io, &mut buf, sent_nothing_yet) => n?,
                wake = woken => match wake {
                    Wake::Stop => return Ok(Ended::Closed),
                    Wake::Timer => {
                        let due = clock.due();
                        if Instant::now() >= due {
                            let waited = if idle { "idle" } else { "header" };
                            tracing::debug!(timeout = waited, "client timed out; closing");
                            return Ok(Ended::Closed);
                        }
                        clock.armed = due;
                        timer.as_mut().reset(due.into());
                        timer_registered = false;
                        continue;
                    }
                },
            };
            if n == 0 {
                // The client closed; a partial head is dropped, as hyper
                // does.
                return Ok(Ended::Closed);
            }
            sent_nothing_yet = false;
        };
        let (request, close, trailers) = match next {
            Next::Request(Head {
                request,
                close,
                trailers,
            }) => (request, close, trailers),
            Next::Refused(request) => (request, true, false),
        };
        let head_only = request.method() == Method::HEAD;
        let mut call = pin!(service(request));
        // While the handler works (waiting for the upstream), a client that
        // closes its connection abandons the request: the handler is
        // dropped, which drops the upstream exchange too, as hyper and
        // nginx do. Bytes that arrive meanwhile are the next pipelined
        // request; they are kept, up to a head's worth.
        let response = loop {
            buf.reserve(1024);
            let room = buf.len() < limits.max_head;
            tokio::select! {
                biased;
                response = &mut call => break response,
                n = io.read_buf(&mut buf), if room => {
                    if n? == 0 {
                        return Ok(Ended::Closed);
                    }
                }
            }
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
        clock.idle_since = Instant::now();
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
