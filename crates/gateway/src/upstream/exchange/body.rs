//! Reading an upstream response body in the client's task: by length, by
//! chunks (with trailers) or to the close, strictly; the connection goes
//! back to its idle list when the last byte is read.

use super::*;

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
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
pub(super) enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer fields until an empty line.
    Trailers,
}

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

pub(super) fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// `chunk-size [ chunk-ext ]`: 1-16 hex digits, then nothing, or optional
/// whitespace and `;` extensions (ignored).
pub(super) fn chunk_size(line: &[u8]) -> Option<u64> {
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
}
