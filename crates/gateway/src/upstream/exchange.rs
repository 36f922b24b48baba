//! corsgate's own HTTP/1.1 exchange with an upstream for bodiless,
//! idempotent requests (the common API `GET`), driven in the task of the
//! client's connection.
//!
//! Why not hyper's client for these: it runs every upstream connection as a
//! task of its own and passes the request, the response head and each body
//! chunk across channels between that task and the client's. Profiled on
//! the load benchmark, that hand-off and its task switches were about a
//! third of corsgate's user CPU per proxied request. Here the request head
//! is written straight from the client's header map (hop-by-hop fields
//! skipped, `X-Forwarded-*` written in place), the response head is parsed
//! with `httparse` into values that share the read buffer, and the response
//! body reads the upstream socket itself while hyper's server polls it. The
//! connection goes back to its idle list when the body's last byte is read.
//!
//! Requests with a body, upgrades (WebSocket) and HTTP/2 upstreams stay on
//! hyper's client (`pool`, and the module above). Response framing follows RFC 9112 §6.3;
//! anything ambiguous (conflicting `Content-Length`, a malformed chunk) is an
//! error — a 502 before the head, an aborted body after — never a guess.

use crate::hop::{is_hop_by_hop, is_hop_by_hop_name, named_by_connection};
use crate::upstream::forwarding::{written_by_gateway, Forwarded};
use crate::BoxError;
use bytes::{Buf, Bytes, BytesMut};
use corsgate_policy::RequestFields;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST};
use http::{Method, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest upstream response head accepted, on every upstream path: its
/// fields counted as a request's are against `limits.maxHeaderBytes` (name,
/// value and 4 bytes a line; [`fields_too_large`]). A larger head is a 502.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Are these response fields over [`MAX_HEAD_BYTES`]? Both upstream paths
/// ask this of every response head.
pub(crate) fn fields_too_large<'a>(fields: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> bool {
    fields.map(|(n, v)| n.len() + v.len() + 4).sum::<usize>() > MAX_HEAD_BYTES
}
/// Most bytes buffered for an incomplete response head: the field limit,
/// plus room for the status line and the line ends the count leaves out.
const HEAD_BUFFER: usize = MAX_HEAD_BYTES + 4 * 1024;
/// Most fields accepted in one response head.
const MAX_FIELDS: usize = 128;
/// Longest chunk-size line accepted (with extensions).
const MAX_CHUNK_LINE: usize = 4096;
/// Most bytes of chunked trailer fields accepted.
const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// Read granularity.
const READ_CHUNK: usize = 16 * 1024;
/// Idle connections kept per upstream authority.
const MAX_IDLE: usize = 512;

/// Why an exchange failed before a response head was available.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExchangeError {
    /// Connecting failed or timed out.
    #[error("connect to {0}: {1}")]
    Connect(String, String),
    /// Reading or writing the upstream connection failed.
    #[error("upstream i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The upstream closed the connection before sending any response byte.
    #[error("upstream closed the connection before responding")]
    Closed,
    /// The upstream's response could not be framed or parsed.
    #[error("invalid upstream response: {0}")]
    Invalid(&'static str),
    /// No response head before the deadline.
    #[error("upstream timed out")]
    Timeout,
}

/// One open upstream connection and its read buffer (empty while idle).
pub(crate) struct Conn {
    stream: TcpStream,
    read: BytesMut,
    write: Vec<u8>,
    /// The last parsed head's fields as offsets into `read`:
    /// (name start, name end, value start, value end). Kept with the
    /// connection so that parsing allocates nothing after the first use.
    fields: Vec<[u32; 4]>,
    /// The response timer. It lives as long as the connection and is
    /// moved only when it fires before the current request's deadline (see
    /// [`expired`]): each request's deadline is later than the one before,
    /// so a busy connection re-arms it about once per timeout instead of
    /// registering and cancelling a timer per request.
    timer: Pin<Box<tokio::time::Sleep>>,
}

