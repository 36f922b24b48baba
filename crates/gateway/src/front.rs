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
//! HTTP/2 preface, a head larger than [`MAX_HEAD`] or with more than
//! [`MAX_FIELDS`] fields, and anything `httparse` rejects. From then on
//! hyper serves the connection until it closes, with its own limits and
//! errors. TLS connections are hyper's from the start (ALPN may choose h2).

use crate::client_error::BadRequest;
use crate::request::{ClientRequest, FieldList};
use crate::upstream::exchange::{push_field, UpstreamResponse};
use crate::{Body, Reply};
use bytes::{Bytes, BytesMut};
use corsgate_policy::list_items;
use corsgate_policy::{CompletionLines, PreflightResponse};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TE, TRANSFER_ENCODING};
use http::{HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body::Body as _;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// Most request header fields the front parses; a request with more goes
/// to hyper.
pub(crate) const MAX_FIELDS: usize = 64;
/// Room for the request line beyond `limits.maxHeaderBytes` in the head
/// buffer: a longer head is answered 431 (or 414) by the gateway itself.
pub(crate) const REQUEST_LINE_ROOM: usize = 16 * 1024;
/// Most bytes of an oversized head read (and dropped) while looking for its
/// `Origin`, so that its 431 carries CORS; past it the answer goes out
/// without reading more.
const OVERSIZED_DRAIN: usize = 1 << 20;
/// The longest line of an oversized head kept while scanning it.
const SCAN_LINE: usize = 8 * 1024;
/// Response bytes gathered before one write; larger body frames are
/// written without being copied.
const WRITE_BATCH: usize = 16 * 1024;

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

/// One parsed request head the front serves.
struct Head {
    request: ClientRequest,
    /// The client sent `Connection: close`.
    close: bool,
    /// The client accepts trailers (`TE: trailers`).
    trailers: bool,
}

// A short-lived value on the stack; boxing the head would cost an
// allocation per request.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    Complete(Head),
    /// More bytes are needed.
    Partial,
    /// Not a request the front serves: hand the connection to hyper.
    Foreign,
    /// A head that is not HTTP/1.1 (`httparse` refuses it, or a URI or
    /// field `http` refuses after it): answered 400 through the pipeline,
    /// with the `Origin` lines found in it, then the connection closes, as
    /// hyper does.
    Bad(FieldList),
}

