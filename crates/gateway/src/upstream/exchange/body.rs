//! Reading an upstream response body in the client's task: by length, by
//! chunks (with trailers) or to the close, strictly; the connection goes
//! back to its idle list when the last byte is read.

use super::*;

use corsgate_http1::Decoded;
pub(super) use corsgate_http1::{Chunk, Framing};

/// The response body, read from the upstream connection as it is polled.
pub(crate) struct UpstreamBody {
    pub(super) conn: Option<Box<Conn>>,
    pub(super) framing: Framing,
    /// Where the connection goes when the body is complete; `None` when it
    /// cannot be reused (close-delimited, `Connection: close`, HTTP/1.0).
    pub(super) home: Option<Arc<Idle>>,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("framing", &self.framing)
            .finish_non_exhaustive()
    }
}

pub(super) fn invalid(what: &'static str) -> BoxError {
    Box::new(ExchangeError::Invalid(what))
}

impl UpstreamBody {
    /// The body is complete: park the connection if it is clean.
    pub(super) fn finish(&mut self) {
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

    /// Decode what is buffered (the framing itself is corsgate-http1's):
    /// `Some(Some(data))`, `Some(None)` at the end of the body, `None` when
    /// more input is needed.
    fn step(&mut self) -> Result<Option<Option<Frame<Bytes>>>, BoxError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Some(None));
        };
        let decoded = self
            .framing
            .decode(&mut conn.read)
            .map_err(|e| invalid(e.what()))?;
        let frame = match decoded {
            None => return Ok(None),
            Some(Decoded::Data(data)) => Some(Frame::data(data)),
            Some(Decoded::Trailers(block)) => Some(Frame::trailers(parse_trailers(&block)?)),
            Some(Decoded::End) => None,
        };
        if self.framing.is_done() {
            self.finish();
        }
        Ok(Some(frame))
    }
}

/// Trailer fields, passed on as a trailers frame (hyper's server sends them
/// to clients that asked with `TE: trailers`). Framing and hop-by-hop fields
/// are never valid trailers (RFC 9110 §6.5.1) and are dropped.
pub(super) fn parse_trailers(block: &[u8]) -> Result<HeaderMap, BoxError> {
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