/// The idle connections to one upstream authority.
#[derive(Default)]
pub(crate) struct Idle {
    // Boxed: connections move between the pool and requests as pointers.
    #[allow(clippy::vec_box)]
    conns: Mutex<Vec<Box<Conn>>>,
}

impl Idle {
    /// Take an idle connection that has shown no sign of life since it was
    /// parked: data or a FIN arriving on an idle HTTP/1.1 connection means
    /// the upstream closed it (or broke framing), so it is dropped. The
    /// check reads the reactor's cached readiness, which costs no syscall.
    /// That readiness can be stale (tokio clears it after a short read, not
    /// after one that filled the buffer); then one non-blocking read tells:
    /// "would block" proves the connection idle.
    fn take(&self) -> Option<Box<Conn>> {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        while let Some(conn) = conns.pop() {
            match conn.stream.poll_read_ready(&mut cx) {
                Poll::Pending => return Some(conn),
                Poll::Ready(Ok(())) => {
                    let mut probe = [0u8; 1];
                    if let Err(e) = conn.stream.try_read(&mut probe) {
                        if e.kind() == std::io::ErrorKind::WouldBlock {
                            return Some(conn);
                        }
                    }
                }
                Poll::Ready(Err(_)) => {}
            }
        }
        None
    }

    fn put(&self, conn: Box<Conn>) {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if conns.len() < MAX_IDLE {
            conns.push(conn);
        }
    }
}

/// Is this request sent through [`exchange`]? Only requests without a body
/// (so nothing needs to stream upstream while the response is read) with an
/// idempotent method (so a stale pooled connection can be retried, RFC 9110
/// §9.2.2), and never an upgrade.
pub(crate) fn eligible(method: &Method, body_is_empty: bool, upgrade: bool) -> bool {
    body_is_empty
        && !upgrade
        && matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE
        )
}

/// What the upstream request head is made of.
pub(crate) struct RequestHead<'a> {
    pub method: &'a Method,
    /// Origin-form target: path and query.
    pub target: &'a str,
    /// The client's fields, after the rule's request-header edits.
    pub headers: crate::request::Fields<'a>,
    /// `Host` and the `X-Forwarded-*` fields.
    pub forwarded: &'a Forwarded<'a>,
}

/// Fields never forwarded as the client sent them: hop-by-hop ones (RFC
/// 9110 §7.6.1) besides those that `Connection` names, and those the
/// gateway writes itself (`Host`, `X-Forwarded-*`).
fn skipped_on_request(name: &HeaderName) -> bool {
    is_hop_by_hop(name) || written_by_gateway(name)
}

