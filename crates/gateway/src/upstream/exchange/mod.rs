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
//! hyper's client (`pool`, and the module above). Response framing follows
//! RFC 9112 §6.3; anything ambiguous (conflicting `Content-Length`, a
//! malformed chunk) is an error — a 502 before the head, an aborted body
//! after — never a guess. [`head`] reads response heads, [`body`] bodies;
//! this module holds the connections and writes the request.

use crate::hop::{is_hop_by_hop, named_by_connection};
use crate::upstream::forwarding::{written_by_gateway, Forwarded};
use crate::BoxError;
use bytes::{Buf, Bytes, BytesMut};
use corsgate_policy::RequestFields;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST};
use http::{Method, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::client::conn::http1::SendRequest;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod body;
mod head;

pub(crate) use body::UpstreamBody;
pub(crate) use head::{content_length, UpstreamResponse};
use head::{read_head, response};

/// Largest upstream response head accepted, on every upstream path
/// (corsgate-http1); a larger head is a 502.
pub(crate) use corsgate_http1::{fields_too_large, MAX_HEAD_BYTES};

/// Most bytes buffered for an incomplete response head: the field limit,
/// plus room for the status line and the line ends the count leaves out.
pub(super) const HEAD_BUFFER: usize = MAX_HEAD_BYTES + 4 * 1024;
/// Read granularity.
pub(super) const READ_CHUNK: usize = 16 * 1024;

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

/// The connections kept open to one upstream authority between requests:
/// the exchange's own, and hyper's HTTP/1.1 client connections ([`pool`],
/// for bodies and upgrades). `limit` (the rule's `maxIdleConnections`)
/// bounds both lists together; a connection finished when they are full is
/// closed instead of kept.
///
/// [`pool`]: crate::upstream::pool
pub(crate) struct Idle {
    limit: usize,
    lists: Mutex<Lists>,
}

#[derive(Default)]
struct Lists {
    // Boxed: connections move between the pool and requests as pointers.
    #[allow(clippy::vec_box)]
    conns: Vec<Box<Conn>>,
    /// hyper's client connections, kept from the response head on (a
    /// sender becomes ready again once its body has been read).
    senders: Vec<SendRequest<crate::Body>>,
}

impl Idle {
    /// An empty list keeping at most `limit` connections.
    pub(crate) fn new(limit: usize) -> Self {
        Idle {
            limit,
            lists: Mutex::default(),
        }
    }

    fn lists(&self) -> std::sync::MutexGuard<'_, Lists> {
        self.lists.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take an idle connection that has shown no sign of life since it was
    /// parked: data or a FIN arriving on an idle HTTP/1.1 connection means
    /// the upstream closed it (or broke framing), so it is dropped. The
    /// check reads the reactor's cached readiness, which costs no syscall.
    /// That readiness can be stale (tokio clears it after a short read, not
    /// after one that filled the buffer); then one non-blocking read tells:
    /// "would block" proves the connection idle.
    fn take(&self) -> Option<Box<Conn>> {
        let mut lists = self.lists();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        while let Some(conn) = lists.conns.pop() {
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
        let mut lists = self.lists();
        if lists.has_room(self.limit) {
            lists.conns.push(conn);
        }
    }

    /// Take a ready hyper client connection, dropping closed ones.
    pub(crate) fn take_sender(&self) -> Option<SendRequest<crate::Body>> {
        let mut lists = self.lists();
        lists.senders.retain(|s| !s.is_closed());
        let i = lists.senders.iter().position(SendRequest::is_ready)?;
        Some(lists.senders.swap_remove(i))
    }

    /// Keep a hyper client connection, unless it is closed or the lists
    /// are full (then it is dropped, and hyper closes it once its response
    /// has been read).
    pub(crate) fn put_sender(&self, sender: SendRequest<crate::Body>) {
        if sender.is_closed() {
            return;
        }
        let mut lists = self.lists();
        if !lists.has_room(self.limit) {
            lists.senders.retain(|s| !s.is_closed());
        }
        if lists.has_room(self.limit) {
            lists.senders.push(sender);
        }
    }
}

impl Lists {
    fn has_room(&self, limit: usize) -> bool {
        self.conns.len() + self.senders.len() < limit
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

#[cfg(test)]
mod tests {
    use super::*;

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
            mode: corsgate_config::ForwardedHeaders::Append,
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