/// What the front reads next: a request to serve, or one refused from its
/// head alone (malformed or oversized), answered and then closed.
// A short-lived value on the stack, like `Parsed`.
#[allow(clippy::large_enum_variant)]
enum Next {
    Request(Head),
    Refused(ClientRequest),
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
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
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
            buf.reserve(4 * 1024);
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
                n = io.read_buf(&mut buf) => n?,
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

/// Parse one request head from the front of `buf`; on `Complete` the head's
/// bytes are split off `buf` (the request's URI and field values share
/// them), otherwise `buf` is untouched.
fn parse(buf: &mut BytesMut, names: &mut NameCache) -> Parsed {
    // Offsets into the head of each field's name and value, in a buffer
    // the connection keeps (no per-request initialisation or allocation).
    let spans = &mut names.spans;
    spans.clear();
    let (len, method, target, close, trailers) = {
        let mut fields =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(buf, &mut fields) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Parsed::Partial,
            // hyper parses more fields, and an HTTP/2 preface is hyper's.
            Err(httparse::Error::TooManyHeaders) => return Parsed::Foreign,
            Err(_) if buf.starts_with(b"PRI ") => return Parsed::Foreign,
            Err(_) => return Parsed::Bad(scan_origins(buf)),
        };
        if req.version != Some(1) {
            return Parsed::Foreign;
        }
        let Some(Ok(method)) = req.method.map(|m| Method::from_bytes(m.as_bytes())) else {
            return Parsed::Foreign;
        };
        if method == Method::CONNECT {
            return Parsed::Foreign;
        }
        let base = buf.as_ptr() as usize;
        let offset = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
        let Some(path) = req.path else {
            return Parsed::Foreign;
        };
        let target = (offset(path.as_bytes()), path.len() as u32);
        let mut close = false;
        let mut trailers = false;
        for f in req.headers.iter() {
            let name = f.name.as_bytes();
            if let Some(class) = classify(name) {
                match class {
                    Class::Foreign => return Parsed::Foreign,
                    Class::Connection => {
                        for token in list_items(f.value) {
                            if token.eq_ignore_ascii_case(b"close") {
                                close = true;
                            } else if token.eq_ignore_ascii_case(b"upgrade") {
                                return Parsed::Foreign;
                            }
                        }
                    }
                    Class::Te => {
                        trailers |= list_items(f.value).any(|t| {
                            t.split(|&b| b == b';')
                                .next()
                                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"))
                        });
                    }
                }
            }
            spans.push((
                offset(name),
                name.len() as u32,
                offset(f.value),
                f.value.len() as u32,
            ));
        }
        (len, method, target, close, trailers)
    };
    let head = buf.split_to(len).freeze();
    let slice = |at: u32, len: u32| head.slice(at as usize..(at + len) as usize);
    let Ok(uri) = http::Uri::from_maybe_shared(slice(target.0, target.1)) else {
        return Parsed::Bad(scan_origins(&head));
    };
    let mut fields = FieldList::with_capacity(names.spans.len());
    for i in 0..names.spans.len() {
        let (n, nl, v, vl) = names.spans[i];
        let Some(name) = names.name(i, &head[n as usize..(n + nl) as usize]) else {
            return Parsed::Bad(scan_origins(&head));
        };
        let Ok(value) = HeaderValue::from_maybe_shared(slice(v, vl)) else {
            return Parsed::Bad(scan_origins(&head));
        };
        fields.push((name, value));
    }
    let request = ClientRequest::from_list(method, uri, fields);
    Parsed::Complete(Head {
        request,
        close,
        trailers,
    })
}

/// The `Origin` lines of a head that cannot be served (malformed or too
/// large), so that the gateway's 400 or 431 carries CORS: a page can then
/// read the status instead of seeing a CORS failure. Lines are split at LF
/// (a CR before it is dropped); the first line is the request line.
fn scan_origins(head: &[u8]) -> FieldList {
    let mut found = FieldList::new();
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if let Some(v) = origin_value(line) {
            found.push((http::header::ORIGIN, v));
        }
    }
    found
}

/// The value of an `Origin:` field line, if `line` is one.
fn origin_value(line: &[u8]) -> Option<HeaderValue> {
    let (name, value) = line.split_at_checked(7)?;
    if !name.eq_ignore_ascii_case(b"origin:") {
        return None;
    }
    HeaderValue::from_bytes(value.trim_ascii()).ok()
}