/// Write the upstream request head into `out`.
pub(crate) fn encode_request(head: &RequestHead<'_>, authority: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    match head.forwarded.upstream_host() {
        Some(h) => out.extend_from_slice(h.as_bytes()),
        None => out.extend_from_slice(authority.as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    let has_connection = head.headers.has(&CONNECTION);
    for (name, value) in head.headers.iter() {
        if skipped_on_request(name)
            || (has_connection && named_by_connection(&head.headers, name.as_str()))
        {
            continue;
        }
        push_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    head.forwarded.write_lines(&head.headers, out);
    out.extend_from_slice(b"\r\n");
}

/// Append one field line, `name: value\r\n` (the front writes with it too).
pub(crate) fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Boxed once here and never again: a connection moves between the pool,
/// the exchange and the response body, which stay small. `deadline` is the
/// request's, which also bounds the connect.
async fn connect(
    authority: &str,
    timeout: std::time::Duration,
    deadline: Instant,
) -> Result<Box<Conn>, ExchangeError> {
    let err = |e: String| ExchangeError::Connect(authority.to_owned(), e);
    let until = deadline.min(Instant::now() + timeout);
    let stream = tokio::time::timeout_at(until.into(), TcpStream::connect(authority))
        .await
        .map_err(|_| err("timed out".into()))?
        .map_err(|e| err(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    Ok(Box::new(Conn {
        stream,
        read: BytesMut::with_capacity(READ_CHUNK),
        write: Vec::with_capacity(1024),
        fields: Vec::with_capacity(32),
        timer: Box::pin(tokio::time::sleep_until(deadline.into())),
    }))
}

/// Completes with [`ExchangeError::Timeout`] once `deadline` has passed.
/// A timer that fires early (set for an earlier request, or while the
/// connection was idle) is moved to `deadline` and waited on again.
async fn expired(timer: &mut Pin<Box<tokio::time::Sleep>>, deadline: Instant) -> ExchangeError {
    loop {
        timer.as_mut().await;
        if Instant::now() >= deadline {
            return ExchangeError::Timeout;
        }
        timer.as_mut().reset(deadline.into());
    }
}

/// Send one bodiless request to `authority` over an idle connection from
/// `idle` (or a new one) and read the response head. A pooled connection
/// that turns out closed before any response byte is replaced once.
pub(crate) async fn exchange(
    idle: &Arc<Idle>,
    authority: &str,
    connect_timeout: std::time::Duration,
    head: &RequestHead<'_>,
    deadline: Instant,
) -> Result<UpstreamResponse, ExchangeError> {
    let (mut conn, mut reused) = match idle.take() {
        Some(c) => (c, true),
        // Boxed: connecting is rare and its future would otherwise enlarge
        // every request's.
        None => (
            Box::pin(connect(authority, connect_timeout, deadline)).await?,
            false,
        ),
    };
    loop {
        // A timer left later than this deadline (a request with a longer
        // timeout) is brought forward; an earlier one is moved when it fires.
        if conn.timer.deadline() > deadline.into() {
            conn.timer.as_mut().reset(deadline.into());
        }
        conn.write.clear();
        encode_request(head, authority, &mut conn.write);
        let written = tokio::select! {
            biased;
            w = conn.stream.write_all(&conn.write) => w,
            e = expired(&mut conn.timer, deadline) => return Err(e),
        };
        let sent = match written {
            Ok(()) => read_head(&mut conn, deadline).await,
            Err(e) => Err(e.into()),
        };
        match sent {
            Ok(parsed) => {
                let is_head = *head.method == Method::HEAD;
                return response(conn, parsed, is_head, Arc::clone(idle));
            }
            Err(ExchangeError::Io(_) | ExchangeError::Closed) if reused && conn.read.is_empty() => {
                conn = Box::pin(connect(authority, connect_timeout, deadline)).await?;
                reused = false;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A parsed response head; its fields are in [`Conn::fields`].
struct ParsedHead {
    status: u16,
    http10: bool,
    len: usize,
}

/// Parse a complete head at the front of `buf`, if there is one, recording
/// its fields in `fields`.
fn parse_head(buf: &[u8], fields: &mut Vec<[u32; 4]>) -> Result<Option<ParsedHead>, ExchangeError> {
    let mut raw = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut raw)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ExchangeError::Invalid("too many response header fields"))
        }
        Err(_) => return Err(ExchangeError::Invalid("malformed response head")),
    };
    if fields_too_large(resp.headers.iter().map(|h| (h.name.as_bytes(), h.value))) {
        return Err(ExchangeError::Invalid("response head too large"));
    }
    // The buffer holds at most HEAD_BUFFER + READ_CHUNK bytes when a head
    // is parsed, so offsets fit in u32.
    let base = buf.as_ptr() as usize;
    let offset = |p: *const u8| (p as usize - base) as u32;
    fields.clear();
    for h in resp.headers.iter() {
        let n = offset(h.name.as_ptr());
        let v = offset(h.value.as_ptr());
        fields.push([n, n + h.name.len() as u32, v, v + h.value.len() as u32]);
    }
    Ok(Some(ParsedHead {
        status: resp.code.unwrap_or(0),
        http10: resp.version == Some(0),
        len,
    }))
}

/// Read until a final (non-1xx) response head is complete. Interim 1xx
/// responses are consumed and dropped, as hyper's client does.
async fn read_head(conn: &mut Conn, deadline: Instant) -> Result<ParsedHead, ExchangeError> {
    loop {
        if !conn.read.is_empty() {
            if let Some(parsed) = parse_head(&conn.read, &mut conn.fields)? {
                match parsed.status {
                    101 => return Err(ExchangeError::Invalid("101 without an upgrade request")),
                    100..=199 => {
                        conn.read.advance(parsed.len);
                        continue;
                    }
                    _ => return Ok(parsed),
                }
            }
            if conn.read.len() >= HEAD_BUFFER {
                return Err(ExchangeError::Invalid("response head too large"));
            }
        }
        conn.read.reserve(READ_CHUNK);
        let n = tokio::select! {
            biased;
            n = conn.stream.read_buf(&mut conn.read) => n?,
            e = expired(&mut conn.timer, deadline) => return Err(e),
        };
        if n == 0 {
            return Err(if conn.read.is_empty() {
                ExchangeError::Closed
            } else {
                ExchangeError::Invalid("connection closed inside the response head")
            });
        }
    }
}

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes remain.
    Length(u64),
    /// Chunked transfer coding, at this step.
    Chunked(Chunk),
    /// Until the upstream closes the connection.
    Close,
    /// Complete.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer fields until an empty line.
    Trailers,
}

/// Strict `Content-Length`: digits only; a list is accepted when every
/// member is the same number (RFC 9110 §8.6).
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
    let mut found: Option<u64> = None;
    for part in value.split(|&b| b == b',') {
        let part = part.trim_ascii();
        // At most 19 digits always fit in a u64.
        if part.is_empty() || part.len() > 19 {
            return None;
        }
        let mut n: u64 = 0;
        for &d in part {
            if !d.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u64::from(d - b'0');
        }
        match found {
            Some(prev) if prev != n => return None,
            _ => found = Some(n),
        }
    }
    found
}

/// What the framing fields of a response head say.
#[derive(Default)]
struct FramingFields {
    transfer_encoding: bool,
    chunked_last: bool,
    content_length: Option<u64>,
    close: bool,
    keep_alive: bool,
    /// `Connection` names a field other than close/keep-alive.
    names_fields: bool,
}

/// An upstream response as it was read: the head's bytes with the spans of
/// the fields to pass on (framing and hop-by-hop fields already taken out),
/// and the body. A server that writes its own response heads copies the
/// fields through without parsing names into a map (see
/// [`UpstreamResponse::fields`]); [`UpstreamResponse::into_http`] builds
/// the map when something needs it.
pub(crate) struct UpstreamResponse {
    pub(crate) status: StatusCode,
    head: Bytes,
    /// (name start, name end, value start, value end) into `head`.
    fields: Vec<[u32; 4]>,
    /// The `Content-Length` the upstream declared (never with a
    /// `Transfer-Encoding`): what a response to HEAD, or a 304, says.
    pub(crate) declared_length: Option<u64>,
    body: UpstreamBody,
}

impl UpstreamResponse {
    /// The fields to pass on, as received (`httparse` validated them:
    /// names are tokens, values hold no control characters).
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
        self.fields.iter().map(|&[ns, ne, vs, ve]| {
            (
                &self.head[ns as usize..ne as usize],
                &self.head[vs as usize..ve as usize],
            )
        })
    }

    /// The same fields with each one's whole line as received (`name:
    /// value`, without the line end): passed on in one copy.
    pub(crate) fn lines(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|&[ns, ne, _, ve]| {
            (
                &self.head[ns as usize..ne as usize],
                &self.head[ns as usize..ve as usize],
            )
        })
    }

    /// A response read from `head` (a whole head) whose body is empty.
    #[cfg(test)]
    pub(crate) fn from_head(head: &'static [u8]) -> Self {
        let mut spans = Vec::new();
        let parsed = parse_head(head, &mut spans)
            .expect("valid head")
            .expect("whole head");
        let (fields, ff) = sort_fields(head, &spans).expect("valid fields");
        UpstreamResponse {
            status: StatusCode::from_u16(parsed.status).expect("status"),
            head: Bytes::from_static(head),
            fields,
            declared_length: ff.content_length.filter(|_| !ff.transfer_encoding),
            body: UpstreamBody {
                conn: None,
                framing: Framing::Done,
                home: None,
            },
        }
    }

    /// The body, to stream once the head is written.
    pub(crate) fn into_body(self) -> UpstreamBody {
        self.body
    }

    /// The response as an `http::Response`, fields in a map, the declared
    /// length among them.
    pub(crate) fn into_http(self) -> Result<http::Response<UpstreamBody>, ExchangeError> {
        // Room for the CORS fields the policy adds, so completing the
        // response does not grow the map.
        let mut headers = HeaderMap::with_capacity(self.fields.len() + 7);
        for &[ns, ne, vs, ve] in &self.fields {
            let name = HeaderName::from_bytes(&self.head[ns as usize..ne as usize])
                .map_err(|_| ExchangeError::Invalid("bad field name"))?;
            let value = HeaderValue::from_maybe_shared(self.head.slice(vs as usize..ve as usize))
                .map_err(|_| ExchangeError::Invalid("bad field value"))?;
            headers.append(name, value);
        }
        if let Some(n) = self.declared_length {
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        let mut resp = http::Response::new(self.body);
        *resp.status_mut() = self.status;
        *resp.version_mut() = Version::HTTP_11;
        *resp.headers_mut() = headers;
        Ok(resp)
    }
}

/// Sort a response head's fields: those to pass on (not framing, not
/// hop-by-hop, not named by `Connection`), and what the framing fields say.
fn sort_fields(
    head: &[u8],
    spans: &[[u32; 4]],
) -> Result<(Vec<[u32; 4]>, FramingFields), ExchangeError> {
    let mut ff = FramingFields::default();
    let mut kept = Vec::with_capacity(spans.len());
    for &span in spans {
        let [ns, ne, vs, ve] = span.map(|x| x as usize);
        let (name, value) = (&head[ns..ne], &head[vs..ve]);
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            ff.transfer_encoding = true;
            // Only the last coding decides; a later field line is later.
            if let Some(last) = value.rsplit(|&b| b == b',').next() {
                ff.chunked_last = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n =
                content_length(value).ok_or(ExchangeError::Invalid("invalid Content-Length"))?;
            if ff.content_length.is_some_and(|prev| prev != n) {
                return Err(ExchangeError::Invalid("conflicting Content-Length"));
            }
            ff.content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"connection") {
            for t in corsgate_policy::list_items(value) {
                if t.eq_ignore_ascii_case(b"close") {
                    ff.close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    ff.keep_alive = true;
                } else {
                    ff.names_fields = true;
                }
            }
        } else if !is_hop_by_hop_name(name) {
            kept.push(span);
        }
    }
    if ff.names_fields {
        // Fields the upstream's Connection names are hop-by-hop too.
        let named = |name: &[u8]| {
            spans.iter().any(|&[ns, ne, vs, ve]| {
                head[ns as usize..ne as usize].eq_ignore_ascii_case(b"connection")
                    && corsgate_policy::list_items(&head[vs as usize..ve as usize])
                        .any(|t| t.eq_ignore_ascii_case(name))
            })
        };
        kept.retain(|&[ns, ne, _, _]| !named(&head[ns as usize..ne as usize]));
    }
    Ok((kept, ff))
}

fn response(
    mut conn: Box<Conn>,
    parsed: ParsedHead,
    head_request: bool,
    idle: Arc<Idle>,
) -> Result<UpstreamResponse, ExchangeError> {
    let head = conn.read.split_to(parsed.len).freeze();
    let status = StatusCode::from_u16(parsed.status)
        .map_err(|_| ExchangeError::Invalid("bad status code"))?;
    let (kept, ff) = sort_fields(&head, &conn.fields)?;
    let no_body = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // Transfer-Encoding overrides Content-Length, which a proxy must then
    // drop (RFC 9112 §6.3 item 3).
    let declared_length = ff.content_length.filter(|_| !ff.transfer_encoding);
    let framing = if no_body {
        Framing::Length(0)
    } else if ff.transfer_encoding {
        if ff.chunked_last {
            Framing::Chunked(Chunk::Size)
        } else {
            Framing::Close
        }
    } else if let Some(n) = ff.content_length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    let persistent = if parsed.http10 {
        ff.keep_alive && !ff.close
    } else {
        !ff.close
    };
    let home = (persistent && framing != Framing::Close).then_some(idle);
    let mut body = UpstreamBody {
        conn: Some(conn),
        framing,
        home,
    };
    if body.framing == Framing::Length(0) {
        body.finish();
    }
    Ok(UpstreamResponse {
        status,
        head,
        fields: kept,
        declared_length,
        body,
    })
}

/// The response body, read from the upstream connection as it is polled.
pub(crate) struct UpstreamBody {
    conn: Option<Box<Conn>>,
    framing: Framing,
    /// Where the connection goes when the body is complete; `None` when it
    /// cannot be reused (close-delimited, `Connection: close`, HTTP/1.0).
    home: Option<Arc<Idle>>,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("framing", &self.framing)
            .finish_non_exhaustive()
    }
}

