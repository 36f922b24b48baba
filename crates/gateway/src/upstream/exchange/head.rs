//! Reading an upstream response head: parsed with `httparse` into spans of
//! the read buffer, its framing fields sorted out (RFC 9112 §6.3), and the
//! response the front passes on as read.

use super::body::{Chunk, Framing};
use super::*;

/// A parsed response head (corsgate-http1); its fields are in
/// [`Conn::fields`].
pub(super) use corsgate_http1::ResponseHead as ParsedHead;

/// Parse a complete head at the front of `buf`, if there is one,
/// recording its fields in `fields`.
pub(super) fn parse_head(
    buf: &[u8],
    fields: &mut Vec<[u32; 4]>,
) -> Result<Option<ParsedHead>, ExchangeError> {
    corsgate_http1::parse_response_head(buf, fields).map_err(|e| ExchangeError::Invalid(e.what()))
}

/// Read until a final (non-1xx) response head is complete. Interim 1xx
/// responses are consumed and dropped, as hyper's client does.
pub(super) async fn read_head(
    conn: &mut Conn,
    deadline: Instant,
) -> Result<ParsedHead, ExchangeError> {
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

/// Strict `Content-Length` (corsgate-http1).
pub(crate) use corsgate_http1::content_length;

use corsgate_http1::FramingFields;

/// An upstream response as it was read: the head's bytes with the spans of
/// the fields to pass on (framing and hop-by-hop fields already taken out),
/// and the body. A server that writes its own response heads copies the
/// fields through without parsing names into a map (see
/// [`UpstreamResponse::fields`]); [`UpstreamResponse::into_http`] builds
/// the map when something needs it.
pub(crate) struct UpstreamResponse {
    pub(crate) status: StatusCode,
    pub(super) head: Bytes,
    /// (name start, name end, value start, value end) into `head`.
    pub(super) fields: Vec<[u32; 4]>,
    /// The `Content-Length` the upstream declared (never with a
    /// `Transfer-Encoding`): what a response to HEAD, or a 304, says.
    pub(crate) declared_length: Option<u64>,
    pub(super) body: UpstreamBody,
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

/// Sort a response head's fields (corsgate-http1).
pub(super) fn sort_fields(
    head: &[u8],
    spans: &[[u32; 4]],
) -> Result<(Vec<[u32; 4]>, FramingFields), ExchangeError> {
    corsgate_http1::sort_response_fields(head, spans).map_err(ExchangeError::Invalid)
}

pub(super) fn response(
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
}