/// Read the rest of a head over [`ClientLimits::max_head`], dropping it
/// line by line and keeping only its `Origin` lines, until the empty line
/// that ends it, [`OVERSIZED_DRAIN`] bytes, the header deadline or the
/// client's close. A request line that did not fit makes it a 414, else a
/// 431 (nginx answers the same two).
async fn drain_oversized<IO: AsyncRead + Unpin>(
    io: &mut IO,
    buf: &mut BytesMut,
    deadline: Instant,
) -> io::Result<(BadRequest, FieldList)> {
    let reason = if buf.contains(&b'\n') {
        BadRequest::HeaderTooLarge
    } else {
        BadRequest::UriTooLong
    };
    let mut origins = FieldList::new();
    let mut first_line = true;
    // Inside a line longer than SCAN_LINE: drop until its end.
    let mut skipping = false;
    let mut read = buf.len();
    loop {
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line = buf.split_to(i + 1);
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if std::mem::take(&mut skipping) || std::mem::take(&mut first_line) {
                continue;
            }
            if line.is_empty() {
                return Ok((reason, origins));
            }
            if let Some(v) = origin_value(line) {
                origins.push((http::header::ORIGIN, v));
            }
        }
        if buf.len() > SCAN_LINE {
            // Not an Origin line worth reading: drop what came so far.
            skipping = true;
            buf.clear();
        }
        if read >= OVERSIZED_DRAIN {
            return Ok((reason, origins));
        }
        buf.reserve(16 * 1024);
        match tokio::time::timeout_at(deadline.into(), io.read_buf(buf)).await {
            Ok(Ok(0)) | Err(_) => return Ok((reason, origins)),
            Ok(Ok(n)) => read += n,
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// The field names of the previous request on this connection, by
/// position. A client sends the same fields in the same order request after
/// request, so a case-insensitive byte comparison with the name seen at the
/// same position usually replaces parsing the name, and for names the
/// `http` crate does not know (browsers send half a dozen `sec-*` fields) the
/// allocation that parsing makes. Bytes equal to a valid name up to ASCII
/// case always parse to that name, so a hit is exact.
#[derive(Default)]
pub(crate) struct NameCache {
    names: Vec<HeaderName>,
    /// Scratch for [`parse`]: each field's name and value as (offset,
    /// length) pairs into the head.
    spans: Vec<(u32, u32, u32, u32)>,
}

impl NameCache {
    /// The name for `raw`, the `i`-th field's name; `None` if invalid.
    fn name(&mut self, i: usize, raw: &[u8]) -> Option<HeaderName> {
        if let Some(seen) = self.names.get(i) {
            if seen.as_str().as_bytes().eq_ignore_ascii_case(raw) {
                return Some(seen.clone());
            }
        }
        let name = HeaderName::from_bytes(raw).ok()?;
        if i < self.names.len() {
            self.names[i] = name.clone();
        } else if i == self.names.len() {
            self.names.push(name.clone());
        }
        Some(name)
    }
}

/// Request fields the front looks at before accepting a request.
enum Class {
    /// A field that takes the request to hyper.
    Foreign,
    Connection,
    Te,
}

fn classify(name: &[u8]) -> Option<Class> {
    // Cheap pre-filter on length: only these lengths name a field of interest.
    let class = match name.len() {
        2 if name.eq_ignore_ascii_case(b"te") => Class::Te,
        6 if name.eq_ignore_ascii_case(b"expect") => Class::Foreign,
        7 if name.eq_ignore_ascii_case(b"upgrade") => Class::Foreign,
        10 if name.eq_ignore_ascii_case(b"connection") => Class::Connection,
        14 if name.eq_ignore_ascii_case(b"content-length") => Class::Foreign,
        17 if name.eq_ignore_ascii_case(b"transfer-encoding") => Class::Foreign,
        _ => return None,
    };
    Some(class)
}

/// How the response body is framed on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body bytes are written (HEAD, 1xx, 204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    Chunked,
}

/// Encode a preflight's answer straight from the policy's precomputed
/// lines. Its body is empty: framed like any response, so `content-length:
/// 0`, and none at all on a 204 (`preflightRejectStatus: 204`).
fn write_preflight(out: &mut Vec<u8>, answer: &PreflightResponse, keep: bool) {
    out.clear();
    status_line(out, answer.status);
    answer.write_fields(out);
    finish_head(out, answer.status, Some(0), Some(0), false, false, keep);
}

fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Write `response` to `io`. Returns whether the connection can carry
/// another request: `false` when the body failed or did not match its
/// declared length, which leaves the client a response it can tell is
/// incomplete (as hyper does).
async fn write_response<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    out: &mut Vec<u8>,
    response: Response<Body>,
    head_only: bool,
    trailers: bool,
    keep: bool,
) -> io::Result<bool> {
    let (parts, body) = response.into_parts();
    let status = parts.status;
    out.clear();
    status_line(out, status);
    // One pass over the fields, without changing the map: framing fields
    // are the front's to write (a Transfer-Encoding handed over by the
    // handler never reaches the client as is), connection-level ones too.
    let mut declared: Option<Option<u64>> = None;
    let mut dated = false;
    for (name, value) in &parts.headers {
        if name == CONTENT_LENGTH {
            declared = Some(crate::upstream::exchange::content_length(value.as_bytes()));
            continue;
        }
        if name == TRANSFER_ENCODING || name == CONNECTION || name == TE {
            continue;
        }
        dated |= name == DATE;
        push_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let exact = body.size_hint().exact();
    let framing = finish_head(
        out,
        status,
        declared.flatten(),
        exact,
        head_only,
        dated,
        keep,
    );
    write_body(io, out, body, framing, trailers).await
}

/// Write an upstream response read by corsgate's exchange: its fields as
/// received (framing and hop-by-hop fields were left out when it was read),
/// less those the CORS completion replaces, then the completion's.
async fn write_upstream<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    out: &mut Vec<u8>,
    response: UpstreamResponse,
    cors: Option<CompletionLines>,
    head_only: bool,
    trailers: bool,
    keep: bool,
) -> io::Result<bool> {
    let status = response.status;
    out.clear();
    status_line(out, status);
    let mut dated = false;
    for (name, line) in response.lines() {
        if cors.is_some() && CompletionLines::replaces(name) {
            continue;
        }
        dated |= name.eq_ignore_ascii_case(b"date");
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(lines) = &cors {
        let vary = response
            .fields()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"vary"))
            .map(|(_, v)| v);
        lines.write(vary, out);
    }
    let declared = response.declared_length;
    let body = response.into_body();
    let exact = body.size_hint().exact();
    let framing = finish_head(out, status, declared, exact, head_only, dated, keep);
    write_body(io, out, body, framing, trailers).await
}