fn invalid(what: &'static str) -> BoxError {
    Box::new(ExchangeError::Invalid(what))
}

impl UpstreamBody {
    /// The body is complete: park the connection if it is clean.
    fn finish(&mut self) {
        self.framing = Framing::Done;
        if let (Some(conn), Some(home)) = (self.conn.take(), self.home.take()) {
            // Bytes beyond the framed body mean the upstream broke framing:
            // never reuse such a connection.
            if conn.read.is_empty() {
                home.put(conn);
            }
        }
    }

    /// Stop reading and close the connection (never pooled).
    fn abandon(&mut self) {
        self.framing = Framing::Done;
        self.conn = None;
    }

    /// Read more from the upstream; `Ok(false)` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, BoxError>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        conn.read.reserve(READ_CHUNK);
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut conn.stream),
            cx,
            &mut conn.read
        ))?;
        Poll::Ready(Ok(n > 0))
    }

    /// Decode what is buffered: `Some(Some(data))`, `Some(None)` at the end
    /// of the body, `None` when more input is needed.
    fn step(&mut self) -> Result<Option<Option<Frame<Bytes>>>, BoxError> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Ok(Some(None));
            };
            let buf = &mut conn.read;
            match self.framing {
                Framing::Done => return Ok(Some(None)),
                Framing::Length(0) => {
                    self.finish();
                    return Ok(Some(None));
                }
                Framing::Length(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(take).freeze();
                    self.framing = Framing::Length(left - take as u64);
                    if self.framing == Framing::Length(0) {
                        self.finish();
                    }
                    return Ok(Some(Some(Frame::data(data))));
                }
                Framing::Close => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(Some(Frame::data(buf.split().freeze()))));
                }
                Framing::Chunked(Chunk::Size) => {
                    let Some(end) = find_crlf(buf) else {
                        return if buf.len() > MAX_CHUNK_LINE {
                            Err(invalid("chunk-size line too long"))
                        } else {
                            Ok(None)
                        };
                    };
                    let size = chunk_size(&buf[..end]).ok_or_else(|| invalid("bad chunk size"))?;
                    buf.advance(end + 2);
                    self.framing = Framing::Chunked(if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    });
                }
                Framing::Chunked(Chunk::Data(left)) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(take).freeze();
                    let left = left - take as u64;
                    self.framing = Framing::Chunked(if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    });
                    return Ok(Some(Some(Frame::data(data))));
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(invalid("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.framing = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Trailers) => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                        self.finish();
                        return Ok(Some(None));
                    }
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        return if buf.len() > MAX_TRAILER_BYTES {
                            Err(invalid("chunked trailer too large"))
                        } else {
                            Ok(None)
                        };
                    };
                    if end + 4 > MAX_TRAILER_BYTES {
                        return Err(invalid("chunked trailer too large"));
                    }
                    let block = buf.split_to(end + 4);
                    let trailers = parse_trailers(&block)?;
                    self.finish();
                    return Ok(Some(Some(Frame::trailers(trailers))));
                }
            }
        }
    }
}