/// End a response head: framing fields (from the declared length or the
/// body's exact size; none for HEAD, 1xx, 204 and 304), `Date` unless the
/// handler wrote one, `Connection: close` when the connection ends.
/// Inlined so that each caller's constant arguments fold its branches away
/// (a preflight answer's head is on the hottest path).
#[inline(always)]
fn finish_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    declared: Option<u64>,
    exact: Option<u64>,
    head_only: bool,
    dated: bool,
    keep: bool,
) -> Framing {
    let no_body = status.is_informational() || status == StatusCode::NO_CONTENT;
    let framing = if no_body {
        Framing::None
    } else if head_only || status == StatusCode::NOT_MODIFIED {
        // HEAD says what GET would have (RFC 9110 §9.3.2); 304 what 200
        // would have, if the handler says so.
        let length = declared.or_else(|| {
            (status != StatusCode::NOT_MODIFIED)
                .then_some(exact)
                .flatten()
        });
        if let Some(n) = length {
            push_length(out, n);
        }
        Framing::None
    } else if let Some(n) = declared.or(exact) {
        push_length(out, n);
        Framing::Length(n)
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Framing::Chunked
    };
    if !dated {
        with_date(|date| push_field(out, b"date", date));
    }
    if !keep {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    framing
}

/// Write the head gathered in `out` and `body` framed as `framing`.
/// Returns whether the connection can carry another request: `false` when
/// the body failed or did not match its declared length, which leaves the
/// client a response it can tell is incomplete (as hyper does).
async fn write_body<IO, B>(
    io: &mut IO,
    out: &mut Vec<u8>,
    body: B,
    framing: Framing,
    trailers: bool,
) -> io::Result<bool>
where
    IO: AsyncWrite + Unpin,
    B: http_body::Body<Data = Bytes, Error = crate::BoxError>,
{
    if framing == Framing::None {
        drop(body);
        io.write_all(out).await?;
        return Ok(true);
    }
    let mut body = pin!(body);
    let mut written: u64 = 0;
    let mut sent_trailers = false;
    loop {
        // Gather what is ready; write before waiting for more.
        let frame = match ready_frame(body.as_mut()) {
            Some(frame) => frame,
            None => {
                if !out.is_empty() {
                    io.write_all(out).await?;
                    out.clear();
                }
                std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await
            }
        };
        let frame = match frame {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body failed; closing the connection");
                io.write_all(out).await?;
                return Ok(false);
            }
        };
        match frame.into_data() {
            Ok(data) => {
                if data.is_empty() {
                    continue;
                }
                written += data.len() as u64;
                if let Framing::Length(n) = framing {
                    if written > n {
                        tracing::debug!("response body longer than its Content-Length");
                        io.write_all(out).await?;
                        return Ok(false);
                    }
                }
                if framing == Framing::Chunked {
                    push_chunk_size(out, data.len());
                }
                if data.len() >= WRITE_BATCH {
                    io.write_all(out).await?;
                    out.clear();
                    io.write_all(&data).await?;
                } else {
                    out.extend_from_slice(&data);
                }
                if framing == Framing::Chunked {
                    out.extend_from_slice(b"\r\n");
                }
                if out.len() >= WRITE_BATCH {
                    io.write_all(out).await?;
                    out.clear();
                }
            }
            Err(frame) => {
                if let (Ok(fields), Framing::Chunked, true) =
                    (frame.into_trailers(), framing, trailers)
                {
                    out.extend_from_slice(b"0\r\n");
                    for (name, value) in &fields {
                        push_field(out, name.as_str().as_bytes(), value.as_bytes());
                    }
                    out.extend_from_slice(b"\r\n");
                    sent_trailers = true;
                }
            }
        }
    }
    if let Framing::Length(n) = framing {
        if written != n {
            tracing::debug!(
                written,
                declared = n,
                "response body shorter than its Content-Length"
            );
            io.write_all(out).await?;
            return Ok(false);
        }
    }
    if framing == Framing::Chunked && !sent_trailers {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    io.write_all(out).await?;
    out.clear();
    Ok(true)
}

/// Poll the body once without waiting: `Some` if a frame (or its end) is
/// ready now.
#[allow(clippy::type_complexity)]
fn ready_frame<B: http_body::Body<Data = Bytes, Error = crate::BoxError>>(
    body: std::pin::Pin<&mut B>,
) -> Option<Option<Result<http_body::Frame<Bytes>, crate::BoxError>>> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match body.poll_frame(&mut cx) {
        std::task::Poll::Ready(frame) => Some(frame),
        std::task::Poll::Pending => None,
    }
}

fn push_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"content-length: ");
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

fn push_chunk_size(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789ABCDEF"[n & 0xF];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

thread_local! {
    /// The `Date` value, formatted once per second per worker thread.
    static CACHED_DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

fn with_date(f: impl FnOnce(&[u8])) {
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHED_DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let text = httpdate::fmt_http_date(now);
            let bytes = text.as_bytes();
            if bytes.len() == 29 {
                cached.1.copy_from_slice(bytes);
                cached.0 = secs;
            }
        }
        f(&cached.1);
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use corsgate_policy::RequestFields;

    fn parse_str(s: &str) -> (Parsed, usize) {
        let mut buf = BytesMut::from(s.as_bytes());
        let p = parse(&mut buf, &mut NameCache::default());
        (p, buf.len())
    }

    /// Which requests the front serves, and which go to hyper untouched.
    #[test]
    fn request_shapes() {
        // (request, served by the front)
        let table: &[(&str, bool)] = &[
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
            ("OPTIONS /x HTTP/1.1\r\nOrigin: https://a\r\n\r\n", true),
            (
                "GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n",
                true,
            ),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", false),
            ("GET / HTTP/1.1\r\ncontent-length: 0\r\n\r\n", false),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
            ),
            ("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", false),
            ("GET / HTTP/1.1\r\nConnection: Upgrade\r\n\r\n", false),
            ("PUT / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n", false),
            ("CONNECT a:443 HTTP/1.1\r\n\r\n", false),
            ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false),
        ];
        // Heads `httparse` refuses are answered 400 by the front, through
        // the pipeline (so with CORS), as hyper would answer them without.
        for text in [
            "GET / HTTP/1.1\r\nBad Name: x\r\nOrigin: https://a.test\r\n\r\n",
            "GET / HTTP/1.1\r\nX: a\rb\r\nOrigin: https://a.test\r\n\r\n",
            "GET /\x01 HTTP/1.1\r\nOrigin: https://a.test\r\n\r\n",
            "GET / HTTP/1.1\nX\r\nOrigin: https://a.test\n\n",
        ] {
            let Parsed::Bad(origins) = parse_str(text).0 else {
                panic!("not refused: {text:?}");
            };
            assert_eq!(origins.len(), 1, "{text:?}");
            assert_eq!(origins[0].1, "https://a.test", "{text:?}");
        }
        for (text, served) in table {
            let (parsed, left) = parse_str(text);
            match parsed {
                Parsed::Complete(_) => {
                    assert!(served, "front served {text:?}");
                    assert_eq!(left, 0, "{text:?}");
                }
                Parsed::Foreign => {
                    assert!(!served, "front refused {text:?}");
                    // Nothing consumed: hyper sees every byte.
                    assert_eq!(left, text.len(), "{text:?}");
                }
                Parsed::Partial | Parsed::Bad(_) => panic!("unexpected parse of {text:?}"),
            }
        }
    }

    /// Heads `httparse` accepts but `http` cannot represent are answered
    /// 400 by the front itself (hyper answers them 400 too).
    #[test]
    fn unrepresentable_targets_are_bad_requests() {
        let text = "GET http://[::1 HTTP/1.1\r\n\r\n";
        assert!(matches!(parse_str(text).0, Parsed::Bad(_)), "{text:?}");
    }

    #[test]
    fn more_fields_than_the_front_parses_go_to_hyper() {
        let mut text = String::from("GET / HTTP/1.1\r\n");
        for i in 0..=MAX_FIELDS {
            text.push_str(&format!("x-{i}: v\r\n"));
        }
        text.push_str("\r\n");
        assert!(matches!(parse_str(&text).0, Parsed::Foreign));
    }

    #[test]
    fn a_parsed_head_keeps_fields_in_order_and_pipelined_bytes() {
        let text = "GET /p?q=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\nTE: trailers\r\nConnection: close\r\n\r\nGET /next";
        let mut buf = BytesMut::from(text.as_bytes());
        let Parsed::Complete(head) = parse(&mut buf, &mut NameCache::default()) else {
            panic!("not parsed");
        };
        assert_eq!(&buf[..], b"GET /next");
        assert!(head.close && head.trailers);
        let r = &head.request;
        assert_eq!(r.uri().path(), "/p");
        assert_eq!(r.uri().query(), Some("q=1"));
        let x_a = HeaderName::from_static("x-a");
        let fields = r.fields();
        let values: Vec<_> = fields.values(&x_a).collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(
            r.fields().first_value(&http::header::HOST).expect("host"),
            "h"
        );
    }

    #[test]
    fn partial_heads_wait_for_more() {
        for text in [
            "",
            "GET",
            "GET / HTTP/1.1\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n",
        ] {
            if text.is_empty() {
                continue;
            }
            assert!(matches!(parse_str(text).0, Parsed::Partial), "{text:?}");
        }
    }

    /// The cache answers exactly what parsing would, hit or miss.
    #[test]
    fn cached_names_equal_parsed_names() {
        let mut cache = NameCache::default();
        let rounds: &[&[&str]] = &[
            &["Host", "Origin", "X-Custom"],
            &["host", "ORIGIN", "x-custom"],
            &["Host", "Accept", "X-Custom", "X-More"],
            &["X-More"],
        ];
        for fields in rounds {
            for (i, raw) in fields.iter().enumerate() {
                let got = cache.name(i, raw.as_bytes()).expect("valid");
                assert_eq!(
                    got,
                    HeaderName::from_bytes(raw.as_bytes()).unwrap(),
                    "{raw}"
                );
            }
        }
        assert!(cache.name(0, b"bad name").is_none());
        assert_eq!(cache.name(0, b"X-More").unwrap(), "x-more");
    }

    #[test]
    fn lengths_are_decimal() {
        for n in [0u64, 7, 10, 600, u64::MAX] {
            let mut out = Vec::new();
            push_length(&mut out, n);
            assert_eq!(out, format!("content-length: {n}\r\n").as_bytes());
        }
    }

    #[test]
    fn chunk_sizes_are_hex() {
        for (n, want) in [(0, "0"), (10, "A"), (255, "FF"), (65536, "10000")] {
            let mut out = Vec::new();
            push_chunk_size(&mut out, n);
            assert_eq!(out, format!("{want}\r\n").as_bytes());
        }
    }

    /// An upstream response written by the front as read (the completion
    /// as lines) carries the same fields as the map hyper-served
    /// connections get, across heads, origins and with no policy; and
    /// never a hop-by-hop field, a second ACAO, or CORS for a refused
    /// origin.
    #[tokio::test]
    async fn upstream_responses_as_lines_equal_the_map() {
        let heads: [&'static [u8]; 3] = [
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nVary: Accept-Encoding\r\nAccess-Control-Allow-Origin: *\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-Keep: 2\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nvary:Origin\r\nContent-Length: 0\r\nDate:  Mon, 30 Nov 2026 00:00:00 GMT\r\nX-Spaced:\tvalue\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nAccess-Control-Expose-Headers: x-secret\r\nVary: accept, x-a\r\nvary: x-b\r\n\r\n",
        ];
        let spec = corsgate_policy::PolicySpec {
            allow_origins: vec!["https://app.test".into()],
            allow_credentials: true,
            expose_headers: vec!["X-Request-Id".into()],
            ..Default::default()
        };
        let policy = corsgate_policy::Policy::compile(&spec)
            .expect("policy")
            .policy;
        let framing = ["content-length", "date", "connection", "transfer-encoding"];
        for head in heads {
            for origin in [Some("https://app.test"), Some("https://evil.test"), None] {
                for with_policy in [true, false] {
                    let case = format!(
                        "{} {origin:?} policy {with_policy}",
                        String::from_utf8_lossy(&head[..12])
                    );
                    let mut req = http::HeaderMap::new();
                    if let Some(o) = origin {
                        req.insert("origin", HeaderValue::from_static(o));
                    }
                    let lines = || {
                        with_policy
                            .then(|| policy.completion_lines(policy.actual(&req)).ok())
                            .flatten()
                    };
                    let mut wire = Vec::new();
                    let up = UpstreamResponse::from_head(head);
                    write_upstream(&mut wire, &mut Vec::new(), up, lines(), false, false, true)
                        .await
                        .expect("written");
                    let text = String::from_utf8(wire).expect("ascii");
                    let mut written: Vec<(String, String)> = text
                        .split("\r\n\r\n")
                        .next()
                        .expect("head")
                        .split("\r\n")
                        .skip(1)
                        .map(|l| {
                            let (n, v) = l.split_once(':').expect("field line");
                            (n.to_ascii_lowercase(), v.trim().to_owned())
                        })
                        .filter(|(n, _)| !framing.contains(&n.as_str()))
                        .collect();
                    let mapped =
                        Reply::Upstream(UpstreamResponse::from_head(head), lines()).into_response();
                    let mut from_map: Vec<(String, String)> = mapped
                        .headers()
                        .iter()
                        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().expect("text").to_owned()))
                        .filter(|(n, _)| !framing.contains(&n.as_str()))
                        .collect();
                    written.sort();
                    from_map.sort();
                    assert_eq!(written, from_map, "{case}");
                    let count = |name: &str| written.iter().filter(|(n, _)| n == name).count();
                    assert_eq!(count("x-hop") + count("keep-alive"), 0, "{case}");
                    assert_eq!(count("x-keep"), usize::from(head == heads[0]), "{case}");
                    assert!(count("access-control-allow-origin") <= 1, "{case}");
                    if with_policy {
                        let allowed = origin == Some("https://app.test");
                        assert_eq!(
                            count("access-control-allow-origin"),
                            usize::from(allowed),
                            "{case}"
                        );
                        let vary: Vec<&str> = written
                            .iter()
                            .filter(|(n, _)| n == "vary")
                            .map(|(_, v)| v.as_str())
                            .collect();
                        assert!(
                            vary.join(", ").to_ascii_lowercase().contains("origin"),
                            "{case}: {vary:?}"
                        );
                    }
                }
            }
        }
    }

    /// A preflight's answer is framed like any response: `content-length:
    /// 0` on a 200 or 403, no length field on a 204 (RFC 9110 §8.6).
    #[test]
    fn preflight_answers_are_framed_by_status() {
        let origin = HeaderValue::from_static("https://app.test");
        for (reject, origin, status, length) in [
            (corsgate_policy::RejectStatus::Ok, &origin, 200, true),
            (
                corsgate_policy::RejectStatus::NoContent,
                &HeaderValue::from_static("https://evil.test"),
                204,
                false,
            ),
            (
                corsgate_policy::RejectStatus::Forbidden,
                &HeaderValue::from_static("https://evil.test"),
                403,
                true,
            ),
            (corsgate_policy::RejectStatus::NoContent, &origin, 200, true),
        ] {
            let spec = corsgate_policy::PolicySpec {
                allow_origins: vec!["https://app.test".into()],
                preflight_reject_status: reject,
                ..Default::default()
            };
            let policy = corsgate_policy::Policy::compile(&spec)
                .expect("policy")
                .policy;
            let mut req = http::HeaderMap::new();
            req.insert("origin", origin.clone());
            req.insert(
                "access-control-request-method",
                HeaderValue::from_static("GET"),
            );
            let answer = policy.preflight(&req);
            let mut out = Vec::new();
            write_preflight(&mut out, &answer, true);
            let text = String::from_utf8(out).expect("ascii");
            let case = format!("{reject:?} {origin:?}");
            assert!(
                text.starts_with(&format!("HTTP/1.1 {status} ")),
                "{case}: {text}"
            );
            assert_eq!(
                text.contains("content-length: 0\r\n"),
                length,
                "{case}: {text}"
            );
            assert!(
                text.ends_with("\r\n\r\n") && text.contains("\r\ndate: "),
                "{case}: {text}"
            );
        }
    }

    #[test]
    fn date_is_an_imf_fixdate() {
        let mut got = Vec::new();
        with_date(|d| got.extend_from_slice(d));
        let text = String::from_utf8(got).expect("ascii");
        assert!(httpdate::parse_http_date(&text).is_ok(), "{text}");
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the parser; it consumes exactly one
        /// head when it serves a request and nothing when it hands the
        /// connection over, so hyper always sees every byte the front did
        /// not serve. A refused head ends the connection, whatever it
        /// consumed.
        #[test]
        fn arbitrary_bytes_are_parsed_or_left_whole(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        ) {
            let mut buf = BytesMut::from(&bytes[..]);
            match parse(&mut buf, &mut NameCache::default()) {
                Parsed::Bad(_) => {}
                Parsed::Complete(_) => {
                    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n");
                    proptest::prop_assert!(end.is_some());
                    proptest::prop_assert!(buf.len() < bytes.len());
                    proptest::prop_assert_eq!(&buf[..], &bytes[bytes.len() - buf.len()..]);
                }
                Parsed::Partial | Parsed::Foreign => {
                    proptest::prop_assert_eq!(&buf[..], &bytes[..]);
                }
            }
        }

        /// A request the front serves parses to the same method, target and
        /// fields whatever the case and spacing of its field lines.
        #[test]
        fn served_requests_keep_their_fields(
            method in proptest::sample::select(vec!["GET", "OPTIONS", "DELETE", "HEAD", "PATCH"]),
            path in "/[a-z0-9/._~-]{0,40}",
            fields in proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,20}", "[ -~]{0,40}"), 0..20),
        ) {
            let fields: Vec<(String, String)> = fields
                .into_iter()
                .filter(|(n, _)| classify(n.as_bytes()).is_none())
                .map(|(n, v)| (n, v.trim().to_owned()))
                .collect();
            let mut text = format!("{method} {path} HTTP/1.1\r\n");
            for (n, v) in &fields {
                text.push_str(&format!("{n}:  {v} \r\n"));
            }
            text.push_str("\r\n");
            let mut buf = BytesMut::from(text.as_bytes());
            let Parsed::Complete(head) = parse(&mut buf, &mut NameCache::default()) else {
                return Err(proptest::test_runner::TestCaseError::fail(format!("not served: {text:?}")));
            };
            proptest::prop_assert!(buf.is_empty());
            let r = &head.request;
            proptest::prop_assert_eq!(r.method().as_str(), method);
            proptest::prop_assert_eq!(r.uri().path(), if path.is_empty() { "/" } else { path.as_str() });
            let got: Vec<(String, String)> = r
                .fields()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            // In arrival order, every line kept.
            let want: Vec<(String, String)> = fields
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
                .collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