/// Trailer fields, passed on as a trailers frame (hyper's server sends them
/// to clients that asked with `TE: trailers`). Framing and hop-by-hop fields
/// are never valid trailers (RFC 9110 §6.5.1) and are dropped.
fn parse_trailers(block: &[u8]) -> Result<HeaderMap, BoxError> {
    let mut raw = [httparse::EMPTY_HEADER; 32];
    let fields = match httparse::parse_headers(block, &mut raw) {
        Ok(httparse::Status::Complete((_, fields))) => fields,
        _ => return Err(invalid("malformed chunked trailer")),
    };
    let mut out = HeaderMap::with_capacity(fields.len());
    for f in fields.iter() {
        let name =
            HeaderName::from_bytes(f.name.as_bytes()).map_err(|_| invalid("bad trailer name"))?;
        let value = HeaderValue::from_bytes(f.value).map_err(|_| invalid("bad trailer value"))?;
        if is_hop_by_hop(&name) || name == http::header::CONTENT_LENGTH || name == HOST {
            continue;
        }
        out.append(name, value);
    }
    Ok(out)
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// `chunk-size [ chunk-ext ]`: 1-16 hex digits, then nothing, or optional
/// whitespace and `;` extensions (ignored).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return None;
    }
    let rest = line[digits..].trim_ascii_start();
    if !(rest.is_empty() || rest.starts_with(b";")) {
        return None;
    }
    let hex = std::str::from_utf8(&line[..digits]).ok()?;
    u64::from_str_radix(hex, 16).ok()
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let err = match self.step() {
                Ok(Some(Some(frame))) => return Poll::Ready(Some(Ok(frame))),
                Ok(Some(None)) => return Poll::Ready(None),
                Ok(None) => match ready!(self.poll_fill(cx)) {
                    Ok(true) => continue,
                    Ok(false) => {
                        // End of stream: the end of a close-delimited body,
                        // a framing error for any other.
                        let clean = self.framing == Framing::Close;
                        self.abandon();
                        if clean {
                            return Poll::Ready(None);
                        }
                        invalid("upstream closed the connection inside the body")
                    }
                    Err(e) => e,
                },
                Err(e) => e,
            };
            self.abandon();
            return Poll::Ready(Some(Err(err)));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_strict() {
        let table: &[(&[u8], Option<u64>)] = &[
            (b"0", Some(0)),
            (b"42", Some(42)),
            (b"42, 42", Some(42)),
            (b" 7 ", Some(7)),
            (b"42, 43", None),
            (b"", None),
            (b"+5", None),
            (b"-1", None),
            (b"0x10", None),
            (b"1 2", None),
            (b"99999999999999999999", None),
            (b"9999999999999999999", Some(9_999_999_999_999_999_999)),
            (b"0007", Some(7)),
            (b"7,", None),
        ];
        for (value, want) in table {
            assert_eq!(
                content_length(value),
                *want,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn chunk_size_lines() {
        let table: &[(&[u8], Option<u64>)] = &[
            (b"0", Some(0)),
            (b"a", Some(10)),
            (b"FF", Some(255)),
            (b"1f;name=value", Some(31)),
            (b"1f ; ext", Some(31)),
            (b"ffffffffffffffff", Some(u64::MAX)),
            (b"10000000000000000", None),
            (b"", None),
            (b";ext", None),
            (b"-1", None),
            (b"1 2", None),
            (b"0x1", None),
            (b"g", None),
        ];
        for (line, want) in table {
            assert_eq!(
                chunk_size(line),
                *want,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn eligibility() {
        let table = [
            (Method::GET, true, false, true),
            (Method::HEAD, true, false, true),
            (Method::OPTIONS, true, false, true),
            (Method::DELETE, true, false, true),
            (Method::POST, true, false, false),
            (Method::PUT, true, false, false),
            (Method::PATCH, true, false, false),
            (Method::GET, false, false, false),
            (Method::GET, true, true, false),
        ];
        for (method, empty, upgrade, want) in table {
            assert_eq!(
                eligible(&method, empty, upgrade),
                want,
                "{method} {empty} {upgrade}"
            );
        }
    }

    /// The upstream head for `headers`, which must come out the same
    /// whether the fields arrive as hyper's map or as the front's list.
    fn head_for(headers: &HeaderMap, host: Option<&HeaderValue>) -> String {
        let list: crate::request::FieldList = headers
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        let forwarded = Forwarded {
            peer_ip: "10.0.0.9",
            host: host.cloned(),
            upstream_host: None,
            target: None,
            tls: true,
            http2: false,
        };
        let encode = |fields| {
            let head = RequestHead {
                method: &Method::GET,
                target: "/a?b=1",
                headers: fields,
                forwarded: &forwarded,
            };
            let mut out = Vec::new();
            encode_request(&head, "127.0.0.1:9", &mut out);
            String::from_utf8(out).expect("ascii head")
        };
        let from_map = encode(crate::request::Fields::Map(headers));
        let from_list = encode(crate::request::Fields::List(&list));
        assert_eq!(from_map, from_list);
        from_map
    }

    #[test]
    fn request_head_skips_hop_by_hop_and_writes_forwarding_fields() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("api.example.com"));
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("origin", HeaderValue::from_static("https://a.example"));
        h.append(
            &crate::upstream::forwarding::X_FORWARDED_FOR,
            HeaderValue::from_static("1.1.1.1"),
        );
        h.append(
            &crate::upstream::forwarding::X_FORWARDED_FOR,
            HeaderValue::from_static("2.2.2.2"),
        );
        h.insert(
            &crate::upstream::forwarding::X_FORWARDED_PROTO,
            HeaderValue::from_static("gopher"),
        );
        h.insert(
            &crate::upstream::forwarding::X_FORWARDED_HOST,
            HeaderValue::from_static("evil.test"),
        );
        let host = HeaderValue::from_static("api.example.com");
        let text = head_for(&h, Some(&host));
        assert!(
            text.starts_with("GET /a?b=1 HTTP/1.1\r\nhost: api.example.com\r\n"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\n"), "{text}");
        assert!(text.contains("\r\norigin: https://a.example\r\n"), "{text}");
        assert!(
            text.contains("\r\nx-forwarded-for: 1.1.1.1, 2.2.2.2, 10.0.0.9\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nx-forwarded-host: api.example.com\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nx-forwarded-proto: https\r\n"), "{text}");
        for gone in [
            "connection",
            "x-secret",
            "keep-alive",
            "te:",
            "gopher",
            "evil.test",
        ] {
            assert!(!text.contains(gone), "{gone} forwarded: {text}");
        }
        assert_eq!(text.matches("host: ").count(), 2, "{text}");
        // No client Host: the authority is the Host.
        let text = head_for(&HeaderMap::new(), None);
        assert!(text.contains("\r\nhost: 127.0.0.1:9\r\n"), "{text}");
        assert!(!text.contains("x-forwarded-host"), "{text}");
    }
}
